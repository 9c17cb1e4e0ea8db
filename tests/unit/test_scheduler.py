"""`DocumentScheduler` and `Generation`, driven by fake backend runs gated on events: every
interleaving is made to happen in a known order, with no sleeps and no timing."""

from __future__ import annotations

import asyncio

import pytest

from aigents_lsp.completion.scheduler import DocumentScheduler, Generation, Superseded

URI = "file:///doc.py"


class FakeRun:
    """A backend stream that answers `text` when `release` is set; cancelled, it "closes its
    HTTP stream" until `closed` is set (the window in which it is being cancelled)."""

    def __init__(self, text: str = "return x") -> None:
        self.text = text
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.closed = asyncio.Event()
        self.close_interrupted = False

    async def __call__(self, generation: Generation) -> str | None:
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            try:
                await self.closed.wait()
            except asyncio.CancelledError:
                self.close_interrupted = True
            raise
        generation.partial.append(self.text)
        return self.text


def generation(prefix: str = "def f(x):\n    ", column: int = 4) -> Generation:
    return Generation(URI, 1, column, prefix, "", "model")


async def started(scheduler: DocumentScheduler, run: FakeRun, **kwargs: object) -> Generation:
    found = scheduler.start(generation(**kwargs), run)  # type: ignore[arg-type]
    await run.started.wait()
    return found


async def finish(run: FakeRun, current: Generation) -> None:
    """Let a run end (a task left waiting would hang the loop's teardown)."""
    run.release.set()
    run.closed.set()
    assert current.task is not None
    await asyncio.gather(current.task, return_exceptions=True)


async def test_wait_answers_the_generations_text() -> None:
    scheduler = DocumentScheduler()
    run = FakeRun()
    ticket = scheduler.enter(URI)
    current = await started(scheduler, run)
    waiting = asyncio.ensure_future(scheduler.wait(URI, ticket, current))
    run.release.set()
    assert await waiting == "return x"
    assert URI not in scheduler.generations  # forgotten once done


async def test_a_newer_request_ends_the_debounce_of_the_older_at_once() -> None:
    scheduler = DocumentScheduler()
    old = scheduler.enter(URI)
    debouncing = asyncio.ensure_future(scheduler.debounce(URI, old, 3600))
    await asyncio.sleep(0)  # let it start waiting
    scheduler.enter(URI)
    with pytest.raises(Superseded):
        await debouncing


async def test_a_newer_request_supersedes_the_one_waiting() -> None:
    scheduler = DocumentScheduler()
    run = FakeRun()
    old = scheduler.enter(URI)
    current = await started(scheduler, run)
    waiting = asyncio.ensure_future(scheduler.wait(URI, old, current))
    await asyncio.sleep(0)
    new = scheduler.enter(URI)
    with pytest.raises(Superseded):
        await waiting
    # the generation lives on for the newer request, which adopts it
    assert current.adoptable_by(1, 4, "def f(x):\n    ", "", "model") == ""
    assert scheduler.current(URI, new)
    await finish(run, current)


async def test_typing_that_matches_the_stream_adopts_it() -> None:
    scheduler = DocumentScheduler()
    run = FakeRun()
    current = await started(scheduler, run)
    current.partial.append("ret")
    assert current.adoptable_by(1, 6, "def f(x):\n    re", "", "model") == "re"
    assert current.adoptable_by(1, 6, "def f(x):\n    pa", "", "model") is None  # disagrees
    assert current.adoptable_by(2, 6, "def f(x):\n    re", "", "model") is None  # other line
    assert current.adoptable_by(1, 6, "def f(x):\n    re", "", "other") is None  # other model
    await finish(run, current)


async def test_a_generation_being_cancelled_is_not_adopted() -> None:
    """The window between `cancel()` and the task's end (it is closing its HTTP stream): a
    request arriving then must start its own generation, not wait on one that never answers."""
    scheduler = DocumentScheduler()
    run = FakeRun()
    current = await started(scheduler, run)
    current.cancel()
    await run.cancelled.wait()
    assert current.task is not None and not current.task.done()  # still closing
    assert current.adoptable_by(1, 4, "def f(x):\n    ", "", "model") is None
    run.closed.set()
    with pytest.raises(asyncio.CancelledError):
        await current.task


async def test_cancel_is_sent_once_so_the_stream_closes_undisturbed() -> None:
    scheduler = DocumentScheduler()
    run = FakeRun()
    current = await started(scheduler, run)
    current.cancel()
    await run.cancelled.wait()
    current.cancel()
    scheduler.close(URI)
    run.closed.set()
    assert current.task is not None
    with pytest.raises(asyncio.CancelledError):
        await current.task
    assert not run.close_interrupted


async def test_start_cancels_the_generation_it_replaces() -> None:
    scheduler = DocumentScheduler()
    first, second = FakeRun("a"), FakeRun("b")
    old = await started(scheduler, first)
    new = await started(scheduler, second, prefix="def g(x):\n    ")
    await first.cancelled.wait()
    first.closed.set()
    assert scheduler.generations[URI] is new
    ticket = scheduler.enter(URI)
    waiting = asyncio.ensure_future(scheduler.wait(URI, ticket, new))
    second.release.set()
    assert await waiting == "b"
    assert old.task is not None and old.task.cancelled()


async def test_nobody_waiting_cancels_the_generation_after_the_grace() -> None:
    scheduler = DocumentScheduler()
    run = FakeRun()
    ticket = scheduler.enter(URI)
    current = await started(scheduler, run)
    waiting = asyncio.ensure_future(scheduler.wait(URI, ticket, current))
    await asyncio.sleep(0)
    waiting.cancel()  # the editor cancelled the request ($/cancelRequest)
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await run.cancelled.wait()  # the grace ran out with nobody holding it
    run.closed.set()


async def test_a_request_holding_it_within_the_grace_keeps_it() -> None:
    scheduler = DocumentScheduler()
    run = FakeRun()
    old = scheduler.enter(URI)
    current = await started(scheduler, run)
    waiting = asyncio.ensure_future(scheduler.wait(URI, old, current))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    new = scheduler.enter(URI)  # the next request, in the same turn of the loop
    adopted = asyncio.ensure_future(scheduler.wait(URI, new, current))
    await asyncio.sleep(0)
    run.release.set()
    assert await adopted == "return x"
    assert not run.cancelled.is_set()


async def test_closing_the_document_wakes_its_requests() -> None:
    scheduler = DocumentScheduler()
    run = FakeRun()
    ticket = scheduler.enter(URI)
    current = await started(scheduler, run)
    waiting = asyncio.ensure_future(scheduler.wait(URI, ticket, current))
    await asyncio.sleep(0)
    scheduler.close(URI)
    with pytest.raises(Superseded):
        await waiting
    await run.cancelled.wait()
    run.closed.set()
