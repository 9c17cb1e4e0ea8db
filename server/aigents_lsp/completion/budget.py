"""How many prompt tokens a completion may use: sized by how fast the backend reads prompts.

A prompt the backend has not cached costs its length divided by the backend's prompt speed
(a CPU reads a few hundred tokens a second, a GPU thousands). A prompt started afresh fills
half the budget (COLD_SHARE), and must be read within three quarters of
`completion_latency_ms` (the rest is for generating the line): the budget is twice that.
The speed is learned from each answer — llama.cpp's `timings`
(`prompt_n` tokens read in `prompt_ms`), else the time to the first token of a request whose
prompt was mostly new — per provider and model, so a new model is measured again. The budget
moves in steps of 256 tokens (to the nearest) and only when the speed changed by more than a
quarter: a budget that wobbles would move the prompt's anchored start and lose the backend's
cache.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field

STEP_TOKENS = 256
# Below this the model sees too little code to be useful, and the window would move every few
# lines (each move a cold prompt): a slow machine waits a little longer instead.
MIN_TOKENS = 512
MAX_TOKENS = 8192
# Before the first measurement: what a laptop CPU reads in about a second. Small on purpose: a
# fast backend grows it after one answer, a slow one would otherwise start with a long wait.
INITIAL_TOKENS = 512
MIN_SAMPLE_TOKENS = 128  # fewer new tokens than this: the time is mostly overhead, not reading
PROMPT_SHARE = 0.75
HYSTERESIS = 0.25
# A prompt started afresh (a jump in the file) fills this share of the budget; the window
# then grows as the user moves down until it is full and starts again (`context.py`).
COLD_SHARE = 0.5
# A window that slides (a backend that moves cached tokens, `context.anchored_prefix`) may
# grow to this many times the budget as the user moves down: only its new lines are read.
SLIDING_WINDOW = 4


def common_prefix_length(a: str, b: str) -> int:
    """Length of the longest common prefix of `a` and `b`: a binary search over slice
    comparisons, which run in C (a character loop in Python costs ~1 ms per 10 KB)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


@dataclass
class PromptReuse:
    """What the backend read and what it took from its cache, over the server's lifetime."""

    prompts: int = 0
    read_tokens: int = 0  # prompt tokens processed
    cached_tokens: int = 0  # prompt tokens reused from the backend's cache
    reported: int = 0  # prompts whose counts came from the backend (else estimated)
    last_read: int | None = None
    last_cached: int | None = None

    def record(self, read: int, cached: int, *, reported: bool) -> None:
        self.prompts += 1
        self.read_tokens += read
        self.cached_tokens += cached
        self.reported += int(reported)
        self.last_read, self.last_cached = read, cached

    def snapshot(self) -> dict[str, float | int | None]:
        total = self.read_tokens + self.cached_tokens
        return {
            "prompt_tokens_read": self.read_tokens,
            "prompt_tokens_cached": self.cached_tokens,
            "prompt_cache_reuse": round(self.cached_tokens / total, 3) if total else None,
            "prompt_counts_from_backend": self.reported,
            "prompt_last_read": self.last_read,
            "prompt_last_cached": self.last_cached,
        }


@dataclass
class _Speed:
    samples: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=8))
    budget: int | None = None


class PromptBudget:
    """Prompt speed per backend model, and the prompt budget it allows."""

    def __init__(self) -> None:
        self._speeds: dict[str, _Speed] = {}

    def record(self, key: str, tokens: int, seconds: float) -> None:
        """The backend read `tokens` new prompt tokens in `seconds`."""
        if tokens < MIN_SAMPLE_TOKENS or seconds <= 0:
            return
        self._speeds.setdefault(key, _Speed()).samples.append((tokens, seconds))

    def tokens_per_second(self, key: str) -> float | None:
        speed = self._speeds.get(key)
        if speed is None or not speed.samples:
            return None
        # The median rate: one slow outlier (a model loaded just in time, a busy machine)
        # must not shrink the budget for the next eight requests.
        return statistics.median(t / s for t, s in speed.samples)

    def samples(self, key: str) -> int:
        speed = self._speeds.get(key)
        return len(speed.samples) if speed is not None else 0

    def tokens(self, key: str, latency_ms: float, context_length: int | None = None) -> int:
        """The prompt budget for `key` so a cold request reads its prompt in time."""
        speed = self._speeds.setdefault(key, _Speed())
        rate = self.tokens_per_second(key)
        if rate is None:
            wanted = INITIAL_TOKENS
        else:
            raw = rate * latency_ms / 1000 * PROMPT_SHARE / COLD_SHARE
            # The nearest step (not the one below): a cold prompt then fills the latency
            # target to within half a step, instead of a third of it going unused.
            steps = max(1, round(raw / STEP_TOKENS))
            wanted = max(MIN_TOKENS, min(MAX_TOKENS, steps * STEP_TOKENS))
        current = speed.budget
        if current is None or abs(wanted - current) > current * HYSTERESIS:
            speed.budget = current = wanted
        if context_length:
            current = min(current, max(MIN_TOKENS // 2, context_length - 256))
        return current

    def snapshot(self, key: str) -> dict[str, float | int | None]:
        rate = self.tokens_per_second(key)
        speed = self._speeds.get(key)
        return {
            "prompt_tokens_per_second": round(rate, 1) if rate is not None else None,
            "prompt_budget_tokens": speed.budget if speed is not None else None,
        }
