"""Paths as tools name and show them: resolved against the workspace folders and confined to them.

A path is refused when it leads out of the folders (`..`, an absolute path elsewhere, a symlink
whose target is outside) or when the ignore rules exclude it (secret files, `.gitignore`,
`.aigentsignore`); `PathRefused` says which, in a sentence. Paths are shown relative to their
folder, prefixed by the folder's name in a multi-root workspace, and `PathGlob` matches the globs
a model writes against them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aigents_lsp.workspace.gitignore import glob_to_regex
from aigents_lsp.workspace.ignore import IgnoreRules, path_from_uri

_BRACES = re.compile(r"\{([^{}]*,[^{}]*)\}")


class InvalidGlob(ValueError):
    """A glob that cannot be compiled; the message quotes it."""


class PathRefused(ValueError):
    """A path that may not be used; the message names it as given and says why."""


@dataclass(frozen=True)
class WorkspaceRoot:
    name: str
    lexical: str  # absolute, posix, as given
    resolved: str  # with symlinks resolved


def is_inside(path: str, root: str) -> bool:
    """Whether the posix `path` is `root` or below it (compared as text, the disk is not read)."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def _expand_braces(glob: str) -> list[str]:
    """`*.{ts,tsx}` -> `*.ts`, `*.tsx` (gitignore globs have no braces; models write them)."""
    found = _BRACES.search(glob)
    if found is None:
        return [glob]
    options = found.group(1).split(",")
    expanded = [glob[: found.start()] + o + glob[found.end() :] for o in options]
    return [g for one in expanded for g in _expand_braces(one)][:32]


class PathGlob:
    """A glob for "/"-separated relative paths: without "/" it matches a file or directory name
    anywhere (`*.py`, `tests`), with "/" from the top (`src/**/*.ts`); `{a,b}` alternatives."""

    def __init__(self, glob: str) -> None:
        """Raises `InvalidGlob`."""
        self.glob = glob
        sources = []
        for one in _expand_braces(glob.strip().removeprefix("./")):
            if body := one.strip("/"):
                source = glob_to_regex(body)
                sources.append(source if "/" in body else f"(?:.*/)?{source}")
        try:
            self._regex = re.compile(f"(?:{'|'.join(sources) or '.*'})(?:/.*)?", re.DOTALL)
        except re.error as exc:
            raise InvalidGlob(f"invalid glob {glob!r}: {exc}") from None

    def __call__(self, path: str) -> bool:
        return self._regex.fullmatch(path) is not None


class WorkspacePaths:
    """The workspace folders as tools see them: where a named path is, whether it may be used,
    and how to show it."""

    def __init__(self, roots: Sequence[Path], rules: IgnoreRules) -> None:
        """`roots`: the workspace folders (the first one anchors relative paths); `rules` decide
        which paths inside them may be used."""
        if not roots:
            raise ValueError("WorkspacePaths needs at least one workspace root")
        self.rules = rules
        lexical = [Path(os.path.abspath(path_from_uri(root))) for root in roots]
        self.roots = tuple(
            WorkspaceRoot(path.name or path.as_posix(), path.as_posix(), path.resolve().as_posix())
            for path in lexical
        )

    def locate(self, raw: str) -> Path:
        """The absolute path a tool argument names; raises `PathRefused`."""
        shown = raw.strip() or "."
        given = path_from_uri(shown)
        root = self.roots[0]
        if not given.is_absolute() and len(self.roots) > 1 and given.parts:
            named = next((r for r in self.roots if r.name == given.parts[0]), None)
            if named is not None:  # "<folder name>/..." as results show it in multi-root
                root, given = named, Path(*given.parts[1:])
        lexical = Path(os.path.abspath(given if given.is_absolute() else Path(root.lexical, given)))
        forms = [form for r in self.roots for form in (r.lexical, r.resolved)]
        if not any(is_inside(lexical.as_posix(), form) for form in forms):
            raise PathRefused(f"{shown} is outside the workspace")
        try:
            resolved = lexical.resolve().as_posix()
        except (OSError, RuntimeError):
            raise PathRefused(f"{shown} is a symlink that cannot be resolved") from None
        if not self.contains(resolved):
            raise PathRefused(f"{shown} is a symlink to outside the workspace")
        reason = self.rules.reason(lexical)
        if reason is not None:
            raise PathRefused(f"{shown} is ignored ({reason})")
        return lexical

    def contains(self, resolved: str) -> bool:
        """Whether a posix path with symlinks resolved is inside a workspace folder."""
        return any(is_inside(resolved, root.resolved) for root in self.roots)

    def escapes(self, file: Path) -> bool:
        """A walked file that is a symlink out of the roots (`walk` yields those when the rules
        were made with `outside_is_ignored=False`)."""
        if not file.is_symlink():
            return False
        try:
            resolved = file.resolve().as_posix()
        except (OSError, RuntimeError):
            return True
        return not self.contains(resolved)

    def display(self, path: str) -> str:
        """`path` as the model sees it: relative to its root ("<root name>/..." in multi-root)."""
        best: tuple[int, WorkspaceRoot, str] | None = None
        for root in self.roots:
            for form in (root.resolved, root.lexical):
                if is_inside(path, form) and (best is None or len(form) > best[0]):
                    best = (len(form), root, form)
        if best is None:
            return path
        relative = path[best[0] :].lstrip("/")
        if len(self.roots) > 1:
            return f"{best[1].name}/{relative}" if relative else best[1].name
        return relative or "."
