"""The fault matrix: every backend fault, for completion and for a chat command. Each request
is answered in time, the user is told once (no message storm), and the status says so."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from lsprotocol import types

from tests.e2e.conftest import end_of, explain, inline, open_doc, until
from tests.fakes.lmstudio_server import FakeLMStudio

BIG_FRAME = 'data: {"choices":[{"index":0,"text":"' + "x" * 1_200_000 + '"}]}\n\n'
MANY_FRAMES = "".join(
    'data: {"choices":[{"index":0,"delta":{"content":"' + "y" * 1000 + '"}}]}\n\n'
    for _ in range(10_000)
)  # 10 MB of stream without a single newline in the text

FAULTS: dict[str, dict[str, Any]] = {
    "refused": {"refused": True},
    "accepted then silent": {"silent": True},
    "slow drip": {"drip": 1.0},
    "http 500": {"http_status": 500},
    "http 503": {"http_status": 503, "http_body": {"error": "Service Unavailable"}},
    "no model loaded": {"no_model_loaded": True},
    "unknown model": {"unknown_model": True},
    "context overflow": {"context_overflow": True},
    "auth required": {"auth_required": True},
    "engine crashed": {"crashed": True},
    "error with http 200": {"error_200": "Unexpected endpoint or method. (POST /v1/x)"},
    "garbage body": {"garbage_body": True},
    "stream cut mid-frame": {"cut_after": 2, "token_delay": 0.01},
    "stream truncated": {"truncate_after": 2, "token_delay": 0.01},
    "invalid json frame": {"invalid_json_after": 2},
    "wrong content type": {"wrong_content_type": True},
    "1 MB line": {"sse_body": BIG_FRAME},
    "10 MB response": {"sse_body": MANY_FRAMES},
}
TOLD = ("aigents", "LM Studio", "backend", "answer", "stream", "127.0.0.1", "model", "token")


async def runtime(client: Any) -> dict[str, Any]:
    """What the server process holds now (`aigents.stats` -> `runtime`)."""
    stats = await asyncio.wait_for(
        client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="aigents.stats", arguments=[])
        ),
        10,
    )
    counters: dict[str, Any] = stats["runtime"]
    return counters


async def settled(client: Any, baseline: dict[str, Any] | None = None) -> dict[str, Any]:
    """The runtime counters once the incident is over: no request or stream in flight, and
    (given a baseline) no more tasks than then. Waits a little: a stream closes on its own
    schedule; a leak never settles."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while True:
        now = await runtime(client)
        quiet = now["http_active"] == 0 and now["jobs"] == 0 and now["pending_requests"] == 0
        if quiet and (baseline is None or now["tasks"] <= baseline["tasks"]):
            return now
        if loop.time() > deadline:
            return now
        await asyncio.sleep(0.2)


async def looked_into(client: Any) -> None:
    """Once the server has finished looking at the incident: no missed completion deadline
    still being diagnosed and, when it watches for the backend, one health check more."""
    first = (await runtime(client))["backend"]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while True:
        now = (await runtime(client))["backend"]
        checked = not first["watching"] or now["health_checks"] > first["health_checks"]
        if checked and not now["diagnosing"]:
            return
        assert loop.time() < deadline, (first, now)
        await asyncio.sleep(0.1)


def assert_no_leak(before: dict[str, Any], after: dict[str, Any], when: str) -> None:
    """Nothing in flight, no task more than before, and no socket beyond the keep-alive pool
    (idle pool connections come and go: up to `max_connections` of them are the steady state)."""
    assert after["http_active"] == 0, (when, after)
    assert after["jobs"] == 0 and after["pending_requests"] == 0, (when, after)
    assert after["tasks"] <= before["tasks"], (when, before, after)
    assert after["background_tasks"] <= before["background_tasks"], (when, before, after)
    if after["sockets"] is not None and before["sockets"] is not None:
        own = after["sockets"] - after["http_idle"]  # sockets that are not pooled connections
        assert own <= before["sockets"] - before["http_idle"], (when, before, after)


async def explained(client: Any, uri: str) -> None:
    """`aigents.explain` on the document: answered in time, with a result or a readable error."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        await asyncio.wait_for(explain(client, uri, (0, 2)), 12)
    except TimeoutError:
        raise
    except Exception as error:  # answered with an error the user can read
        assert any(word in str(error) for word in TOLD), str(error)
    assert loop.time() - started < 10


async def recovered(client: Any, fake: FakeLMStudio, uri: str, text: str) -> None:
    """The backend is back: a completion succeeds and the status says ready."""
    fake.reset()
    fake.configure(completion_reply="a + b")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while await asyncio.wait_for(inline(client, uri, end_of(text)), 10) != ["a + b"]:
        assert loop.time() < deadline, "no completion after the backend came back"
        await asyncio.sleep(0.2)
    await until(lambda: client.statuses[-1]["state"] == "ready")


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_fault(start_server: Any, fake_lmstudio: FakeLMStudio, fault: str) -> None:
    client = await start_server(
        provider="lmstudio",
        api_base=fake_lmstudio.base_url,
        completion_timeout="3",
        command_timeout="4",
        completion_model="qwen2.5-coder-1.5b-instruct",
        chat_model="llama-3.2-3b-instruct",
    )
    await until(lambda: client.statuses and client.statuses[-1]["state"] == "ready")
    uri = "file:///tmp/fault.py"
    text = "def add(a, b):\n    return "
    open_doc(client, uri, text)
    await recovered(client, fake_lmstudio, uri, text)  # warm: the pool has its connection
    baseline = await settled(client)
    loop = asyncio.get_running_loop()
    counts: list[dict[str, Any]] = []
    for incident in range(3):  # the same fault, three times: nothing may grow
        behaviour = dict(FAULTS[fault])
        if behaviour.pop("refused", False):
            fake_lmstudio.refuse()
        fake_lmstudio.configure(**behaviour)
        for _ in range(3 if incident == 0 else 1):  # the same incident, again and again
            started = loop.time()
            await asyncio.wait_for(inline(client, uri, end_of(text)), 10)
            assert loop.time() - started < 8
        await explained(client, uri)
        if incident == 0:
            # Gated on counts, not time: a deadline being looked into has been, and a backend
            # watched for has had a health check (one declaring it back while requests still
            # fail would start a message storm).
            await looked_into(client)
            errors = [m for m in client.messages if m.type == types.MessageType.Error]
            # completion and chat together: one incident, one message
            assert len(errors) <= 1, [m.message for m in errors]
            if errors:
                assert client.statuses[-1]["state"] in ("error", "offline")
        await recovered(client, fake_lmstudio, uri, text)
        counts.append(await settled(client, baseline))
        assert_no_leak(baseline, counts[-1], f"after incident {incident + 1}")
    assert_no_leak(counts[0], counts[-1], "incident 3 vs incident 1")
