"""IgnoreRules: gitignore semantics (checked against real git), deny and skip lists, symlinks,
nesting, caching and walk pruning."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from aigents_lsp.workspace.ignore import OUTSIDE_WORKSPACE, IgnoreRules, path_from_uri

GIT = shutil.which("git")
needs_symlinks = pytest.mark.skipif(os.name == "nt", reason="symlinks need privileges on Windows")


def make_tree(root: Path, empty_files: str = "", files: dict[str, str] | None = None) -> Path:
    """Create `root`, the space-separated `empty_files` ("dir/" makes a directory) and `files`."""
    for name, text in {**dict.fromkeys(empty_files.split(), ""), **(files or {})}.items():
        path = root / name
        if name.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    root.mkdir(parents=True, exist_ok=True)
    return root


def relatives(paths: object, root: Path) -> list[str]:
    assert isinstance(paths, list)
    return [Path(p).relative_to(root).as_posix() for p in paths]


# (.gitignore text, path, is a directory, ignored?) — every row is also checked against git.
GITIGNORE_CASES = [
    ("\n\n*.log\n\n", "a.log", False, True),  # blank lines
    ("#foo\n", "#foo", False, False),  # a comment
    ("\\#foo\n", "#foo", False, True),
    ("\\!important\n", "!important", False, True),
    ("foo   \n", "foo", False, True),  # trailing spaces are trimmed ...
    ("foo\\ \n", "foo ", False, True),  # ... unless escaped
    ("foo\\ \n", "foo", False, False),
    ("*.log\n", "deep/er/x.log", False, True),  # no slash: any depth
    ("frotz\n", "a/b/frotz", False, True),
    ("/root.txt\n", "root.txt", False, True),  # a leading slash anchors
    ("/root.txt\n", "sub/root.txt", False, False),
    ("doc/frotz\n", "doc/frotz", False, True),  # so does a slash in the middle
    ("doc/frotz\n", "a/doc/frotz", False, False),
    ("frotz/\n", "frotz", True, True),  # a trailing slash: directories only
    ("frotz/\n", "frotz", False, False),
    ("frotz/\n", "a/frotz/file.txt", False, True),
    ("a/*.txt\n", "a/x.txt", False, True),  # `*` and `?` do not cross "/"
    ("a/*.txt\n", "a/b/x.txt", False, False),
    ("a*c\n", "a/c", False, False),
    ("a?c\n", "abc", False, True),
    ("a?c\n", "ac", False, False),
    ("**/foo\n", "foo", False, True),  # `**` forms
    ("**/foo\n", "a/b/foo", False, True),
    ("**/foo/bar\n", "x/y/foo/bar", False, True),
    ("abc/**\n", "abc/x/y", False, True),
    ("abc/**\n", "abc", False, False),
    ("a/**/b\n", "a/b", False, True),
    ("a/**/b\n", "a/x/y/b", False, True),
    ("a/**/b\n", "x/a/b", False, False),
    ("a/**/\n", "a/b", True, True),
    ("a/**/\n", "a/b", False, False),
    ("a**b\n", "axxb", False, True),
    ("**\n", "any/thing", False, True),
    ("doc/**/*.pdf\n", "doc/x/y/z.pdf", False, True),
    ("doc/**/*.pdf\n", "doc/z.pdf", False, True),
    ("[a-c].txt\n", "b.txt", False, True),  # character classes
    ("[a-c].txt\n", "d.txt", False, False),
    ("[!a-c].txt\n", "d.txt", False, True),
    ("[!a-c].txt\n", "a.txt", False, False),
    ("[]a]x\n", "]x", False, True),
    ("*.[oa]\n", "lib.a", False, True),
    ("[[:digit:]]x\n", "7x", False, True),
    ("\\*.txt\n", "*.txt", False, True),  # escapes
    ("\\*.txt\n", "a.txt", False, False),
    ("*.log\n!keep.log\n", "keep.log", False, False),  # negation: the last match wins
    ("!keep.log\n*.log\n", "keep.log", False, True),
    ("out/\n!out/keep.txt\n", "out/keep.txt", False, True),  # no way back out of an ignored dir
    ("out/\n!keep.txt\n", "out/keep.txt", False, True),
    ("out/*\n!out/keep.txt\n", "out/keep.txt", False, False),  # ignoring its content is not that
    ("out/*\n!out/keep.txt\n", "out/other.txt", False, True),
    ("*\n!*/\n!*.py\n", "src/a.py", False, False),
    ("*\n!*/\n!*.py\n", "src/a.txt", False, True),
    ("/\n", "anything", False, False),  # patterns that match nothing
    ("!\n", "!", False, False),
]


@pytest.mark.parametrize(("gitignore", "relative", "is_dir", "ignored"), GITIGNORE_CASES)
def test_gitignore_semantics(
    tmp_path: Path, gitignore: str, relative: str, is_dir: bool, ignored: bool
) -> None:
    target = {} if is_dir else {relative: "x"}  # by name: "foo " ends in a space
    ws = make_tree(
        tmp_path / "ws", relative + "/" if is_dir else "", {".gitignore": gitignore, **target}
    )
    assert IgnoreRules([ws]).is_ignored(ws / relative) is ignored
    if GIT is None:
        return
    # The table itself is right: git agrees with every row (without the user's git config).
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    env |= {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    subprocess.run([GIT, "init", "-q", str(ws)], check=True, env=env)
    git_path = relative + ("/" if is_dir else "")
    check = [GIT, "-C", str(ws), "check-ignore", "-q", "--no-index", git_path]
    done = subprocess.run(check, capture_output=True, check=False, env=env)
    assert done.returncode == (0 if ignored else 1), done.stderr


def test_reason_names_the_pattern_and_the_file(tmp_path: Path) -> None:
    ws = make_tree(tmp_path / "ws", "out/a.txt b.txt", {".gitignore": "out/\n"})
    rules = IgnoreRules([ws])
    pattern = f"matched .gitignore pattern 'out/' in {ws / '.gitignore'}"
    assert rules.reason(ws / "out") == pattern
    assert rules.reason(ws / "out" / "a.txt") == f"{pattern} (parent directory 'out')"
    assert rules.reason(ws / "b.txt") is None


def test_nested_gitignore_applies_to_its_own_subtree(tmp_path: Path) -> None:
    files = "a.tmp sub/a.tmp sub/deeper/b.tmp sub/anchored sub/deeper/anchored anchored"
    files += " important.log sub/important.log sub/other.log"
    ws = make_tree(tmp_path / "ws", files, {".gitignore": "*.log\n"})
    (ws / "sub" / ".gitignore").write_text("*.tmp\n/anchored\n!important.log\n")
    rules = IgnoreRules([ws])
    ignored = [name for name in files.split() if rules.is_ignored(ws / name)]
    # not "sub/deeper/anchored" (anchored to sub/), "sub/important.log" (the deeper `!` wins)
    expected = ["sub/a.tmp", "sub/deeper/b.tmp", "sub/anchored", "important.log", "sub/other.log"]
    assert ignored == expected


def test_git_info_exclude_and_gitignore_above_the_workspace_root(tmp_path: Path) -> None:
    repo = make_tree(tmp_path / "repo", "ws/a.local ws/a.log ws/generated/x.py ws/main.py")
    make_tree(
        repo, files={".git/info/exclude": "*.local\n", ".gitignore": "*.log\nws/generated/\n"}
    )
    rules = IgnoreRules([repo / "ws"])  # the workspace is a folder inside the repository
    exclude = repo / ".git" / "info" / "exclude"
    assert (
        rules.reason(repo / "ws/a.local")
        == f"matched .git/info/exclude pattern '*.local' in {exclude}"
    )
    assert rules.is_ignored(repo / "ws/a.log")
    assert rules.is_ignored(repo / "ws/generated/x.py")
    assert not rules.is_ignored(repo / "ws/main.py")


def test_workspace_root_itself_is_never_ignored(tmp_path: Path) -> None:
    repo = make_tree(tmp_path / "repo", ".git/ ws/main.py", {".gitignore": "ws/\n"})
    rules = IgnoreRules([repo / "ws"])
    assert not rules.is_ignored(repo / "ws")
    assert not rules.is_ignored(repo / "ws" / "main.py")


def test_aigentsignore_adds_patterns_and_can_bring_back_gitignored_files(tmp_path: Path) -> None:
    files = {
        ".gitignore": "generated/*\n.env.local\n",
        ".aigentsignore": "fixtures/big/\n!generated/api.py\n!.env.local\n",
        "sub/.aigentsignore": "*.csv\n",
    }
    empty = "fixtures/big/data.json generated/api.py generated/other.py table.csv .env.local"
    ws = make_tree(tmp_path / "ws", empty, files)
    (ws / "sub" / "table.csv").write_text("")
    rules = IgnoreRules([ws])
    assert (rules.reason(ws / "fixtures/big/data.json") or "").startswith(
        "matched .aigentsignore pattern 'fixtures/big/'"
    )
    assert not rules.is_ignored(ws / "generated/api.py")  # .aigentsignore beats .gitignore
    assert rules.is_ignored(ws / "generated/other.py")
    assert rules.is_ignored(ws / "sub/table.csv")
    assert not rules.is_ignored(ws / "table.csv")
    assert rules.is_secret(ws / ".env.local")  # but `!` never brings back a secret
    assert rules.is_ignored(ws / ".env.local")


SECRET_FILES = """.env .env.local .env.production config/.env .ENV .envrc server.pem tls.key
cert.p12 cert.pfx release.jks app.keystore id_rsa id_rsa.pub id_dsa id_ecdsa id_ed25519
putty.ppk .netrc _netrc .npmrc .pypirc .pgpass credentials credentials.json gcp.credentials
.git-credentials secrets.yaml secrets.json db.secret app.secrets service-account-prod.json
.htpasswd passwords.kdbx backup.gpg secring.gpg my-private-key.asc .git/config
.git/objects/ab/cdef .ssh/config home/.ssh/known_hosts .gnupg/pubring.kbx .aws/credentials
.aws/config .docker/config.json .kube/config terraform.tfstate""".split()
NOT_SECRET_FILES = """.env.example .env.sample .env.template .env.local.example environment.py
env.py keys.py key.py tokens.ts credentials.py credentials/handler.py secret_santa.py public.asc
SHA256SUMS.asc .github/workflows/ci.yml .gitignore .gitattributes docker/config.json
password_reset.html""".split()


@pytest.mark.parametrize(
    ("relative", "secret"),
    [(name, True) for name in SECRET_FILES] + [(name, False) for name in NOT_SECRET_FILES],
)
def test_deny_list(tmp_path: Path, relative: str, secret: bool) -> None:
    ws = make_tree(tmp_path / "ws", relative)
    rules = IgnoreRules([ws])
    assert rules.is_secret(ws / relative) is secret
    assert rules.is_ignored(ws / relative) is secret
    if secret:
        assert (rules.reason(ws / relative) or "").startswith("secret file (default deny list: ")


def test_deny_list_reasons(tmp_path: Path) -> None:
    ws = make_tree(tmp_path / "ws", ".env.local .ssh/id a.pem")
    rules = IgnoreRules([ws])
    assert rules.reason(ws / ".env.local") == "secret file (default deny list: .env.*)"
    assert rules.reason(ws / ".ssh/id") == "secret file (default deny list: .ssh/)"
    assert rules.reason(ws / "a.pem") == "secret file (default deny list: *.pem)"


@pytest.mark.parametrize("where", [".gitignore", ".aigentsignore", ".git/info/exclude"])
def test_negation_cannot_bring_back_a_secret(tmp_path: Path, where: str) -> None:
    ws = make_tree(tmp_path / "ws", ".env a.pem .ssh/config")
    make_tree(ws, files={where: "!.env\n!*.pem\n!.ssh/\n"})
    rules = IgnoreRules([ws])
    assert all(rules.is_ignored(ws / name) for name in (".env", "a.pem", ".ssh/config"))


def test_deny_list_applies_outside_git_and_outside_the_workspace(tmp_path: Path) -> None:
    make_tree(tmp_path, "elsewhere/.env elsewhere/notes.md ws/")
    rules = IgnoreRules([tmp_path / "ws"], outside_is_ignored=False)
    assert rules.is_secret(tmp_path / "elsewhere" / ".env")
    assert rules.is_ignored(tmp_path / "elsewhere" / ".env")
    assert not rules.is_ignored(tmp_path / "elsewhere" / "notes.md")
    assert rules.is_secret(Path.home() / ".ssh" / "id_ed25519")


SKIPPED = """node_modules/left-pad/index.js .venv/lib/site.py venv/bin/activate
pkg/__pycache__/mod.cpython-311.pyc .mypy_cache/x.json .pytest_cache/v .ruff_cache/x
.tox/py311/log dist/pkg.whl build/lib/pkg.py mod.pyc .DS_Store""".split()


@pytest.mark.parametrize("relative", SKIPPED)
def test_skip_list(tmp_path: Path, relative: str) -> None:
    ws = make_tree(tmp_path / "ws", relative)
    rules = IgnoreRules([ws])
    assert rules.is_ignored(ws / relative)
    assert not rules.is_secret(ws / relative)
    assert "default skip list" in (rules.reason(ws / relative) or "")


def test_skip_list_can_be_brought_back(tmp_path: Path) -> None:
    ws = make_tree(tmp_path / "ws", "build/make.py", {".aigentsignore": "!build/\n"})
    assert not IgnoreRules([ws]).is_ignored(ws / "build" / "make.py")


def test_outside_the_workspace(tmp_path: Path) -> None:
    make_tree(tmp_path, "ws/a.py other/b.py ws2/c.py")
    rules = IgnoreRules([tmp_path / "ws"])
    assert rules.reason(tmp_path / "other" / "b.py") == OUTSIDE_WORKSPACE
    assert rules.is_ignored(tmp_path / "ws2" / "c.py")  # a sibling whose name starts the same
    assert rules.is_ignored(tmp_path / "ws" / ".." / "other" / "b.py")
    assert not rules.is_ignored(tmp_path / "ws" / "a.py")
    lenient = IgnoreRules([tmp_path / "ws"], outside_is_ignored=False)
    assert not lenient.is_ignored(tmp_path / "other" / "b.py")


@needs_symlinks
def test_symlinks(tmp_path: Path) -> None:
    make_tree(tmp_path, "outside/data.txt ws/.env ws/real/a.py")
    ws = tmp_path / "ws"
    (ws / "escape.txt").symlink_to(tmp_path / "outside" / "data.txt")
    (ws / "escape_dir").symlink_to(tmp_path / "outside", target_is_directory=True)
    (ws / "innocent.txt").symlink_to(ws / ".env")
    (ws / "credentials").symlink_to(ws / "real" / "a.py")
    (ws / "alias").symlink_to(ws / "real", target_is_directory=True)
    (ws / "loop").symlink_to(ws / "loop")
    rules = IgnoreRules([ws])
    assert rules.reason(ws / "escape.txt") == OUTSIDE_WORKSPACE
    assert rules.reason(ws / "escape_dir" / "data.txt") == OUTSIDE_WORKSPACE
    assert rules.is_secret(ws / "innocent.txt")  # the target is a secret
    assert rules.is_secret(ws / "credentials")  # the link's own name is one
    assert not rules.is_ignored(ws / "alias" / "a.py")
    assert rules.is_ignored(ws / "loop")
    assert not rules.is_secret(ws / "loop")
    assert not IgnoreRules([ws], outside_is_ignored=False).is_ignored(ws / "escape.txt")


@needs_symlinks
def test_symlinked_workspace_root(tmp_path: Path) -> None:
    make_tree(tmp_path / "real", "a.py a.log", {".gitignore": "*.log\n"})
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    rules = IgnoreRules([tmp_path / "link"])
    assert not rules.is_ignored(tmp_path / "link" / "a.py")
    assert not rules.is_ignored(tmp_path / "real" / "a.py")
    assert rules.is_ignored(tmp_path / "link" / "a.log")


def test_uris_and_relative_paths(tmp_path: Path) -> None:
    ws = make_tree(tmp_path / "my ws", "x.log", {"src/a.b": "", ".gitignore": "*.log\n"})
    source = ws / "src" / "a.b"
    rules = IgnoreRules([ws.as_uri()])
    assert path_from_uri(source.as_uri()) == source
    assert path_from_uri((ws / "x.log").as_uri().replace("file://", "file://localhost")) == (
        ws / "x.log"
    )
    assert not rules.is_ignored(source.as_uri())
    assert rules.is_ignored((ws / "x.log").as_uri())
    assert rules.is_ignored("x.log")  # relative to the first workspace root
    assert not rules.is_ignored("src/a.b")


def test_case_insensitive_matching(tmp_path: Path) -> None:
    ws = make_tree(tmp_path / "ws", "a.log build/x", {".gitignore": "*.LOG\nBuild/\n"})
    assert not IgnoreRules([ws], case_sensitive=True).is_ignored(ws / "a.log")
    insensitive = IgnoreRules([ws], case_sensitive=False)
    assert insensitive.is_ignored(ws / "a.log")
    assert insensitive.is_ignored(ws / "build" / "x")


def test_edited_gitignore_is_reread(tmp_path: Path) -> None:
    ws = make_tree(tmp_path / "ws", "a.log a.txt", {".gitignore": "*.log\n"})
    rules = IgnoreRules([ws])
    assert (rules.is_ignored(ws / "a.log"), rules.is_ignored(ws / "a.txt")) == (True, False)
    (ws / ".gitignore").write_text("*.txt\n")
    os.utime(ws / ".gitignore", ns=(1, 1))  # a new mtime even on coarse file system clocks
    assert (rules.is_ignored(ws / "a.log"), rules.is_ignored(ws / "a.txt")) == (False, True)


def test_checks_read_only_ancestor_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = make_tree(tmp_path / "ws", "a/b/c.log a/b/d.py", {".gitignore": "*.log\n"})
    rules = IgnoreRules([ws])

    def no_listing(*args: object, **kwargs: object) -> None:
        raise AssertionError("listed a directory")

    monkeypatch.setattr(os, "scandir", no_listing)
    monkeypatch.setattr(os, "listdir", no_listing)
    assert rules.is_ignored(ws / "a" / "b" / "c.log")
    assert rules.filter([ws / "a/b/c.log", ws / "a/b/d.py"]) == [ws / "a/b/d.py"]


def test_filter_agrees_with_is_ignored(tmp_path: Path) -> None:
    ws = make_tree(
        tmp_path / "ws", "out/a.py src/a.py src/b.tmp .env", {".gitignore": "out/\n*.tmp\n"}
    )
    rules = IgnoreRules([ws])
    paths = [ws / "out/a.py", ws / "src/a.py", ws / "src/b.tmp", ws / ".env", tmp_path / "x.py"]
    assert rules.filter(paths) == [p for p in paths if not rules.is_ignored(p)] == [ws / "src/a.py"]
    assert rules.filter([(ws / "src/a.py").as_uri()]) == [ws / "src/a.py"]


WALK_TREE = "README.md a.log .env src/main.py src/local.py src/pkg/local.py .git/config"
WALK_TREE += " node_modules/dep/index.js out/deep/x.py"


def test_walk_yields_usable_files_and_prunes_ignored_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = make_tree(
        tmp_path / "ws", WALK_TREE, {".gitignore": "*.log\nout/\n", "src/.gitignore": "/local.py\n"}
    )
    listed: list[str] = []
    real_scandir = os.scandir

    def recording_scandir(path: str) -> object:
        listed.append(Path(path).relative_to(ws).as_posix())
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", recording_scandir)
    rules = IgnoreRules([ws])
    walked = relatives(list(rules.walk(ws)), ws)
    assert walked == [
        ".gitignore",
        "README.md",
        "src/.gitignore",
        "src/main.py",
        "src/pkg/local.py",
    ]
    assert sorted(listed) == [".", "src", "src/pkg"]  # never opened out/, node_modules/, .git/
    assert [p for p in walked if rules.is_ignored(ws / p)] == []


def test_walk_limits_and_starts(tmp_path: Path) -> None:
    ws = make_tree(tmp_path / "ws", WALK_TREE, {".gitignore": "*.log\nout/\n"})
    rules = IgnoreRules([ws])
    assert len(list(rules.walk(ws, max_files=2))) == 2
    assert list(rules.walk(ws, max_files=0)) == []
    assert list(rules.walk()) == list(rules.walk(ws))
    in_src = relatives(list(rules.walk(ws / "src")), ws)
    assert in_src == ["src/local.py", "src/main.py", "src/pkg/local.py"]
    assert list(rules.walk(ws / "out")) == []
    assert list(rules.walk(ws / "README.md")) == [ws / "README.md"]
    assert list(rules.walk(tmp_path)) == []  # outside the workspace


@needs_symlinks
def test_walk_does_not_follow_symlinked_directories(tmp_path: Path) -> None:
    make_tree(tmp_path, "outside/x.py ws/real/a.py ws/.env")
    ws = tmp_path / "ws"
    (ws / "alias").symlink_to(ws / "real", target_is_directory=True)
    (ws / "escape").symlink_to(tmp_path / "outside" / "x.py")
    (ws / "notes.txt").symlink_to(ws / ".env")
    (ws / "b.py").symlink_to(ws / "real" / "a.py")
    assert relatives(list(IgnoreRules([ws]).walk()), ws) == ["b.py", "real/a.py"]


def test_nested_workspace_roots(tmp_path: Path) -> None:
    outer = make_tree(tmp_path / "outer", "inner/a.log b.py", {".gitignore": "*.log\n"})
    rules = IgnoreRules([outer / "inner", outer])
    assert rules.is_ignored(outer / "inner" / "a.log")  # the outer root's .gitignore reaches in
    assert [p.name for p in rules.walk()] == [".gitignore", "b.py"]  # each file once
