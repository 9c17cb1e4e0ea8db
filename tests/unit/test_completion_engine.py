"""The completion engine with a scripted in-process provider: debounce, supersede, cache,
type-through, stream reuse, early stop and cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from aigents_lsp.completion.cache import CacheKey, SuggestionCache
from aigents_lsp.completion.engine import (
    CompletionEngine,
    CompletionRequest,
    Target,
    decide_mode,
    indent_unit,
)
from aigents_lsp.config import Settings
from aigents_lsp.providers.base import (
    ChatParams,
    CompletionParams,
    CompletionResult,
    HealthReport,
    ModelInfo,
    Provider,
    StreamDelta,
)


class ScriptedProvider(Provider):
    """Streams a fixed reply token by token; records prompts, closed and finished streams."""

    name = "scripted"

    def __init__(self, reply: str, delay: float = 0.0) -> None:
        self.reply = reply
        self.delay = delay
        self.prompts: list[str] = []
        self.closed_early = 0
        self.finished = 0
        self.tokens_sent = 0

    @property
    def base_url(self) -> str:
        return "scripted://"

    async def _tokens(self, params: CompletionParams) -> AsyncIterator[StreamDelta]:
        self.prompts.append(params.prompt)
        done = False
        try:
            for token in self.reply.split(" "):
                await asyncio.sleep(self.delay)
                piece = token + " " if token is not self.reply.split(" ")[-1] else token
                stop = next((s for s in params.stop if s in piece), None)
                if stop is not None:
                    piece = piece.split(stop, 1)[0]
                    self.tokens_sent += 1
                    yield StreamDelta(text=piece)
                    break
                self.tokens_sent += 1
                yield StreamDelta(text=piece)
            done = True
            self.finished += 1
        finally:
            if not done:
                self.closed_early += 1

    def stream_complete(self, params: CompletionParams) -> AsyncIterator[StreamDelta]:
        return self._tokens(params)

    async def complete(self, params: CompletionParams) -> CompletionResult:
        raise NotImplementedError

    async def chat(self, params: ChatParams) -> CompletionResult:
        raise NotImplementedError

    def stream_chat(self, params: ChatParams) -> AsyncIterator[StreamDelta]:
        raise NotImplementedError

    async def embed(self, texts: Sequence[str], model: str | None = None) -> list[list[float]]:
        raise NotImplementedError

    async def list_models(self) -> list[ModelInfo]:
        return []

    async def health(self) -> HealthReport:
        return HealthReport(ok=True, base_url=self.base_url, backend="scripted")


def _engine(**settings: object) -> CompletionEngine:
    values = Settings.model_validate({"debounce_ms": 40, "adaptive_debounce": False, **settings})
    return CompletionEngine(lambda: values)


def _request(prefix: str, suffix: str = "\n", *, invoked: bool = False) -> CompletionRequest:
    lines = prefix.split("\n")
    return CompletionRequest(
        uri="file:///t.py",
        version=1,
        prefix=prefix,
        suffix=suffix,
        line=len(lines) - 1,
        column=len(lines[-1]),
        language_id="python",
        invoked=invoked,
    )


def test_mode_decisions() -> None:
    assert decide_mode("def f(x):\n    ", "\n", invoked=False) == "multi"
    assert decide_mode('def f(x):\n    """Doc."""\n    ', "\n", invoked=False) == "multi"
    assert decide_mode("x = foo(", ")\n", invoked=False) == "single"
    assert decide_mode("x = 1\n", "", invoked=False) == "single"
    assert decide_mode("x = ", "compute(a, b)\n", invoked=False) is None
    assert decide_mode("x = ", "compute(a, b)\n", invoked=True) == "single"


def test_indent_unit_from_the_document() -> None:
    assert indent_unit("def f():\n\tif x:\n\t\treturn 1\n") == "\t"
    assert indent_unit("def f():\n  if x:\n    return 1\n") == "  "
    assert indent_unit("x = 1\n") == "    "


def test_cache_exact_and_type_through() -> None:
    cache = SuggestionCache()
    key = CacheKey.of("m", "t", "total = ", "\n")
    cache.put("u", key, "price * count")
    assert cache.get("u", key).text == "price * count"  # type: ignore[union-attr]
    hit = cache.get("u", CacheKey.of("m", "t", "total = pri", "\n"))
    assert hit is not None and hit.text == "ce * count" and hit.typed == "pri"
    assert cache.get("u", CacheKey.of("m", "t", "total = pro", "\n")) is None
    assert cache.get("u", CacheKey.of("m", "t", "total = pri", ")\n")) is None  # other suffix
    assert cache.get("other", CacheKey.of("m", "t", "total = pri", "\n")) is None


async def test_newer_request_supersedes_older_at_once() -> None:
    provider = ScriptedProvider("price * count")
    engine = _engine()
    target = Target(provider, "m")
    first = asyncio.ensure_future(engine.complete(_request("total = p"), target))
    await asyncio.sleep(0.005)
    second = asyncio.ensure_future(engine.complete(_request("total = "), target))
    assert await asyncio.wait_for(first, 0.02) is None  # answered empty at once
    suggestion = await second
    assert suggestion is not None and suggestion.text == "price * count"
    assert len(provider.prompts) == 1  # the superseded one never reached the backend


async def test_cache_hit_and_type_through_skip_debounce_and_backend() -> None:
    provider = ScriptedProvider("price * count")
    engine = _engine(debounce_ms=500)
    target = Target(provider, "m")
    first = await engine.complete(_request("total = ", invoked=True), target)
    assert first is not None and first.text == "price * count"
    loop = asyncio.get_running_loop()
    for typed in ("p", "pr", "pri", "pric"):
        started = loop.time()
        hit = await engine.complete(_request("total = " + typed), target)
        assert hit is not None and hit.text == "price * count"[len(typed) :]
        assert hit.source == "cache"
        assert loop.time() - started < 0.05
    assert len(provider.prompts) == 1
    assert engine.metrics.cache_hits == 4


async def test_in_flight_stream_is_reused_when_typing_extends_it() -> None:
    provider = ScriptedProvider("price * count + tax", delay=0.02)
    engine = _engine()
    target = Target(provider, "m")
    first = asyncio.ensure_future(engine.complete(_request("total = "), target))
    await asyncio.sleep(0.1)  # debounce over, the stream runs
    second = await engine.complete(_request("total = pr"), target)
    assert await first is None  # superseded
    assert second is not None and second.text == "ice * count + tax"
    assert second.source == "stream"
    assert len(provider.prompts) == 1
    assert engine.metrics.reused_streams == 1


async def test_incompatible_typing_cancels_the_stream() -> None:
    provider = ScriptedProvider("price * count + tax + more + words", delay=0.02)
    engine = _engine()
    target = Target(provider, "m")
    first = asyncio.ensure_future(engine.complete(_request("total = "), target))
    await asyncio.sleep(0.1)
    second = asyncio.ensure_future(engine.complete(_request("total = z"), target))
    assert await first is None
    await asyncio.sleep(0.01)
    assert provider.closed_early == 1  # the old stream was closed: the backend stops
    await second
    assert len(provider.prompts) == 2


async def test_cancelling_the_request_closes_the_stream() -> None:
    provider = ScriptedProvider(" + ".join(["x"] * 50), delay=0.02)
    engine = _engine()
    task = asyncio.ensure_future(engine.complete(_request("y = "), Target(provider, "m")))
    await asyncio.sleep(0.12)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.1)  # the adoption grace period
    assert provider.closed_early == 1
    assert provider.tokens_sent < 50


async def test_single_line_stops_the_stream_at_the_newline() -> None:
    provider = ScriptedProvider("a + b\n    more lines\n    and more")
    engine = _engine()
    suggestion = await engine.complete(_request("x = ", invoked=True), Target(provider, "m"))
    assert suggestion is not None and suggestion.text == "a + b"


async def test_fim_prompt_for_a_coder_model() -> None:
    provider = ScriptedProvider("a + b")
    engine = _engine()
    target = Target(provider, "qwen2.5-coder-7b-instruct")
    await engine.complete(_request("x = ", "\ny = 2", invoked=True), target)
    assert provider.prompts[0].startswith("<|fim_prefix|>")
    assert provider.prompts[0].endswith("<|fim_middle|>")
