"""Ollama: chat through its OpenAI-compatible `/v1`, and its native API where it is better.

- True fill-in-the-middle through `POST /api/generate` with `suffix`, for models whose
  `/api/show` lists the `insert` capability (Ollama applies the model's FIM template).
- Models from `/api/tags` (all pulled models) and `/api/ps` (the loaded ones); the context length
  from `/api/show` (`num_ctx` when the Modelfile sets one, else `<arch>.context_length`).
- Ollama needs a model name in every request: with none configured a pulled model is picked
  (a loaded one first). `ttl` is sent as Ollama's `keep_alive`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncGenerator
from dataclasses import replace
from typing import Any

from aigents_lsp.providers.base import (
    InfillParams,
    ModelInfo,
    NoModelLoaded,
    ProviderError,
    StreamDelta,
)
from aigents_lsp.providers.lmstudio import pick_model
from aigents_lsp.providers.native import text_chunk
from aigents_lsp.providers.openai_compat import OpenAICompatibleProvider, Task

DEFAULT_BASE_URL = "http://localhost:11434/v1"
SHOW_CACHE_SECONDS = 60.0
MODELS_CACHE_SECONDS = 5.0
_NUM_CTX = re.compile(r"^\s*num_ctx\s+(\d+)", re.MULTILINE)


def _generate_frame(body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """`{"response": "...", "done": bool, "eval_count", "eval_duration" (ns)...}` -> a chunk."""
    response = body.get("response")
    text = response if isinstance(response, str) else ""
    last = body.get("done") is True
    extra: dict[str, Any] = {}
    if isinstance(body.get("model"), str):
        extra["model"] = body["model"]
    if last:
        evals, duration = body.get("eval_count"), body.get("eval_duration")
        prompt = body.get("prompt_eval_count")
        if isinstance(evals, int):
            extra["usage"] = {
                "prompt_tokens": prompt if isinstance(prompt, int) else 0,
                "completion_tokens": evals,
            }
        if isinstance(evals, int) and isinstance(duration, int) and duration > 0:
            prompt_ns = body.get("prompt_eval_duration")
            extra["stats"] = {
                "tokens_per_second": evals / (duration / 1e9),
                "generation_time": duration / 1e9,
                "time_to_first_token": prompt_ns / 1e9 if isinstance(prompt_ns, int) else None,
            }
    reason = body.get("done_reason") if last else None
    finish = ("length" if reason == "length" else "stop") if last else None
    return text_chunk(text, finish, **extra), last


def _model_entry(entry: object, loaded: dict[str, int | None]) -> ModelInfo | None:
    if not isinstance(entry, dict):
        return None
    name = entry.get("model") or entry.get("name")
    if not isinstance(name, str) or not name:
        return None
    details = entry.get("details")
    details = details if isinstance(details, dict) else {}
    quant, family = details.get("quantization_level"), details.get("family")
    return ModelInfo(
        id=name,
        type="embeddings" if "embed" in name.lower() or family in ("bert", "nomic-bert") else "llm",
        state="loaded" if name in loaded else "not-loaded",
        loaded_context_length=loaded.get(name),
        arch=family if isinstance(family, str) and family else None,
        quantization=quant if isinstance(quant, str) and quant else None,
    )


class OllamaProvider(OpenAICompatibleProvider):
    """Ollama (default `http://localhost:11434/v1`)."""

    backend_label = "Ollama"
    health_backend = "ollama"

    def __init__(
        self, base_url: str = DEFAULT_BASE_URL, *, ttl: int | None = None, **kwargs: Any
    ) -> None:
        kwargs.setdefault("name", "ollama")
        self.keep_alive = f"{ttl}s" if ttl is not None else None
        extra = dict(kwargs.pop("extra_body", None) or {})
        if self.keep_alive:
            extra["keep_alive"] = self.keep_alive
        super().__init__(base_url, extra_body=extra, **kwargs)
        self._root = self.base_url.removesuffix("/v1")
        self._shown: dict[str, tuple[float, dict[str, Any]]] = {}
        self._models: tuple[float, list[ModelInfo]] | None = None
        self._show_lock = asyncio.Lock()

    async def list_models(self) -> list[ModelInfo]:
        """Pulled models (`/api/tags`) with their state and context from `/api/ps`."""
        tags = await self._request_json("GET", f"{self._root}/api/tags")
        running = await self._request_json("GET", f"{self._root}/api/ps")
        loaded: dict[str, int | None] = {}
        for entry in running.get("models", []) if isinstance(running, dict) else []:
            name = (entry.get("model") or entry.get("name")) if isinstance(entry, dict) else None
            if isinstance(name, str):
                context = entry.get("context_length")
                loaded[name] = context if isinstance(context, int) else None
        entries = tags.get("models") if isinstance(tags, dict) else None
        if not isinstance(entries, list):
            raise self._bad("`/api/tags` has no `models` list")
        models = [m for m in (_model_entry(e, loaded) for e in entries) if m is not None]
        self._models = (time.monotonic(), models)
        return models

    async def _cached_models(self) -> list[ModelInfo]:
        if self._models and time.monotonic() - self._models[0] < MODELS_CACHE_SECONDS:
            return self._models[1]
        return await self.list_models()

    async def resolve_model(self, task: Task) -> str | None:
        """A loaded model that suits the task, else a pulled one (Ollama loads on demand)."""
        models = await self._cached_models()
        chosen = pick_model(models, task) or pick_model(
            [replace(m, state="unknown") for m in models], task
        )
        if chosen is not None:
            return chosen.id
        what = "embedding model" if task == "embedding" else "model"
        raise NoModelLoaded(
            f"Ollama has no {what}",
            hint=f"No {what} is pulled in Ollama at {self._root} — run `ollama pull "
            f"{'nomic-embed-text' if task == 'embedding' else 'qwen2.5-coder:1.5b'}`",
            base_url=self.base_url,
        )

    async def _model_for(self, task: Task, model: str | None) -> str | None:
        return model or await self.resolve_model(task)

    async def show(self, model: str) -> dict[str, Any]:
        """`POST /api/show` for a model, cached for a minute."""
        cached = self._shown.get(model)
        if cached and time.monotonic() - cached[0] < SHOW_CACHE_SECONDS:
            return cached[1]
        async with self._show_lock:
            body = await self._request_json("POST", f"{self._root}/api/show", {"model": model})
        shown = body if isinstance(body, dict) else {}
        self._shown[model] = (time.monotonic(), shown)
        return shown

    async def model_info(self, model_id: str) -> ModelInfo | None:
        """The model with its real context length (`num_ctx`, else the trained maximum)."""
        models = await self._cached_models()
        found = next((m for m in models if m.id == model_id), None)
        try:
            shown = await self.show(model_id)
        except ProviderError:
            return found
        info = shown.get("model_info")
        info = info if isinstance(info, dict) else {}
        trained = next(
            (v for k, v in info.items() if k.endswith(".context_length") and isinstance(v, int)),
            None,
        )
        params = shown.get("parameters")
        params = params if isinstance(params, str) else ""
        configured = _NUM_CTX.search(params)
        base = found or ModelInfo(id=model_id)
        return replace(
            base,
            max_context_length=trained or base.max_context_length,
            loaded_context_length=base.loaded_context_length
            or (int(configured.group(1)) if configured else None),
            capabilities=tuple(c for c in shown.get("capabilities", []) if isinstance(c, str)),
        )

    async def supports_infill(self, model: str | None) -> bool:
        """Models whose `/api/show` lists `insert` take a `suffix` (true FIM)."""
        try:
            model = model or await self.resolve_model("completion")
            if not model:
                return False
            shown = await self.show(model)
        except ProviderError:
            return False
        capabilities = shown.get("capabilities")
        return isinstance(capabilities, list) and "insert" in capabilities

    async def stream_infill(self, params: InfillParams) -> AsyncGenerator[StreamDelta, None]:
        """`POST /api/generate` with `prompt` + `suffix`, streamed as JSON lines."""
        model = params.model or await self.resolve_model("completion")
        options: dict[str, Any] = {
            "num_predict": params.max_tokens,
            "temperature": params.temperature,
        }
        if params.stop:
            options["stop"] = list(params.stop)
        body: dict[str, Any] = {
            "model": model,
            "prompt": params.prefix,
            "suffix": params.suffix,
            "stream": True,
            "options": options,
        }
        if self.keep_alive:
            body["keep_alive"] = self.keep_alive
        url = f"{self._root}/api/generate"
        stream = self._native_stream(url, body, _generate_frame, framing="ndjson")
        async with contextlib.aclosing(stream) as deltas:
            async for delta in deltas:
                yield delta
