"""The completion engine under interleavings (issue 16): gated on events, never on sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aigents_lsp.completion.context import CHARS_PER_TOKEN
from aigents_lsp.completion.engine import CompletionEngine
from aigents_lsp.completion.request import CompletionRequest, Target
from aigents_lsp.config import Settings
from aigents_lsp.providers.base import (
    CompletionParams,
    StreamDelta,
)
from tests.unit.stub_provider import StubProvider

CODE = "\n".join(f"value_{i} = compute(value_{i - 1}, {i})" for i in range(60))


class SlowTokenizer(StubProvider):
    """The first `/tokenize` waits for `release`; later ones answer at once. Completions
    answer with the prompt's last line number, so each request's own answer is known."""

    name = "slow-tokenizer"

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.asked = asyncio.Event()
        self.counts = 0
        self.generations: list[str] = []
        self.answers: list[int | None] = []

    async def count_tokens(self, text: str, model: str | None = None) -> int | None:
        self.counts += 1
        self.asked.set()
        if self.counts == 1:
            await self.release.wait()
        return self.answers.pop(0) if self.answers else len(text) // 4

    async def stream_complete(self, params: CompletionParams) -> AsyncIterator[StreamDelta]:
        self.generations.append(params.prompt)
        yield StreamDelta(text=f"answer_{params.prompt.count(chr(10))}")
        yield StreamDelta(text="\n", finish_reason="stop")


def _request(lines: int) -> CompletionRequest:
    prefix = "\n".join(CODE.split("\n")[:lines]) + "\nresult = "
    return CompletionRequest("file:///r.py", 1, prefix, "\n", line=lines, column=9)


async def test_a_request_superseded_during_calibration_does_not_cancel_the_newer_one() -> None:
    """Issue 16, 2(a): the stale request, resuming after its tokenizer call, used to start a
    generation that cancelled the newer request's: the newest request got nothing."""
    provider = SlowTokenizer()
    engine = CompletionEngine(lambda: Settings(debounce_ms=0, completion_prefill_lines=0))
    target = Target(provider=provider, model="m")
    stale = asyncio.ensure_future(engine.complete(_request(40), target))
    await provider.asked.wait()  # the stale request waits in /tokenize
    newest = await engine.complete(_request(50), target)  # its own calibration answers at once
    provider.release.set()
    assert await stale is None  # superseded, and it started nothing
    assert newest is not None and newest.text == "answer_50"
    assert len(provider.generations) == 1


async def test_a_failed_calibration_is_tried_again_later(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Issue 16, 6: one failed or too short calibration used to keep the estimate forever."""
    from aigents_lsp.completion import engine as engine_module

    clock = [1000.0]
    monkeypatch.setattr(engine_module.time, "monotonic", lambda: clock[0])
    provider = SlowTokenizer()
    provider.release.set()
    provider.answers = [0, 250]  # the first count fails, the second works
    engine = CompletionEngine(lambda: Settings())
    target = Target(provider=provider, model="m")
    assert await engine._chars_per_token(target, "x = 1") == CHARS_PER_TOKEN  # too short
    assert provider.counts == 0  # ...so not even asked, and not remembered
    sample = CODE * 2
    assert await engine._chars_per_token(target, sample) == CHARS_PER_TOKEN  # failed
    assert await engine._chars_per_token(target, sample) == CHARS_PER_TOKEN  # not yet again
    assert provider.counts == 1
    clock[0] += 31
    measured = await engine._chars_per_token(target, sample)
    assert provider.counts == 2 and measured == min(max(len(sample[-6000:]) / 250, 1.5), 6.0)


async def test_an_earlier_request_reaching_the_engine_later_does_not_supersede_the_newer() -> None:
    """The LSP layer takes each request's ticket when the editor asks; choosing the model
    awaits, so an earlier request can reach the engine after a later one (seen with Neovim
    0.12, which never cancels). It ends there, and the later request is served."""
    provider = SlowTokenizer()
    engine = CompletionEngine(lambda: Settings(debounce_ms=0, completion_prefill_lines=0))
    target = Target(provider=provider, model="m")
    earlier = engine.scheduler.enter("file:///r.py")
    later = engine.scheduler.enter("file:///r.py")
    newest = asyncio.ensure_future(engine.complete(_request(50), target, later))
    await provider.asked.wait()  # the later request is in the engine, in /tokenize
    assert await engine.complete(_request(40), target, earlier) is None  # ends at once
    provider.release.set()
    suggestion = await newest
    assert suggestion is not None and suggestion.text == "answer_50"
    assert len(provider.generations) == 1 and engine.metrics.superseded == 1
