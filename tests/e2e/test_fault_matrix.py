"""The fault matrix: every backend fault, for completion and for a chat command. Each request
is answered in time, the user is told once (no message storm), and the status says so."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from lsprotocol import types

from tests.e2e.conftest import end_of, inline, open_doc, until
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
    behaviour = dict(FAULTS[fault])
    if behaviour.pop("refused", False):
        fake_lmstudio.refuse()
    fake_lmstudio.configure(**behaviour)
    uri = "file:///tmp/fault.py"
    text = "def add(a, b):\n    return "
    open_doc(client, uri, text)
    loop = asyncio.get_running_loop()
    for _ in range(3):  # the same incident, again and again
        started = loop.time()
        await asyncio.wait_for(inline(client, uri, end_of(text)), 10)
        assert loop.time() - started < 8
    started = loop.time()
    try:
        await asyncio.wait_for(
            client.workspace_execute_command_async(
                types.ExecuteCommandParams(
                    command="aigents.explain",
                    arguments=[
                        {
                            "uri": uri,
                            "range": {
                                "start": {"line": 0, "character": 0},
                                "end": {"line": 2, "character": 0},
                            },
                            "show": False,
                        }
                    ],
                )
            ),
            12,
        )
    except TimeoutError:
        raise
    except Exception as error:  # answered with an error the user can read
        assert any(word in str(error) for word in TOLD), str(error)
    assert loop.time() - started < 10
    await asyncio.sleep(0.2)
    errors = [m for m in client.messages if m.type == types.MessageType.Error]
    assert len(errors) <= 2, [m.message for m in errors]  # completion + chat at most, no storm
    if errors:
        assert client.statuses[-1]["state"] in ("error", "offline")
