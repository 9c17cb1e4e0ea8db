"""`SemanticIndex`: builds and updates one workspace's index (searching it, and what it holds in
memory, are its base `IndexMemory` in index/memory.py).

A build walks the workspace with `IgnoreRules` (ignored and secret files are never read),
re-chunks only files whose size, mtime and then sha1 changed, forgets deleted ones, and then
embeds the chunks that have no vector from the current embedding model. Disk and CPU work runs
in a worker thread; embedding is async. Without an embedding model the index is keyword-only.

Threads: one writer at a time (the `_write` lock); the worker thread changes the rankings under
`_memory` (see index/memory.py). `close()` stops a running scan between two files.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from aigents_lsp.index.chunker import chunk_text
from aigents_lsp.index.keyword import encode_terms, term_counts
from aigents_lsp.index.memory import EmbeddingSource, IndexMemory, IndexOptions
from aigents_lsp.index.store import ChunkRow, FileRecord, IndexStore, NewChunk
from aigents_lsp.index.vectors import from_bytes, normalized, to_bytes
from aigents_lsp.providers.base import ProviderError
from aigents_lsp.workspace.ignore import IgnoreRules

log = logging.getLogger(__name__)

Progress = Callable[[str, int | None], None]
"""(message, percent or None) — called on the event loop."""

_BINARY_PROBE = 8192
_SKIP_NAMES = frozenset(
    {"package-lock.json", "yarn.lock", "pnpm-lock.yaml", "poetry.lock", "Cargo.lock",
     "composer.lock", "Gemfile.lock", "go.sum", "uv.lock", "Pipfile.lock"}
)  # fmt: skip
_SKIP_SUFFIXES = (".min.js", ".min.css", ".map", ".svg", ".lock")
_TRANSPORT = ("server_down", "timeout")
_IDENTIFIER = re.compile(r"[A-Za-z_][\w.]*")
_T = TypeVar("_T")


EmbeddingLookup = Callable[[], Awaitable[EmbeddingSource | None]]
"""Finds the embedding model when it is needed (after the scan: a slow backend never holds up
keyword search)."""


class IndexClosed(Exception):
    """The index was closed (the server is shutting down): its work stopped."""


@dataclass
class BuildReport:
    stopped: bool = False  # closed before the end: the index is incomplete
    files: int = 0
    changed: int = 0
    removed: int = 0
    chunks: int = 0
    embedded: int = 0
    seconds: float = 0.0
    truncated: bool = False
    keyword_only: str | None = None  # why there are no vectors
    errors: list[str] = field(default_factory=list)


async def _resolved(
    embedding: EmbeddingSource | EmbeddingLookup | None,
) -> EmbeddingSource | None:
    if embedding is None or isinstance(embedding, EmbeddingSource):
        return embedding
    return await embedding()


def _language(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def _skipped_name(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name in _SKIP_NAMES or name.endswith(_SKIP_SUFFIXES)


class SemanticIndex(IndexMemory):
    """One workspace's index: call `build()` once, `update()` on saves and file changes,
    `search()` any time after the first scan (`ready`)."""

    def __init__(
        self,
        roots: Sequence[Path],
        rules: IgnoreRules,
        store: IndexStore,
        options: IndexOptions | None = None,
    ) -> None:
        super().__init__(roots, store, options)
        self.rules = rules
        self.ready = False  # keyword search works (the first scan is done)
        self.scanned = asyncio.Event()  # set after the first scan, even a failed one
        self.state = "new"  # new | scanning | embedding | ready | failed
        self.keyword_only: str | None = None  # why vectors are not used, once known
        self._loaded = False
        self._write = asyncio.Lock()
        self._stop = threading.Event()  # set by `close()`: background work ends
        self._working = threading.Lock()  # held by the worker thread while it works

    # --- building -----------------------------------------------------------------------------

    async def build(
        self,
        embedding: EmbeddingSource | EmbeddingLookup | None = None,
        progress: Progress | None = None,
    ) -> BuildReport:
        """Bring the index up to date with the workspace, then embed what lacks a vector."""
        started = time.perf_counter()
        report = BuildReport()
        tell = progress or (lambda message, percent: None)
        loop = asyncio.get_running_loop()

        def from_thread(message: str) -> None:
            loop.call_soon_threadsafe(tell, message, None)

        async with self._write:
            self.state = "scanning"
            try:
                if not self._loaded:
                    await self._in_worker(self._load)
                tell("Scanning the workspace…", 0)
                await self._in_worker(self._scan, report, from_thread)
                self.ready = True
                self.scanned.set()
                report.chunks = len(self._docs)
                await self._embed_missing(await _resolved(embedding), report, tell)
            except IndexClosed:
                report.stopped = True
                self.scanned.set()
                return report
            except Exception:
                self.state = "failed"
                self.scanned.set()
                raise
            self.state = "ready"
        report.seconds = time.perf_counter() - started
        return report

    async def update(
        self,
        paths: Iterable[Path | str],
        embedding: EmbeddingSource | EmbeddingLookup | None = None,
    ) -> BuildReport:
        """Re-index the given files (saved, created, changed or deleted on disk)."""
        report = BuildReport()
        started = time.perf_counter()
        wanted = [Path(p).as_posix() for p in paths]  # absolute paths, from the caller
        async with self._write:
            try:
                if not self._loaded:
                    await self._in_worker(self._load)
                await self._in_worker(self._update_files, wanted, report)
                report.chunks = len(self._docs)
                await self._embed_missing(
                    await _resolved(embedding), report, lambda message, percent: None
                )
            except IndexClosed:
                report.stopped = True
        report.seconds = time.perf_counter() - started
        return report

    async def _in_worker(self, work: Callable[..., _T], *args: object) -> _T:
        """`work(*args)` in a worker thread, unless the index is closed (`IndexClosed`)."""

        def run() -> _T:
            with self._working:
                if self._stop.is_set():
                    raise IndexClosed
                return work(*args)

        return await asyncio.to_thread(run)

    def _load(self) -> None:
        """The in-memory rankings from the store (term counts and vectors are stored)."""
        for row in self.store.chunks():
            if self._stop.is_set():
                raise IndexClosed
            with self._memory:
                self._add_row(row)
        self._vectors.pack()  # here in the background, not on the first search (~1 s at 15k)
        self._loaded = True
        if self._docs:
            self.ready = True
            log.info("index: %d chunks loaded from %s", len(self._docs), self.store.path)

    def _scan(self, report: BuildReport, tell: Callable[[str], None]) -> None:
        known = self.store.files()
        seen: set[str] = set()
        last_report = time.monotonic()
        for file in self.rules.walk():
            if self._stop.is_set():
                report.stopped = True
                break
            if len(seen) >= self.options.max_files:
                report.truncated = True
                break
            path = file.as_posix()
            if path in seen:
                continue
            seen.add(path)
            report.files += 1
            self._index_file(path, known.get(path), report)
            if time.monotonic() - last_report > 0.5:
                last_report = time.monotonic()
                tell(f"Scanning: {report.files} files, {len(self._docs)} chunks")
        if report.truncated:
            log.warning("index: stopped at %d files (max_files)", self.options.max_files)
        gone = [path for path in known if path not in seen]
        if gone and not report.truncated and not report.stopped:
            self.store.remove_files(gone)
            for path in gone:
                with self._memory:
                    self._forget(path)
            report.removed += len(gone)
        self._vectors.publish()

    def _update_files(self, paths: Sequence[str], report: BuildReport) -> None:
        removed: list[str] = []
        for path in paths:
            if self._stop.is_set():
                report.stopped = True
                break
            if self.rules.is_ignored(path) or not os.path.isfile(path):
                if path in self._by_path or self.store.file(path) is not None:
                    removed.append(path)
                continue
            report.files += 1
            self._index_file(path, self.store.file(path), report)
        if removed:
            self.store.remove_files(removed)
            for path in removed:
                with self._memory:
                    self._forget(path)
            report.removed += len(removed)
        self._vectors.publish()

    def _index_file(self, path: str, known: FileRecord | None, report: BuildReport) -> None:
        """(Re-)chunk one file when it changed; never raises for an unreadable file."""
        try:
            status = os.stat(path)
            if known and (known.mtime_ns, known.size) == (status.st_mtime_ns, status.st_size):
                return
            if status.st_size > self.options.max_file_bytes or _skipped_name(path):
                text = None
                data = b""
            else:
                with open(path, "rb") as handle:
                    data = handle.read(self.options.max_file_bytes + 1)
                text = None if b"\0" in data[:_BINARY_PROBE] else data.decode("utf-8", "replace")
        except OSError as exc:
            report.errors.append(f"{path}: {exc.strerror or exc}")
            return
        digest = hashlib.sha1(data).hexdigest()
        record = FileRecord(path, status.st_mtime_ns, status.st_size, digest)
        if known is not None and known.sha1 == digest and path in self._by_path:
            self.store.touch(record)
            return
        report.changed += 1
        chunks = chunk_text(text, _language(path)) if text else []
        relative = self.relative(path)
        new = [
            NewChunk(c.start, c.end, c.symbol, c.text, encode_terms(term_counts(relative, *parts)))
            for c in chunks
            for parts in [(c.symbol, c.text)]
        ]
        rows = self.store.replace_file(record, new)
        with self._memory:
            self._forget(path)
            self._by_path[path] = []
            for row in rows:
                self._add_row(row)

    # --- embedding ----------------------------------------------------------------------------

    async def _embed_missing(
        self, embedding: EmbeddingSource | None, report: BuildReport, tell: Progress
    ) -> None:
        if embedding is None:
            report.keyword_only = self.keyword_only = self.keyword_only or "no embedding model"
            return
        if self._vector_model != embedding.model:
            if self._vector_model is not None:
                log.info("index: embedding model is now %s: re-embedding", embedding.model)
            stored = await self._in_worker(lambda: list(self.store.chunks()))
            # On the event loop, with no lock: searches read the published vectors.
            self._vectors.clear()
            self._vector_model = embedding.model
            for row in stored:
                if row.vector and row.model == embedding.model:
                    self._vectors.add(row.id, from_bytes(row.vector))
            self._vectors.publish()
        total = await self._in_worker(self.store.count_missing_vectors, embedding.model)
        if total == 0:
            self.keyword_only = None
            return
        self.state = "embedding"
        done = 0
        tell(f"Embedding {total} chunks with {embedding.model}…", 0)
        while True:
            rows = await self._in_worker(
                self.store.missing_vectors, embedding.model, self.options.embed_batch
            )
            if not rows:
                break
            try:
                vectors = await self._embed_rows(embedding, rows)
            except ProviderError as error:
                reason = f"{embedding.model} failed: {error}"
                report.keyword_only = self.keyword_only = reason
                log.warning("index: embeddings stopped, keyword search only (%s)", error)
                return
            await self._in_worker(self.store.set_vectors, embedding.model, vectors)
            for ident, blob in vectors:
                if blob and ident in self._docs:
                    self._vectors.add(ident, from_bytes(blob))
            self._vectors.publish()
            done += len(rows)
            report.embedded += len(rows)
            tell(f"Embedded {done}/{total} chunks", min(99, done * 100 // total))
        self.keyword_only = None

    def _embed_text(self, row: ChunkRow) -> str:
        head = f"{self.relative(row.path)}" + (f" {row.symbol}" if row.symbol else "")
        return f"{head}\n{row.text}"[: self.options.embed_chars]

    async def _embed_rows(
        self, embedding: EmbeddingSource, rows: Sequence[ChunkRow]
    ) -> list[tuple[int, bytes]]:
        texts = [self._embed_text(row) for row in rows]
        try:
            vectors = await embedding.embed(texts)
        except ProviderError as error:
            if error.kind in _TRANSPORT or len(rows) == 1:
                raise
            # One input the model refuses (too long for its batch...) must not fail the rest.
            out: list[tuple[int, bytes]] = []
            refused: list[str] = []
            for row, text in zip(rows, texts, strict=True):
                try:
                    vector = (await embedding.embed([text[: len(text) // 2]]))[0]
                    out.append((row.id, to_bytes(normalized(vector))))
                except ProviderError as single:
                    if single.kind in _TRANSPORT or single.kind in ("no_model_loaded", "auth"):
                        raise
                    refused.append(f"{self.relative(row.path)}:{row.start + 1} ({single})")
                    out.append((row.id, b""))  # remembered: not retried until it changes
            if refused:
                # Those chunks are found by keywords only: say which, once per batch.
                log.warning(
                    "index: %s refused %d chunk(s), found by keywords only: %s",
                    embedding.model,
                    len(refused),
                    "; ".join(refused[:3]) + (" …" if len(refused) > 3 else ""),
                )
            return out
        return [(row.id, to_bytes(normalized(v))) for row, v in zip(rows, vectors, strict=True)]

    def close(self, timeout: float = 5.0) -> None:
        """Stop the background work (a scan stops between two files, embedding between two
        batches) and close the store."""
        self._stop.set()
        if self._working.acquire(timeout=timeout):
            try:
                self.store.close()
            finally:
                self._working.release()
            return
        log.warning("index: the scan did not stop within %g s; its store is closed anyway", timeout)
        self.store.close()
