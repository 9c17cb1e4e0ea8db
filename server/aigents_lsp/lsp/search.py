"""The semantic index in the editor: built in the background after `initialized` (with
`$/progress`), updated on `didSave` and watched-file changes, searched by the `aigents.search`
command and by the model's `search_codebase` tool.

`aigents.search` takes `{query, limit?}` and answers a list of `Location`s, each with `score`,
`snippet`, `symbol`, `path` and `line` added (see docs/commands.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from aigents_lsp.lsp.progress import Progress
from aigents_lsp.lsp.requests import RequestFailed
from aigents_lsp.providers.base import NoModelLoaded, Provider, ProviderError

if TYPE_CHECKING:
    from aigents_lsp.index.indexer import BuildReport, SemanticIndex
    from aigents_lsp.index.memory import EmbeddingSource
    from aigents_lsp.index.search import SearchHit
    from aigents_lsp.lsp.server import AigentsServer

log = logging.getLogger(__name__)

SEARCH_COMMAND = "aigents.search"
PROGRESS_TITLE = "aigents: indexing"
UPDATE_DELAY = 0.3  # seconds: saves and file events arriving together make one update
FIRST_SCAN_WAIT = 30.0  # a search waits this long for the first scan of the workspace
MAX_LIMIT = 100
EMBEDDING_LOOKUP_SECONDS = 5.0  # a backend slow to list its models leaves keyword search
EMBEDDED_VECTOR_WEIGHT = 0.25
_WATCHER_ID = "aigents-index-watcher"


async def embedding_source(ls: AigentsServer) -> tuple[EmbeddingSource | None, str]:
    """The embedding model to index with, or None and why not. The one place that knows how
    the backend gives out providers (re-point it when routing by task arrives)."""
    from aigents_lsp.index.memory import EmbeddingSource

    backend = ls.backend
    try:
        provider = await backend.provider("embedding")  # the embedding route, when set
    except ProviderError as error:
        return None, f"the backend is not available ({error})"
    if provider.name == "embedded" and ls.settings.index != "on":
        return None, (
            'the embedded engine\'s embeddings are slow on a CPU; set index = "on" to use '
            "them, or load an embedding model in LM Studio"
        )
    try:
        model = await backend.model_for("embedding")
    except NoModelLoaded:
        model = await _downloaded_embedding_model(provider)
        if model is None:
            return None, "no embedding model is loaded or downloaded (setting embeddingModel)"
    except ProviderError as error:
        return None, f"no embedding model ({error})"
    chosen = model

    async def embed(texts: Sequence[str]) -> list[list[float]]:
        return await provider.embed(texts, chosen)

    # The embedded engine's vectors are a small chat model's mean-pooled states: weak. On 25
    # stdlib docstring queries, hit@5 was 25 by keywords, 20 fused at weight 1 or 0.5, 24 at
    # 0.25 (benchmarks/index_build.py); at 0.25 they still answer queries no keyword matches.
    weight = EMBEDDED_VECTOR_WEIGHT if provider.name == "embedded" else 1.0
    return EmbeddingSource(f"{provider.name}:{model or 'default'}", embed, weight), ""


async def _downloaded_embedding_model(provider: Provider) -> str | None:
    """A downloaded (not loaded) embedding model: LM Studio loads it on first use."""
    try:
        models = await provider.list_models()
    except ProviderError:
        return None
    found = [m.id for m in models if m.type == "embeddings"]
    return next((m for m in found if "nomic-embed" in m), found[0] if found else None)


class IndexService:
    """The workspace's `SemanticIndex` and its life in the server."""

    def __init__(self, ls: AigentsServer) -> None:
        self._ls = ls
        self.index: SemanticIndex | None = None
        self._reason = ""  # why there is no embedding model, from the last lookup
        self._pending: set[str] = set()
        self._update: asyncio.Task[Any] | None = None
        self._build: asyncio.Task[Any] | None = None
        self._told: str | None = None  # the keyword-only reason the user was told

    @property
    def ready(self) -> bool:
        return self.index is not None and self.index.ready

    def start(self) -> None:
        """Build the index in the background (setting `index` not "off", a workspace open)."""
        ls = self._ls
        if ls.settings.index == "off" or not ls.workspace_roots or self.index is not None:
            return
        from aigents_lsp.index.indexer import SemanticIndex
        from aigents_lsp.index.memory import IndexOptions
        from aigents_lsp.index.store import IndexStore, store_path

        try:
            store = IndexStore(store_path(ls.workspace_roots))
        except Exception as exc:  # a cache dir we cannot write: search falls back to grep
            log.warning("semantic index unavailable: %s", exc)
            return
        options = IndexOptions(max_files=ls.settings.index_max_files)
        self.index = SemanticIndex(ls.workspace_roots, ls.ignore_rules, store, options)
        self._build = ls.run_task(self._run_build(), "index-build")
        ls.run_task(self._watch_files(), "index-watch")

    async def _run_build(self) -> None:
        assert self.index is not None
        progress = Progress(self._ls, PROGRESS_TITLE)
        await progress.begin(percentage=0)
        try:
            report = await self.index.build(self._embedding, progress.report)
        except BaseException:
            progress.end("failed")
            raise
        progress.end(self._summary(report))
        log.info("index: %s", self._summary(report))
        self._tell_keyword_only(report.keyword_only and (self._reason or report.keyword_only))

    async def _embedding(self) -> EmbeddingSource | None:
        """The embedding model now (looked up each time: the provider or model may change)."""
        try:
            async with asyncio.timeout(EMBEDDING_LOOKUP_SECONDS):
                embedding, self._reason = await embedding_source(self._ls)
        except TimeoutError:
            embedding = None
            self._reason = (
                f"the backend did not name an embedding model within {EMBEDDING_LOOKUP_SECONDS:g} s"
            )
        return embedding

    def _summary(self, report: BuildReport) -> str:
        assert self.index is not None
        text = (
            f"{report.files} files, {report.chunks} chunks ({report.changed} re-read) "
            f"in {report.seconds:.1f} s"
        )
        if report.embedded:
            text += f", {report.embedded} embedded"
        if self.index.keyword_only:
            text += "; keyword search only"
        return text

    def _tell_keyword_only(self, reason: str | None) -> None:
        if reason and reason != self._told:
            self._told = reason
            # A warning reaches the editor's log too (`window/logMessage`, lsp.logs).
            log.warning("aigents: the semantic index uses keyword search only: %s", reason)

    def close(self) -> None:
        """Stop the index's background work and close its store (at shutdown)."""
        if self.index is not None:
            self.index.close()

    # --- updates ------------------------------------------------------------------------------

    def files_changed(self, paths: Iterable[str]) -> None:
        """Saved or changed files: re-indexed together after a short pause."""
        if self.index is None:
            return
        self._pending.update(paths)
        if self._update is None or self._update.done():
            self._update = self._ls.run_task(self._run_update(), "index-update")

    async def _run_update(self) -> None:
        await asyncio.sleep(UPDATE_DELAY)
        if self.index is not None:
            await self.index.scanned.wait()
        while self._pending and self.index is not None:
            paths, self._pending = sorted(self._pending), set()
            if any(Path(p).name in (".gitignore", ".aigentsignore") for p in paths):
                await self.index.build(self._embedding)  # the rules changed: rescan
                continue
            report = await self.index.update(paths, self._embedding)
            log.info("index: %d file(s) updated in %.2f s", len(paths), report.seconds)
            self._tell_keyword_only(report.keyword_only and (self._reason or report.keyword_only))

    async def _watch_files(self) -> None:
        """Ask the editor for file events (`workspace/didChangeWatchedFiles`) when it can."""
        workspace = self._ls.client_capabilities.workspace
        watched = workspace.did_change_watched_files if workspace else None
        if not (watched and watched.dynamic_registration):
            return
        options = types.DidChangeWatchedFilesRegistrationOptions(
            watchers=[types.FileSystemWatcher(glob_pattern="**/*")]
        )
        try:
            await self._ls.client_register_capability_async(
                types.RegistrationParams(
                    registrations=[
                        types.Registration(
                            id=_WATCHER_ID,
                            method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                            register_options=options,
                        )
                    ]
                )
            )
        except Exception as exc:
            log.debug("file watcher registration refused: %s", exc)

    # --- searching ----------------------------------------------------------------------------

    async def search(self, query: str, limit: int = 10) -> list[SearchHit]:
        """The best chunks for a query (waits for the first scan, briefly)."""
        if self.index is None:
            return []
        if not self.index.scanned.is_set():
            try:
                await asyncio.wait_for(self.index.scanned.wait(), FIRST_SCAN_WAIT)
            except TimeoutError:
                return []
        return await self.index.search(query, limit, await self._embedding())


def _location(ls: AigentsServer, service: IndexService, hit: SearchHit) -> dict[str, Any]:
    assert service.index is not None
    return {
        "uri": Path(hit.path).as_uri(),
        "range": {
            "start": {"line": hit.start, "character": 0},
            "end": {"line": hit.end + 1, "character": 0},
        },
        "score": hit.score,
        "snippet": hit.snippet,
        "symbol": hit.symbol,
        "path": service.index.relative(hit.path),
        "line": hit.line,
        "sources": list(hit.sources),
    }


def register(server: AigentsServer) -> None:
    service = IndexService(server)
    server.semantic_search = service

    @server.command(SEARCH_COMMAND)
    async def search(*args: Any) -> list[dict[str, Any]]:
        """`{query, limit?}` -> the best matching code, as Locations with score and snippet."""
        arg = args[0] if len(args) == 1 and isinstance(args[0], dict) else None
        query = str(arg.get("query") or "").strip() if arg is not None else ""
        if not query:
            raise JsonRpcInvalidParams(message="expected one object argument {query, limit?}")
        limit = arg.get("limit", 10) if arg is not None else 10
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise JsonRpcInvalidParams(message="`limit` must be a positive integer")
        if server.settings.index == "off":
            raise RequestFailed(message="aigents: the semantic index is off (setting index)")
        service.start()  # a no-op once started
        if service.index is None:
            raise RequestFailed(message="aigents: no workspace folder is open to index")
        hits = await service.search(query, min(limit, MAX_LIMIT))
        return [_location(server, service, hit) for hit in hits]

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: AigentsServer, params: types.DidSaveTextDocumentParams) -> None:
        from aigents_lsp.workspace.ignore import path_from_uri

        uri = params.text_document.uri
        if uri.startswith("file:"):
            service.files_changed([path_from_uri(uri).as_posix()])

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def watched_files(ls: AigentsServer, params: types.DidChangeWatchedFilesParams) -> None:
        from aigents_lsp.workspace.ignore import path_from_uri

        paths = [
            path_from_uri(change.uri).as_posix()
            for change in params.changes
            if change.uri.startswith("file:")
        ]
        service.files_changed(paths)


def start(ls: AigentsServer) -> None:
    """Called once settings are loaded after `initialized`."""
    service: IndexService | None = getattr(ls, "semantic_search", None)
    if service is not None:
        service.start()


def close(ls: AigentsServer) -> None:
    """Called at shutdown."""
    service: IndexService | None = getattr(ls, "semantic_search", None)
    if service is not None:
        service.close()
