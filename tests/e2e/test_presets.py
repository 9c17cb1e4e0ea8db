"""Each provider preset through the real server over stdio, against a server speaking its format;
routing with failover when the first provider stops mid-session."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from tests.e2e.conftest import end_of, explain, inline, open_doc, until
from tests.fakes.preset_servers import OPENAI_KEY, VLLM_MODEL, FakePreset

CODE = "def add(a, b):\n    return "
SUFFIX_CODE = "def add(a, b):\n    return \n\nprint(add(1, 2))\n"


def _routes(status: dict[str, Any]) -> dict[str, str] | None:
    """The status' `routes` (pygls hands nested objects over as namedtuples)."""
    routes = status.get("routes")
    return routes._asdict() if hasattr(routes, "_asdict") else routes


def _retype(client: Any, uri: str, version: int, text: str) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )


async def test_ollama_native_fim_and_chat(start_server: Any, tmp_path: Path) -> None:
    with FakePreset("ollama", reply="a + b") as fake:
        client = await start_server(provider="ollama", api_base=fake.base_url)
        uri = (tmp_path / "ws" / "add.py").as_uri()
        open_doc(client, uri, SUFFIX_CODE)
        position = types.Position(line=1, character=len("    return "))
        assert await inline(client, uri, position) == ["a + b"]
        generate = fake.bodies("/api/generate")[-1]
        assert generate["model"] == "qwen2.5-coder:1.5b"  # the loaded coder, picked
        assert generate["prompt"].endswith("return ") and generate["suffix"].startswith("\n")
        # the context length came from Ollama's /api/show and /api/ps
        assert "/api/show" in fake.paths()
        result = await explain(client, uri)
        assert result["markdown"] == "a + b"
        assert fake.bodies("/v1/chat/completions")[-1]["model"]
        await until(lambda: any(s["provider"] == "ollama" for s in client.statuses))


@pytest.mark.parametrize("preset", ["llamacpp", "llamafile"])
async def test_llamacpp_native_infill(start_server: Any, tmp_path: Path, preset: str) -> None:
    with FakePreset("llamacpp", reply="a + b") as fake:  # llamafile embeds llama.cpp's server
        client = await start_server(provider=preset, api_base=fake.base_url)
        uri = (tmp_path / "ws" / "add.py").as_uri()
        open_doc(client, uri, CODE)
        assert await inline(client, uri, end_of(CODE)) == ["a + b"]
        infill = fake.bodies("/infill")[-1]
        assert infill["input_prefix"].endswith("return ") and infill["stream"] is True
        assert "/props" in fake.paths() or "/v1/models" in fake.paths()
        await until(lambda: any(s["provider"] == preset for s in client.statuses))


async def test_vllm_fim_template_for_its_model(start_server: Any, tmp_path: Path) -> None:
    with FakePreset("vllm", reply="a + b") as fake:
        client = await start_server(provider="vllm", api_base=fake.base_url)
        uri = (tmp_path / "ws" / "add.py").as_uri()
        open_doc(client, uri, CODE)
        assert await inline(client, uri, end_of(CODE)) == ["a + b"]
        body = fake.bodies("/v1/completions")[-1]
        assert body["model"] == VLLM_MODEL
        assert body["prompt"].startswith("<|")  # Qwen-Coder's own FIM tokens, client side


async def test_openai_uses_the_chat_hole_filling_prompt(
    start_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    with FakePreset("openai", reply="a + b") as fake:
        client = await start_server(provider="openai", api_base=fake.base_url)
        uri = (tmp_path / "ws" / "add.py").as_uri()
        open_doc(client, uri, CODE)
        await inline(client, uri, end_of(CODE))
        assert "/v1/completions" not in fake.paths()  # chat-only model: no raw prompt
        chat = fake.bodies("/v1/chat/completions")[-1]
        assert chat["model"] == "gpt-4.1-mini"
        assert any("<FILL_HERE>" in str(m.get("content")) for m in chat["messages"])
        # the user is told that code leaves the machine
        await until(lambda: any("leaves this machine" in m.message for m in client.messages))


async def test_generic_openai_compatible(start_server: Any, tmp_path: Path) -> None:
    with FakePreset("llamacpp", reply="a + b") as fake:
        client = await start_server(provider="openai-compatible", api_base=fake.base_url)
        uri = (tmp_path / "ws" / "add.py").as_uri()
        open_doc(client, uri, CODE)
        assert await inline(client, uri, end_of(CODE)) == ["a + b"]
        assert "/infill" not in fake.paths()  # generic: only the OpenAI API is used
        assert "/v1/completions" in fake.paths()


async def test_failover_when_the_first_provider_stops_mid_session(
    start_server: Any, tmp_path: Path
) -> None:
    first = FakePreset("ollama", reply="a + b").start()
    second = FakePreset("llamacpp", reply="b + a").start()
    try:
        routes = {"completion": [f"ollama@{first.base_url}", f"llamacpp@{second.base_url}"]}
        client = await start_server(
            provider="ollama", api_base=first.base_url, routes=json.dumps(routes)
        )
        uri = (tmp_path / "ws" / "add.py").as_uri()
        open_doc(client, uri, CODE)
        assert await inline(client, uri, end_of(CODE)) == ["a + b"]
        await until(lambda: any(_routes(s) == {"completion": "ollama"} for s in client.statuses))

        first.stop()  # the first provider goes away mid-session
        text = CODE + "0 or "
        _retype(client, uri, 2, text)
        assert await inline(client, uri, end_of(text)) == ["b + a"]  # the same request failed over
        await until(lambda: _routes(client.statuses[-1]) == {"completion": "llamacpp"})
        told = [m.message for m in client.messages if "is not answering" in m.message]
        assert len(told) == 1 and "aigents.routes" in told[0]

        first.start()  # back on the same port: the health check brings completion home
        await until(lambda: _routes(client.statuses[-1]) == {"completion": "ollama"}, 15)
        text += "1 + "
        _retype(client, uri, 3, text)
        assert await inline(client, uri, end_of(text)) == ["a + b"]
    finally:
        first.stop()
        second.stop()


async def test_cloud_fallback_only_when_configured_and_never_silently(
    start_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    local = FakePreset("ollama", reply="local answer").start()
    cloud = FakePreset("openai", reply="cloud answer").start()
    try:
        routes = {"chat": [f"ollama@{local.base_url}", f"openai@{cloud.base_url}"]}
        client = await start_server(
            provider="ollama", api_base=local.base_url, routes=json.dumps(routes)
        )
        uri = (tmp_path / "ws" / "add.py").as_uri()
        open_doc(client, uri, CODE + "a + b\n")
        assert (await explain(client, uri))["markdown"] == "local answer"
        assert not cloud.requests  # configured, but not needed: never used
        assert not any("leaves this machine" in m.message for m in client.messages)
        local.stop()
        # the same request fails over, and the user hears the code now goes to the cloud
        assert (await explain(client, uri))["markdown"] == "cloud answer"
        await until(lambda: any("leaves this machine" in m.message for m in client.messages))
    finally:
        local.stop()
        cloud.stop()
