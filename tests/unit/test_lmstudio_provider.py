"""LMStudioProvider: detection, model discovery and choice, ttl, tokens — against the fake."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from aigents_lsp.providers.base import (
    BackendUnavailable,
    ChatMessage,
    ChatParams,
    CompletionParams,
    ContextOverflow,
    ModelInfo,
    NoModelLoaded,
    UnknownModel,
)
from aigents_lsp.providers.lmstudio import DEFAULT_BASE_URL, LMStudioProvider, pick_model
from tests.fakes.lmstudio_server import DEFAULT_TOKEN, FakeLMStudio, FakeLMStudioProcess

CHAT = ChatParams(messages=[ChatMessage("user", "hi")])
CODE = CompletionParams(prompt="def add(a, b):\n    ")


@pytest.fixture(autouse=True)
def no_token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LM_API_TOKEN", raising=False)
    monkeypatch.delenv("LMSTUDIO_API_TOKEN", raising=False)


@pytest.fixture
async def lmstudio(fake_lmstudio: FakeLMStudio) -> AsyncIterator[LMStudioProvider]:
    provider = LMStudioProvider(fake_lmstudio.base_url)
    yield provider
    await provider.aclose()


def model(model_id: str, kind: str = "llm", state: str = "loaded", **extra: Any) -> dict[str, Any]:
    entry = {"id": model_id, "object": "model", "type": kind, "arch": extra.pop("arch", "llama")}
    entry.update(state=state, max_context_length=8192, **extra)
    if state == "loaded":
        entry["loaded_context_length"] = 4096
    return entry


def test_defaults() -> None:
    provider = LMStudioProvider()
    assert provider.base_url == DEFAULT_BASE_URL == "http://localhost:1234/v1"
    assert provider.root == "http://localhost:1234"
    assert provider.name == "lmstudio"


async def test_detect(fake_lmstudio: FakeLMStudio, lmstudio: LMStudioProvider) -> None:
    assert await lmstudio.detect() is True
    assert fake_lmstudio.last_request().path == "/lmstudio-greeting"
    fake_lmstudio.refuse()
    assert await lmstudio.detect() is False
    fake_lmstudio.accept()
    assert await lmstudio.detect() is True


async def test_detect_rejects_other_servers() -> None:
    def other(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/lmstudio-greeting":
            return httpx.Response(404, text="Not Found")
        return httpx.Response(200, json={"data": []})

    async with httpx.AsyncClient(transport=httpx.MockTransport(other)) as client:
        assert await LMStudioProvider(client=client).detect() is False


async def test_list_models_from_the_native_api(
    fake_lmstudio: FakeLMStudio, lmstudio: LMStudioProvider
) -> None:
    models = {m.id: m for m in await lmstudio.list_models()}
    assert fake_lmstudio.last_request().path == "/api/v0/models"
    coder = models["qwen2.5-coder-1.5b-instruct"]
    assert (coder.type, coder.state, coder.context_length) == ("llm", "loaded", 4096)
    assert models["qwen/qwen3-8b"].state == "not-loaded"
    assert models["text-embedding-nomic-embed-text-v1.5"].type == "embeddings"


async def test_list_models_falls_back_to_v1(
    fake_lmstudio: FakeLMStudio, lmstudio: LMStudioProvider
) -> None:
    fake_lmstudio.configure(native_api=False)
    models = await lmstudio.list_models()
    assert fake_lmstudio.paths() == ["/api/v0/models", "/api/v1/models", "/v1/models"]
    assert "qwen/qwen3-8b" in [m.id for m in models]
    assert {m.state for m in models} == {"unknown"}


async def test_model_info(lmstudio: LMStudioProvider) -> None:
    info = await lmstudio.model_info("qwen2.5-coder-1.5b-instruct:2")
    assert info is not None and info.id == "qwen2.5-coder-1.5b-instruct"
    assert await lmstudio.model_info("nope") is None


# --- choosing a model -----------------------------------------------------------------------


async def test_resolve_model_prefers_the_right_kind(
    fake_lmstudio: FakeLMStudio, lmstudio: LMStudioProvider
) -> None:
    fake_lmstudio.configure(
        models=[
            model("bge-small", "embeddings", arch="bert"),
            model("qwen2.5-7b-instruct", capabilities=["tool_use"]),
            model("starcoder2-3b", arch="starcoder2"),
            model("text-embedding-nomic-embed-text-v1.5", "embeddings", arch="nomic-bert"),
            model("deepseek-coder-6.7b-base"),
            model("big-unloaded-coder", state="not-loaded"),
        ]
    )
    assert await lmstudio.resolve_model("completion") == "starcoder2-3b"
    assert await lmstudio.resolve_model("chat") == "qwen2.5-7b-instruct"
    assert await lmstudio.resolve_model("embedding") == "text-embedding-nomic-embed-text-v1.5"
    assert fake_lmstudio.paths().count("/api/v0/models") == 1  # cached


async def test_a_model_loaded_meanwhile_is_found(
    fake_lmstudio: FakeLMStudio, lmstudio: LMStudioProvider
) -> None:
    fake_lmstudio.configure(no_model_loaded=True)
    await lmstudio.list_models()  # cached: nothing loaded
    fake_lmstudio.configure(no_model_loaded=False)
    assert await lmstudio.resolve_model("chat") == "llama-3.2-3b-instruct"


async def test_model_list_cache_expires(
    fake_lmstudio: FakeLMStudio, lmstudio: LMStudioProvider
) -> None:
    lmstudio.model_cache_seconds = 0.0
    await lmstudio.resolve_model("chat")
    await lmstudio.resolve_model("chat")
    assert fake_lmstudio.paths().count("/api/v0/models") == 2


@pytest.mark.parametrize(
    ("models", "task", "expected"),
    [
        (["gemma-3-4b-it", "codegemma-2b"], "chat", "gemma-3-4b-it"),
        (["gemma-3-4b-it", "codegemma-2b"], "completion", "codegemma-2b"),
        (["starcoder2-7b", "mistral-7b-v0.1-base", "phi-4"], "chat", "phi-4"),
        (["qwen2.5-coder-7b-instruct", "llama-3.1-8b-it"], "chat", "llama-3.1-8b-it"),
        (["llama-3.1-8b-it", "qwen2.5-coder-7b"], "completion", "qwen2.5-coder-7b"),
        (["granite-3.0-2b-instruct"], "completion", "granite-3.0-2b-instruct"),
        (["codellama-7b"], "chat", "codellama-7b"),  # nothing better loaded
    ],
)  # fmt: skip
def test_pick_model(models: list[str], task: Any, expected: str) -> None:
    infos = [ModelInfo(id=m, type="llm", state="loaded") for m in models]
    chosen = pick_model(infos, task)
    assert chosen is not None and chosen.id == expected


def test_pick_model_with_unknown_states_uses_names() -> None:
    # Plain /v1/models: no type, no state.
    infos = [ModelInfo(id) for id in ("text-embedding-nomic-embed-text-v1.5", "qwen2.5-coder-3b")]
    assert pick_model(infos, "embedding") == infos[0]
    assert pick_model(infos, "completion") == infos[1]
    assert pick_model([ModelInfo("x", state="not-loaded")], "chat") is None


async def test_nothing_loaded_is_a_clear_error(
    fake_lmstudio: FakeLMStudio, lmstudio: LMStudioProvider
) -> None:
    fake_lmstudio.configure(no_model_loaded=True)
    with pytest.raises(NoModelLoaded) as caught:
        await lmstudio.resolve_model("completion")
    hint = caught.value.hint
    assert fake_lmstudio.base_url in hint and "lms load" in hint and "aigents.model" in hint
    assert "qwen/qwen3-8b" in caught.value.message  # what could be loaded
    with pytest.raises(NoModelLoaded) as embedding:
        await lmstudio.resolve_model("embedding")
    assert "aigents.embeddingModel" in embedding.value.hint


async def test_model_is_resolved_when_none_is_given(
    fake_lmstudio: FakeLMStudio, lmstudio: LMStudioProvider
) -> None:
    await lmstudio.complete(CODE)
    assert fake_lmstudio.last_request("/v1/completions").body["model"] == (
        "qwen2.5-coder-1.5b-instruct"
    )
    await lmstudio.chat(CHAT)
    assert fake_lmstudio.last_request("/v1/chat/completions").body["model"] == (
        "llama-3.2-3b-instruct"
    )
    await lmstudio.embed(["x"])
    assert fake_lmstudio.last_request("/v1/embeddings").body["model"] == (
        "text-embedding-nomic-embed-text-v1.5"
    )


async def test_server_side_model_errors_keep_lm_studio_words(
    fake_lmstudio: FakeLMStudio, lmstudio: LMStudioProvider
) -> None:
    with pytest.raises(UnknownModel) as unknown:
        await lmstudio.chat(ChatParams(messages=CHAT.messages, model="o4-mini"))
    assert unknown.value.message.startswith('Invalid model identifier "o4-mini".')
    assert "aigents-lsp models" in unknown.value.hint
    fake_lmstudio.configure(no_model_loaded=True)
    with pytest.raises(NoModelLoaded) as none:
        await lmstudio.chat(ChatParams(messages=CHAT.messages, model="qwen/qwen3-8b"))
    assert none.value.message.startswith("No models loaded. Please load a model")


async def test_jit_loads_a_downloaded_model(
    fake_lmstudio: FakeLMStudio, lmstudio: LMStudioProvider
) -> None:
    result = await lmstudio.chat(ChatParams(messages=CHAT.messages, model="qwen/qwen3-8b"))
    assert result.model == "qwen/qwen3-8b"
    info = await lmstudio.model_info("qwen/qwen3-8b")
    assert info is not None and info.state == "loaded"


# --- request details ------------------------------------------------------------------------


async def test_ttl_is_sent_with_every_request(fake_lmstudio: FakeLMStudio) -> None:
    provider = LMStudioProvider(fake_lmstudio.base_url, ttl=600, extra_body={"top_k": 40})
    try:
        await provider.complete(CODE)
        await provider.chat(CHAT)
        await provider.embed(["x"])
    finally:
        await provider.aclose()
    for path in ("/v1/completions", "/v1/chat/completions", "/v1/embeddings"):
        assert fake_lmstudio.last_request(path).body["ttl"] == 600
    assert fake_lmstudio.last_request("/v1/chat/completions").body["top_k"] == 40
    assert "top_k" not in fake_lmstudio.last_request("/v1/embeddings").body


@pytest.mark.parametrize("variable", ["LM_API_TOKEN", "LMSTUDIO_API_TOKEN"])
async def test_token_from_the_environment(
    fake_lmstudio: FakeLMStudio, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    fake_lmstudio.configure(auth_required=True)
    monkeypatch.setenv(variable, DEFAULT_TOKEN)
    provider = LMStudioProvider(fake_lmstudio.base_url)
    try:
        assert (await provider.chat(CHAT)).text
        assert [m.id for m in await provider.list_models()]
    finally:
        await provider.aclose()
    assert fake_lmstudio.last_request().headers["authorization"] == f"Bearer {DEFAULT_TOKEN}"
    assert DEFAULT_TOKEN not in repr(provider)


async def test_health(fake_lmstudio: FakeLMStudio, lmstudio: LMStudioProvider) -> None:
    report = await lmstudio.health()
    assert report.ok and report.backend == "lmstudio" and len(report.models) == 4
    assert "3 loaded" in report.message
    fake_lmstudio.configure(no_model_loaded=True)
    report = await lmstudio.health()
    assert report.ok and "none loaded" in report.message
    fake_lmstudio.refuse()
    report = await lmstudio.health()
    assert not report.ok and "lms server start" in report.message


async def test_refused_connection_hint(fake_lmstudio: FakeLMStudio) -> None:
    fake_lmstudio.refuse()
    provider = LMStudioProvider(fake_lmstudio.base_url)
    try:
        with pytest.raises(BackendUnavailable) as caught:
            await provider.complete(CompletionParams(prompt="x", model="m"))
    finally:
        await provider.aclose()
    assert caught.value.hint == (
        f"Nothing answers at {fake_lmstudio.base_url} — start LM Studio's server "
        "(Developer tab or `lms server start`) or set aigents.apiBase"
    )


async def test_last_stats(fake_lmstudio: FakeLMStudio, lmstudio: LMStudioProvider) -> None:
    assert lmstudio.last_stats is None
    fake_lmstudio.configure(ttft=0.03)
    await lmstudio.chat(CHAT)
    stats = lmstudio.last_stats
    assert stats is not None and stats.time_to_first_token is not None
    assert stats.time_to_first_token >= 0.03


# --- the fake as a separate process -----------------------------------------------------------


async def test_fake_as_a_process_with_runtime_faults() -> None:
    with FakeLMStudioProcess("--reply", "from the process") as process:
        provider = LMStudioProvider(process.base_url)
        try:
            assert await provider.detect()
            assert (await provider.chat(CHAT)).text == "from the process"
            process.control(context_overflow=True)
            with pytest.raises(ContextOverflow):
                await provider.chat(CHAT)
            process.control(refused=True)
            with pytest.raises(BackendUnavailable):
                await provider.chat(CHAT)
            process.control(reset=True)
            assert (await provider.chat(CHAT)).text == "Hello from the fake LM Studio!"
        finally:
            await provider.aclose()
        state = process.state()
        assert state["disconnects"] == 0 and state["requests"][-1]["path"] == "/v1/chat/completions"


# --- the fake's fidelity ----------------------------------------------------------------------


async def test_fake_answers_like_express(fake_lmstudio: FakeLMStudio) -> None:
    async with httpx.AsyncClient(base_url=fake_lmstudio.root) as client:
        greeting = await client.get("/lmstudio-greeting")
        native = await client.post(
            "/api/v0/chat/completions",
            json={
                "model": "llama-3.2-3b-instruct",
                "messages": [{"role": "user", "content": "hi"}],
            },
        )
        unknown = await client.post("/v1/fim/completions", json={})
    assert greeting.content == b'{"lmstudio":true}'
    assert greeting.headers["x-powered-by"] == "Express"
    assert greeting.headers["content-type"] == "application/json; charset=utf-8"
    assert greeting.headers["etag"].startswith('W/"11-') and "server" not in greeting.headers
    stats = native.json()["stats"]
    assert stats["stop_reason"] == "eosFound" and native.json()["model_info"]["arch"] == "llama"
    assert unknown.status_code == 200
    assert unknown.json() == {"error": "Unexpected endpoint or method. (POST /v1/fim/completions)"}
