"""Read-only workspace tools for the model: search, read and list files in the workspace folders.

Every path a model names is resolved against the workspace roots (`workspace.paths`); `..`
escapes, absolute paths outside the roots, symlinks that lead out, and ignored or secret files
(`.env`, keys, whatever `.gitignore`/`.aigentsignore` exclude) are refused with a sentence the
model can read. Nothing is ever written. Output is size-capped and passed through secret
redaction (defense in depth). File scanning runs in a worker thread under a time budget, so the
event loop never waits on the disk. Unsaved editor text (`open_documents`) wins over what is on
disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from aigents_lsp.assist.tool_calls import (
    TOOL_SPECS,
    ToolArgumentError,
    int_argument,
    parse_arguments,
    text_argument,
)
from aigents_lsp.providers.base import ToolCall, ToolSpec
from aigents_lsp.workspace.ignore import IgnoreRules, path_from_uri
from aigents_lsp.workspace.paths import (
    InvalidGlob,
    PathGlob,
    PathRefused,
    WorkspacePaths,
    is_inside,
)
from aigents_lsp.workspace.secrets import redact

if TYPE_CHECKING:
    from aigents_lsp.index.search import SearchHit

log = logging.getLogger(__name__)


class IndexedSearch(Protocol):
    """The workspace's semantic index, as the tools use it (`lsp.search.IndexService`)."""

    @property
    def ready(self) -> bool: ...

    async def search(self, query: str, limit: int = 10) -> list[SearchHit]: ...


OpenDocuments = Callable[[], Mapping[Path, str]]
"""Absolute path -> the editor's current (possibly unsaved) text of that document."""

_T = TypeVar("_T")
_Docs = Mapping[str, str]  # resolved posix path -> unsaved text
_Stop = threading.Event
_BINARY_PROBE = 8192  # a NUL byte in the first 8 KB: a binary file, as git decides


@dataclass(frozen=True)
class ToolLimits:
    """How much one tool call may read, find and return."""

    max_file_bytes: int = 64 * 1024
    """`read_file` returns at most this much of a file per call, then says where to go on."""
    max_scan_bytes: int = 1 << 20
    """Bigger files are skipped by `search_codebase` and read only this far by `read_file`."""
    max_search_results: int = 50
    max_list_files: int = 200
    max_output_chars: int = 12_000
    """The most text one tool call gives the model."""
    search_seconds: float = 2.0
    """Time budget of one search or listing; what was found by then is returned."""
    max_line_chars: int = 200
    """A search hit's line is cut here (minified files)."""


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class WorkspaceTools:
    """The model's read-only view of the workspace folders."""

    def __init__(
        self,
        roots: Sequence[Path],
        ignore: IgnoreRules | None = None,
        *,
        limits: ToolLimits | None = None,
        open_documents: OpenDocuments | None = None,
        index: IndexedSearch | None = None,
    ) -> None:
        """`roots`: the workspace folders (the first one anchors relative paths); `ignore`
        defaults to `IgnoreRules(roots)` (confinement to `roots` holds whatever its
        `outside_is_ignored`); `open_documents` is called on the event loop; `index`, when
        ready, answers plain searches (else they scan the files)."""
        if not roots:
            raise ValueError("WorkspaceTools needs at least one workspace root")
        self.rules = ignore if ignore is not None else IgnoreRules(roots)
        self.limits = limits or ToolLimits()
        self.paths = WorkspacePaths(roots, self.rules)
        self._open_documents = open_documents
        self.index = index

    def specs(self) -> list[ToolSpec]:
        return list(TOOL_SPECS)

    async def run(self, call: ToolCall) -> str:
        """The tool's answer for the model; every failure is an `error: ...` text."""
        name = call.name.strip().removeprefix("functions.").replace("-", "_").lower()
        try:
            args = parse_arguments(call.arguments)
            if name == "search_codebase":
                regex = str(args.get("regex")).strip().lower() in ("true", "1", "yes")
                glob = text_argument(args, "path_glob")
                return await self.search_codebase(text_argument(args, "query") or "", regex, glob)
            if name == "read_file":
                first, last = int_argument(args, "start_line"), int_argument(args, "end_line")
                return await self.read_file(text_argument(args, "path") or "", first, last)
            if name == "list_files":
                return await self.list_files(
                    text_argument(args, "path") or ".", text_argument(args, "pattern")
                )
        except ToolArgumentError as exc:
            return f"error: {call.name}: {exc}"
        except Exception as exc:  # a broken tool must not end the conversation
            log.exception("tool %s failed", call.name)
            return f"error: {call.name} failed: {exc}"
        names = ", ".join(spec.name for spec in TOOL_SPECS)
        return f"error: there is no tool {call.name!r}; the tools are {names}"

    # --- the tools ----------------------------------------------------------------------------

    async def search_codebase(
        self, query: str, regex: bool = False, path_glob: str | None = None
    ) -> str:
        """Lines matching `query` (plain: case-insensitive) as `path:line: text`."""
        if not query:
            return "error: search_codebase: the query is empty"
        if regex:
            try:
                pattern = re.compile(query)
            except re.error as exc:
                return f"error: invalid regular expression {query!r}: {exc}"
        else:
            pattern = re.compile(re.escape(query), re.IGNORECASE)
        try:
            matches = PathGlob(path_glob) if path_glob else None
        except InvalidGlob as exc:
            return f"error: {exc}"
        if not regex and self.index is not None and self.index.ready:
            indexed = await self._search_index(query, matches, path_glob)
            if indexed is not None:
                return indexed
        search = functools.partial(self._search, pattern, matches, self._documents())
        found = await self._off_loop(search)
        if found is None:
            return "error: the search took too long — use a simpler pattern or a path_glob"
        hits, notes = found
        where = f" in {path_glob}" if path_glob else ""
        if not hits:
            return self._cap("\n".join([f"no matches for {query!r}{where}", *notes]))
        head = f"{len(hits)} match{'es' if len(hits) > 1 else ''} for {query!r}{where}:"
        return self._cap("\n".join([head, *hits, *notes]))

    async def _search_index(
        self, query: str, matches: PathGlob | None, path_glob: str | None
    ) -> str | None:
        """The index's best chunks as `path:line: text` (their best matching line); None when
        it finds nothing, so the plain scan gets its turn."""
        assert self.index is not None
        try:
            hits = await self.index.search(query, self.limits.max_search_results)
        except Exception:
            log.exception("index search failed; scanning the files instead")
            return None
        width = self.limits.max_line_chars
        lines: list[str] = []
        for hit in hits:
            if self.rules.is_ignored(hit.path) or self.paths.escapes(Path(hit.path)):
                continue  # never the case for a sound index: defense in depth
            shown = self.paths.display(hit.path)
            if matches is not None and not matches(shown):
                continue
            first = hit.snippet.split("\n", 1)[0].strip()
            where = f" ({hit.symbol})" if hit.symbol else ""
            lines.append(f"{shown}:{hit.line + 1}: {_clip(first, width)}{where}")
        if not lines:
            return None
        where = f" in {path_glob}" if path_glob else ""
        head = f"{len(lines)} result{'s' if len(lines) > 1 else ''} for {query!r}{where}:"
        return self._cap("\n".join([head, *lines]))

    async def read_file(
        self, path: str, start_line: int | None = None, end_line: int | None = None
    ) -> str:
        """The file's lines as `number: text`, from `start_line` to `end_line` (1-based)."""
        try:
            located = self.paths.locate(path)
        except PathRefused as exc:
            return f"refused: {exc}"
        docs = self._documents()
        read = functools.partial(self._read, located, path, start_line, end_line, docs)
        return self._cap(await asyncio.to_thread(read))

    async def list_files(self, path: str = ".", pattern: str | None = None) -> str:
        """Files under `path` that may be used (ignored and secret files are left out)."""
        try:
            located = self.paths.locate(path)
        except PathRefused as exc:
            return f"refused: {exc}"
        try:
            matches = PathGlob(pattern) if pattern else None
        except InvalidGlob as exc:
            return f"error: {exc}"
        listed = await self._off_loop(functools.partial(self._list, located, path, matches))
        return self._cap(listed or "error: listing took too long — list a subdirectory")

    # --- plumbing -----------------------------------------------------------------------------

    def _documents(self) -> dict[str, str]:
        """The open documents by resolved path (read on the event loop: the store is not
        thread-safe)."""
        if self._open_documents is None:
            return {}
        try:
            documents = self._open_documents()
        except Exception:
            log.exception("reading the open documents failed")
            return {}
        found: dict[str, str] = {}
        for path, text in documents.items():
            try:
                found[Path(os.path.abspath(path_from_uri(path))).resolve().as_posix()] = text
            except (OSError, RuntimeError):
                continue
        return found

    async def _off_loop(self, work: Callable[[_Stop, float], _T]) -> _T | None:
        """`work(stop, deadline)` in a thread; None if it overruns the deadline by a second (a
        regex cannot be interrupted: the loop moves on). `stop` is set when we stop waiting."""
        stop = threading.Event()
        budget = self.limits.search_seconds
        try:
            work_done = asyncio.to_thread(work, stop, time.monotonic() + budget)
            return await asyncio.wait_for(work_done, budget + 1.0)
        except TimeoutError:
            return None
        finally:
            stop.set()

    def _cap(self, text: str) -> str:
        text, _ = redact(text)
        limit = self.limits.max_output_chars
        if len(text) <= limit:
            return text
        cut = text.rfind("\n", 0, limit - 60)
        cut = cut if cut > 0 else limit - 60
        return f"{text[:cut]}\n[output cut at {limit} characters]"

    # --- work in the thread -------------------------------------------------------------------

    def _load(self, path: Path | str, *, whole: bool) -> tuple[str | None, int]:
        """(text, size on disk) of a file; the text is None for a binary file, or with `whole`
        for one over `max_scan_bytes`, else at most that much. Raises `OSError`."""
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if whole and size > self.limits.max_scan_bytes:
                return None, size
            data = handle.read(self.limits.max_scan_bytes)
        return (None if b"\0" in data[:_BINARY_PROBE] else data.decode("utf-8", "replace")), size

    def _search(
        self,
        pattern: re.Pattern[str],
        matches: PathGlob | None,
        docs: _Docs,
        stop: _Stop,
        deadline: float,
    ) -> tuple[list[str], list[str]]:
        limit, width = self.limits.max_search_results, self.limits.max_line_chars
        hits: list[str] = []
        seen: set[str] = set()

        def scan(path: str, text: str | None) -> bool:
            """Add the hits in one file; True when the result list is full."""
            if text is None or not pattern.search(text):
                return False
            shown = self.paths.display(path)
            for number, line in enumerate(text.splitlines(), 1):
                if pattern.search(line):
                    hits.append(f"{shown}:{number}: {_clip(line.strip(), width)}")
                    if len(hits) >= limit:
                        return True
            return False

        roots = [root.resolved for root in self.paths.roots]
        outermost = [r for r in roots if not any(o != r and is_inside(r, o) for o in roots)]
        full = late = False
        for file in (f for root in dict.fromkeys(outermost) for f in self.rules.walk(root)):
            if stop.is_set() or (late := time.monotonic() > deadline):
                break
            path = file.as_posix()
            seen.add(path)
            if self.paths.escapes(file):
                continue
            if matches is None or matches(self.paths.display(path)):
                with contextlib.suppress(OSError):
                    text = docs[path] if path in docs else self._load(file, whole=True)[0]
                    if full := scan(path, text):
                        break
        for path, text in docs.items():  # open documents not yet saved to disk
            if not (full or late or path in seen or self.rules.is_ignored(path)):
                inside = self.paths.contains(path)
                if inside and (matches is None or matches(self.paths.display(path))):
                    full = scan(path, text)
        notes = [f"[stopped at {limit} matches — narrow the query or use path_glob]"] * full
        budget = self.limits.search_seconds
        notes += [f"[search stopped after {budget:g} s — results are incomplete]"] * late
        return hits, notes

    def _read(self, file: Path, shown: str, start: int | None, end: int | None, docs: _Docs) -> str:
        note, text = "", docs.get(file.resolve().as_posix())
        source = ", unsaved editor text" if text is not None else ""
        if text is None:
            if not file.is_file():
                exists = "is a directory — use list_files" if file.is_dir() else "does not exist"
                return f"error: {shown} {exists}"
            try:
                text, size = self._load(file, whole=False)
            except OSError as exc:
                return f"error: cannot read {shown}: {exc.strerror or exc}"
            if text is None:
                return f"error: {shown} is a binary file"
            if size > (scanned := self.limits.max_scan_bytes):
                text = text[: text.rfind("\n") + 1] or text
                note = f"[the file has {size} bytes; only the first {scanned} can be read]"
        lines = text.splitlines()
        total = len(lines)
        first, last = max(1, start or 1), min(total, end if end is not None else total)
        if total == 0:
            return f"{shown} is empty"
        if first > total:
            return f"error: {shown} has only {total} lines"
        if last < first:
            return f"error: end_line {end} is before start_line {first}"
        budget = min(self.limits.max_file_bytes, self.limits.max_output_chars - 200)
        out: list[str] = []
        used, cut_at = 0, None
        for number in range(first, last + 1):
            out.append(f"{number}: {lines[number - 1]}")
            used += len(out[-1]) + 1
            if used > budget and len(out) > 1:
                cut_at = number
                out[-1] = f"[truncated — read on with start_line={number}]"
                break
        shown_last = cut_at - 1 if cut_at else last
        name = self.paths.display(file.as_posix())
        head = f"{name} (lines {first}-{shown_last} of {total}{source})"
        return "\n".join([head, *out, *([note] if note else [])])

    def _list(
        self, target: Path, shown: str, matches: PathGlob | None, stop: _Stop, deadline: float
    ) -> str:
        if not target.exists():
            return f"error: {shown} does not exist"
        base = target.resolve().as_posix()
        files: list[str] = []
        more = late = False
        for file in self.rules.walk(target):
            if stop.is_set() or (late := time.monotonic() > deadline):
                break
            path = file.as_posix()
            if self.paths.escapes(file):
                continue
            relative = path[len(base) :].lstrip("/") if is_inside(path, base) else path
            display = self.paths.display(path)
            if matches is not None and not (matches(display) or matches(relative)):
                continue
            if more := len(files) >= self.limits.max_list_files:
                break
            files.append(display)
        where = self.paths.display(base) + (f" matching {matches.glob!r}" if matches else "")
        head = f"{len(files)} file{'s' if len(files) > 1 else ''} under {where}:"
        notes = [f"[stopped at {len(files)} files — list a subdirectory or use a pattern]"] * more
        notes += [f"[listing stopped after {self.limits.search_seconds:g} s]"] * late
        return "\n".join([head if files else f"no files under {where}", *files, *notes])
