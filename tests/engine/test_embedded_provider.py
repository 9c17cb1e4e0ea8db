"""`EmbeddedProvider`: the Provider interface served by the real embedded engine."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from aigents_lsp.providers.base import (
    ChatMessage,
    ChatParams,
    CompletionParams,
    StreamDelta,
)
from aigents_lsp.providers.embedded import EmbeddedProvider
from aigents_lsp.providers.engine_process import EmbeddedEngine, embedded_available
from tests.engine.engine_support import ProgressLog, process_alive

pytestmark = [
    pytest.mark.engine,
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.skipif(not embedded_available(), reason="the `embedded` extra is not installed"),
]

ADD = CompletionParams(prompt="def add(a, b):\n    return", max_tokens=8, temperature=0)
WHAT_IS_PYTHON = ChatParams(
    messages=[ChatMessage(role="user", content="What is Python?")], max_tokens=24, temperature=0
)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def provider(engine: EmbeddedEngine) -> AsyncIterator[EmbeddedProvider]:
    """A provider on the session's shared engine (closing it leaves the engine running)."""
    shared = EmbeddedProvider(engine=engine)
    yield shared
    await shared.aclose()


async def _busy(base_url: str) -> float:
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(base_url.removesuffix("/v1") + "/metrics")).text
    for line in text.splitlines():
        if line.startswith("llamacpp:requests_processing "):
            return float(line.split()[1])
    raise AssertionError("no requests_processing metric")


async def _until_idle(base_url: str, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while await _busy(base_url) > 0:
        assert time.monotonic() < deadline, "the engine kept generating after the stream closed"
        await asyncio.sleep(0.05)


async def test_completion_is_code_from_gemma(provider: EmbeddedProvider) -> None:
    result = await provider.complete(ADD)
    assert "a" in result.text and "b" in result.text, result.text
    assert result.model == "gemma-3-270m"


async def test_a_configured_model_id_is_replaced_by_the_engines_own(
    provider: EmbeddedProvider,
) -> None:
    # `model` set for LM Studio must not break the fallback.
    params = CompletionParams(prompt="x = 1\ny =", max_tokens=3, temperature=0, model="qwen-7b")
    assert (await provider.complete(params)).model == "gemma-3-270m"


async def test_tokens_are_counted_by_the_engines_tokenizer(provider: EmbeddedProvider) -> None:
    code = "def add(a, b):\n    return a + b\n" * 20
    tokens = await provider.count_tokens(code)
    assert tokens is not None and 100 < tokens < len(code)


async def test_chat_answers_in_english(provider: EmbeddedProvider) -> None:
    result = await provider.chat(WHAT_IS_PYTHON)
    assert "programming language" in result.text.lower(), result.text
    assert result.model == "smollm2-135m-instruct"


async def test_stream_chat_delivers_pieces_and_a_finish(provider: EmbeddedProvider) -> None:
    deltas = [delta async for delta in provider.stream_chat(WHAT_IS_PYTHON)]
    text = "".join(delta.text for delta in deltas)
    assert len([d for d in deltas if d.text]) > 3
    assert "programming language" in text.lower(), text
    assert [d.finish_reason for d in deltas if d.finish_reason] == ["length"]  # max_tokens


async def test_closing_a_stream_stops_the_engine(provider: EmbeddedProvider) -> None:
    long = CompletionParams(prompt="# A long story\n", max_tokens=1000, temperature=0)
    received: list[StreamDelta] = []
    async with contextlib.aclosing(provider.stream_complete(long)) as stream:
        async for delta in stream:
            received.append(delta)
            if len(received) >= 3:
                break
    url = provider.engine.url("completion")
    assert url is not None
    await _until_idle(url)
    assert (await provider.complete(ADD)).text  # still serving


async def test_cancelling_the_consumer_task_stops_the_engine(provider: EmbeddedProvider) -> None:
    long = ChatParams(
        messages=[ChatMessage(role="user", content="Tell me a very long story.")],
        max_tokens=1000,
        temperature=0,
    )
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in provider.stream_chat(long):
            started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 30)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    url = provider.engine.url("chat")
    assert url is not None
    await _until_idle(url)
    assert (await provider.chat(WHAT_IS_PYTHON)).text


async def test_embeddings_come_from_the_chat_model(provider: EmbeddedProvider) -> None:
    vectors = await provider.embed(["def add(a, b): return a + b", "the weather is nice"])
    assert len(vectors) == 2
    assert len(vectors[0]) == len(vectors[1]) > 100
    assert all(math.isfinite(x) for x in vectors[0]) and any(vectors[0])


async def test_models_health_and_task_routing(provider: EmbeddedProvider) -> None:
    await provider.engine.ensure("completion")
    await provider.engine.ensure("chat")
    models = {m.id: m for m in await provider.list_models()}
    assert set(models) == {"gemma-3-270m", "smollm2-135m-instruct"}
    assert all(m.state == "loaded" for m in models.values())
    assert models["gemma-3-270m"].context_length == 2048
    assert models["smollm2-135m-instruct"].max_context_length == 8192
    assert await provider.resolve_model("completion") == "gemma-3-270m"
    assert await provider.resolve_model("chat") == "smollm2-135m-instruct"
    health = await provider.health()
    assert health.ok and health.backend == "embedded"
    assert provider.base_url.startswith("http://127.0.0.1:")


async def test_a_fresh_provider_starts_nothing_until_asked(
    cache_root_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIGENTS_CACHE_DIR", str(cache_root_dir))
    progress = ProgressLog()
    fresh = EmbeddedProvider(on_progress=progress, threads=1)
    try:
        health = await fresh.health()
        assert health.ok, health.message
        assert "LM Studio" in fresh.description and "smollm2-135m-instruct" in fresh.description
        models = await fresh.list_models()
        assert [m.state for m in models] == ["not-loaded", "not-loaded"]
        assert not fresh.engine.running("chat") and progress.events == []

        assert (await fresh.chat(WHAT_IS_PYTHON)).text
        pid = fresh.engine.child_pid("chat")
        assert pid is not None and process_alive(pid)
        messages = [message for message, _ in progress.events]
        assert messages[0].startswith("Preparing model SmolLM2")
        assert any(m.startswith("Starting engine smollm2-135m-instruct") for m in messages)
        assert progress.events[-1][1] == 100
    finally:
        await fresh.aclose()  # owns its engine: stops it
    assert not process_alive(pid)
    assert [m.state for m in await fresh.list_models()] == ["not-loaded", "not-loaded"]
