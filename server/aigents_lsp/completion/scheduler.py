"""Scheduling completions per document: debounce, supersede, and shared in-flight generations.

- The debounce is learned from each document's typing rhythm (`AdaptiveDebounce`).

- A newer request for a document supersedes the older ones: they are answered empty at once
  (the tickets: `DocumentTickets`, tickets.py, which next edits take too).
- Automatic requests wait for a pause in typing (the debounce); invoked ones do not.
- A generation (one backend stream) lives apart from the requests waiting on it, so a newer
  request whose prefix extends the old one (the user typed on) can reuse it. It is cancelled —
  closing the HTTP stream, so the backend stops — when nobody waits for it any more (after a
  short grace, because an editor cancels the old request just before sending the new one) or
  when a request it cannot serve takes its place.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aigents_lsp.tickets import DocumentTickets, Superseded

if TYPE_CHECKING:
    from aigents_lsp.config import Settings

# An editor sends `$/cancelRequest` for the previous request and then the next one: keep the
# generation alive this long so the next request can adopt it.
ADOPT_GRACE_SECONDS = 0.03


@dataclass(eq=False)
class Generation:
    """One backend stream for a context; `partial` grows as tokens arrive."""

    uri: str
    line: int
    column: int
    prefix: str
    suffix_head: str
    model_key: str
    task: asyncio.Task[str | None] | None = None
    partial: list[str] = field(default_factory=list)
    holders: int = 0
    started: float = field(default_factory=time.perf_counter)
    _grace: asyncio.TimerHandle | None = None
    _cancelling: bool = False

    def text_so_far(self) -> str:
        return "".join(self.partial)

    def adoptable_by(
        self, line: int, column: int, prefix: str, suffix_head: str, model_key: str
    ) -> str | None:
        """What the user typed since this generation started, if the generation still fits:
        same line, cursor moved right by what was typed, same text after the cursor."""
        # A generation being cancelled is not done yet (it is closing its HTTP stream) but
        # will never answer: adopting it would show nothing.
        if self.task is None or self.task.cancelled() or self._cancelling:
            return None
        if model_key != self.model_key or suffix_head != self.suffix_head:
            return None
        if line != self.line or column < self.column or column - self.column > len(prefix):
            return None
        typed = prefix[len(prefix) - (column - self.column) :]
        before = prefix[: len(prefix) - len(typed)]
        if not before.endswith(self.prefix[-200:]):
            return None
        so_far = self.text_so_far()
        # Compatible while what was typed and what was generated agree on their common part.
        common = min(len(typed), len(so_far))
        if typed[:common] != so_far[:common]:
            return None
        return typed

    def hold(self) -> None:
        self.holders += 1
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None

    def release(self) -> None:
        self.holders -= 1
        if self.holders <= 0 and self.task is not None and not self.task.done():
            loop = asyncio.get_running_loop()
            self._grace = loop.call_later(ADOPT_GRACE_SECONDS, self._cancel_if_unheld)

    def _cancel_if_unheld(self) -> None:
        self._grace = None
        if self.holders <= 0:
            self.cancel()

    def cancel(self) -> None:
        # Once: a second cancel lands while the task closes its HTTP stream, interrupts the
        # close, and the connection stays checked out of the pool for good.
        if self.task is not None and not self.task.done() and not self._cancelling:
            self._cancelling = True
            self.task.cancel()


class DocumentScheduler(DocumentTickets):
    """Per-document tickets (newest wins, `DocumentTickets`) and the document's current
    generation."""

    def __init__(self) -> None:
        super().__init__()
        self.generations: dict[str, Generation] = {}

    async def wait(self, uri: str, ticket: int, generation: Generation) -> str | None:
        """Wait for a generation's text while this request is the newest for its document.
        Cancellation of the caller (e.g. `$/cancelRequest`) releases the generation."""
        assert generation.task is not None
        generation.hold()
        signal = self._superseded_signal(uri)
        try:
            waitables: set[asyncio.Future[Any]] = {generation.task, signal}
            done, _ = await asyncio.wait(waitables, return_when=asyncio.FIRST_COMPLETED)
            if generation.task not in done or not self.current(uri, ticket):
                raise Superseded
            if generation.task.cancelled():
                raise Superseded
            return generation.task.result()
        finally:
            self._forget_signal(uri, signal)
            generation.release()

    def start(
        self, generation: Generation, run: Callable[[Generation], Awaitable[str | None]]
    ) -> Generation:
        """Make `generation` the document's current one, cancelling the one it replaces."""
        old = self.generations.get(generation.uri)
        if old is not None and old is not generation:
            old.cancel()
        self.generations[generation.uri] = generation
        generation.task = asyncio.ensure_future(run(generation))

        def forget(task: asyncio.Task[str | None]) -> None:
            if self.generations.get(generation.uri) is generation:
                del self.generations[generation.uri]
            with contextlib.suppress(asyncio.CancelledError, Exception):
                task.result()  # consumed here so nothing is logged as "never retrieved"

        generation.task.add_done_callback(forget)
        return generation

    def close(self, uri: str) -> None:
        generation = self.generations.pop(uri, None)
        if generation is not None:
            generation.cancel()
        super().close(uri)


class AdaptiveDebounce:
    """The pause to wait before asking the backend, learned from each document's typing
    rhythm: a gap is the end of typing when it is longer than this typist's usual gaps (the
    mean of their last gaps plus three deviations, plus a margin). A steady fast typist waits
    less than `debounce_ms` (down to half of it) without a request in the middle of a burst;
    an uneven or slow one waits longer (up to 2.5 times). `debounce_ms` until the rhythm is
    known. Pauses are not rhythm: a gap in which a suggestion was shown (the user read it), a
    gap of a second or more, and one over PAUSE_FACTOR times the median gap are left out."""

    KNOWN_AFTER = 6  # gaps seen before the rhythm is trusted
    MARGIN = 0.010
    WINDOW = 24  # the last gaps the rhythm is learned from
    PAUSE_SECONDS = 1.0
    PAUSE_FACTOR = 4.0

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._gaps: dict[str, deque[float]] = {}
        self._shown: dict[str, float] = {}

    def keystroke(self, uri: str) -> None:
        now = time.perf_counter()
        last = self._last.get(uri)
        self._last[uri] = now
        if last is None or now - last >= self.PAUSE_SECONDS:
            return
        if self._shown.get(uri, 0.0) > last:  # the user was reading a suggestion
            return
        self._gaps.setdefault(uri, deque(maxlen=self.WINDOW)).append(now - last)

    def shown(self, uri: str) -> None:
        """A suggestion was shown in `uri`: the gap it falls in is a pause, not rhythm."""
        self._shown[uri] = time.perf_counter()

    def seconds(self, uri: str, settings: Settings) -> float:
        base = settings.debounce_ms / 1000
        gaps = self._gaps.get(uri)
        if not gaps or not settings.adaptive_debounce:
            return base
        ordered = sorted(gaps)
        median = ordered[len(ordered) // 2]
        typing = [gap for gap in ordered if gap <= median * self.PAUSE_FACTOR]
        mean = sum(typing) / len(typing)
        if len(gaps) < self.KNOWN_AFTER:
            return min(max(base, mean * 1.6), base * 2.5)
        deviation = math.sqrt(sum((gap - mean) ** 2 for gap in typing) / len(typing))
        wait = mean + 3 * deviation + self.MARGIN
        return min(max(base * 0.5, wait), base * 2.5)

    def typed_since(self, uri: str, moment: float) -> bool:
        """Whether a keystroke came in `uri` after `moment` (a `time.perf_counter()` value)."""
        last = self._last.get(uri)
        return last is not None and last > moment

    def forget(self, uri: str) -> None:
        for table in (self._last, self._gaps, self._shown):
            table.pop(uri, None)
