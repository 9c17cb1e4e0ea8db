"""LM Studio: the OpenAI-compatible provider plus detection, rich model discovery and choice.

Model state and context lengths come from LM Studio's native `/api/v0/models` (then
`/api/v1/models`, then plain `/v1/models`). With no model configured, a loaded model is picked
for the task: a code model for completion, an instruct model for chat, an embedding model for
embeddings. A model that is not loaded is loaded just in time through the native `/api/v1/chat`,
whose `model_load.*` events say how far the load is (`load_just_in_time`).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from aigents_lsp.providers.base import (
    ChatMessage,
    ChatParams,
    HealthReport,
    ModelInfo,
    ModelLoadFailed,
    NoModelLoaded,
    ProviderError,
    UnknownModel,
    WrongRoute,
)
from aigents_lsp.providers.bodies import models_from_body
from aigents_lsp.providers.errors import LMSTUDIO, classify, error_code, error_message, excerpt
from aigents_lsp.providers.openai_compat import OpenAICompatibleProvider, Task
from aigents_lsp.providers.sse import SSEDecoder

LoadProgress = Callable[[float | None], None]
"""Called as a load goes on: the fraction loaded (0..1), None when LM Studio does not say."""

DEFAULT_BASE_URL = "http://localhost:1234/v1"
TOKEN_ENV_VARS = ("LM_API_TOKEN", "LMSTUDIO_API_TOKEN")

_CODE = re.compile(r"code")  # coder, codestral, starcoder, codegemma, codellama, granite-code...
_INSTRUCT = re.compile(r"instruct|chat|assistant|(?:^|[-_./@])it(?:$|[-_.@:])")
_BASE = re.compile(r"(?:^|[-_./@])base(?:$|[-_.@:])")
_INSTANCE_SUFFIX = re.compile(r"(?::\d+)?(?:@[\w.-]+)?$")


def _is_embedding(model: ModelInfo) -> bool:
    return model.type == "embeddings" or (model.type == "unknown" and "embed" in model.id.lower())


def _names(model: ModelInfo) -> str:
    return f"{model.id} {model.arch or ''}".lower()


def completion_score(model: ModelInfo) -> tuple[int, ...]:
    """Higher is better for code completion: code models first."""
    return (1 if _CODE.search(_names(model)) else 0, 1 if model.type != "vlm" else 0)


def chat_score(model: ModelInfo) -> tuple[int, ...]:
    """Higher is better for chat: instruct/chat models, never a base or pure completion model."""
    name = model.id.lower()
    instruct = bool(_INSTRUCT.search(name))
    base = bool(_BASE.search(name)) or (bool(_CODE.search(_names(model))) and not instruct)
    level = 0 if base else 2 if instruct else 1
    general = 0 if _CODE.search(_names(model)) else 1
    return (level, 1 if "tool_use" in model.capabilities else 0, general)


def embedding_score(model: ModelInfo) -> tuple[int, ...]:
    return (1 if "nomic-embed" in model.id.lower() else 0,)


_SCORES = {"completion": completion_score, "chat": chat_score, "embedding": embedding_score}


def pick_model(models: list[ModelInfo], task: Task) -> ModelInfo | None:
    """The best model for a task among the loaded ones (or, when the list says nothing about
    state, as plain `/v1/models` does, among all of them)."""
    fitting = [m for m in models if _is_embedding(m) == (task == "embedding")]
    usable = [m for m in fitting if m.state == "loaded"]
    usable = usable or [m for m in fitting if m.state == "unknown"]
    return max(usable, key=_SCORES[task], default=None)


@dataclass(frozen=True)
class LoadOutcome:
    """How a model was loaded: through LM Studio 0.4's load endpoint (it stays loaded until
    unloaded) or just in time by a one-token request (older servers; the JIT TTL applies)."""

    model: str
    how: Literal["loaded", "just-in-time"]
    seconds: float
    instance_id: str | None = None


def no_load_route(error: ProviderError) -> bool:
    """Whether `POST /api/v1/models/load` does not exist here (LM Studio before 0.4 answers
    "Unexpected endpoint" with HTTP 200; proxies answer 404/405)."""
    if isinstance(error, WrongRoute):
        return True
    return error.status in (404, 405) and not isinstance(error, UnknownModel | ModelLoadFailed)


def _root(base_url: str) -> str:
    base = base_url.rstrip("/")
    return base.removesuffix("/v1")


class LMStudioProvider(OpenAICompatibleProvider):
    """LM Studio's server (default `http://localhost:1234/v1`)."""

    backend_label = LMSTUDIO
    health_backend = "lmstudio"
    model_cache_seconds = 5.0

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        api_key: str | None = None,
        connect_timeout: float = 3.0,
        read_timeout: float = 600.0,
        client: httpx.AsyncClient | None = None,
        extra_body: Mapping[str, Any] | None = None,
        name: str = "lmstudio",
        ttl: int | None = None,
        draft_model: str | None = None,
    ) -> None:
        """`api_key` defaults to `$LM_API_TOKEN`, then `$LMSTUDIO_API_TOKEN`; `ttl`: seconds a
        model loaded just in time for our requests stays loaded when idle; `draft_model`: sent
        with every completion and chat request (speculative decoding, LM Studio 0.3.10+)."""
        api_key = api_key or next(
            (os.environ[v] for v in TOKEN_ENV_VARS if os.environ.get(v)), None
        )
        body = dict(extra_body or {})
        if ttl is not None:
            body["ttl"] = ttl
        if draft_model:
            body["draft_model"] = draft_model
        super().__init__(
            base_url,
            api_key=api_key,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            client=client,
            extra_body=body,
            name=name,
        )
        self.ttl = ttl
        self.draft_model = draft_model or None
        self._connect_timeout = connect_timeout
        self._models: tuple[float, list[ModelInfo]] | None = None

    @property
    def root(self) -> str:
        """The server root (the base URL without `/v1`), where the native API lives."""
        return _root(self.base_url)

    async def detect(self) -> bool:
        """Whether LM Studio answers here (`GET /lmstudio-greeting` -> `{"lmstudio": true}`)."""
        quick = httpx.Timeout(self._connect_timeout, read=5.0)
        try:
            body = await self._request_json("GET", f"{self.root}/lmstudio-greeting", timeouts=quick)
        except ProviderError:
            return False
        return isinstance(body, dict) and body.get("lmstudio") is True

    async def list_models(self) -> list[ModelInfo]:
        """Every model LM Studio knows, with type, state and context lengths."""
        models: list[ModelInfo] | None = None
        for path in ("api/v0/models", "api/v1/models"):
            try:
                models = models_from_body(await self._request_json("GET", f"{self.root}/{path}"))
            except WrongRoute:
                continue
            if models is not None:
                break
        if models is None:
            models = await super().list_models()  # an older or proxied server: ids only
        self._models = (time.monotonic(), models)
        return models

    def _fresh_cache(self) -> list[ModelInfo] | None:
        if self._models and time.monotonic() - self._models[0] < self.model_cache_seconds:
            return self._models[1]
        return None

    async def _cached_models(self) -> list[ModelInfo]:
        return self._fresh_cache() or await self.list_models()

    async def resolve_model(self, task: Task) -> str | None:
        """A loaded model that suits the task; `NoModelLoaded` when there is none."""
        cached = self._fresh_cache()
        models = cached or await self.list_models()
        chosen = pick_model(models, task)
        if chosen is None and cached is not None:  # the user may have just loaded one
            models = await self.list_models()
            chosen = pick_model(models, task)
        if chosen is not None:
            return chosen.id
        what, setting = (
            ("embedding model", "embeddingModel") if task == "embedding" else ("model", "model")
        )
        downloaded = [m.id for m in models if _is_embedding(m) == (task == "embedding")]
        known = f" (downloaded: {', '.join(downloaded[:5])})" if downloaded else ""
        raise NoModelLoaded(
            f"No {what} is loaded{known}",
            hint=f"No {what} is loaded in LM Studio at {self.base_url} — load one in the "
            f"Developer tab or run `lms load <model>`, or set aigents.{setting}",
            base_url=self.base_url,
        )

    async def model_info(self, model_id: str) -> ModelInfo | None:
        """What LM Studio says about a model (instance `:2` and `@quant` suffixes ignored)."""
        models = await self._cached_models()
        wanted = _INSTANCE_SUFFIX.sub("", model_id)
        for model in models:
            if model.id == model_id:
                return model
        return next((m for m in models if _INSTANCE_SUFFIX.sub("", m.id) == wanted), None)

    async def health(self) -> HealthReport:
        report = await super().health()
        states = {m.state for m in report.models}
        if report.ok and "loaded" not in states and states != {"unknown"}:
            names = ", ".join(m.id for m in report.models[:3])
            note = f" — none loaded; LM Studio loads one on first use ({names})" if names else ""
            return HealthReport(
                ok=True,
                base_url=report.base_url,
                backend=report.backend,
                message=report.message + note,
                models=report.models,
                latency_ms=report.latency_ms,
            )
        return report

    async def _model_for(self, task: Task, model: str | None) -> str | None:
        if model:
            return model
        try:
            return await self.resolve_model(task)
        except NoModelLoaded:
            raise
        except ProviderError:
            return None  # let the request itself report what is wrong

    def _embedding_extra(self) -> dict[str, Any]:
        return {"ttl": self.ttl} if self.ttl is not None else {}

    # --- model management -------------------------------------------------------------------

    async def load_model(self, model_id: str, *, embedding: bool = False) -> LoadOutcome:
        """Load a model: `POST /api/v1/models/load` (LM Studio 0.4+; blocks until loaded),
        else just in time with a one-token request (`ttl` applies). `embedding`: warm it up
        with an embeddings request instead of a chat one."""
        started = time.perf_counter()
        self._models = None  # whatever happens, the cached states are stale
        try:
            body = await self._request_json(
                "POST", f"{self.root}/api/v1/models/load", {"model": model_id}
            )
        except ProviderError as error:
            if not no_load_route(error):
                raise
        else:
            instance = body.get("instance_id") if isinstance(body, dict) else None
            return LoadOutcome(
                model_id,
                "loaded",
                time.perf_counter() - started,
                instance if isinstance(instance, str) else None,
            )
        await self.warm_up(model_id, embedding=embedding)
        return LoadOutcome(model_id, "just-in-time", time.perf_counter() - started)

    async def warm_up(self, model_id: str, *, embedding: bool = False) -> None:
        """The smallest request that makes LM Studio load `model_id` just in time."""
        self._models = None
        if embedding:
            await self.embed(["load"], model_id)
        else:
            await self.chat(
                ChatParams(
                    messages=[ChatMessage("user", "Hi")],
                    model=model_id,
                    max_tokens=1,
                    temperature=0.0,
                )
            )

    # --- just-in-time loads -----------------------------------------------------------------

    async def model_state(self, model_id: str) -> str | None:
        """`loaded`, `loading` or `not-loaded` as LM Studio says now (None: it does not say)."""
        self._models = None
        info = await self.model_info(model_id)
        return None if info is None or info.state == "unknown" else info.state

    async def load_just_in_time(self, model_id: str, on_progress: LoadProgress) -> float:
        """Load `model_id` as LM Studio's JIT would (its TTL and auto-evict apply) and return the
        seconds it took. A load already under way is waited for (another request for the model
        could load a second instance); otherwise a one-token `/api/v1/chat` (LM Studio 0.4+)
        streams `model_load.progress`; older servers (or with `ttl` set, which only the OpenAI
        routes take) get the one-token request of `warm_up` and a model state poll."""
        started = time.perf_counter()
        state = await self.model_state(model_id)
        if state == "loaded":
            return 0.0
        if (
            state != "loading"
            and self.ttl is None
            and await self._native_chat_load(model_id, on_progress)
        ):
            self._models = None
            return time.perf_counter() - started
        if state != "loading":
            warm = asyncio.ensure_future(self.warm_up(model_id))
            try:
                while not warm.done():
                    await asyncio.wait({warm}, timeout=1.0)
                    on_progress(None)
                warm.result()
            finally:
                warm.cancel()
        else:
            while await self.model_state(model_id) == "loading":
                on_progress(None)
                await asyncio.sleep(1.0)
        self._models = None
        return time.perf_counter() - started

    async def _native_chat_load(self, model_id: str, on_progress: LoadProgress) -> bool:
        """A one-token native chat that reports the load; False where the route is missing."""
        body = {
            "model": model_id,
            "input": "Hi",
            "max_output_tokens": 1,
            "store": False,
            "stream": True,
        }
        url = f"{self.root}/api/v1/chat"
        decoder = SSEDecoder(self._bad, self.max_line_bytes)
        try:
            async with self._client.stream(
                "POST", url, json=body, headers=self._headers(stream=True)
            ) as response:
                try:
                    await self._raise_for_status(response)
                except ProviderError as error:
                    if no_load_route(error):
                        return False
                    raise
                if "event-stream" not in response.headers.get("content-type", ""):
                    raw = await self._read_bounded(response, self.max_error_bytes, cut=True)
                    parsed = self._parse_json(raw, response)
                    message = error_message(200, parsed)
                    if message is None:
                        return True  # a whole answer: the model is loaded
                    refused = classify(200, message, error_code(parsed), self._base_url)
                    if no_load_route(refused):
                        return False
                    raise refused
                async for chunk in response.aiter_bytes():
                    for event in decoder.feed(chunk):
                        if self._load_event(event.event, event.data, on_progress):
                            return True
        except httpx.HTTPError as exc:
            raise self._typed(exc, mid_stream=True) from None
        return True

    def _load_event(self, name: str | None, data: str, on_progress: LoadProgress) -> bool:
        """One `/api/v1/chat` event; True once the model is loaded (no need to read on)."""
        try:
            event = json.loads(data)
        except ValueError:
            return False
        if not isinstance(event, dict):
            return False
        kind = name or str(event.get("type") or "")
        if kind == "error" or (kind != "chat.end" and event.get("error")):
            message = error_message(200, event) or excerpt(data)
            raise classify(200, message, error_code(event), self._base_url)
        if kind == "model_load.progress":
            fraction = event.get("progress")
            on_progress(float(fraction) if isinstance(fraction, int | float) else None)
        elif kind == "model_load.start":
            on_progress(0.0)
        return kind in ("model_load.end", "prompt_processing.start", "message.start", "chat.end")
