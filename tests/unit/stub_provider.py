"""A provider whose every operation is unexpected, for tests to override the ones they use."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aigents_lsp.providers.base import (
    ChatParams,
    CompletionParams,
    CompletionResult,
    HealthReport,
    ModelInfo,
    Provider,
    StreamDelta,
)


class StubProvider(Provider):
    name = "stub"

    @property
    def base_url(self) -> str:
        return "stub://"

    def stream_complete(self, params: CompletionParams) -> AsyncIterator[StreamDelta]:
        raise NotImplementedError

    async def complete(self, params: CompletionParams) -> CompletionResult:
        raise NotImplementedError

    async def chat(self, params: ChatParams) -> CompletionResult:
        raise NotImplementedError

    def stream_chat(self, params: ChatParams) -> AsyncIterator[StreamDelta]:
        raise NotImplementedError

    async def embed(self, texts: object, model: str | None = None) -> list[list[float]]:
        raise NotImplementedError

    async def list_models(self) -> list[ModelInfo]:
        return []

    async def health(self) -> HealthReport:
        raise NotImplementedError
