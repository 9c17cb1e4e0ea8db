"""JIT auto-evict thrash over stdio against the fake LM Studio (auto-evict on, as LM Studio
ships): separate completion and chat models loaded just in time unload each other; the
server sees a model loaded again after another replaced it, at the second swap, and says so
once, with the fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lsprotocol import types

from tests.e2e.conftest import inline, open_doc, until
from tests.fakes.lmstudio_server import FakeLMStudio, default_models

CODER, CHAT = "qwen2.5-coder-1.5b-instruct", "llama-3.2-3b-instruct"
THRASH = "keeps reloading models"


async def _run(client: Any, command: str, argument: dict[str, Any]) -> Any:
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=command, arguments=[argument])
    )
    return result if isinstance(result, dict) else json.loads(json.dumps(result, default=vars))


async def _backend(client: Any) -> dict[str, Any]:
    stats = await _run(client, "aigents.stats", {})
    return dict(stats["runtime"]["backend"])


def _cold_models() -> list[dict[str, Any]]:
    models = default_models()
    for model in models:
        if model["type"] == "llm":
            model["state"] = "not-loaded"
            model.pop("loaded_context_length", None)
    return models


async def test_thrash_is_told_once_within_two_swaps(
    start_server: Any, fake_lmstudio: FakeLMStudio, tmp_path: Path
) -> None:
    fake_lmstudio.configure(models=_cold_models(), completion_reply="a + b")
    client = await start_server(
        provider="lmstudio",
        api_base=fake_lmstudio.base_url,
        completion_model=CODER,
        chat_model=CHAT,
    )
    uri = (tmp_path / "ws" / "add.py").as_uri()
    open_doc(client, uri, "def add(a, b):\n    return ")

    async def chat() -> None:
        await _run(client, "aigents.chat", {"question": "hi", "show": False})

    async def complete(loads: int) -> None:
        await inline(client, uri, types.Position(line=1, character=11))  # starts the load
        await until(lambda: fake_lmstudio.jit_loaded == [CODER])

        async def loaded() -> bool:
            return (await _backend(client))["jit_loads"] >= loads

        for _ in range(200):
            if await loaded():
                break
        assert await loaded()

    await chat()  # CHAT loaded just in time
    assert fake_lmstudio.jit_loaded == [CHAT]
    await complete(2)  # swap 1: CODER replaces CHAT
    assert not [q for q in client.questions if THRASH in q.message]
    await chat()  # swap 2: CHAT again, after CODER replaced it
    await until(lambda: any(THRASH in q.message for q in client.questions))
    asked = [q for q in client.questions if THRASH in q.message]
    assert len(asked) == 1 and asked[0].type == types.MessageType.Warning
    message = asked[0].message
    assert f"`{CHAT}` was loaded just in time again (2 times now) after `{CODER}`" in message
    assert "Only Keep Last JIT Loaded Model" in message and "lms load" in message
    assert [a.title for a in asked[0].actions or []] == ["Load them for good", "Not now"]
    backend = await _backend(client)
    assert backend["jit_swaps"] == 2 and backend["jit_thrash"] == [CHAT, CODER]
    # the test client answers the first action: CODER (evicted now) is loaded for good
    await until(lambda: any("loaded for good" in m.message for m in client.messages))
    loads = [r.body for r in fake_lmstudio.requests if r.path == "/api/v1/models/load"]
    assert loads == [{"model": CODER, "echo_load_config": True}]
    # no more swaps: completion and chat are served without loading anything
    await inline(client, uri, types.Position(line=1, character=11))
    await chat()
    assert (await _backend(client))["jit_loads"] == 3
    assert len([q for q in client.questions if THRASH in q.message]) == 1
