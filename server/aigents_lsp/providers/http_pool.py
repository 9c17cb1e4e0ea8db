"""A connection pool that keeps its connections when requests are cancelled.

httpcore 1.0.9 (the last release) loses pool slots to asyncio cancellation in two ways, both
found by tests/e2e/test_load.py (200 concurrent completions, some cancelled):
- a request waiting for a connection is cancelled just after the pool made it a new one
  (encode/httpcore#1093): the connection is not idle, closed or expired, no request owns it;
- a response being closed is cancelled (its shield is anyio's, which a plain `Task.cancel`
  goes through): the stream counts as closed, but its request never leaves the pool.
Completion requests are cancelled on nearly every keystroke; once `max_connections` slots were
lost, every request waited for the pool timeout until the server was restarted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpcore
import httpx

log = logging.getLogger(__name__)


class ReclaimingConnectionPool(httpcore.AsyncConnectionPool):
    """httpcore's pool, closing connections that are in use by no request (orphans)."""

    def _assign_requests_to_connections(self) -> list[Any]:
        owned = {id(r.connection) for r in self._requests if r.connection is not None}
        orphans = [
            c
            for c in self._connections
            if id(c) not in owned and not c.is_idle() and not c.is_closed()
        ]
        for connection in orphans:
            log.debug("reclaiming a connection no request owns: %r", connection)
            self._connections.remove(connection)
        closing: list[Any] = super()._assign_requests_to_connections()
        return orphans + closing

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        response = await super().handle_async_request(request)
        response.stream = ShieldedClose(response.stream)
        return response


_closing: set[asyncio.Task[None]] = set()  # closes that outlive a cancelled caller


class ShieldedClose:
    """A response stream whose close always runs to the end, even when its caller is
    cancelled meanwhile (the close goes on in its own task)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._stream:
            yield part

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)
        if close is None:
            return
        task = asyncio.ensure_future(close())
        _closing.add(task)
        task.add_done_callback(_closing.discard)
        await asyncio.shield(task)


def reclaim_orphaned_connections(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """Give `client`'s default transport the reclaiming pool (same state, one method more)."""
    pool = getattr(getattr(client, "_transport", None), "_pool", None)
    # The fix overrides httpcore internals: applied only to the 1.0 pool it was written for.
    known = httpcore.__version__.startswith("1.0.") and hasattr(
        httpcore.AsyncConnectionPool, "_assign_requests_to_connections"
    )
    if known and type(pool) is httpcore.AsyncConnectionPool:
        pool.__class__ = ReclaimingConnectionPool
    return client
