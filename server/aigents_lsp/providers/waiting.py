"""What a request waits for, and for how long: deadlines for a backend that is there but not
answering (hung, dripping, loading a model just in time, or just slow).

The LSP layer sets a `WaitPolicy` for the task serving a command or a completion (a context
variable, so it reaches the provider through the assist and completion code untouched); the
provider's stream runs its bytes through a `StreamWatch`, which keeps a `WaitTracker` up to date
(what is waited for, since when) and raises a typed error when a deadline passes:

- first token: a loaded model must start answering within `first_token` seconds;
- hung: after `hung_probe_after` seconds without a byte the server's model list is asked for
  (quick); a server that answers neither is hung, one that says the model is loading is
  loading (its time is counted against `load`, never against `first_token`);
- stall: once the answer started, `stall` seconds without a new token (or a complete line:
  a backend dripping a byte a second sends bytes but no frame) end it;
- slow: a stream that still sends a token now and then, but over the last `stall` seconds
  came far below the model's usual speed (under a tenth of it, and under 2 tokens a second),
  ends too. The usual speed is the median of this model's last answers (`SpeedMemory`); a
  model that is always slow is never cut, nor is any model before it answered once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

from aigents_lsp.providers.base import ProviderError
from aigents_lsp.providers.errors import BackendHung, FirstTokenTimeout, StreamStalled

PROBE_TIMEOUT_SECONDS = 3.0  # a model list that takes longer counts as no answer
PROBE_EVERY_SECONDS = 5.0
LOAD_POLL_SECONDS = 1.0  # model state checks while a model loads
REPORT_EVERY_SECONDS = 1.0
SLOW_FACTOR = 10.0  # "far below the usual speed": under a tenth of it...
SLOW_MAX_RATE = 2.0  # ...and under this many tokens a second (a readable pace is never cut)
SPEED_MIN_TOKENS = 8  # an answer this long (and longer than a quarter second) is a sample

T = TypeVar("T")
Probe = Callable[[], Awaitable[str | None]]
"""Asks the server for the model's state (`loaded`, `loading`, `not-loaded`, None: unknown);
raises (or times out) when the server does not answer."""


@dataclass(frozen=True)
class WaitPolicy:
    """How long one request may wait, and who hears what it waits for."""

    first_token: float | None = None
    stall: float | None = None
    load: float | None = None
    hung_probe_after: float | None = 5.0
    on_wait: Callable[[str], None] | None = None  # "waiting for the first token … (12 s)"


class SpeedMemory:
    """The usual streaming speed of each model: the median tokens per second of its last
    answers, as this server saw them arrive (so the same measure as the slow rule's)."""

    def __init__(self, samples: int = 8) -> None:
        self._samples = samples
        self._speeds: dict[str, deque[float]] = {}

    def note(self, model: str | None, tokens_per_second: float) -> None:
        key = model or ""
        self._speeds.setdefault(key, deque(maxlen=self._samples)).append(tokens_per_second)

    def usual(self, model: str | None) -> float | None:
        speeds = self._speeds.get(model or "")
        if not speeds:
            return None
        ordered = sorted(speeds)  # the median (`statistics` costs start-up time to import)
        middle = len(ordered) // 2
        return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


class WaitTracker:
    """What the request (a command or a completion) is waiting for right now."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.phase = "idle"  # idle | first-token | loading | receiving | done
        self.where = ""  # "LM Studio at http://…"
        self.model: str | None = None
        self.since = clock()
        self.active = 0  # streams open now
        self.finished = 0  # streams that ended (answer complete or failed)
        self.bytes = 0
        self.tokens = 0

    def enter(self, phase: str) -> None:
        if phase != self.phase:
            self.phase, self.since = phase, self._clock()

    def waited(self) -> float:
        return self._clock() - self.since

    def describe(self) -> str:
        """What was waited for, for a message: "the first token from LM Studio at …"."""
        model = f" ({self.model})" if self.model else ""
        if self.phase == "loading":
            return f"{self.where} to load the model{model}"
        if self.phase == "first-token":
            return f"the first token from {self.where}{model}"
        if self.phase == "receiving":
            if not self.tokens:
                return f"{self.where}{model}, which sent {self.bytes} bytes but no complete token"
            return f"the rest of the answer from {self.where}{model} ({self.tokens} tokens so far)"
        if self.phase == "done" and self.active == 0:
            return "the editor (the model had answered)"
        return f"{self.where or 'the backend'}{model}"


WAIT_POLICY: ContextVar[WaitPolicy | None] = ContextVar("aigents_wait_policy", default=None)
WAIT_TRACKER: ContextVar[WaitTracker | None] = ContextVar("aigents_wait_tracker", default=None)


class StreamWatch:
    """One streamed answer, from the request on, watched against the context's `WaitPolicy`:
    `opening` waits for the response headers, `chunks` for its bytes, `end` at the end."""

    def __init__(
        self,
        *,
        where: str,
        base_url: str,
        model: str | None,
        probe: Probe | None,
        speeds: SpeedMemory | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._where = where
        self._base_url = base_url
        self._model = model
        self._probe = probe
        self._clock = clock
        self.policy = WAIT_POLICY.get() or WaitPolicy()
        self.tracker = WAIT_TRACKER.get() or WaitTracker(clock)
        now = clock()
        self._started = now  # the first-token clock (restarted when a load ends)
        self._last_progress: float | None = None  # a token or a complete line arrived
        self._last_probe = now
        self._last_report = now
        self._loading_since: float | None = None
        self._open = False
        self.tokens = 0
        self._speeds = speeds
        self._usual = speeds.usual(model) if speeds is not None else None
        self._first_token_at: float | None = None
        self._recent: deque[tuple[float, int]] = deque()  # (when, tokens so far), last `stall` s
        self._window_base = 0  # tokens received before the last `stall` seconds
        self._begin()

    def _begin(self) -> None:
        tracker = self.tracker
        tracker.active += 1
        tracker.where, tracker.model, tracker.bytes, tracker.tokens = self._where, self._model, 0, 0
        tracker.enter("first-token")
        self._open = True

    def end(self, *, answered: bool = False) -> None:
        """The stream is over; idempotent. Unless it `answered` in full, the tracker keeps
        saying what was waited for (the caller's message names it)."""
        if not self._open:
            return
        self._open = False
        self.tracker.active -= 1
        self.tracker.finished += 1
        if answered and self.tracker.active == 0:
            self.tracker.enter("done")
        if answered and self._speeds is not None:
            speed = self.speed()
            if speed is not None:
                self._speeds.note(self._model, speed)

    def speed(self) -> float | None:
        """Tokens per second from the first token to the last, for an answer long enough."""
        first, last = self._first_token_at, self._last_progress
        if first is None or last is None or self.tokens < SPEED_MIN_TOKENS or last - first < 0.25:
            return None
        return (self.tokens - 1) / (last - first)

    # --- what the consumer tells us ---------------------------------------------------------

    def progressed(self, tokens: int) -> None:
        """The parser produced `tokens` deltas from the last chunk."""
        if tokens:
            now = self._clock()
            if self._first_token_at is None:
                self._first_token_at = now
            self.tokens += tokens
            self.tracker.tokens += tokens
            self._last_progress = now
            if self._usual is not None:
                self._recent.append((now, self.tokens))

    # --- waiting --------------------------------------------------------------------------------

    async def opening(self, request: Awaitable[T]) -> T:
        """The response (headers) of `request`: a server that accepts the connection and then
        says nothing is found out here."""
        future = asyncio.ensure_future(request)
        try:
            return await self._wait(future)
        finally:
            await _cancelled(future)

    async def chunks(self, source: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
        """The body's bytes as they come."""
        reader = aiter(source)
        pending: asyncio.Future[bytes] | None = None
        try:
            while True:
                pending = asyncio.ensure_future(anext(reader))
                try:
                    chunk = await self._wait(pending)
                except StopAsyncIteration:
                    return
                pending = None
                self._got(chunk)
                self._check_stall()  # bytes that keep trickling in never let a wait time out
                yield chunk
        finally:
            if pending is not None:
                await _cancelled(pending)

    async def _wait(self, future: asyncio.Future[T]) -> T:
        while True:
            done, _ = await asyncio.wait({future}, timeout=self._next_check())
            if done:
                return future.result()
            await self._check()

    def _got(self, chunk: bytes) -> None:
        self.tracker.bytes += len(chunk)
        now = self._clock()
        if self._last_progress is None or b"\n" in chunk:
            self._last_progress = now
        self._loading_since = None
        self.tracker.enter("receiving")

    # --- deadlines ------------------------------------------------------------------------------

    def _next_check(self) -> float:
        """Seconds until something must be looked at (a deadline, a probe or a report)."""
        now = self._clock()
        moments = [self._last_report + REPORT_EVERY_SECONDS]
        p = self.policy
        if self._last_progress is not None:
            if p.stall is not None:
                moments.append(self._last_progress + p.stall)
        elif self._loading_since is not None:
            moments.append(now + LOAD_POLL_SECONDS)
        else:
            if p.first_token is not None:
                moments.append(self._started + p.first_token)
            if p.hung_probe_after is not None and self._probe is not None:
                every = min(PROBE_EVERY_SECONDS, p.hung_probe_after)
                moments.append(max(self._started + p.hung_probe_after, self._last_probe + every))
        return max(0.01, min(moments) - now)

    def _check_stall(self) -> None:
        now = self._clock()
        last, stall = self._last_progress, self.policy.stall
        if last is not None and stall is not None and now - last >= stall:
            raise self._stalled(now)
        if stall is not None:
            self._check_slow(now, stall)

    def _check_slow(self, now: float, window: float) -> None:
        """Far below the usual speed over the whole last `window` seconds: slowed down."""
        usual, first = self._usual, self._first_token_at
        if usual is None or first is None or now - first < window:
            return
        recent = self._recent
        while recent and recent[0][0] <= now - window:
            self._window_base = recent.popleft()[1]
        rate = (self.tokens - self._window_base) / window
        if rate < min(usual / SLOW_FACTOR, SLOW_MAX_RATE):
            raise StreamStalled(
                f"the answer slowed to {rate:.2g} tokens/s over the last {window:.0f} s "
                f"after {self.tokens} tokens, far below the model's usual {usual:.3g} tokens/s",
                hint=f"{self._where} is still sending{self._named()}, but barely — it may be "
                "overloaded (another request, another program, a model swapped out of memory); "
                "what was received is kept; try again",
                base_url=self._base_url,
            )

    async def _check(self) -> None:
        if self._last_progress is not None:
            self._check_stall()
        elif self._loading_since is not None:
            await self._check_loading(self._clock())
        else:
            p = self.policy
            now = self._clock()
            waited = now - self._started
            probe_due = (
                p.hung_probe_after is not None
                and self._probe is not None
                and waited >= p.hung_probe_after
                and now - self._last_probe >= min(PROBE_EVERY_SECONDS, p.hung_probe_after)
            )
            if probe_due:
                state = await self._ask(waited)
                if state in ("loading", "not-loaded"):
                    self._loading_since = self._clock()
                    self.tracker.enter("loading")
                    return
            if p.first_token is not None and self._clock() - self._started >= p.first_token:
                raise self._no_first_token()
        self._report()

    async def _check_loading(self, now: float) -> None:
        assert self._loading_since is not None
        p = self.policy
        loading = now - self._loading_since
        state = await self._ask(loading)
        if state == "loaded" or state is None:
            # Loaded: the first token is due `first_token` seconds from now, not from the start.
            self._loading_since = None
            self._started = self._last_probe = self._clock()
            self.tracker.enter("first-token")
        elif p.load is not None and loading >= p.load:
            raise FirstTokenTimeout(
                f"the model {self._model or ''} was still loading after {loading:.0f} s",
                hint=f"{self._where} is loading the model just in time and it takes longer than "
                "load_timeout — wait for it in LM Studio, load it there first (`lms load`), or "
                "raise aigents.loadTimeout",
                base_url=self._base_url,
            )
        self._report()

    async def _ask(self, waited: float) -> str | None:
        """The probe's answer; `BackendHung` when the server does not answer it."""
        assert self._probe is not None
        self._last_probe = self._clock()
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
                return await self._probe()
        except (ProviderError, TimeoutError) as error:
            detail = "" if isinstance(error, TimeoutError) else f" ({error.message})"
            raise BackendHung(
                f"no answer for {waited:.0f} s, and the model list does not answer either{detail}",
                hint=f"{self._where} accepted the request but is not answering at all — it may "
                "be hung or overloaded; restart it (or the model) and try again",
                base_url=self._base_url,
            ) from None

    def _report(self) -> None:
        now = self._clock()
        if self.policy.on_wait is None or now - self._last_report < REPORT_EVERY_SECONDS * 0.9:
            return
        self._last_report = now
        waited = self.tracker.waited()
        self.policy.on_wait(f"waiting for {self.tracker.describe()} ({waited:.0f} s)")

    def _no_first_token(self) -> FirstTokenTimeout:
        p = self.policy
        return FirstTokenTimeout(
            f"no first token after {p.first_token:g} s",
            hint=f"{self._where} answers but the model{self._named()} did not start answering "
            "within first_token_timeout — it may be busy with another request or a long prompt; "
            "try again, use a smaller model, or raise aigents.firstTokenTimeout",
            base_url=self._base_url,
        )

    def _stalled(self, now: float) -> StreamStalled:
        p = self.policy
        got = (
            f"after {self.tokens} tokens"
            if self.tokens
            else f"after {self.tracker.bytes} bytes and no complete token"
        )
        return StreamStalled(
            f"the answer stalled: nothing new for {now - (self._last_progress or now):.0f} s {got}",
            hint=f"{self._where} stopped sending{self._named()} (no new token for "
            f"{p.stall:g} s, setting stallTimeout) — it may be overloaded or the network is "
            "bad; what was received is kept; try again",
            base_url=self._base_url,
        )

    def _named(self) -> str:
        return f" {self._model}" if self._model else ""


async def _cancelled(future: asyncio.Future[T]) -> None:
    """Cancel a read that is still pending and let it finish (its connection is closed)."""
    if not future.done():
        future.cancel()
        with contextlib.suppress(BaseException):
            await future
    elif not future.cancelled():
        future.exception()  # retrieved: the caller has seen it, or did not need it
