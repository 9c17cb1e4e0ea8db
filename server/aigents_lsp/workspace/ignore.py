"""Which paths may be used as model context or read by tools: gitignore rules plus default lists.

A path is ignored when it is outside every workspace root, on the default deny list of secret
files (final: no `!` pattern brings one back), on the default skip list (dependencies, caches,
build output), or matched by a `.gitignore`, `.aigentsignore` or `.git/info/exclude` pattern.
Precedence, highest first (ripgrep's rule for its `.ignore`): `.aigentsignore`, `.gitignore`,
`.git/info/exclude`, the skip list; within a kind the deepest file wins, within a file the last
matching line. `.gitignore` files count even outside a git repository (the safe side), those
between a repository root and a workspace root inside it count too, global git excludes do not;
the workspace root itself is never ignored: the user opened it. The patterns themselves are
compiled by `gitignore`.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from aigents_lsp.workspace.gitignore import IgnorePattern, glob_to_regex

OUTSIDE_WORKSPACE = "outside the workspace"
_GIT_EXCLUDE = ".git/info/exclude"
_SKIP_LIST = "default skip list"

# Secret files, matched case-insensitively against the file's name (or its last path parts).
# `.env.*` keeps `.env.example`, `.env.sample` and `.env.template` (and e.g. `.env.local.example`):
# they document variables rather than hold them. `.envrc`, `.kube/config` and Terraform state are
# additions to the usual list: they routinely hold live credentials. `secrets.*` is limited to
# data files: `secrets.py` is source code (Python's own `secrets` module, for one).
_SECRET_FILE_GLOBS = (
    ".env", ".envrc", "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore", "id_rsa*",
    "id_dsa*", "id_ecdsa*", "id_ed25519*", "*.ppk", ".netrc", "_netrc", ".npmrc", ".pypirc",
    ".pgpass", "credentials", "credentials.json", "*.credentials", ".git-credentials",
    "secrets.yaml", "secrets.yml", "secrets.json", "secrets.toml", "secrets.env", "secrets.ini",
    "secrets.txt", "*.secret", "*.secrets", "service-account*.json", ".htpasswd", "*.kdbx",
    "*.gpg", "secring.*", "*private*.asc", "*secret*.asc", ".docker/config.json",
    ".kube/config", "*.tfstate", "*.tfstate.backup",
)  # fmt: skip
_SECRET_ENV_VARIANT = (".env.*", r"\.env\.(?!(?:[^/]*\.)?(?:example|sample|template)\Z)[^/]*")
# Directories whose whole content is secret (the directory itself included).
_SECRET_DIRS = (".git", ".ssh", ".gnupg", ".aws")
# Never useful as context, but not secret: a `!pattern` can bring these back.
_SKIP_PATTERNS = (
    "node_modules/", ".venv/", "venv/", "__pycache__/", ".mypy_cache/", ".pytest_cache/",
    ".ruff_cache/", ".tox/", "dist/", "build/", "*.pyc", ".DS_Store",
)  # fmt: skip


def path_from_uri(path_or_uri: Path | str) -> Path:
    """A plain path, or the path of a `file://` URI (percent-decoded; a host makes it UNC)."""
    if isinstance(path_or_uri, Path) or not path_or_uri.startswith("file:"):
        return Path(path_or_uri)
    parts = urlsplit(path_or_uri)
    host = parts.netloc if parts.netloc not in ("", "localhost") else ""
    return Path(url2pathname(f"//{host}{parts.path}" if host else parts.path))


@dataclass(frozen=True, slots=True)
class _RuleFile:
    origin: str  # the file, for reasons
    kind: str  # ".gitignore", ".aigentsignore", ".git/info/exclude" or the skip list
    prefix: str  # the directory its patterns are relative to, as a posix string ending in "/"
    patterns: tuple[IgnorePattern, ...]


@dataclass(frozen=True, slots=True)
class _Stack:
    """The rule files that apply inside one directory, by precedence group."""

    skip: _RuleFile
    excludes: tuple[_RuleFile, ...] = ()
    gitignores: tuple[_RuleFile, ...] = ()
    aigents: tuple[_RuleFile, ...] = ()

    def match(self, path: str, is_dir: bool) -> tuple[IgnorePattern, _RuleFile] | None:
        """The deciding pattern for a path below every file's directory (may be a `!`)."""
        for group in (self.aigents, self.gitignores, self.excludes, (self.skip,)):
            for rule_file in reversed(group):
                relative = path[len(rule_file.prefix) :]
                for pattern in reversed(rule_file.patterns):
                    if (is_dir or not pattern.dir_only) and pattern.regex.fullmatch(relative):
                        return pattern, rule_file
        return None


def _describe(match: tuple[IgnorePattern, _RuleFile] | None, parent: str = "") -> str | None:
    if match is None or match[0].negated:
        return None
    pattern, rule_file = match
    where = "" if rule_file.kind == _SKIP_LIST else f" in {rule_file.origin}"
    via = f" (parent directory '{parent}')" if parent else ""
    return f"matched {rule_file.kind} pattern '{pattern.text}'{where}{via}"


_SECRET_LABELS = [*_SECRET_FILE_GLOBS, _SECRET_ENV_VARIANT[0]]
_SECRET_SOURCES = [*map(glob_to_regex, _SECRET_FILE_GLOBS), _SECRET_ENV_VARIANT[1]]
_SECRET_ALTERNATIVES = "|".join(f"(?P<f{i}>{s})" for i, s in enumerate(_SECRET_SOURCES))
_SECRET_FILE = re.compile(f"(?:^|/)(?:{_SECRET_ALTERNATIVES})\\Z", re.IGNORECASE | re.DOTALL)
_SECRET_DIR = re.compile(f"(?:^|/)({'|'.join(map(re.escape, _SECRET_DIRS))})(?:/|\\Z)", re.I)


def secret_reason(relative: str, is_dir: bool) -> str | None:
    """Why a "/"-separated path is on the default deny list, or None. Names are checked on files
    only (a directory called `credentials/` is fine); secret directories at any depth."""
    if found := _SECRET_DIR.search(relative):
        return f"secret file (default deny list: {found.group(1)}/)"
    if not is_dir and (found := _SECRET_FILE.search(relative)) and found.lastgroup:
        return f"secret file (default deny list: {_SECRET_LABELS[int(found.lastgroup[1:])]})"
    return None


@dataclass(frozen=True, slots=True)
class _Root:
    path: str  # posix form, absolute
    prefix: str  # path + "/" (just "/" for the file system root)
    key: str  # prefix as compared (case-folded where the platform ignores case)
    repo_dirs: tuple[str, ...]  # its ignore files' directories, from the top down to it

    def relative(self, path: str) -> str:
        return path[len(self.prefix) :] if len(path) > len(self.path) else ""


def _ancestors(path: str) -> list[str]:
    """`path` and its parent directories, nearest first."""
    dirs = [path]
    while (parent := os.path.dirname(dirs[-1])) != dirs[-1]:
        dirs.append(parent)
    return dirs


def _enclosing_repo_dirs(root: str) -> tuple[str, ...]:
    """From the root of the git repository holding `root` down to `root`; just `root` if none."""
    ancestors = _ancestors(root)
    for depth, directory in enumerate(ancestors):
        if os.path.lexists(os.path.join(directory, ".git")):
            return tuple(reversed(ancestors[: depth + 1]))
    return (root,)


_Memo = dict[str, tuple[_Stack, str | None]]  # directory -> (its rules, why it is ignored)


class IgnoreRules:
    """Decides whether a path may be used as model context or read by tools.

    Parsed ignore files are cached by (path, mtime, size), so checks stay cheap and edits to a
    `.gitignore` apply on the next check; a check reads only the path's ancestor directories.
    """

    def __init__(
        self,
        roots: Sequence[Path | str],
        *,
        outside_is_ignored: bool = True,
        case_sensitive: bool | None = None,
    ) -> None:
        """`roots` are the workspace folders (paths or `file://` URIs). `case_sensitive`
        defaults to the platform's usual file system: insensitive on macOS and Windows."""
        if case_sensitive is None:
            case_sensitive = sys.platform not in ("darwin", "win32")
        self.outside_is_ignored = outside_is_ignored
        self._fold: Callable[[str], str] = str if case_sensitive else str.casefold
        self._flags = 0 if case_sensitive else re.IGNORECASE
        self._files: dict[str, tuple[tuple[int, int], _RuleFile | None]] = {}
        self._skip = tuple(p for p in map(self._parse, _SKIP_PATTERNS) if p is not None)
        lexical = [Path(os.path.abspath(path_from_uri(root))) for root in roots]
        resolved = [path.resolve().as_posix() for path in lexical]
        self.roots = tuple(Path(path) for path in dict.fromkeys(resolved))
        # Each root both as given and resolved, so paths through a symlinked root are inside too.
        forms = list(dict.fromkeys([*resolved, *(path.as_posix() for path in lexical)]))
        roots_by_depth = (self._make_root(form, forms) for form in forms)
        self._roots = sorted(roots_by_depth, key=lambda root: -len(root.path))

    def is_ignored(self, path: Path | str) -> bool:
        """Whether `path` (a path or `file://` URI) must not be used as context or read."""
        return self.reason(path) is not None

    def is_secret(self, path: Path | str) -> bool:
        """Whether `path` is on the default deny list (its own name or its symlink target's)."""
        try:
            lexical, resolved = self._forms(path_from_uri(path))
        except (OSError, RuntimeError):  # a symlink loop: ignored, but not a secret
            return False
        is_dir = os.path.isdir(resolved)
        forms = (resolved.as_posix(), lexical.as_posix())
        return any(secret_reason(self._relative(form), is_dir) for form in forms)

    def reason(self, path: Path | str) -> str | None:
        """Why `path` is ignored, in words for the user; None when it may be used."""
        return self._reason(path_from_uri(path), {})

    def filter(self, paths: Iterable[Path | str]) -> list[Path]:
        """The paths that may be used, in order; shared ancestor directories are decided once."""
        memo: _Memo = {}
        return [path for path in map(path_from_uri, paths) if self._reason(path, memo) is None]

    def walk(
        self, root: Path | str | None = None, *, max_files: int | None = None
    ) -> Iterator[Path]:
        """Files under `root` (default: every workspace root) that may be used, depth first in
        name order, never descending into ignored directories nor following symlinked ones."""
        roots = [r.as_posix() for r in self.roots]
        outermost = [r for r in roots if not any(o != r and self._inside(r, o) for o in roots)]
        starts = [path_from_uri(root)] if root is not None else [Path(r) for r in outermost]
        count = 0
        for start in starts:
            for path in self._walk(start):
                if max_files is not None and count >= max_files:
                    return
                count += 1
                yield path

    # -- internals ------------------------------------------------------------------------------

    def _parse(self, line: str) -> IgnorePattern | None:
        return IgnorePattern.parse(line, self._flags)

    def _inside(self, path: str, root: str) -> bool:
        return self._fold(f"{path}/").startswith(self._fold(root.rstrip("/") + "/"))

    def _make_root(self, path: str, all_roots: Sequence[str]) -> _Root:
        prefix = path if path.endswith("/") else f"{path}/"
        dirs = _enclosing_repo_dirs(path)
        outer = [root for root in all_roots if root != path and self._inside(path, root)]
        if len(dirs) == 1 and outer:  # outside git, a root inside another root gets the outer
            top = min(outer, key=len)  # root's files too, as a walk from that root would
            dirs = (top, *(d for d in reversed(_ancestors(path)) if len(d) > len(top)))
        return _Root(path, prefix, self._fold(prefix), dirs)

    def _root_of(self, path: str) -> _Root | None:
        key = self._fold(path if path.endswith("/") else f"{path}/")
        return next((root for root in self._roots if key.startswith(root.key)), None)

    def _relative(self, path: str) -> str:
        """`path` relative to its workspace root; without the leading "/" when outside."""
        root = self._root_of(path)
        return root.relative(path) if root else path.lstrip("/")

    def _forms(self, path: Path) -> tuple[Path, Path]:
        if not path.is_absolute():  # relative to the first workspace root, not to our cwd
            path = (self.roots[0] if self.roots else Path.cwd()) / path
        lexical = Path(os.path.abspath(path))
        return lexical, lexical.resolve()

    def _reason(self, path: Path, memo: _Memo) -> str | None:
        try:
            lexical, resolved = self._forms(path)
        except (OSError, RuntimeError):  # a symlink loop
            return "a symlink that cannot be resolved"
        is_dir = os.path.isdir(resolved)
        for form in dict.fromkeys((resolved.as_posix(), lexical.as_posix())):
            # The target decides first; a link's own name and place count too.
            root = self._root_of(form)
            if root is None:
                outside = form == resolved.as_posix() and self.outside_is_ignored
                reason = secret_reason(form.lstrip("/"), is_dir) or (
                    OUTSIDE_WORKSPACE if outside else None
                )
            elif relative := root.relative(form):
                stack, reason = self._directory(root, relative.split("/")[:-1], memo)
                reason = secret_reason(relative, is_dir) or reason
                reason = reason or _describe(stack.match(form, is_dir))
            else:
                reason = None  # the workspace root itself: the user opened it
            if reason is not None:
                return reason
        return None

    def _directory(
        self, root: _Root, parts: Sequence[str], memo: _Memo
    ) -> tuple[_Stack, str | None]:
        """The rules inside `root/parts...`, or why that directory (or an ancestor) is ignored.
        Git never looks inside an ignored directory, so nothing below it can be re-included."""
        if (state := memo.get(root.path)) is None:
            stack = _Stack(_RuleFile(_SKIP_LIST, _SKIP_LIST, root.prefix, self._skip))
            for directory in root.repo_dirs:
                stack = self._enter(stack, directory)
            state = memo[root.path] = (stack, None)
        relative = ""
        for part in parts:
            relative = f"{relative}/{part}" if relative else part
            directory = root.prefix + relative
            if (cached := memo.get(directory)) is None:
                reason = _describe(state[0].match(directory, True), relative)
                entered = state[0] if reason else self._enter(state[0], directory)
                cached = memo[directory] = (entered, reason)
            state = cached
            if state[1] is not None:
                break
        return state

    def _enter(self, stack: _Stack, directory: str) -> _Stack:
        prefix = directory if directory.endswith("/") else f"{directory}/"
        gitignore = self._load(f"{prefix}.gitignore", prefix, ".gitignore")
        aigents = self._load(f"{prefix}.aigentsignore", prefix, ".aigentsignore")
        exclude = self._load(self._exclude_file(prefix), prefix, _GIT_EXCLUDE)
        if gitignore is None and aigents is None and exclude is None:
            return stack
        return _Stack(
            stack.skip,
            stack.excludes + ((exclude,) if exclude else ()),
            stack.gitignores + ((gitignore,) if gitignore else ()),
            stack.aigents + ((aigents,) if aigents else ()),
        )

    @staticmethod
    def _exclude_file(prefix: str) -> str:
        gitdir = f"{prefix}.git"
        if os.path.isfile(gitdir):  # a worktree or submodule: ".git" says "gitdir: <path>"
            with open(gitdir, encoding="utf-8", errors="replace") as dotgit:
                line = dotgit.readline()
            gitdir = (
                os.path.join(prefix, line[7:].strip()) if line.startswith("gitdir:") else gitdir
            )
        return f"{gitdir}/info/exclude"

    def _load(self, file: str, prefix: str, kind: str) -> _RuleFile | None:
        try:
            status = os.stat(file)
            if not stat.S_ISREG(status.st_mode):
                return None
            version = (status.st_mtime_ns, status.st_size)
            if (cached := self._files.get(file)) is not None and cached[0] == version:
                return cached[1]
            text = Path(file).read_text("utf-8", errors="replace").removeprefix("\ufeff")
        except OSError:
            return None
        patterns = tuple(p for p in map(self._parse, text.split("\n")) if p is not None)
        rules = _RuleFile(str(Path(file)), kind, prefix, patterns) if patterns else None
        self._files[file] = (version, rules)
        return rules

    def _walk(self, start: Path) -> Iterator[Path]:
        try:
            lexical, resolved = self._forms(start)
        except (OSError, RuntimeError):
            return
        if not os.path.isdir(resolved):
            if os.path.isfile(resolved) and self._reason(lexical, {}) is None:
                yield lexical
            return
        top, memo = resolved.as_posix(), _Memo()
        root = self._root_of(top)
        if root is None:  # walking outside the workspace is allowed by outside_is_ignored=False
            if self.outside_is_ignored or secret_reason(top.lstrip("/"), True):
                return
            root = self._make_root(top, ())
        relative = root.relative(top)
        stack, reason = self._directory(root, relative.split("/") if relative else [], memo)
        if reason is not None or (relative and secret_reason(relative, True)):
            return
        pending = [(top, stack)]
        while pending:
            directory, stack = pending.pop()
            try:
                with os.scandir(directory) as scan:
                    entries = sorted(scan, key=lambda entry: entry.name)
            except OSError:
                continue
            subdirectories: list[tuple[str, _Stack]] = []
            for entry in entries:
                path = entry.path.replace(os.sep, "/")
                if entry.is_symlink():  # never followed; a link to a file is checked in full
                    if os.path.isfile(path) and self._reason(Path(path), memo) is None:
                        yield Path(path)
                    continue
                is_dir = entry.is_dir(follow_symlinks=False)
                if not is_dir and not entry.is_file(follow_symlinks=False):
                    continue  # sockets, fifos, devices
                secret = secret_reason(root.relative(path), is_dir)
                if secret or _describe(stack.match(path, is_dir)):
                    continue
                if is_dir:
                    subdirectories.append((path, self._enter(stack, path)))
                else:
                    yield Path(path)
            pending.extend(reversed(subdirectories))
