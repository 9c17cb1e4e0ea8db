"""The server over stdio: capabilities, encodings, settings, status, a backend that is down."""

from __future__ import annotations

from typing import Any

import pytest
from lsprotocol import types

from tests.e2e.conftest import end_of, free_port, inline, open_doc, until

EDITORS = {
    "visual-studio-code": types.PositionEncodingKind.Utf16,
    "neovim@v0.11.0": types.PositionEncodingKind.Utf8,
    "emacs": types.PositionEncodingKind.Utf32,
}


@pytest.mark.parametrize("editor", list(EDITORS))
async def test_capabilities_and_position_encoding(start_server: Any, editor: str) -> None:
    client = await start_server(
        editor=editor, provider="lmstudio", api_base=f"http://127.0.0.1:{free_port()}/v1"
    )
    caps = client.init_result.capabilities
    assert caps.position_encoding == EDITORS[editor]
    # One completion method per editor: ghost text where supported, classic items elsewhere.
    if editor == "visual-studio-code":
        assert caps.inline_completion_provider is not None
        assert caps.completion_provider is None
    else:
        assert caps.inline_completion_provider is None
        assert caps.completion_provider is not None
    # Nothing that is not built yet is advertised.
    commands = caps.execute_command_provider
    assert commands is not None
    assert set(commands.commands) == {
        "aigents.completionAccepted",
        "aigents.stats",
        "aigents.explain",
        "aigents.edit",
        "aigents.fix",
        "aigents.docstring",
        "aigents.tests",
        "aigents.chat",
        "aigents.cancel",
        "aigents.action",
        "aigents.listModels",
        "aigents.selectModel",
        "aigents.downloadModel",
        "aigents.search",
        "aigents.nextEditAccepted",
        "aigents.nextEditDismissed",
    }
    assert caps.code_action_provider is not None
    assert caps.hover_provider is None


async def test_status_is_sent_after_initialized(start_server: Any) -> None:
    client = await start_server(provider="lmstudio", api_base=f"http://127.0.0.1:{free_port()}/v1")
    await until(lambda: client.statuses)
    assert client.statuses[0]["state"] == "starting"
    assert set(client.statuses[0]) == {"state", "provider", "model", "message"}


async def test_invalid_setting_is_named_and_server_keeps_serving(start_server: Any) -> None:
    client = await start_server(
        init_options={"debounceMs": "soon", "provider": "lmstudio"},
        api_base=f"http://127.0.0.1:{free_port()}/v1",
    )
    await until(lambda: client.messages)
    text = client.messages[0].message
    assert "debounce_ms" in text and "initializationOptions" in text
    # a later bad value from the editor is reported too, the good one kept
    client.set_configuration({"aigents": {"completionTemperature": 9}})
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    await until(lambda: any("completion_temperature" in m.message for m in client.messages))


async def test_backend_down_answers_empty_and_tells_once(start_server: Any) -> None:
    port = free_port()
    client = await start_server(provider="lmstudio", api_base=f"http://127.0.0.1:{port}/v1")
    uri = "file:///tmp/down.py"
    text = "def add(a, b):\n    return "
    open_doc(client, uri, text)
    for _ in range(3):
        assert await inline(client, uri, end_of(text)) == []
    await until(lambda: any(s["state"] == "offline" for s in client.statuses))
    down = [m for m in client.messages if f"127.0.0.1:{port}" in m.message]
    assert len(down) == 1, [m.message for m in client.messages]
    assert "start" in down[0].message.lower()  # the hint says how to fix it


async def test_absurd_positions_are_answered(start_server: Any) -> None:
    client = await start_server(provider="lmstudio", api_base=f"http://127.0.0.1:{free_port()}/v1")
    uri = "file:///tmp/pos.py"
    open_doc(client, uri, "x = 1\n")
    for position in (types.Position(line=10_000, character=5), types.Position(0, 10_000)):
        assert await inline(client, uri, position) == []


async def test_loopback_http_is_not_warned(start_server: Any) -> None:
    client = await start_server(
        provider="openai-compatible", api_base=f"http://127.0.0.1:{free_port()}/v1"
    )
    uri = "file:///tmp/local.py"
    open_doc(client, uri, "x = ")
    await inline(client, uri, types.Position(line=0, character=4))
    assert not [m for m in client.messages if "plain http" in m.message]
