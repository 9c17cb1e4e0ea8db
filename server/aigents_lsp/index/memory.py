"""What one workspace's index holds in memory, and searching it: the chunks, their keyword and
symbol rankings and their vectors. `SemanticIndex` (index/indexer.py) adds building and
updating it from the workspace, and embedding.

Threads: the keyword rankings are shared between the worker thread that changes them and the
search threads under `_memory`, which only worker threads take, briefly. Vectors are searched in
published snapshots, so a vector scan holds no lock and the event loop never waits for one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aigents_lsp.index.keyword import KeywordIndex, decode_terms
from aigents_lsp.index.search import SearchHit, best_line, fuse, snippet
from aigents_lsp.index.store import ChunkRow, IndexStore
from aigents_lsp.index.vectors import VectorIndex, from_bytes
from aigents_lsp.providers.base import ProviderError

log = logging.getLogger("aigents_lsp.index.indexer")  # one logger for the whole index

_IDENTIFIER = re.compile(r"[A-Za-z_][\w.]*")


@dataclass(frozen=True)
class EmbeddingSource:
    """An embedding model: its id (stored with each vector) and how to call it."""

    model: str
    embed: Callable[[Sequence[str]], Awaitable[list[list[float]]]]
    weight: float = 1.0
    """How much its ranking counts in the fusion (below 1 for a general-purpose LLM's mean
    pooled states, which are weak embeddings)."""


@dataclass(frozen=True)
class IndexOptions:
    max_file_bytes: int = 512 * 1024
    """Larger files are not indexed (generated code, data)."""
    max_files: int = 20_000
    embed_batch: int = 16
    """Chunks per embedding call (small batches let a query get in between)."""
    embed_chars: int = 1200
    """Characters of a chunk given to the embedding model (~400 tokens: llama.cpp's default
    physical batch of 512 tokens must hold one input)."""
    candidates: int = 50
    """How deep each ranking is read before fusion."""
    keyword_weight: float = 1.0
    vector_weight: float = 1.0
    query_embed_timeout: float = 5.0
    """A query whose embedding takes longer is answered by keywords alone."""


@dataclass(frozen=True, slots=True)
class _Doc:
    path: str
    start: int
    end: int
    symbol: str
    terms: tuple[str, ...]


def _symbol_keys(symbol: str) -> set[str]:
    if not symbol:
        return set()
    lower = symbol.lower()
    return {lower, lower.rsplit(".", 1)[-1]}


class IndexMemory:
    """The in-memory part of one workspace's index; `SemanticIndex` fills it."""

    def __init__(
        self, roots: Sequence[Path], store: IndexStore, options: IndexOptions | None = None
    ) -> None:
        self.roots = [Path(os.path.abspath(root)).resolve() for root in roots]
        self.store = store
        self.options = options or IndexOptions()
        self._keyword = KeywordIndex()
        self._vectors = VectorIndex()
        self._docs: dict[int, _Doc] = {}
        self._by_path: dict[str, list[int]] = {}
        self._symbols: dict[str, set[int]] = {}  # lower-cased name (and its last part) -> ids
        # The keyword rankings are changed by the worker thread and read by search threads:
        # each file's change and each search's keyword ranking hold this (briefly). Never
        # taken on the event loop.
        self._memory = threading.Lock()
        self._vector_model: str | None = None
        self._query_cache: OrderedDict[tuple[str, str], list[float]] = OrderedDict()
        self._query_failure: str | None = None  # why the last query was not embedded

    # --- facts --------------------------------------------------------------------------------

    @property
    def chunk_count(self) -> int:
        return len(self._docs)

    @property
    def vector_count(self) -> int:
        return len(self._vectors)

    def relative(self, path: str) -> str:
        for root in self.roots:
            prefix = root.as_posix().rstrip("/") + "/"
            if path.startswith(prefix):
                return path[len(prefix) :]
        return path

    # --- the rankings -------------------------------------------------------------------------

    def _add_row(self, row: ChunkRow) -> None:
        counts = decode_terms(row.terms)
        self._docs[row.id] = _Doc(row.path, row.start, row.end, row.symbol, tuple(counts))
        self._by_path.setdefault(row.path, []).append(row.id)
        self._keyword.add(row.id, counts)
        for name in _symbol_keys(row.symbol):
            self._symbols.setdefault(name, set()).add(row.id)
        if row.vector and row.model is not None:
            if self._vector_model not in (None, row.model):
                return
            self._vector_model = row.model
            self._vectors.add(row.id, from_bytes(row.vector))

    def _forget(self, path: str) -> None:
        for ident in self._by_path.pop(path, []):
            doc = self._docs.pop(ident, None)
            self._keyword.remove(ident, doc.terms if doc else None)
            for name in _symbol_keys(doc.symbol if doc else ""):
                self._symbols.get(name, set()).discard(ident)
            self._vectors.remove(ident)

    # --- searching ----------------------------------------------------------------------------

    async def search(
        self, query: str, limit: int = 10, embedding: EmbeddingSource | None = None
    ) -> list[SearchHit]:
        """The chunks that best match `query`, best first (keywords, plus vectors when the
        index has some from `embedding`'s model)."""
        query = query.strip()
        if not query or not self._docs:
            return []
        vector = await self._query_vector(query, embedding)
        weight = self.options.vector_weight * embedding.weight if embedding is not None else 0.0
        # In a thread: a scan of a large index takes a fraction of a second in pure Python,
        # and the event loop must keep serving completions meanwhile.
        return await asyncio.to_thread(self._search, query, limit, vector, weight)

    def _search(
        self, query: str, limit: int, vector: list[float] | None, vector_weight: float
    ) -> list[SearchHit]:
        depth = max(self.options.candidates, limit)
        vectors = self._vectors.snapshot()  # scanned without a lock: nobody waits for it
        with self._memory:
            rankings: list[tuple[str, float, list[tuple[int, float]]]] = [
                ("keyword", self.options.keyword_weight, self._keyword.search(query, depth)),
                ("symbol", self.options.keyword_weight, self._symbol_matches(query, depth)),
            ]
        if vector is not None and vector_weight:
            rankings.append(("vector", vector_weight, vectors.search(vector, depth)))
        fused = fuse(rankings, limit)
        with self._memory:
            docs = {ident: self._docs.get(ident) for ident, _, _ in fused}
        hits: list[SearchHit] = []
        for ident, score, sources in fused:
            doc = docs[ident]
            found = self.store.text_of(ident)
            if doc is None or found is None:
                continue
            offset = best_line(found[1], query)
            text = snippet(found[1], offset)
            line = doc.start + offset
            hits.append(
                SearchHit(doc.path, doc.start, doc.end, doc.symbol, score, text, line, sources)
            )
        return hits

    def _symbol_matches(self, query: str, limit: int) -> list[tuple[int, float]]:
        """Chunks that define a name the query spells out (whole names before last parts)."""
        found: dict[int, float] = {}
        for word in _IDENTIFIER.findall(query):
            for ident in self._symbols.get(word.lower(), ()):
                doc = self._docs.get(ident)
                exact = doc is not None and doc.symbol.lower() == word.lower()
                found[ident] = max(found.get(ident, 0.0), 2.0 if exact else 1.0)
        ranked = sorted(found.items(), key=lambda item: (-item[1], len(self._docs[item[0]].symbol)))
        return ranked[:limit]

    async def _query_vector(
        self, query: str, embedding: EmbeddingSource | None
    ) -> list[float] | None:
        if embedding is None or self._vector_model != embedding.model or not len(self._vectors):
            return None
        key = (embedding.model, query)
        if key in self._query_cache:
            self._query_cache.move_to_end(key)
            return self._query_cache[key]
        try:
            async with asyncio.timeout(self.options.query_embed_timeout):
                vector = (await embedding.embed([query[: self.options.embed_chars]]))[0]
        except (ProviderError, TimeoutError, IndexError) as error:
            reason = str(error) or (
                f"no answer within {self.options.query_embed_timeout:g} s"
                if isinstance(error, TimeoutError)
                else type(error).__name__
            )
            # A warning the first time (search quality drops); the same reason again: info.
            level = logging.INFO if reason == self._query_failure else logging.WARNING
            self._query_failure = reason
            log.log(
                level,
                "index: %s did not embed the query (%s): keywords only",
                embedding.model,
                reason,
            )
            return None
        self._query_failure = None
        self._query_cache[key] = vector
        while len(self._query_cache) > 64:
            self._query_cache.popitem(last=False)
        return vector
