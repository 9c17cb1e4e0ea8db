"""A backend that is there but not answering: hung, dripping, stalling, loading a model just
in time, or slow but steady. Nobody waits in silence: completion answers within its typing
deadline, commands say what they wait for (`$/progress`) and end with a clear error, the user
is told once per incident, and a slow but steady model is served to the end."""

from __future__ import annotations

import asyncio
from typing import Any

from lsprotocol import types

from tests.e2e.conftest import end_of, explain, inline, open_doc, until
from tests.fakes.lmstudio_server import FakeLMStudio

TEXT = "def add(a, b):\n    return "
URI = "file:///tmp/slow.py"


async def start(start_server: Any, fake: FakeLMStudio, **settings: str) -> Any:
    defaults = {
        "provider": "lmstudio",
        "api_base": fake.base_url,
        "completion_model": "qwen2.5-coder-1.5b-instruct",
        "chat_model": "llama-3.2-3b-instruct",
        **settings,
    }
    client = await start_server(**defaults)
    await until(lambda: client.statuses and client.statuses[-1]["state"] == "ready")
    open_doc(client, URI, TEXT)
    return client


async def barrier(client: Any) -> None:
    """A request answered after every notification the server sent before it."""
    await asyncio.wait_for(
        client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="aigents.listModels", arguments=[])
        ),
        15,
    )


def told(client: Any) -> list[str]:
    """The error and warning popups (`window/showMessage`) the user saw, except the one
    about LM Studio's JIT setting, which is about the configuration, not an incident."""
    return [
        m.message
        for m in client.messages
        if m.type in (types.MessageType.Error, types.MessageType.Warning)
        and "Only Keep Last JIT" not in m.message
    ]


def reports(client: Any) -> list[str]:
    """Every `$/progress` message (begin, report, end) in order."""
    found = []
    for values in client.progress_reports.values():
        for value in values:
            message = getattr(value, "message", None) or getattr(value, "title", None)
            if message:
                found.append(message)
    return found


async def failed(request: Any) -> Any:
    """The error a request was answered with (it must not succeed)."""
    try:
        result = await asyncio.wait_for(request, 30)
    except TimeoutError:
        raise
    except Exception as error:
        return error
    raise AssertionError(f"expected an error, got {result!r}")


async def test_hung_backend_is_reported_once_naming_it(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    client = await start(start_server, fake_lmstudio, completion_deadline="1")
    fake_lmstudio.configure(silent=True)  # accepts every connection, answers nothing
    assert await asyncio.wait_for(inline(client, URI, end_of(TEXT)), 15) == []
    error = await failed(explain(client, URI, (0, 2)))
    assert "not answering at all" in str(error) and "model list" in str(error), str(error)
    assert str(fake_lmstudio.port) in str(error)
    # while it waited, `$/progress` said for what and for how long
    waits = [r for r in reports(client) if r.startswith("waiting for the first token from")]
    assert waits and waits[-1].endswith(" s)") and str(fake_lmstudio.port) in waits[-1], waits
    await until(lambda: client.statuses[-1]["state"] == "offline")
    fake_lmstudio.configure(silent=False)
    await barrier(client)
    messages = told(client)
    assert len(messages) == 1, messages  # completion + command: one incident, one message
    assert str(fake_lmstudio.port) in messages[0]
    assert "completion" in messages[0] or "model list" in messages[0]


async def test_dripping_backend_ends_as_stalled(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    client = await start(start_server, fake_lmstudio, completion_deadline="1", stall_timeout="2")
    fake_lmstudio.configure(drip=1.0)  # 5 bytes a second: bytes come, a frame never does
    assert await asyncio.wait_for(inline(client, URI, end_of(TEXT)), 15) == []
    error = await failed(explain(client, URI, (0, 2)))
    assert "stalled" in str(error) and "no complete token" in str(error), str(error)
    await until(lambda: fake_lmstudio.disconnects >= 2)  # both streams were closed
    await barrier(client)
    assert len(told(client)) == 1, told(client)


async def test_stalled_stream_keeps_what_was_received(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    client = await start(start_server, fake_lmstudio, stall_timeout="1")
    fake_lmstudio.configure(reply="It adds two numbers and then", stall_after=3)
    error = await failed(explain(client, URI, (0, 2)))
    assert "stalled" in str(error) and "after 3 tokens" in str(error), str(error)
    assert "data.partial" in str(error)
    assert error.data["partial"].startswith("It adds"), error.data
    await barrier(client)
    assert len(told(client)) == 1, told(client)  # one incident, one message


async def test_refused_then_back_is_one_message(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    client = await start(start_server, fake_lmstudio)
    fake_lmstudio.refuse()
    assert await asyncio.wait_for(inline(client, URI, end_of(TEXT)), 15) == []
    await failed(explain(client, URI, (0, 2)))
    await until(lambda: client.statuses[-1]["state"] == "offline")
    fake_lmstudio.accept()
    fake_lmstudio.configure(completion_reply="a + b")
    # the health checks notice: the status says it is back, no popup does
    await until(lambda: client.statuses[-1]["state"] == "ready", seconds=15)
    assert "is back" in client.statuses[-1]["message"]
    assert await inline(client, URI, end_of(TEXT)) == ["a + b"]
    await barrier(client)
    assert len(told(client)) == 1, told(client)


async def test_jit_load_is_waited_for_with_progress_not_against_the_first_token(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    # The load takes longer than the first-token deadline: it must not count against it.
    fake_lmstudio.configure(load_delay=2.5, reply="It adds.")
    client = await start(
        start_server, fake_lmstudio, chat_model="qwen/qwen3-8b", first_token_timeout="1"
    )
    result = await asyncio.wait_for(explain(client, URI, (0, 2)), 30)
    assert result["markdown"].startswith("It adds."), result
    assert fake_lmstudio.native_chats == 1  # loaded once, through /api/v1/chat
    progress = reports(client)
    assert any("loading model qwen/qwen3-8b" in r for r in progress), progress
    assert any("%" in r for r in progress if "loading model" in r), progress  # model_load.progress
    assert any("loading model qwen/qwen3-8b" in s["message"] for s in client.statuses)
    await barrier(client)
    assert told(client) == []


async def test_completion_does_not_wait_for_a_jit_load(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    fake_lmstudio.configure(load_delay=2.0, completion_reply="a + b")
    client = await start(
        start_server, fake_lmstudio, completion_model="qwen/qwen3-8b", completion_deadline="1"
    )
    assert await asyncio.wait_for(inline(client, URI, end_of(TEXT)), 15) == []
    await until(lambda: "loading model qwen/qwen3-8b" in client.statuses[-1]["message"])
    # while it loads, completions answer empty at once without asking the backend again
    assert await asyncio.wait_for(inline(client, URI, end_of(TEXT)), 15) == []
    await until(lambda: "loaded" in client.statuses[-1]["message"], seconds=20)
    assert await inline(client, URI, end_of(TEXT)) == ["a + b"]
    assert client.statuses[-1]["state"] == "ready"
    assert fake_lmstudio.native_chats == 1
    assert not [g for g in fake_lmstudio.generations if g.path == "/v1/completions"][:-1]
    await barrier(client)
    assert told(client) == []


async def test_far_below_the_usual_speed_ends_with_what_was_received(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    """A token every 0.9 s never trips a 1.5 s stall limit; once the model has shown its
    usual speed, that pace is far below it and the answer ends, keeping what came."""
    reply = " ".join(f"w{i}" for i in range(30))
    fake_lmstudio.configure(reply=reply, token_delay=0.02)  # ~50 tokens/s, for ~0.6 s
    client = await start(start_server, fake_lmstudio, stall_timeout="1.5")
    assert (await asyncio.wait_for(explain(client, URI, (0, 2)), 30))["markdown"].strip() == reply
    fake_lmstudio.configure(token_delay=0.9)
    error = await failed(explain(client, URI, (0, 2)))
    assert "slowed to" in str(error) and "far below the model's usual" in str(error), str(error)
    assert error.data["partial"].startswith("w0"), error.data
    await until(lambda: fake_lmstudio.disconnects >= 1)  # the stream was closed
    await barrier(client)
    assert len(told(client)) == 1, told(client)  # one incident, one message


async def test_slow_but_steady_is_served_to_the_end(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    reply = " ".join(f"w{i}" for i in range(20))
    # 5 tokens a second, for 4 s: longer than the first-token and stall deadlines together.
    fake_lmstudio.configure(reply=reply, token_delay=0.2)
    client = await start(start_server, fake_lmstudio, first_token_timeout="1", stall_timeout="1")
    result = await asyncio.wait_for(explain(client, URI, (0, 2)), 30)
    assert result["markdown"].strip() == reply
    assert fake_lmstudio.generations[-1].finished
    await barrier(client)
    assert told(client) == []


async def test_command_timeout_does_not_count_the_editor(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    fake_lmstudio.configure(reply="```python\ndef add(a, b):\n    return a + b\n```")
    client = await start(start_server, fake_lmstudio, command_timeout="1")
    gate = asyncio.Event()
    client.apply_gate = gate  # the editor asks the user before applying the edit
    command = asyncio.ensure_future(
        client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command="aigents.edit",
                arguments=[
                    {
                        "uri": URI,
                        "range": {
                            "start": {"line": 0, "character": 0},
                            "end": {"line": 2, "character": 0},
                        },
                        "instruction": "finish it",
                    }
                ],
            )
        )
    )
    await until(lambda: client.apply_asked == 1)
    await asyncio.sleep(1.5)  # the user thinks longer than command_timeout
    gate.set()
    result = await asyncio.wait_for(command, 15)
    assert result["applied"] is True, result


async def test_a_completion_reading_its_prompt_is_kept_going_past_the_deadline(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    # A cold prompt on a CPU: the first token comes after the typing deadline.
    client = await start(start_server, fake_lmstudio, completion_deadline="0.5")
    fake_lmstudio.configure(completion_reply="a + b", ttft=1.5)
    before = len(fake_lmstudio.generations)
    assert await asyncio.wait_for(inline(client, URI, end_of(TEXT)), 15) == []
    # the editor got its empty answer; the generation reads on and ends (prompt cache warm)
    await until(lambda: len(fake_lmstudio.generations) > before)
    generation = fake_lmstudio.generations[-1]
    await until(lambda: generation.finished or generation.disconnected)
    assert generation.finished and not generation.disconnected
    await barrier(client)
    assert told(client) == []
    assert client.statuses[-1]["state"] == "ready"


async def test_a_completion_streaming_past_the_deadline_is_closed_and_told_once(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    client = await start(start_server, fake_lmstudio, completion_deadline="0.5")
    reply = " ".join(f"x{i}" for i in range(60))
    fake_lmstudio.configure(completion_reply=reply, token_delay=0.1)  # 6 s of tokens
    assert await asyncio.wait_for(inline(client, URI, end_of(TEXT)), 15) == []
    await until(lambda: fake_lmstudio.disconnects >= 1)  # closed: the backend stops
    assert fake_lmstudio.generations[-1].sent < 60
    await until(lambda: told(client))
    assert await asyncio.wait_for(inline(client, URI, end_of(TEXT)), 15) == []  # again
    await barrier(client)
    assert len(told(client)) == 1, told(client)
    assert "still coming" in told(client)[0] and str(fake_lmstudio.port) in told(client)[0]
