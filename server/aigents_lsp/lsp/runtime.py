"""What the server process holds right now: tasks, sockets, HTTP connections, memory.

Reported by `aigents.stats` under `runtime`, so tests (and a curious user) can see that an
incident, a cancelled request or a fuzzed message left nothing behind.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aigents_lsp.lsp.server import AigentsServer


def socket_count() -> int | None:
    """Open socket file descriptors of this process (None where /proc is missing)."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return None
    count = 0
    for name in names:
        try:
            if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                count += 1
        except OSError:  # closed while we looked
            continue
    return count


def rss_kb() -> int | None:
    """Resident memory of this process in kB (`VmRSS`), None where /proc is missing."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _pools(ls: AigentsServer) -> list[Any]:
    """The httpcore connection pools of the live providers (introspection only: private
    attributes, read defensively, so a provider rework degrades this to zeros, not errors)."""
    backend = getattr(ls, "_backend", None)
    providers = {
        id(p): p
        for p in (getattr(backend, name, None) for name in ("_provider", "_lmstudio", "_embedded"))
        if p is not None
    }
    pools = []
    for provider in providers.values():
        client = getattr(provider, "_client", None)
        pool = getattr(getattr(client, "_transport", None), "_pool", None)
        if pool is not None and hasattr(pool, "connections"):
            pools.append(pool)
    return pools


def runtime_counters(ls: AigentsServer) -> dict[str, Any]:
    """Counters that grow when something leaks. `http_active`: connections carrying a request
    or a stream now; `http_idle`: keep-alive connections waiting in the pool."""
    active = idle = 0
    busy: list[str] = []
    for pool in _pools(ls):
        for connection in pool.connections:
            if connection.is_idle():
                idle += 1
            elif not connection.is_closed():
                active += 1
                busy.append(repr(connection))
    return {
        "tasks": len(asyncio.all_tasks()),
        "background_tasks": len(ls._tasks),
        "background": sorted(task.get_name() for task in list(ls._tasks))[:5],
        "jobs": len(ls.jobs),
        # requests in flight either way (handlers running, questions to the editor), not
        # counting the one asking
        "pending_requests": sum(
            1 for key in list(ls.protocol._request_futures) if key != ls.protocol.msg_id
        ),
        "sockets": socket_count(),
        "http_active": active,
        "http_idle": idle,
        "http_busy": busy[:5],  # what the first few in-use connections are doing
        "rss_kb": rss_kb(),
        "documents": len(ls.workspace.text_documents),
        "backend": backend.counters() if (backend := getattr(ls, "_backend", None)) else {},
        "pid": os.getpid(),
    }
