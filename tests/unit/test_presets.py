"""Provider presets against fakes speaking each server's real format."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from aigents_lsp.addresses import PRESETS, default_base, is_loopback
from aigents_lsp.config import Settings
from aigents_lsp.providers.base import (
    AuthRequired,
    ChatMessage,
    ChatParams,
    CompletionParams,
    InfillParams,
    Provider,
    UnknownModel,
)
from aigents_lsp.providers.cloud import OpenAIProvider, VLLMProvider
from aigents_lsp.providers.llamacpp import LlamaCppProvider
from aigents_lsp.providers.ollama import OllamaProvider
from aigents_lsp.providers.presets import build_provider
from tests.fakes.preset_servers import OPENAI_KEY, VLLM_MODEL, FakePreset


@pytest.fixture
def fake(request: pytest.FixtureRequest) -> Iterator[FakePreset]:
    with FakePreset(request.param, reply="a + b") as server:
        yield server


async def infill_text(provider: Provider, params: InfillParams) -> tuple[str, list[object]]:
    deltas = []
    async with contextlib.aclosing(provider.stream_infill(params)) as stream:
        async for delta in stream:
            deltas.append(delta)
    return "".join(d.text for d in deltas), deltas


# --- presets ------------------------------------------------------------------------------------


def test_every_preset_has_its_default_address() -> None:
    assert default_base("ollama") == "http://localhost:11434/v1"
    assert default_base("llamacpp") == default_base("llamafile") == "http://localhost:8080/v1"
    assert default_base("vllm") == "http://localhost:8000/v1"
    assert default_base("openai") == "https://api.openai.com/v1"
    assert default_base("auto") == default_base("lmstudio") == "http://localhost:1234/v1"
    assert Settings(provider="ollama").base_url == "http://localhost:11434/v1"
    assert Settings(provider="ollama", api_base="http://box:1/v1").base_url == "http://box:1/v1"
    assert set(PRESETS) >= {"lmstudio", "ollama", "llamacpp", "llamafile", "vllm", "openai"}


def test_routes_accept_names_urls_and_tables() -> None:
    settings = Settings(
        routes={
            "completion": ["ollama", "embedded"],
            "chat": ["lmstudio@http://127.0.0.1:1235/v1", {"provider": "openai", "model": "o"}],
        }
    )
    chat = settings.routes["chat"]
    assert [e.provider for e in settings.routes["completion"]] == ["ollama", "embedded"]
    assert chat[0].api_base == "http://127.0.0.1:1235/v1"
    assert chat[1].model == "o"
    with pytest.raises(ValueError):
        Settings(routes={"chat": ["nonsense"]})


def test_loopback_and_cloud() -> None:
    assert is_loopback("http://127.0.0.1:8080/v1") and is_loopback("http://localhost:1/v1")
    assert not is_loopback("http://192.0.2.1:8080/v1")
    assert not OpenAIProvider(api_key="k").local  # a cloud preset, even through a tunnel
    assert OllamaProvider().local
    assert not build_provider("vllm", "https://vllm.example.com/v1").local


# --- Ollama ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fake", ["ollama"], indirect=True)
async def test_ollama_models_context_and_native_fim(fake: FakePreset) -> None:
    provider = OllamaProvider(fake.base_url)
    try:
        models = {m.id: m for m in await provider.list_models()}
        coder = models["qwen2.5-coder:1.5b"]
        assert (coder.state, coder.quantization, coder.loaded_context_length) == (
            "loaded",
            "Q4_K_M",
            4096,
        )
        assert models["llama3.2:3b"].state == "not-loaded"
        assert models["nomic-embed-text:latest"].type == "embeddings"
        assert await provider.resolve_model("completion") == "qwen2.5-coder:1.5b"
        assert await provider.resolve_model("embedding") == "nomic-embed-text:latest"
        info = await provider.model_info("qwen2.5-coder:1.5b")
        assert info is not None and info.max_context_length == 32768
        assert info.context_length == 4096
        # true FIM for models with the `insert` capability only
        assert await provider.supports_infill("qwen2.5-coder:1.5b")
        assert not await provider.supports_infill("llama3.2:3b")
        text, deltas = await infill_text(
            provider, InfillParams(prefix="def f(a, b):\n    return ", suffix="\n", max_tokens=9)
        )
        assert text == "a + b"
        body = fake.bodies("/api/generate")[-1]
        assert body["suffix"] == "\n" and body["model"] == "qwen2.5-coder:1.5b"
        assert body["options"]["num_predict"] == 9
        final = deltas[-1]
        assert final.finish_reason == "stop" and final.stats.tokens_per_second > 0
        # chat through /v1 always names a model (Ollama requires one)
        result = await provider.chat(ChatParams(messages=[ChatMessage("user", "hi")]))
        assert result.text == "a + b"
        assert fake.bodies("/v1/chat/completions")[-1]["model"] == "qwen2.5-coder:1.5b"
    finally:
        await provider.aclose()


@pytest.mark.parametrize("fake", ["ollama"], indirect=True)
async def test_ollama_errors_keep_its_words(fake: FakePreset) -> None:
    provider = OllamaProvider(fake.base_url, ttl=300)
    try:
        with pytest.raises(UnknownModel) as caught:
            await infill_text(provider, InfillParams(prefix="x", suffix="", model="nope:1b"))
        assert "try pulling it first" in str(caught.value)
        await provider.chat(ChatParams(messages=[ChatMessage("user", "hi")], model="llama3.2:3b"))
        assert fake.bodies("/v1/chat/completions")[-1]["keep_alive"] == "300s"
    finally:
        await provider.aclose()


# --- llama.cpp ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fake", ["llamacpp"], indirect=True)
async def test_llamacpp_infill_props_and_tokenize(fake: FakePreset) -> None:
    provider = LlamaCppProvider(fake.base_url)
    try:
        assert provider.supports_grammar
        assert await provider.context_size() == 8192
        models = await provider.list_models()
        assert models[0].max_context_length == 32768 and models[0].loaded_context_length == 8192
        assert await provider.count_tokens("one two three") == 3
        assert await provider.supports_infill(None)
        text, deltas = await infill_text(
            provider,
            InfillParams(prefix="x = ", suffix="\n", context=(("util.py", "def g(): ..."),)),
        )
        assert text == "a + b"
        body = fake.bodies("/infill")[-1]
        assert body["input_extra"] == [{"filename": "util.py", "text": "def g(): ..."}]
        assert body["stream"] is True
        assert deltas[-1].stats is not None and deltas[-1].stats.tokens_per_second == 100.0
    finally:
        await provider.aclose()


# --- vLLM --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fake", ["vllm"], indirect=True)
async def test_vllm_serves_its_one_model(fake: FakePreset) -> None:
    provider = VLLMProvider(fake.base_url)
    try:
        models = await provider.list_models()
        assert models[0].id == VLLM_MODEL and models[0].max_context_length == 32768
        assert await provider.resolve_model("completion") == VLLM_MODEL
        assert await provider.count_tokens("a b c d") == 4
        result = await provider.complete(CompletionParams(prompt="x = "))
        assert result.text == "a + b"
        assert fake.bodies("/v1/completions")[-1]["model"] == VLLM_MODEL
        with pytest.raises(UnknownModel) as caught:
            await provider.complete(CompletionParams(prompt="x", model="other"))
        assert "does not exist" in str(caught.value)
    finally:
        await provider.aclose()


# --- OpenAI ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fake", ["openai"], indirect=True)
async def test_openai_key_from_env_and_chat_only_models(
    fake: FakePreset, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    keyless = OpenAIProvider(fake.base_url)
    with pytest.raises(AuthRequired, match="OPENAI_API_KEY"):
        await keyless.chat(ChatParams(messages=[ChatMessage("user", "hi")]))
    await keyless.aclose()

    wrong = OpenAIProvider(fake.base_url, api_key="sk-wrong-key-0000000000")
    with pytest.raises(AuthRequired) as caught:
        await wrong.chat(ChatParams(messages=[ChatMessage("user", "hi")]))
    assert "sk-wrong-key" not in str(caught.value)  # the key is never echoed back to the user
    await wrong.aclose()

    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    provider = OpenAIProvider(fake.base_url)
    try:
        assert provider.chat_only("gpt-4.1-mini")
        assert not provider.chat_only("gpt-3.5-turbo-instruct")
        result = await provider.chat(ChatParams(messages=[ChatMessage("user", "hi")]))
        assert result.text == "a + b"
        assert fake.bodies("/v1/chat/completions")[-1]["model"] == "gpt-4.1-mini"
    finally:
        await provider.aclose()


# --- doctor ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fake", ["ollama"], indirect=True)
async def test_doctor_checks_a_preset_and_each_route(fake: FakePreset) -> None:
    from aigents_lsp.doctor import diagnose
    from tests.e2e.conftest import free_port

    down = f"http://127.0.0.1:{free_port()}/v1"
    settings = Settings(
        provider="ollama",
        api_base=fake.base_url,
        routes={"chat": [f"ollama@{fake.base_url}", f"vllm@{down}"]},
    )
    checks = {check.name: check for check in await diagnose(settings)}
    assert checks["server reachable"].verdict == "pass"
    assert checks["test completion"].verdict == "pass"
    assert "is LM Studio" not in checks
    assert checks["route chat: ollama"].verdict == "pass"
    assert checks["route chat: vllm"].verdict == "warn"
    assert "vllm serve" in checks["route chat: vllm"].fix

    nothing = await diagnose(Settings(provider="ollama", api_base=down))
    assert nothing[0].verdict == "fail" and "ollama serve" in nothing[0].fix


# --- routing -----------------------------------------------------------------------------------


async def test_routes_pick_models_per_provider_and_report_who_serves() -> None:
    from aigents_lsp.providers.backend import Backend

    with FakePreset("ollama") as ollama, FakePreset("vllm") as vllm:
        statuses: list[dict[str, object]] = []
        settings = Settings(
            provider="ollama",
            api_base=ollama.base_url,
            model="llama3.2:3b",
            routes={
                "completion": [f"vllm@{vllm.base_url}"],
                "chat": [{"provider": "ollama", "api_base": ollama.base_url, "model": "x:1b"}],
            },
        )
        backend = Backend(settings, on_status=lambda s: statuses.append(s.to_wire()))
        try:
            # vLLM is not the main provider: the configured LM-Studio-style id is not sent there
            assert await backend.model_for("completion") == VLLM_MODEL
            assert await backend.model_for("chat") == "x:1b"  # the entry's own model
            assert (await backend.provider("completion")).name == "vllm"
            assert statuses[-1]["routes"] == {"completion": "vllm", "chat": "ollama"}
            assert statuses[-1]["provider"] == "vllm"
            # the embedding task has no route: the main provider serves it
            assert (await backend.provider("embedding")).name == "ollama"
        finally:
            await backend.aclose()
