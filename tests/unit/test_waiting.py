"""`StreamWatch`: the deadlines of one streamed answer, driven by gated fake byte sources
(an `asyncio.Event` holds the bytes back; the deadlines are a few hundredths of a second)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from aigents_lsp.providers import waiting
from aigents_lsp.providers.errors import BackendHung, FirstTokenTimeout, StreamStalled
from aigents_lsp.providers.waiting import (
    WAIT_POLICY,
    WAIT_TRACKER,
    StreamWatch,
    WaitPolicy,
    WaitTracker,
)

FRAME = b'data: {"choices":[{"index":0,"text":"x"}]}\n\n'


async def frames(count: int, then: asyncio.Event | None = None) -> AsyncIterator[bytes]:
    """`count` frames at once, then (with `then`) nothing until it is set."""
    for _ in range(count):
        yield FRAME
    if then is not None:
        await then.wait()


async def drive(watch: StreamWatch, source: AsyncIterator[bytes]) -> int:
    """Read like the provider does: each frame is a token. Returns the tokens read."""
    tokens = 0
    async for chunk in watch.chunks(source):
        got = chunk.count(b"\n\n")
        tokens += got
        watch.progressed(got)
    return tokens


def watch(policy: WaitPolicy, probe: object = None) -> StreamWatch:
    WAIT_POLICY.set(policy)
    return StreamWatch(
        where="LM Studio at http://127.0.0.1:1/v1",
        base_url="http://127.0.0.1:1/v1",
        model="m",
        probe=probe,  # type: ignore[arg-type]
    )


async def test_a_stream_that_stops_after_tokens_is_stalled() -> None:
    never = asyncio.Event()
    with pytest.raises(StreamStalled) as raised:
        await drive(watch(WaitPolicy(stall=0.05)), frames(3, never))
    assert "after 3 tokens" in str(raised.value)


async def test_no_first_token_from_a_loaded_model() -> None:
    never = asyncio.Event()
    with pytest.raises(FirstTokenTimeout):
        await drive(watch(WaitPolicy(first_token=0.05, hung_probe_after=None)), frames(0, never))


async def test_a_server_that_does_not_answer_its_model_list_is_hung(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    never = asyncio.Event()

    async def probe() -> str | None:
        await never.wait()  # the model list hangs too
        return "loaded"

    monkeypatch.setattr(waiting, "PROBE_TIMEOUT_SECONDS", 0.05)
    with pytest.raises(BackendHung) as raised:
        await drive(watch(WaitPolicy(hung_probe_after=0.02), probe), frames(0, never))
    assert "model list does not answer" in str(raised.value)


async def test_loading_time_is_not_counted_against_the_first_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loaded = asyncio.Event()
    states: list[str] = []

    async def probe() -> str | None:
        # loading for three probes (well past first_token), then loaded: the bytes follow
        state = "loading" if len(states) < 3 else "loaded"
        states.append(state)
        if state == "loaded":
            loaded.set()
        return state

    async def after_load() -> AsyncIterator[bytes]:
        await loaded.wait()
        yield FRAME

    monkeypatch.setattr(waiting, "LOAD_POLL_SECONDS", 0.03)
    policy = WaitPolicy(first_token=0.05, hung_probe_after=0.01, load=10)
    assert await drive(watch(policy, probe), after_load()) == 1
    assert states[:3] == ["loading"] * 3


async def test_slow_but_steady_is_never_cut() -> None:
    async def steady() -> AsyncIterator[bytes]:
        for _ in range(10):
            await asyncio.sleep(0.01)  # one token every 10 ms, the stall limit is 50 ms
            yield FRAME

    policy = WaitPolicy(first_token=0.05, stall=0.05)
    assert await drive(watch(policy), steady()) == 10


async def test_dripping_bytes_without_a_frame_count_as_stalled() -> None:
    async def drip() -> AsyncIterator[bytes]:
        while True:
            await asyncio.sleep(0.005)
            yield b"d"  # bytes, never a complete line

    with pytest.raises(StreamStalled) as raised:
        await drive(watch(WaitPolicy(stall=0.05)), drip())
    assert "no complete token" in str(raised.value)


async def test_the_tracker_says_what_was_waited_for() -> None:
    tracker = WaitTracker()
    WAIT_TRACKER.set(tracker)
    never = asyncio.Event()
    watched = watch(WaitPolicy(first_token=0.05, hung_probe_after=None))
    with pytest.raises(FirstTokenTimeout):
        await drive(watched, frames(0, never))
    watched.end()  # failed: the tracker still says what was waited for
    assert tracker.active == 0 and tracker.finished == 1
    assert tracker.describe().startswith("the first token from LM Studio at http://127.0.0.1:1")
    answered = watch(WaitPolicy())
    await drive(answered, frames(2))
    answered.end(answered=True)
    assert tracker.describe().startswith("the editor")  # the model had answered


def paced(count: int, every: float) -> AsyncIterator[bytes]:
    async def source() -> AsyncIterator[bytes]:
        for _ in range(count):
            await asyncio.sleep(every)
            yield FRAME

    return source()


async def test_far_below_the_usual_speed_ends_the_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A token now and then (each within `stall`) never trips the stall rule; far below the
    speed this model usually streams at, over a whole `stall` window, ends it."""
    monkeypatch.setattr(waiting, "SLOW_MAX_RATE", 1000.0)  # the rates here are test-sized
    speeds = waiting.SpeedMemory()
    speeds.note("m", 500.0)  # this model usually streams 500 tokens/s
    WAIT_POLICY.set(WaitPolicy(stall=0.2))
    slow = StreamWatch(where="LM Studio at x", base_url="x", model="m", probe=None, speeds=speeds)
    with pytest.raises(StreamStalled) as raised:
        await drive(slow, paced(40, 0.12))  # <= 10 tokens/s: under a tenth of 500
    assert "far below the model's usual 500 tokens/s" in str(raised.value)


async def test_a_model_that_is_always_slow_is_never_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(waiting, "SLOW_MAX_RATE", 1000.0)
    speeds = waiting.SpeedMemory()
    WAIT_POLICY.set(WaitPolicy(stall=0.5))
    for _ in range(2):  # the first answer teaches its speed; the second is as slow: not cut
        steady = StreamWatch(where="x", base_url="x", model="m", probe=None, speeds=speeds)
        assert await drive(steady, paced(12, 0.06)) == 12
        steady.end(answered=True)
    usual = speeds.usual("m")
    assert usual is not None and usual < 20
    assert speeds.usual("other") is None
