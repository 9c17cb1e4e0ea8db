"""`$/progress` under one token: created, begun, reported and ended only when the editor
supports server-initiated progress (and silently skipped when it does not or refuses)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from lsprotocol import types

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

log = logging.getLogger(__name__)
CREATE_TIMEOUT_SECONDS = 5.0
Spawn = Callable[[Coroutine[Any, Any, None], str], "asyncio.Task[None]"]


def supports_progress(ls: LanguageServer) -> bool:
    try:  # before `initialize` there are no capabilities yet
        window = ls.client_capabilities.window
    except Exception:
        return False
    return bool(window and window.work_done_progress)


class Progress:
    """One progress bar in the editor; every call is a no-op until `begin` succeeded."""

    def __init__(self, ls: LanguageServer, title: str, *, cancellable: bool = False) -> None:
        self._ls = ls
        self.title = title
        self.cancellable = cancellable
        self.token: str | None = None

    async def begin(self, message: str = "", percentage: int | None = None) -> bool:
        """Create the token and begin; False when the editor does not show progress."""
        if not supports_progress(self._ls):
            return False
        token = f"aigents-{uuid.uuid4().hex[:8]}"
        try:
            await asyncio.wait_for(
                self._ls.work_done_progress.create_async(token), CREATE_TIMEOUT_SECONDS
            )
        except Exception as exc:  # an editor may refuse: the work goes on without a bar
            log.debug("progress refused (%s): %s", self.title, exc)
            return False
        self.token = token
        self._ls.work_done_progress.begin(
            token,
            types.WorkDoneProgressBegin(
                title=self.title,
                message=message,
                percentage=percentage,
                cancellable=self.cancellable or None,
            ),
        )
        return True

    def report(self, message: str, percentage: int | None = None) -> None:
        if self.token is not None:
            self._ls.work_done_progress.report(
                self.token,
                types.WorkDoneProgressReport(
                    message=message, percentage=percentage, cancellable=self.cancellable or None
                ),
            )

    def end(self, message: str) -> None:
        if self.token is not None:
            self._ls.work_done_progress.end(self.token, types.WorkDoneProgressEnd(message=message))
            self._ls.work_done_progress.tokens.pop(self.token, None)
            self.token = None


class QueuedProgress:
    """A progress bar fed from synchronous callbacks (a model load reporting how far it is):
    updates are queued and sent in order by one task, after the token was created."""

    def __init__(self, ls: LanguageServer, title: str, spawn: Spawn) -> None:
        self._progress = Progress(ls, title)
        self._spawn = spawn
        self._queue: list[tuple[str, int | None, bool]] = []
        self._task: asyncio.Task[None] | None = None
        self._begun = False
        self.ended = False

    def update(self, message: str, percent: int | None, done: bool) -> None:
        self._queue.append((message, percent, done))
        if self._task is None or self._task.done():
            self._task = self._spawn(self._drain(), f"progress {self._progress.title}")

    async def _drain(self) -> None:
        while self._queue:
            message, percent, done = self._queue.pop(0)
            try:
                if not self._begun:
                    self._begun = True
                    if not await self._progress.begin(message, percent):
                        continue  # the editor shows no progress: later updates are no-ops
                if done:
                    self._progress.end(message)
                    self.ended = True
                else:
                    self._progress.report(message, percent)
            except Exception as exc:
                log.debug("progress not sent (%s): %s", exc, message)
