"""llama.cpp's server and llamafile: the OpenAI API plus their native strengths.

- True fill-in-the-middle through `POST /infill` (the server applies the model's own FIM tokens
  and takes other files as `input_extra`). Models without FIM tokens answer 501; that is found
  once per model with a one-token probe, and completion falls back to a client-side template.
- `POST /tokenize` for exact token counts, `GET /props` for the context size (`n_ctx`) the server
  runs with, GBNF grammars (`supports_grammar`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from typing import Any

import httpx

from aigents_lsp.providers.base import InfillParams, ModelInfo, ProviderError, StreamDelta
from aigents_lsp.providers.native import text_chunk
from aigents_lsp.providers.openai_compat import OpenAICompatibleProvider

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "http://localhost:8080/v1"
INFILL_PROBE_SECONDS = 10.0
_STOP_TYPES = {"limit": "length", "eos": "stop", "word": "stop"}


def _infill_frame(body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """`{"content": "...", "stop": bool, "stop_type", "timings"}` -> an OpenAI-style chunk."""
    content = body.get("content")
    text = content if isinstance(content, str) else ""
    last = body.get("stop") is True
    finish = _STOP_TYPES.get(str(body.get("stop_type")), "stop") if last else None
    extra: dict[str, Any] = {}
    if isinstance(body.get("timings"), dict):
        extra["timings"] = body["timings"]
    if isinstance(body.get("model"), str):
        extra["model"] = body["model"]
    return text_chunk(text, finish, **extra), last


class LlamaCppProvider(OpenAICompatibleProvider):
    """llama.cpp's `llama-server` (and llamafile, which embeds it)."""

    backend_label = "the llama.cpp server"
    health_backend = "llama.cpp"
    supports_grammar = True

    def __init__(self, base_url: str = DEFAULT_BASE_URL, **kwargs: Any) -> None:
        kwargs.setdefault("name", "llamacpp")
        # `timings` (prompt tokens read / cached) with every chunk, not only the last one.
        kwargs.setdefault("extra_body", {"timings_per_token": True})
        super().__init__(base_url, **kwargs)
        if self.name == "llamafile":
            self.backend_label = "llamafile"
        self._root = self.base_url.removesuffix("/v1")
        self._infill: dict[str | None, bool] = {}
        self._infill_lock = asyncio.Lock()
        self._n_ctx: int | None = None

    async def list_models(self) -> list[ModelInfo]:
        """`/v1/models`, with the running context from `/props` when the list lacks it."""
        models = await super().list_models()
        if models and all(m.loaded_context_length is None for m in models):
            n_ctx = await self.context_size()
            if n_ctx:
                models = [
                    ModelInfo(**{**m.__dict__, "loaded_context_length": n_ctx, "state": "loaded"})
                    for m in models
                ]
        return models

    async def context_size(self) -> int | None:
        """`n_ctx` of `GET /props` (per slot on a server with several slots)."""
        if self._n_ctx is None:
            try:
                body = await self._request_json("GET", f"{self._root}/props")
            except ProviderError as error:
                log.debug("no /props: %s", error)
                return None
            settings = body.get("default_generation_settings") if isinstance(body, dict) else None
            n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
            if n_ctx is None and isinstance(body, dict):
                n_ctx = body.get("n_ctx")
            self._n_ctx = n_ctx if isinstance(n_ctx, int) and n_ctx > 0 else None
        return self._n_ctx

    async def supports_infill(self, model: str | None) -> bool:
        """Whether `/infill` works for the model: probed once with a one-token request."""
        if model in self._infill:
            return self._infill[model]
        async with self._infill_lock:
            if model not in self._infill:
                self._infill[model] = await self._probe_infill(model)
                log.info(
                    "%s: native FIM through /infill %s for %s",
                    self.name,
                    "available" if self._infill[model] else "unavailable",
                    model or "the loaded model",
                )
        return self._infill[model]

    async def _probe_infill(self, model: str | None) -> bool:
        body: dict[str, Any] = {"input_prefix": "x = ", "input_suffix": "\n", "n_predict": 1}
        if model:
            body["model"] = model
        try:
            async with asyncio.timeout(INFILL_PROBE_SECONDS):
                await self._request_json("POST", f"{self._root}/infill", body)
        except ProviderError as error:
            # 501 "Infill is not supported by this model", 404 on servers without the route.
            if error.status in (400, 404, 405, 501) or error.kind == "wrong_route":
                return False
            raise
        except TimeoutError:
            return False
        except httpx.HTTPError:
            return False
        return True

    async def stream_infill(self, params: InfillParams) -> AsyncGenerator[StreamDelta, None]:
        """`POST /infill`, streamed: prefix, suffix and other files; the server formats them."""
        body: dict[str, Any] = {
            "input_prefix": params.prefix,
            "input_suffix": params.suffix,
            "input_extra": [{"filename": path, "text": text} for path, text in params.context],
            "prompt": "",
            "n_predict": params.max_tokens,
            "temperature": params.temperature,
            "cache_prompt": True,
            "stream": True,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.model:
            body["model"] = params.model
        stream = self._native_stream(f"{self._root}/infill", body, _infill_frame, framing="sse")
        async with contextlib.aclosing(stream) as deltas:
            async for delta in deltas:
                yield delta
