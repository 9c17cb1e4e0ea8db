"""The pygls server: the state the feature modules share (settings, backend, tasks, messages to
the editor). The features are registered in `lsp/features.py`, which this module does not import."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from aigents_lsp import __version__
from aigents_lsp.lsp.jobs import AigentsProtocol, JobRegistry
from aigents_lsp.lsp.logs import EditorLogHandler

if TYPE_CHECKING:
    # pydantic costs ~80 ms to import: it is loaded after the `initialize` response, and so is
    # the backend (built on first use).
    from aigents_lsp.assist.tools import WorkspaceTools
    from aigents_lsp.completion.engine import CompletionEngine
    from aigents_lsp.config import Settings
    from aigents_lsp.lsp.nextedit import NextEditService
    from aigents_lsp.lsp.progress import Progress, QueuedProgress
    from aigents_lsp.lsp.search import IndexService
    from aigents_lsp.providers.backend import Backend
    from aigents_lsp.providers.backend_state import Status
    from aigents_lsp.settings_sources import SettingsProblem
    from aigents_lsp.workspace.ignore import IgnoreRules

log = logging.getLogger(__name__)

STATUS_NOTIFICATION = "aigents/status"
_MESSAGE_TYPES = {
    "info": types.MessageType.Info,
    "warning": types.MessageType.Warning,
    "error": types.MessageType.Error,
}


class AigentsServer(LanguageServer):
    """A pygls server plus the aigents state: settings, backend, background tasks."""

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__("aigents-lsp", __version__, protocol_cls=AigentsProtocol)
        self.jobs = JobRegistry()
        self._settings: Settings | None = settings
        self._base_settings: Settings | None = None  # files + environment + initOptions
        self._backend: Backend | None = None
        self._startup_problems: list[SettingsProblem] = []
        self.workspace_roots: list[Path] = []
        self.init_options: Any = None
        self.client_name = "unknown client"
        self.started_at = time.time()
        self._completion_engine: CompletionEngine | None = None
        self._ignore: IgnoreRules | None = None
        self.semantic_search: IndexService | None = None  # set by lsp.search.register
        self.next_edit: NextEditService | None = None  # set by lsp.nextedit.register
        self.recent_edits: dict[str, int] = {}  # uri -> line of the latest edit, newest last
        self.completion_methods: list[str] = []
        self._stats_saved = 0.0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._engine_progress: Progress | None = None
        self._progress_queue: asyncio.Queue[tuple[str, int | None]] = asyncio.Queue()
        self._load_bars: dict[str, QueuedProgress] = {}
        self._progress_task: asyncio.Task[Any] | None = None
        self.editor_log_handler = EditorLogHandler(self._log_to_editor)

    def _start_io_async(
        self, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None
    ) -> None:
        """pygls' stdio server with our message loop (`transport`): every request answered."""
        import sys
        import threading

        from pygls.io_ import StdinAsyncReader, StdoutWriter

        from aigents_lsp.lsp.transport import run_async

        self._stop_event = threading.Event()
        reader = StdinAsyncReader(stdin or sys.stdin.buffer, self.thread_pool)
        self.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))
        try:
            asyncio.run(run_async(self._stop_event, reader, self.protocol))
        except BrokenPipeError:
            log.error("the editor closed the connection; shutting down")
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            self.shutdown()  # type: ignore[no-untyped-call]

    def start_tcp(self, host: str, port: int) -> None:
        """pygls' TCP server with our message loop, as on stdio: every request answered."""
        import threading

        from aigents_lsp.lsp.transport import StreamReaderAdapter, run_async

        self._stop_event = stop_event = threading.Event()

        async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.protocol.set_writer(writer)
            try:
                await run_async(stop_event, StreamReaderAdapter(reader), self.protocol)
            finally:
                self.shutdown()  # type: ignore[no-untyped-call]

        async def serve() -> None:
            self._server = await asyncio.start_server(connection, host, port)
            async with self._server:
                await self._server.serve_forever()

        try:
            asyncio.run(serve())
        except asyncio.CancelledError:
            log.debug("TCP server cancelled")

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self.load_base_settings()
        assert self._settings is not None
        return self._settings

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            from aigents_lsp.lsp import thrash
            from aigents_lsp.providers.backend import Backend

            self._backend = Backend(
                self.settings,
                on_status=self.send_status,
                on_notice=self.notify_user,
                on_progress=self.engine_progress,
                on_loading=self.model_load_progress,
                on_thrash=lambda models, message: thrash.offer_fix(self, models, message),
            )
        return self._backend

    @property
    def completion_engine(self) -> CompletionEngine:
        if self._completion_engine is None:
            from aigents_lsp.completion.engine import CompletionEngine

            self._completion_engine = CompletionEngine(lambda: self.settings)
        return self._completion_engine

    def persist_stats(self, *, every: float = 0.0) -> None:
        """Write the completion metrics where `aigents-lsp doctor` reads them (throttled)."""
        now = time.monotonic()
        if self._completion_engine is None or now - self._stats_saved < every:
            return
        self._stats_saved = now
        from aigents_lsp.lsp.logs import stats_path

        snapshot = {
            "completion": self._completion_engine.metrics.snapshot(),
            "client": self.client_name,
            "saved_at": time.time(),
        }
        try:
            path = stats_path()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(snapshot, indent=2), encoding="utf-8")
        except OSError as exc:
            log.debug("stats not saved: %s", exc)

    # --- privacy ----------------------------------------------------------------------------

    @property
    def ignore_rules(self) -> IgnoreRules:
        if self._ignore is None:
            from aigents_lsp.workspace.ignore import IgnoreRules

            # Files opened from outside the workspace may be completed (not secret ones).
            self._ignore = IgnoreRules(self.workspace_roots, outside_is_ignored=False)
        return self._ignore

    def workspace_tools(self) -> WorkspaceTools | None:
        """Read-only tools for the model (search, read, list), confined to the workspace."""
        if not self.workspace_roots:
            return None
        from aigents_lsp.workspace.ignore import path_from_uri

        def open_documents() -> dict[Path, str]:
            return {
                path_from_uri(uri): doc.source
                for uri, doc in self.workspace.text_documents.items()
                if uri.startswith("file:")
            }

        from aigents_lsp.assist.tools import WorkspaceTools

        return WorkspaceTools(
            self.workspace_roots,
            ignore=self.ignore_rules,
            open_documents=open_documents,
            index=self.semantic_search,
        )

    def relative_path(self, uri: str) -> str | None:
        """A document's path relative to its workspace folder (POSIX), as models see it; the
        file name outside the workspace; None for documents without a file."""
        from pygls.uris import to_fs_path

        fs = to_fs_path(uri)
        if not fs:
            return None
        path = Path(fs)
        for root in self.workspace_roots:
            if path.is_relative_to(root):
                return path.relative_to(root).as_posix()
        return path.name

    def context_allowed(self, uri: str) -> bool:
        """May this document's text go to a model? Never for ignored or secret files.
        Documents without a file (untitled buffers) are allowed."""
        from aigents_lsp.workspace.ignore import path_from_uri

        if not uri.startswith("file:"):
            return True
        return not self.ignore_rules.is_ignored(path_from_uri(uri))

    # --- messages to the editor ------------------------------------------------------------

    def send_status(self, status: Status) -> None:
        """`aigents/status`: sent on every change of state, provider, model or message."""
        try:
            self.protocol.notify(STATUS_NOTIFICATION, status.to_wire())
        except Exception:  # before initialize or after exit there is nobody to tell
            log.debug("status not sent: %s", status)

    def notify_user(self, message: str, level: str = "info") -> None:
        log.log(logging.ERROR if level == "error" else logging.INFO, "%s", message)
        try:
            self.window_show_message(
                types.ShowMessageParams(
                    type=_MESSAGE_TYPES.get(level, types.MessageType.Info), message=message
                )
            )
        except Exception:
            log.debug("message not shown: %s", message)

    def _log_to_editor(self, level: int, message: str) -> None:
        kind = types.MessageType.Error if level >= logging.ERROR else types.MessageType.Warning
        self.window_log_message(types.LogMessageParams(type=kind, message=message))

    def engine_progress(self, message: str, percent: int | None) -> None:
        """Progress of starting the embedded engine, as `$/progress` (begin/report/end);
        `percent` 100 ends it. Reports are queued so they follow the token's creation."""
        self._progress_queue.put_nowait((message, percent))
        if self._progress_task is None or self._progress_task.done():
            self._progress_task = self.run_task(self._drain_progress(), "engine-progress")

    def model_load_progress(
        self, model: str, message: str, percent: int | None, done: bool
    ) -> None:
        """A just-in-time model load as `$/progress` ("aigents: loading model X")."""
        from aigents_lsp.lsp.progress import QueuedProgress

        bar = self._load_bars.get(model)
        if bar is None or bar.ended:
            bar = self._load_bars[model] = QueuedProgress(
                self, f"aigents: loading model {model}", self.run_task
            )
        bar.update(message, percent, done)
        if done:
            self._load_bars.pop(model, None)

    async def _drain_progress(self) -> None:
        from aigents_lsp.lsp.progress import Progress

        while not self._progress_queue.empty():
            message, percent = self._progress_queue.get_nowait()
            log.info("engine: %s", message)
            try:
                if self._engine_progress is None:
                    progress = Progress(self, "aigents: embedded engine")
                    if await progress.begin(message, percent):
                        self._engine_progress = progress
                elif percent is not None and percent >= 100:
                    self._engine_progress.end(message)
                    self._engine_progress = None
                else:
                    self._engine_progress.report(message, percent)
            except Exception as exc:
                log.debug("progress not sent (%s): %s", exc, message)

    # --- settings ---------------------------------------------------------------------------

    def load_base_settings(self) -> None:
        """Files, environment and `initializationOptions` (kept from `initialize`)."""
        from aigents_lsp.settings_sources import SettingsLayer, load_settings

        extra = []
        options = self.init_options
        if isinstance(options, dict):
            options = options.get("aigents", options)
            if isinstance(options, dict):
                extra.append(SettingsLayer("initializationOptions", options))
        settings, problems = load_settings(self.workspace_roots, extra_layers=extra)
        self._startup_problems += problems
        self._settings = settings
        self._base_settings = settings
        if self._backend is not None:
            self._backend.settings = settings

    async def apply_client_settings(self, values: Any, source: str) -> None:
        """`workspace/configuration` or `didChangeConfiguration`: the editor's whole section,
        over files, environment and initializationOptions (so a setting removed in the editor
        goes back to those); a bad value is reported by name and its last good value stays."""
        from aigents_lsp.config import Settings
        from aigents_lsp.settings_sources import SettingsLayer, merge

        if not isinstance(values, dict):
            return
        base = self._base_settings or self.settings
        settings, problems = merge([SettingsLayer(source, values)], base)
        kept = {
            p.field: getattr(self.settings, p.field)
            for p in problems
            if p.field in Settings.model_fields
        }
        if kept:
            settings = settings.model_copy(update=kept)
        self.report_settings_problems(problems)
        if settings != self.settings:
            log.info("settings changed (%s)", source)
            self._settings = settings
            await self.backend.update_settings(settings)

    def report_settings_problems(self, problems: list[SettingsProblem] | None = None) -> None:
        if problems is None:
            problems, self._startup_problems = self._startup_problems, []
        from aigents_lsp.providers.openai_http import redact as without_secret
        from aigents_lsp.workspace.secrets import redact

        key = self._settings.api_key if self._settings is not None else None
        for problem in problems:
            # A token pasted in the wrong place (a key, another setting) is named by the problem.
            text = redact(str(problem))[0]
            text = without_secret(text, key.get_secret_value() if key is not None else None)
            log.warning("%s", text)
            self.notify_user(f"{text}. Keeping the previous value.", "warning")

    # --- tasks ------------------------------------------------------------------------------

    def run_task(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """A background task with a strong reference whose failure is logged, not lost."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("task %s failed", name, exc_info=t.exception())

        task.add_done_callback(done)
        return task

    async def aclose(self) -> None:
        self.jobs.cancel_all()
        for task in list(self._tasks):
            task.cancel()
        if self._backend is not None:
            await self._backend.aclose()
