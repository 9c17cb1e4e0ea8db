"""Logging: stderr and a log file for everything; warnings also reach the editor.

stdout is the LSP channel, so nothing may print there. pygls logs every message body at INFO:
its logger is kept at WARNING, and its records never go to the editor (that would loop).
Records logged in worker threads (the index scan) reach the editor through the event loop:
the transport is not thread-safe.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Callable
from logging.handlers import RotatingFileHandler
from pathlib import Path

from aigents_lsp.paths import state_dir

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def default_log_path() -> Path:
    return state_dir() / "aigents-lsp.log"


def stats_path() -> Path:
    """Where the server keeps its local completion metrics for `aigents-lsp doctor`."""
    return default_log_path().with_name("stats.json")


class EditorLogHandler(logging.Handler):
    """Forwards our warnings and errors to `window/logMessage` (never pygls' own records),
    always from the event loop: a record from another thread is handed to the loop."""

    def __init__(self, send: Callable[[int, str], None]) -> None:
        super().__init__(level=logging.WARNING)
        self._send = send
        self._loop: asyncio.AbstractEventLoop | None = None
        self._local = threading.local()  # per thread: a record logged while sending one

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The event loop that owns the transport (records from other threads go through it)."""
        self._loop = loop

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("pygls") or getattr(self._local, "sending", False):
            return
        try:
            message = self.format(record)
        except Exception:  # logging must never raise
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        loop = self._loop
        if running is not None and (loop is None or running is loop):
            self._loop = running
            self._deliver(record.levelno, message)
        elif loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._deliver, record.levelno, message)
            except RuntimeError:  # the loop closed meanwhile: the log file has it
                pass
        # No loop yet (before `initialized`) or any more: stderr and the log file have it.

    def _deliver(self, level: int, message: str) -> None:
        self._local.sending = True
        try:
            self._send(level, message)
        except Exception:  # the editor may be gone; logging must never raise
            pass
        finally:
            self._local.sending = False


def setup_logging(level: str = "info", log_file: str | None = None) -> Path | None:
    """Configure the root logger once; returns the log file path in use (None if unwritable)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_aigents", False):
            root.removeHandler(handler)
    root.setLevel(level.upper())
    formatter = logging.Formatter(FORMAT)

    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(formatter)
    stderr._aigents = True  # type: ignore[attr-defined]
    root.addHandler(stderr)

    path: Path | None = Path(log_file).expanduser() if log_file else default_log_path()
    try:
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        file_handler = RotatingFileHandler(path, maxBytes=2_000_000, backupCount=2)
        file_handler.setFormatter(formatter)
        file_handler._aigents = True  # type: ignore[attr-defined]
        root.addHandler(file_handler)
    except OSError as exc:
        logging.getLogger(__name__).warning("cannot write the log file %s: %s", path, exc)
        path = None

    logging.getLogger("pygls").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    return path
