"""Any server that speaks the OpenAI API (LM Studio, llama.cpp, vLLM...) over one httpx client.

Every generation is streamed, also behind `complete` and `chat`: closing the stream (task
cancelled, or the consumer leaves `contextlib.aclosing`) closes the HTTP response at once, and
the backend stops generating. Every httpx failure becomes a typed `ProviderError` (the HTTP
plumbing, its base `OpenAIHttp`, is in providers/openai_http.py).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any, Literal

import httpx

from aigents_lsp.addresses import is_loopback
from aigents_lsp.providers.base import (
    ChatParams,
    CompletionParams,
    CompletionResult,
    HealthReport,
    ModelInfo,
    ProviderError,
    SpeedStats,
    StreamDelta,
)
from aigents_lsp.providers.bodies import embeddings_from_body, models_from_body
from aigents_lsp.providers.http_pool import reclaim_orphaned_connections
from aigents_lsp.providers.native import NativeStreamParser, Translate
from aigents_lsp.providers.openai_http import OpenAIHttp
from aigents_lsp.providers.openai_wire import MAX_BODY_BYTES, StreamParser, collect
from aigents_lsp.providers.sse import MAX_LINE_BYTES
from aigents_lsp.providers.waiting import Probe, SpeedMemory, StreamWatch

log = logging.getLogger(__name__)

Task = Literal["completion", "chat", "embedding"]
_SSE_STARTS = (b"data:", b"event:", b"id:", b"retry:", b":")


def _looks_like_sse(head: bytes) -> bool:
    return head.lstrip().startswith(_SSE_STARTS)


class OpenAICompatibleProvider(OpenAIHttp):
    """A provider for any OpenAI-compatible HTTP server; `LMStudioProvider` builds on it."""

    backend_label = "the OpenAI-compatible server"
    """How hints name the backend ("LM Studio at http://…")."""
    health_backend = "openai-compatible"
    max_line_bytes = MAX_LINE_BYTES
    max_body_bytes = MAX_BODY_BYTES
    max_error_bytes = 64 << 10
    embed_batch_size = 32
    """Most texts in one `/embeddings` request."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        connect_timeout: float = 3.0,
        read_timeout: float = 600.0,
        client: httpx.AsyncClient | None = None,
        extra_body: Mapping[str, Any] | None = None,
        name: str = "openai-compatible",
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key or None
        self._read_timeout = read_timeout
        self._extra_body = dict(extra_body or {})
        self._owns_client = client is None
        # Keep-alive shorter than LM Studio's (Express: 5 s) so a pooled connection is never
        # reused just as the server closes it.
        self._client = client or reclaim_orphaned_connections(
            httpx.AsyncClient(
                timeout=httpx.Timeout(
                    connect=connect_timeout, read=read_timeout, write=30.0, pool=5.0
                ),
                limits=httpx.Limits(max_connections=16, keepalive_expiry=4.0),
            )
        )
        self._last_stats: SpeedStats | None = None
        self._speeds = SpeedMemory()  # each model's usual streaming speed (the slow rule)
        self._tokenize_missing = False
        self.name = name

    def __repr__(self) -> str:
        key = "'***'" if self._api_key else "None"
        return (
            f"{type(self).__name__}(base_url={self._base_url!r}, name={self.name!r}, api_key={key})"
        )

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def local(self) -> bool:
        return is_loopback(self._base_url)

    @property
    def last_stats(self) -> SpeedStats | None:
        """Speed of the last finished generation (the backend's numbers, else measured)."""
        return self._last_stats

    # --- generation -----------------------------------------------------------------------

    async def complete(self, params: CompletionParams) -> CompletionResult:
        async with contextlib.aclosing(self.stream_complete(params)) as stream:
            return collect([delta async for delta in stream])

    async def chat(self, params: ChatParams) -> CompletionResult:
        async with contextlib.aclosing(self.stream_chat(params)) as stream:
            return collect([delta async for delta in stream])

    async def stream_complete(self, params: CompletionParams) -> AsyncGenerator[StreamDelta, None]:
        """`POST {base}/completions` with a raw prompt (no chat template), streamed."""
        model = await self._model_for("completion", params.model)
        body: dict[str, Any] = {
            "prompt": params.prompt,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.top_p is not None:
            body["top_p"] = params.top_p
        if params.seed is not None:
            body["seed"] = params.seed
        if params.grammar is not None and self.supports_grammar:
            body["grammar"] = params.grammar
        async with contextlib.aclosing(self._stream("completions", model, body)) as stream:
            async for delta in stream:
                yield delta

    async def stream_chat(self, params: ChatParams) -> AsyncGenerator[StreamDelta, None]:
        """`POST {base}/chat/completions`, streamed with usage."""
        model = await self._model_for("chat", params.model)
        body: dict[str, Any] = {
            "messages": [message.to_wire() for message in params.messages],
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.tools:
            body["tools"] = [tool.to_wire() for tool in params.tools]
        if params.tool_choice is not None:
            body["tool_choice"] = params.tool_choice
        if params.response_format is not None:
            body["response_format"] = params.response_format
        if params.seed is not None:
            body["seed"] = params.seed
        body["stream_options"] = {"include_usage": True}
        async with contextlib.aclosing(self._stream("chat/completions", model, body)) as stream:
            async for delta in stream:
                yield delta

    async def _stream(
        self, path: str, model: str | None, body: dict[str, Any]
    ) -> AsyncGenerator[StreamDelta, None]:
        if model:
            body = {"model": model, **body}
        body = {**body, **self._extra_body, "stream": True}
        parser = StreamParser(
            self._base_url,
            backend=self.backend_label,
            max_line_bytes=self.max_line_bytes,
            max_body_bytes=self.max_body_bytes,
        )
        responded = False
        log.debug("POST %s (stream, model %s)", self._url(path), model)
        watch = self._watch(model)
        try:
            async with contextlib.AsyncExitStack() as stack:
                response = await watch.opening(
                    stack.enter_async_context(
                        self._client.stream(
                            "POST", self._url(path), json=body, headers=self._headers(stream=True)
                        )
                    )
                )
                responded = True
                await self._raise_for_status(response)
                # "sse" | "json" | None (undecided: some servers send SSE with another type)
                mode = "sse" if "event-stream" in response.headers.get("content-type", "") else None
                buffer = bytearray()
                async for chunk in watch.chunks(response.aiter_bytes()):
                    if mode != "sse":
                        buffer += chunk
                        if len(buffer) > self.max_body_bytes:
                            raise parser.bad(
                                f"the answer is larger than {self.max_body_bytes} bytes"
                            )
                        if mode is None and len(buffer.lstrip()) >= 8:
                            mode = "sse" if _looks_like_sse(bytes(buffer)) else "json"
                        if mode != "sse":
                            continue
                        chunk, buffer = bytes(buffer), bytearray()
                    deltas = parser.feed(chunk)
                    watch.progressed(len(deltas))
                    for delta in deltas:
                        yield self._seen(delta)
                    if parser.done:
                        return
                if mode == "sse" or (mode is None and _looks_like_sse(bytes(buffer))):
                    deltas = parser.feed(bytes(buffer)) + parser.close()
                else:
                    # An error or a whole completion sent as plain JSON (often with HTTP 200).
                    deltas = parser.feed_json(self._parse_json(bytes(buffer), response))
                for delta in deltas:
                    yield self._seen(delta)
        except (httpx.HTTPError, ProviderError) as exc:
            raise self._typed(exc, mid_stream=responded)  # noqa: B904 - chained in _typed
        finally:
            watch.end(answered=parser.done)

    async def _native_stream(
        self, url: str, body: dict[str, Any], translate: Translate, *, framing: str
    ) -> AsyncGenerator[StreamDelta, None]:
        """A stream in the backend's own format (llama.cpp `/infill`, Ollama `/api/generate`)."""
        parser = NativeStreamParser(
            translate,
            framing=framing,
            base_url=self._base_url,
            backend=self.backend_label,
            max_line_bytes=self.max_line_bytes,
            max_body_bytes=self.max_body_bytes,
        )
        responded = False
        log.debug("POST %s (native stream, model %s)", url, body.get("model"))
        watch = self._watch(body.get("model"))
        try:
            async with contextlib.AsyncExitStack() as stack:
                response = await watch.opening(
                    stack.enter_async_context(
                        self._client.stream(
                            "POST", url, json=body, headers=self._headers(stream=True)
                        )
                    )
                )
                responded = True
                await self._raise_for_status(response)
                async for chunk in watch.chunks(response.aiter_bytes()):
                    deltas = parser.feed(chunk)
                    watch.progressed(len(deltas))
                    for delta in deltas:
                        yield self._seen(delta)
                    if parser.done:
                        return
                for delta in parser.close():
                    yield self._seen(delta)
        except (httpx.HTTPError, ProviderError) as exc:
            raise self._typed(exc, mid_stream=responded)  # noqa: B904 - chained in _typed
        finally:
            watch.end(answered=parser.done)

    def _watch(self, model: object) -> StreamWatch:
        """A streamed request under its deadlines (first token, stall, hung)."""
        name = model if isinstance(model, str) and model else None
        return StreamWatch(
            where=f"{self.backend_label} at {self._base_url}",
            base_url=self._base_url,
            model=name,
            probe=self._liveness_probe(name),
            speeds=self._speeds,
        )

    def _liveness_probe(self, model: str | None) -> Probe:
        """While no token comes: does the server still answer its model list, and is the
        model loaded? (A busy server answers it; a hung one does not.)"""

        async def probe() -> str | None:
            models = await self.list_models()
            found = next((m for m in models if m.id == model), None) if model else None
            state = found.state if found is not None else None
            return None if state in (None, "unknown") else state

        return probe

    def _seen(self, delta: StreamDelta) -> StreamDelta:
        if delta.stats is not None:
            self._last_stats = delta.stats
        return delta

    # --- other operations -----------------------------------------------------------------

    async def embed(self, texts: Sequence[str], model: str | None = None) -> list[list[float]]:
        """`POST {base}/embeddings`: one vector per text, in order; at most
        `embed_batch_size` texts per request (servers cap the body and the batch)."""
        if not texts:
            return []
        model = await self._model_for("embedding", model)
        vectors: list[list[float]] = []
        size = max(1, self.embed_batch_size)
        for start in range(0, len(texts), size):
            vectors += await self._embed_batch(texts[start : start + size], model)
        return vectors

    async def _embed_batch(self, texts: Sequence[str], model: str | None) -> list[list[float]]:
        body: dict[str, Any] = {"input": list(texts), **self._embedding_extra()}
        if model:
            body["model"] = model
        vectors = embeddings_from_body(
            await self._request_json("POST", "embeddings", body), len(texts)
        )
        if isinstance(vectors, str):
            raise self._bad(vectors)
        return vectors

    async def list_models(self) -> list[ModelInfo]:
        """`GET {base}/models`."""
        models = models_from_body(await self._request_json("GET", "models"))
        if models is None:
            raise self._bad("the model list has no `data` array")
        return models

    async def health(self) -> HealthReport:
        """Whether the server answers the model list properly (an HTTP 200 error is not ok)."""
        started = time.perf_counter()
        try:
            models = await self.list_models()
        except ProviderError as error:
            return HealthReport(False, self._base_url, self.health_backend, message=str(error))
        loaded = sum(1 for model in models if model.state == "loaded")
        return HealthReport(
            ok=True,
            base_url=self._base_url,
            backend=self.health_backend,
            message=f"{len(models)} model(s), {loaded} loaded",
            models=tuple(models),
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    async def count_tokens(self, text: str, model: str | None = None) -> int | None:
        """`POST /tokenize` at the server root (llama.cpp, vLLM) answering a `tokens` list;
        None (remembered) where there is none."""
        if self._tokenize_missing:
            return None
        root = self._base_url.removesuffix("/v1")
        try:
            request = await self._tokenize_body(text, model)
            body = await self._request_json("POST", f"{root}/tokenize", request)
        except ProviderError as error:
            if error.kind in ("wrong_route", "invalid_request", "bad_response"):
                self._tokenize_missing = True
            return None
        tokens = body.get("tokens") if isinstance(body, dict) else None
        if not isinstance(tokens, list):
            self._tokenize_missing = True
            return None
        return len(tokens)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    # --- hooks for subclasses ---------------------------------------------------------------

    async def _model_for(self, task: Task, model: str | None) -> str | None:
        """The model to send when the caller gave `model` (None: let the server pick)."""
        return model

    async def _tokenize_body(self, text: str, model: str | None) -> dict[str, Any]:
        """The `/tokenize` request (llama.cpp's shape)."""
        return {"content": text}

    def _embedding_extra(self) -> dict[str, Any]:
        """Extra fields for embedding requests (generation requests get `extra_body`)."""
        return {}
