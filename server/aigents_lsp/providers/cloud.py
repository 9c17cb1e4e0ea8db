"""vLLM and OpenAI: presets of the OpenAI-compatible provider with their own quirks.

vLLM serves one model per server: it is found from `/v1/models` (whose entries carry
`max_model_len`), and tokens are counted by its `POST /tokenize` at the server root.

OpenAI: the key comes from `OPENAI_API_KEY` when `api_key` is unset; current models are chat-only,
so completion uses the chat "fill the hole" prompt (only the `*-instruct` and base models take raw
`/v1/completions` prompts). Code sent here leaves the machine: `local` is False, and the server
says so before the first request.
"""

from __future__ import annotations

import os
from typing import Any

from aigents_lsp.providers.base import AuthRequired, NoModelLoaded, ProviderError
from aigents_lsp.providers.openai_compat import OpenAICompatibleProvider, Task

VLLM_BASE_URL = "http://localhost:8000/v1"
OPENAI_BASE_URL = "https://api.openai.com/v1"
OPENAI_KEY_ENV = "OPENAI_API_KEY"
OPENAI_DEFAULT_MODELS = {
    "completion": "gpt-4.1-mini",
    "chat": "gpt-4.1-mini",
    "embedding": "text-embedding-3-small",
}
_RAW_PROMPT_MODELS = ("instruct", "davinci-002", "babbage-002")


class VLLMProvider(OpenAICompatibleProvider):
    """vLLM's OpenAI-compatible server (default `http://localhost:8000/v1`)."""

    backend_label = "vLLM"
    health_backend = "vllm"

    def __init__(self, base_url: str = VLLM_BASE_URL, **kwargs: Any) -> None:
        kwargs.setdefault("name", "vllm")
        super().__init__(base_url, **kwargs)
        self._served: str | None = None

    async def resolve_model(self, task: Task) -> str | None:
        """The served model (vLLM serves one; its id is needed in every request)."""
        if task == "embedding":
            return None
        if self._served is None:
            models = await self.list_models()
            if not models:
                raise NoModelLoaded(
                    "vLLM lists no model",
                    hint=f"start vLLM with a model at {self.base_url}",
                    base_url=self.base_url,
                )
            self._served = models[0].id
        return self._served

    async def _model_for(self, task: Task, model: str | None) -> str | None:
        if model:
            return model
        try:
            return await self.resolve_model(task)
        except ProviderError:
            return None  # the request itself says what is wrong

    async def _tokenize_body(self, text: str, model: str | None) -> dict[str, Any]:
        """vLLM's `/tokenize` takes `{model, prompt}` (and answers `{count, tokens, ...}`)."""
        return {"model": model or await self.resolve_model("chat"), "prompt": text}


class OpenAIProvider(OpenAICompatibleProvider):
    """OpenAI's API (or Azure/other clouds speaking it, with `api_base`)."""

    backend_label = "OpenAI"
    health_backend = "openai"

    def __init__(self, base_url: str = OPENAI_BASE_URL, **kwargs: Any) -> None:
        kwargs.setdefault("name", "openai")
        kwargs["api_key"] = kwargs.get("api_key") or os.environ.get(OPENAI_KEY_ENV) or None
        super().__init__(base_url, **kwargs)

    @property
    def local(self) -> bool:
        # The preset is for OpenAI's cloud (a server of your own is `openai-compatible`).
        return False

    def chat_only(self, model: str | None) -> bool:
        name = (model or "").lower()
        return not any(marker in name for marker in _RAW_PROMPT_MODELS)

    async def resolve_model(self, task: Task) -> str | None:
        return OPENAI_DEFAULT_MODELS[task]

    async def _model_for(self, task: Task, model: str | None) -> str | None:
        if not self._api_key:
            raise AuthRequired(
                "no OpenAI API key",
                hint=f"set {OPENAI_KEY_ENV} in the server's environment or aigents.apiKey",
                base_url=self.base_url,
            )
        return model or OPENAI_DEFAULT_MODELS[task]
