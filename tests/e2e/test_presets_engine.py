"""The llama.cpp preset against a real llama.cpp server: the embedded engine's child process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from aigents_lsp.providers.engine_process import EmbeddedEngine
from aigents_lsp.providers.llamacpp import LlamaCppProvider
from tests.e2e.conftest import end_of, inline, open_doc

pytestmark = pytest.mark.engine

CODE = 'def add(a, b):\n    """Return the sum of a and b."""\n    return '


@pytest_asyncio.fixture
async def llama_server() -> AsyncIterator[str]:
    """A real llama.cpp server (xllamacpp, Gemma 3 270M) at http://127.0.0.1:PORT/v1."""
    engine = EmbeddedEngine(context_length=2048)
    try:
        yield await engine.ensure("completion")
    finally:
        await engine.stop()


async def test_llamacpp_provider_speaks_to_a_real_llama_server(llama_server: str) -> None:
    provider = LlamaCppProvider(llama_server)
    try:
        assert await provider.context_size() == 2048  # n_ctx from /props
        models = await provider.list_models()
        assert models and models[0].loaded_context_length == 2048
        assert (await provider.count_tokens("def add(a, b):") or 0) > 0  # /tokenize
        # Gemma has no FIM tokens: /infill answers 501, found once, then a template is used
        assert not await provider.supports_infill(None)
    finally:
        await provider.aclose()


async def test_llamacpp_preset_completes_over_stdio(start_server: Any, llama_server: str) -> None:
    # About the preset's wire format, not typing speed: the first answer of a real engine on a
    # loaded 2-core machine can take longer than the typing deadline.
    client = await start_server(
        provider="llamacpp",
        api_base=llama_server,
        completion_deadline="60",
        completion_timeout="60",
    )
    uri = "file:///tmp/llamacpp_preset.py"
    open_doc(client, uri, CODE)
    suggestions = await inline(client, uri, end_of(CODE))
    assert suggestions and suggestions[0].strip()
    assert any(s["provider"] == "llamacpp" and s["state"] == "ready" for s in client.statuses)
