"""The completion engine with a scripted in-process provider: debounce, supersede, cache,
type-through, stream reuse, early stop and cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import TypeVar

import pytest

from aigents_lsp.completion.cache import CacheKey, SuggestionCache
from aigents_lsp.completion.engine import CompletionEngine, CompletionRequest, Target
from aigents_lsp.completion.mode import decide_mode, indent_unit
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

T = TypeVar("T")


class ScriptedProvider(Provider):
    """Streams a fixed reply token by token; records prompts, closed and finished streams.
    With `hold_after`, every stream stops after that many tokens until `release` is set
    (`holding` tells it got there), so tests order events without timing them."""

    name = "scripted"

    def __init__(self, reply: str, delay: float = 0.0, hold_after: int | None = None) -> None:
        self.reply = reply
        self.delay = delay
        self.hold_after = hold_after
        self.holding = asyncio.Event()
        self.release = asyncio.Event()
        self.closed = asyncio.Event()  # a stream was closed before its end
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
            for number, token in enumerate(self.reply.split(" ")):
                if number == self.hold_after:
                    self.holding.set()
                    await self.release.wait()
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
                self.closed.set()

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


async def _without_waiting(task: asyncio.Future[T]) -> T:
    """The task's result, which must come within some turns of the event loop: no timer (a
    debounce of seconds) can fire in so few."""
    for _ in range(1000):
        if task.done():
            return task.result()
        await asyncio.sleep(0)
    task.cancel()
    raise AssertionError("not answered without waiting")


async def _entered(engine: CompletionEngine, requests: int) -> None:
    """Until the engine has taken `requests` requests (turns of the loop, no timing)."""
    for _ in range(1000):
        if engine.metrics.requests >= requests:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"the engine took {engine.metrics.requests} requests, not {requests}")


async def test_newer_request_supersedes_older_at_once() -> None:
    provider = ScriptedProvider("price * count", hold_after=0)
    engine = _engine(debounce_ms=5000)  # the first would wait seconds for a pause
    target = Target(provider, "m")
    first = asyncio.ensure_future(engine.complete(_request("total = p"), target))
    await _entered(engine, 1)
    second = asyncio.ensure_future(engine.complete(_request("total = ", invoked=True), target))
    assert await _without_waiting(first) is None  # empty at once, not after its debounce
    assert not second.done()  # while the newer one is still being generated
    provider.release.set()
    suggestion = await second
    assert suggestion is not None and suggestion.text == "price * count"
    assert len(provider.prompts) == 1  # the superseded one never reached the backend


async def test_cache_hit_and_type_through_skip_debounce_and_backend() -> None:
    provider = ScriptedProvider("price * count")
    engine = _engine(debounce_ms=5000)
    target = Target(provider, "m")
    first = await engine.complete(_request("total = ", invoked=True), target)
    assert first is not None and first.text == "price * count"
    for typed in ("p", "pr", "pri", "pric"):
        request = _request("total = " + typed)
        hit = await _without_waiting(asyncio.ensure_future(engine.complete(request, target)))
        assert hit is not None and hit.text == "price * count"[len(typed) :]
        assert hit.source == "cache"
    assert len(provider.prompts) == 1
    assert engine.metrics.cache_hits == 4


async def test_in_flight_stream_is_reused_when_typing_extends_it() -> None:
    provider = ScriptedProvider("price * count + tax", hold_after=1)
    engine = _engine()
    target = Target(provider, "m")
    first = asyncio.ensure_future(engine.complete(_request("total = "), target))
    await provider.holding.wait()  # debounce over, the stream sent "price "
    second = asyncio.ensure_future(engine.complete(_request("total = pr"), target))
    await _entered(engine, 2)
    provider.release.set()
    second = await second
    assert await first is None  # superseded
    assert second is not None and second.text == "ice * count + tax"
    assert second.source == "stream"
    assert len(provider.prompts) == 1
    assert engine.metrics.reused_streams == 1


async def test_incompatible_typing_cancels_the_stream() -> None:
    provider = ScriptedProvider("price * count + tax + more + words", hold_after=1)
    engine = _engine()
    target = Target(provider, "m")
    first = asyncio.ensure_future(engine.complete(_request("total = "), target))
    await provider.holding.wait()
    second = asyncio.ensure_future(engine.complete(_request("total = z"), target))
    assert await first is None
    await provider.closed.wait()  # the old stream was closed: the backend stops
    assert provider.closed_early == 1 and provider.finished == 0
    provider.release.set()
    await second
    assert len(provider.prompts) == 2


async def test_cancelling_the_request_closes_the_stream() -> None:
    provider = ScriptedProvider(" + ".join(["x"] * 50), hold_after=3)
    engine = _engine()
    task = asyncio.ensure_future(engine.complete(_request("y = "), Target(provider, "m")))
    await provider.holding.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await provider.closed.wait()  # after the adoption grace period, with nobody waiting
    assert provider.closed_early == 1
    assert provider.tokens_sent == 3


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


async def test_empty_answers_are_counted_by_their_cause() -> None:
    """`aigents.stats` says why a generation showed nothing: the model wrote nothing, or the
    post-processing rule that dropped what it wrote."""
    engine = _engine()
    above = "total = compute(1)\n"
    repeat = ScriptedProvider("total = compute(1)")
    assert await engine.complete(_request(above, invoked=True), Target(repeat, "m")) is None
    engine.close("file:///t.py")
    silent = ScriptedProvider("\n")
    assert await engine.complete(_request("x = ", invoked=True), Target(silent, "m")) is None
    snapshot = engine.metrics.snapshot()
    assert snapshot["empty"] == 2
    assert snapshot["empty_reasons"] == "drop_repeated_neighbours 1, model 1"
