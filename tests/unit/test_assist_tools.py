"""The model's workspace tools: search, read and list, confined to the workspace folders."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from aigents_lsp.assist.tools import ToolLimits, WorkspaceTools
from aigents_lsp.providers.base import ToolCall
from aigents_lsp.workspace.ignore import IgnoreRules
from aigents_lsp.workspace.paths import PathGlob

needs_symlinks = pytest.mark.skipif(os.name == "nt", reason="symlinks need privileges on Windows")
GITHUB_TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0" * 2  # built at run time: no secret in the source


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return write(
        tmp_path / "ws",
        {
            "src/app.py": "import os\n\ndef parse_config(path):\n    return Config(path)\n",
            "src/config.py": (
                "class Config:\n    def __init__(self, path):\n        self.path = path\n"
            ),
            "src/ui/view.ts": "export function parseConfig() {}\n",
            "docs/guide.md": "Call parse_config to read the settings.\n",
            "README.md": "# Demo\nPARSE_CONFIG is documented in docs.\n",
            ".env": "DATABASE_URL=postgres://u:p@host/db\nparse_config=1\n",
            ".ssh/id_rsa": "-----BEGIN OPENSSH PRIVATE KEY-----\n",
            "id_rsa": "parse_config key\n",
            ".gitignore": "notes.txt\n",
            "notes.txt": "parse_config private notes\n",
            "node_modules/lib/index.js": "parse_config()\n",
            "logo.png": b"\x89PNG\r\n\x1a\n\x00\x00parse_config\x00",
        },
    )


@pytest.fixture
def tools(workspace: Path) -> WorkspaceTools:
    return WorkspaceTools([workspace])


def call(name: str, **arguments: object) -> ToolCall:
    return ToolCall("1", name, json.dumps(arguments))


# --- search_codebase ---------------------------------------------------------------------------


async def test_plain_search_is_case_insensitive_and_skips_ignored_secret_and_binary_files(
    tools: WorkspaceTools,
) -> None:
    out = await tools.run(call("search_codebase", query="parse_config"))
    assert out.splitlines() == [
        "3 matches for 'parse_config':",
        "README.md:2: PARSE_CONFIG is documented in docs.",
        "docs/guide.md:1: Call parse_config to read the settings.",
        "src/app.py:3: def parse_config(path):",
    ]
    for never in (".env", "id_rsa", "notes.txt", "node_modules", "logo.png", ".ssh"):
        assert never not in out


async def test_regex_search_is_case_sensitive_and_glob_filters_paths(
    tools: WorkspaceTools,
) -> None:
    out = await tools.run(call("search_codebase", query=r"def \w+\(", regex=True))
    assert out.splitlines()[1:] == [
        "src/app.py:3: def parse_config(path):",
        "src/config.py:2: def __init__(self, path):",
    ]
    assert "no matches" in await tools.run(call("search_codebase", query="DEF", regex="true"))

    only_ts = await tools.run(call("search_codebase", query="parseconfig", path_glob="*.ts"))
    assert only_ts.splitlines() == [
        "1 match for 'parseconfig' in *.ts:",
        "src/ui/view.ts:1: export function parseConfig() {}",
    ]
    in_src = await tools.run(call("search_codebase", query="config", path_glob="src/**/*.{py,md}"))
    assert "src/app.py" in in_src and "docs/" not in in_src and "view.ts" not in in_src


async def test_bad_regex_and_empty_query_are_messages_for_the_model(
    tools: WorkspaceTools,
) -> None:
    out = await tools.run(call("search_codebase", query="parse(", regex=True))
    assert out.startswith("error: invalid regular expression 'parse('")
    assert (await tools.run(call("search_codebase", query=""))).startswith("error:")
    assert (await tools.run(call("search_codebase", query="x", path_glob="[z-a]"))).startswith(
        "error:"
    )


async def test_search_results_are_capped_and_huge_files_skipped(tmp_path: Path) -> None:
    root = write(
        tmp_path / "ws",
        {"many.txt": "needle\n" * 30, "huge.txt": "needle\n" + "x" * 5000},
    )
    tools = WorkspaceTools([root], limits=ToolLimits(max_search_results=10, max_scan_bytes=4000))
    out = await tools.search_codebase("needle")
    assert out.splitlines()[0] == "10 matches for 'needle':"
    assert "[stopped at 10 matches" in out
    assert "huge.txt" not in out


async def test_search_and_listing_stop_at_the_time_budget(tmp_path: Path) -> None:
    root = write(tmp_path / "ws", {f"f{i}.txt": "needle\n" for i in range(5)})
    tools = WorkspaceTools([root], limits=ToolLimits(search_seconds=0.0))
    search = await tools.search_codebase("needle")
    assert search.splitlines() == [
        "no matches for 'needle'",
        "[search stopped after 0 s — results are incomplete]",
    ]
    assert "[listing stopped after 0 s]" in await tools.list_files()
    assert (await tools.list_files(".", "[z-a]")).startswith("error: invalid glob '[z-a]'")


async def test_search_sees_unsaved_editor_text(workspace: Path) -> None:
    unsaved = {
        workspace / "src/app.py": "def load_settings():\n    pass\n",
        workspace / "src/new_module.py": "load_settings()\n",  # not saved yet
    }
    tools = WorkspaceTools([workspace], open_documents=lambda: unsaved)
    out = await tools.search_codebase("load_settings")
    assert "src/app.py:1: def load_settings():" in out
    assert "src/new_module.py:1: load_settings()" in out
    read = await tools.read_file("src/app.py")
    assert "unsaved editor text" in read.splitlines()[0]
    assert "1: def load_settings():" in read


async def test_secrets_in_results_are_redacted(tmp_path: Path) -> None:
    root = write(tmp_path / "ws", {"deploy.py": f'GITHUB = "{GITHUB_TOKEN}"  # deploy\n'})
    tools = WorkspaceTools([root])
    for out in (await tools.search_codebase("deploy"), await tools.read_file("deploy.py")):
        assert GITHUB_TOKEN not in out
        assert "<redacted:github-token>" in out


# --- read_file ---------------------------------------------------------------------------------


async def test_read_numbered_lines_with_a_range(tools: WorkspaceTools) -> None:
    whole = await tools.run(call("read_file", path="src/config.py"))
    assert whole.splitlines() == [
        "src/config.py (lines 1-3 of 3)",
        "1: class Config:",
        "2:     def __init__(self, path):",
        "3:         self.path = path",
    ]
    part = await tools.run(call("read_file", path="./src/config.py", start_line="2", end_line=2))
    assert part.splitlines() == [
        "src/config.py (lines 2-2 of 3)",
        "2:     def __init__(self, path):",
    ]
    assert (await tools.read_file("src/config.py", 9)).startswith("error: src/config.py has only")
    assert (await tools.read_file("src/config.py", 3, 1)).startswith("error: end_line 1 is before")
    assert (await tools.read_file("src/missing.py")).startswith("error: src/missing.py does not")
    assert "is a directory" in await tools.read_file("src")
    assert (await tools.read_file("logo.png")) == "error: logo.png is a binary file"


async def test_a_long_file_is_cut_with_where_to_go_on(tmp_path: Path) -> None:
    root = write(tmp_path / "ws", {"long.py": "".join(f"x = {i}\n" for i in range(1, 501))})
    tools = WorkspaceTools([root], limits=ToolLimits(max_file_bytes=1000))
    out = await tools.read_file("long.py")
    lines = out.splitlines()
    assert lines[0].startswith("long.py (lines 1-") and lines[0].endswith(" of 500)")
    assert len(out) < 1200
    last = int(lines[-2].split(":")[0])
    assert lines[-1] == f"[truncated — read on with start_line={last + 1}]"
    more = await tools.read_file("long.py", last + 1, last + 2)
    assert more.splitlines()[1:] == [f"{last + 1}: x = {last + 1}", f"{last + 2}: x = {last + 2}"]


async def test_a_huge_file_is_read_only_so_far(tmp_path: Path) -> None:
    root = write(tmp_path / "ws", {"big.log": "line\n" * 2000})
    tools = WorkspaceTools([root], limits=ToolLimits(max_scan_bytes=1000))
    out = await tools.read_file("big.log", 1, 3)
    assert out.splitlines()[0] == "big.log (lines 1-3 of 200)"
    assert "[the file has 10000 bytes; only the first 1000 can be read]" in out


async def test_output_is_capped_per_call(tmp_path: Path) -> None:
    root = write(tmp_path / "ws", {"wide.txt": ("y" * 300 + "\n") * 50})
    tools = WorkspaceTools([root], limits=ToolLimits(max_output_chars=2000))
    for out in (await tools.read_file("wide.txt"), await tools.search_codebase("yyy")):
        assert len(out) <= 2000


# --- confinement -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("../outside.txt", "refused: ../outside.txt is outside the workspace"),
        ("src/../../outside.txt", "refused: src/../../outside.txt is outside the workspace"),
        (".env", "refused: .env is ignored (secret file (default deny list: .env))"),
        ("id_rsa", "refused: id_rsa is ignored (secret file (default deny list: id_rsa*))"),
        (".ssh/id_rsa", "refused: .ssh/id_rsa is ignored (secret file (default deny list: .ssh/))"),
        ("node_modules/lib/index.js", "refused: node_modules/lib/index.js is ignored (matched"),
    ],
)
async def test_escapes_and_ignored_files_are_refused(
    tools: WorkspaceTools, workspace: Path, path: str, expected: str
) -> None:
    (workspace.parent / "outside.txt").write_text("secret plans\n")
    for name in ("read_file", "list_files"):
        out = await tools.run(call(name, path=path))
        assert out.startswith(expected), out
        assert "secret plans" not in out


async def test_gitignored_file_refusal_names_the_rule(tools: WorkspaceTools) -> None:
    out = await tools.read_file("notes.txt")
    assert out.startswith("refused: notes.txt is ignored (matched .gitignore pattern 'notes.txt'")


async def test_absolute_paths_inside_are_read_and_outside_refused(
    tools: WorkspaceTools, workspace: Path, tmp_path: Path
) -> None:
    inside = await tools.read_file(str(workspace / "src/config.py"))
    assert inside.startswith("src/config.py (lines 1-3 of 3)")
    assert (await tools.read_file("/etc/passwd")) == "refused: /etc/passwd is outside the workspace"
    uri = (workspace / "README.md").as_uri()
    assert (await tools.read_file(uri)).startswith("README.md (lines 1-2 of 2)")


@needs_symlinks
@pytest.mark.parametrize("outside_is_ignored", [True, False])
async def test_symlinks_out_of_the_workspace_are_refused(
    workspace: Path, tmp_path: Path, outside_is_ignored: bool
) -> None:
    outside = write(tmp_path / "elsewhere", {"plans.txt": "secret plans\n"})
    (workspace / "link.txt").symlink_to(outside / "plans.txt")
    (workspace / "linkdir").symlink_to(outside, target_is_directory=True)
    (workspace / "inner.py").symlink_to(workspace / "src/config.py")
    # The LSP server's rules allow files outside the workspace (for completion): tools do not.
    rules = IgnoreRules([workspace], outside_is_ignored=outside_is_ignored)
    tools = WorkspaceTools([workspace], ignore=rules)
    assert (await tools.read_file("link.txt")).startswith("refused: link.txt is a symlink to")
    assert (await tools.read_file("linkdir/plans.txt")).startswith("refused: linkdir/plans.txt")
    assert (await tools.list_files("linkdir")).startswith("refused: linkdir is a symlink to")
    assert (await tools.search_codebase("secret plans")) == "no matches for 'secret plans'"
    assert "link" not in await tools.list_files(".")
    assert (await tools.read_file("inner.py")).startswith("inner.py (lines 1-3 of 3)")
    outside_file = str(outside / "plans.txt")
    assert (
        await tools.read_file(outside_file)
    ) == f"refused: {outside_file} is outside the workspace"


async def test_multi_root_paths_carry_the_folder_name(tmp_path: Path) -> None:
    front = write(tmp_path / "front", {"main.ts": "const api = 1\n"})
    back = write(tmp_path / "back", {"api.py": "api = 2\n"})
    tools = WorkspaceTools([front, back])
    out = await tools.search_codebase("api")
    assert "front/main.ts:1: const api = 1" in out and "back/api.py:1: api = 2" in out
    assert (await tools.read_file("back/api.py")).startswith("back/api.py (lines 1-1 of 1)")
    assert (await tools.read_file("main.ts")).startswith("front/main.ts")  # the first root


# --- list_files --------------------------------------------------------------------------------


async def test_list_files_leaves_out_ignored_files_and_filters(tools: WorkspaceTools) -> None:
    out = await tools.run(call("list_files"))
    assert out.splitlines() == [
        "7 files under .:",
        ".gitignore",
        "README.md",
        "logo.png",
        "docs/guide.md",
        "src/app.py",
        "src/config.py",
        "src/ui/view.ts",
    ]
    assert (await tools.list_files("src", "*.py")).splitlines() == [
        "2 files under src matching '*.py':",
        "src/app.py",
        "src/config.py",
    ]
    assert (await tools.list_files("src/ui")).splitlines()[1:] == ["src/ui/view.ts"]
    assert await tools.list_files("docs", "*.py") == "no files under docs matching '*.py'"


async def test_list_files_is_capped(tmp_path: Path) -> None:
    root = write(tmp_path / "ws", {f"f{i:03}.txt": "" for i in range(30)})
    tools = WorkspaceTools([root], limits=ToolLimits(max_list_files=5))
    out = await tools.list_files()
    assert out.splitlines()[:2] == ["5 files under .:", "f000.txt"]
    assert "[stopped at 5 files" in out


# --- calls from the model ----------------------------------------------------------------------


async def test_bad_calls_are_answered_with_errors(tools: WorkspaceTools) -> None:
    assert (await tools.run(ToolCall("1", "read_file", "{not json"))).startswith(
        "error: read_file: the arguments are not valid JSON"
    )
    assert (await tools.run(ToolCall("1", "read_file", "[1]"))).startswith("error:")
    assert (await tools.run(call("read_file", path="src/app.py", start_line="x"))) == (
        "error: read_file: `start_line` must be an integer"
    )
    assert (await tools.run(call("delete_file", path="x"))).startswith(
        "error: there is no tool 'delete_file'; the tools are search_codebase, read_file"
    )
    twice = ToolCall("1", "read_file", json.dumps(json.dumps({"path": "README.md"})))
    assert (await tools.run(twice)).startswith("README.md (lines 1-2 of 2)")


def test_specs_describe_three_read_only_tools(tools: WorkspaceTools) -> None:
    specs = {spec.name: spec for spec in tools.specs()}
    assert set(specs) == {"search_codebase", "read_file", "list_files"}
    assert specs["search_codebase"].parameters["required"] == ["query"]
    assert specs["read_file"].parameters["properties"]["start_line"]["type"] == "integer"
    assert all(spec.to_wire()["type"] == "function" for spec in specs.values())


@pytest.mark.parametrize(
    ("glob", "path", "matches"),
    [
        ("*.py", "src/app.py", True),
        ("*.py", "src/app.pyc", False),
        ("src/*.py", "src/app.py", True),
        ("src/*.py", "lib/src/app.py", False),
        ("**/*.ts", "a/b/c.ts", True),
        ("tests", "tests/unit/test_x.py", True),
        ("*.{ts,tsx}", "ui/App.tsx", True),
        ("./docs/**", "docs/guide.md", True),
    ],
)
def test_PathGlob(glob: str, path: str, matches: bool) -> None:
    assert PathGlob(glob)(path) is matches
