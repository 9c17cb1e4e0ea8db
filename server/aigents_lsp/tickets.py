"""Per-document tickets: the newest request for a document wins, the older ones end at once.

Completions (`completion/scheduler.py`, whose `DocumentScheduler` adds the shared generations)
and next edits (`nextedit/engine.py`) both take a ticket when a request comes; a newer ticket
for the same document supersedes every older one while it waits (`debounce`) or works (`run`).
Plain asyncio: no LSP, no backend.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any, TypeVar

ResultT = TypeVar("ResultT")


class Superseded(Exception):
    """A newer request for the same document took over."""


class DocumentTickets:
    """Per-document tickets (newest wins) and the signals that wake the superseded."""

    def __init__(self) -> None:
        self._issued = 0  # tickets are never reused, not even after a document is closed
        self._tickets: dict[str, int] = {}
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}

    def enter(self, uri: str) -> int:
        """A new request for `uri`: every older one is superseded now."""
        self._issued += 1
        self._tickets[uri] = self._issued
        self._wake(uri)
        return self._issued

    def current(self, uri: str, ticket: int) -> bool:
        return self._tickets.get(uri) == ticket

    def close(self, uri: str) -> None:
        """The document closed: whatever runs for it is superseded now."""
        self._tickets.pop(uri, None)
        self._wake(uri)

    def _wake(self, uri: str) -> None:
        for waiter in self._waiters.pop(uri, set()):
            if not waiter.done():
                waiter.set_result(None)

    def _superseded_signal(self, uri: str) -> asyncio.Future[None]:
        signal: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(uri, set()).add(signal)
        return signal

    def _forget_signal(self, uri: str, signal: asyncio.Future[None]) -> None:
        self._waiters.get(uri, set()).discard(signal)

    async def debounce(self, uri: str, ticket: int, seconds: float) -> None:
        """Wait for a pause in typing; raise `Superseded` as soon as a newer request comes."""
        if not self.current(uri, ticket):
            raise Superseded
        if seconds <= 0:
            return
        signal = self._superseded_signal(uri)
        try:
            await asyncio.wait_for(asyncio.shield(signal), seconds)
        except TimeoutError:
            pass
        finally:
            self._forget_signal(uri, signal)
        if not self.current(uri, ticket):
            raise Superseded

    async def run(self, uri: str, ticket: int, work: Awaitable[ResultT]) -> ResultT:
        """`work`'s result while `ticket` is the newest for `uri`; `Superseded` as soon as a
        newer one comes. Superseded or cancelled, `work` is cancelled and awaited first, so a
        backend stream it reads is closed before this returns."""
        task = asyncio.ensure_future(work)
        signal = self._superseded_signal(uri)
        try:
            if self.current(uri, ticket):
                waitables: set[asyncio.Future[Any]] = {task, signal}
                await asyncio.wait(waitables, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                return task.result()
        finally:
            self._forget_signal(uri, signal)
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        raise Superseded
