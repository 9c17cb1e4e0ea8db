"""The real server over stdio against a fake LM Studio that is killed and comes back."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from lsprotocol import types

from tests.e2e.conftest import end_of, free_port, inline, open_doc, until
from tests.fakes.lmstudio_server import FakeLMStudioProcess


def _fake(port: int) -> FakeLMStudioProcess:
    reply = " + ".join(f"x{i}" for i in range(60))  # one long line, 0.05 s per token
    return FakeLMStudioProcess(
        "--port", str(port), "--completion-reply", reply, "--token-delay", "0.05"
    )


async def test_backend_killed_mid_stream_then_back(start_server: Any) -> None:
    port = free_port()
    fake = _fake(port).start()
    try:
        client = await start_server(provider="lmstudio", api_base=f"http://127.0.0.1:{port}/v1")
        uri = "file:///tmp/killed.py"
        text = "def total(x0, x1):\n    return "
        open_doc(client, uri, text)
        pending = asyncio.ensure_future(inline(client, uri, end_of(text)))
        await until(lambda: fake.state()["requests"], seconds=10)
        await asyncio.sleep(0.3)  # the stream is flowing
        assert fake.process is not None
        os.kill(fake.process.pid, signal.SIGKILL)
        assert await asyncio.wait_for(pending, 15) == []
        await until(lambda: client.messages)
        assert len(client.messages) == 1
        message = client.messages[0].message
        assert message.startswith("aigents") or "stream" in message or str(port) in message
        await until(lambda: client.statuses[-1]["state"] in ("error", "offline"))
        # the server keeps serving: while the backend is away, requests are answered empty
        assert await inline(client, uri, end_of(text)) == []
        fake.stop()
        fake = FakeLMStudioProcess(
            "--port", str(port), "--completion-reply", "x0 + x1", "--token-delay", "0"
        ).start()
        assert await inline(client, uri, end_of(text)) == ["x0 + x1"]
        await until(lambda: client.statuses[-1]["state"] == "ready")
        assert client.statuses[-1]["model"] == "qwen2.5-coder-1.5b-instruct"
    finally:
        fake.stop()


async def test_cancel_request_stops_backend_generation(start_server: Any) -> None:
    port = free_port()
    with _fake(port) as fake:
        client = await start_server(provider="lmstudio", api_base=f"http://127.0.0.1:{port}/v1")
        uri = "file:///tmp/cancel.py"
        text = "value = "
        open_doc(client, uri, text)
        params = types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=end_of(text),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic
            ),
        )
        answer = asyncio.ensure_future(
            client.protocol.send_request_async(
                types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id="inline-1"
            )
        )
        await until(lambda: fake.state()["requests"], seconds=10)
        await asyncio.sleep(0.3)
        client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="inline-1"))
        try:
            await asyncio.wait_for(answer, 5)
            raise AssertionError("a cancelled request must be answered with an error")
        except Exception as error:  # JsonRpcRequestCancelled, -32800
            assert "cancel" in str(error).lower() or "-32800" in str(error)
        await until(lambda: fake.state()["disconnects"] >= 1, seconds=10)
        generation = fake.state()["generations"][-1]
        assert generation["sent"] < 60, generation  # the backend stopped generating


async def test_slow_backend_times_out_clearly(start_server: Any, fake_lmstudio: Any) -> None:
    fake_lmstudio.configure(completion_reply="late", reply="late", ttft=5.0)
    client = await start_server(
        provider="lmstudio",
        api_base=fake_lmstudio.base_url,
        completion_timeout="0.5",
        command_timeout="1",
    )
    uri = "file:///tmp/slow.py"
    text = "value = "
    open_doc(client, uri, text)
    assert await inline(client, uri, end_of(text)) == []
    await until(lambda: any("no completion within" in m.message for m in client.messages))
    assert "first token" in client.messages[-1].message  # what was waited for
    assert client.statuses[-1]["state"] == "offline"
    try:
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command="aigents.explain",
                arguments=[
                    {
                        "uri": uri,
                        "range": {
                            "start": {"line": 0, "character": 0},
                            "end": {"line": 0, "character": 5},
                        },
                    }
                ],
            )
        )
        raise AssertionError("a command past command_timeout must fail")
    except Exception as error:
        assert "command_timeout" in str(error)
    await until(lambda: fake_lmstudio.disconnects >= 2)  # both streams were closed


async def test_status_recovers_by_itself_when_the_backend_returns(start_server: Any) -> None:
    port = free_port()
    fake = _fake(port).start()
    try:
        client = await start_server(provider="lmstudio", api_base=f"http://127.0.0.1:{port}/v1")
        uri = "file:///tmp/recover.py"
        text = "value = "
        open_doc(client, uri, text)
        fake.stop()
        assert await inline(client, uri, end_of(text)) == []
        await until(lambda: client.statuses[-1]["state"] == "offline")
        fake = _fake(port).start()
        # no request from the editor: the server's own health checks notice, and say so in
        # the status and the log, not in a second message
        await until(lambda: client.statuses[-1]["state"] == "ready", seconds=15)
        assert "is back" in client.statuses[-1]["message"]
        await client.workspace_execute_command_async(  # every message sent before arrived
            types.ExecuteCommandParams(command="aigents.stats", arguments=[])
        )
        told = [m.message for m in client.messages if "completion stats" not in m.message]
        assert len(told) == 1, told  # the incident, once
    finally:
        fake.stop()
