"""Local completion metrics (never sent anywhere): shown by `aigents.stats` and `doctor`."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

from aigents_lsp.completion.budget import PromptReuse


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class CompletionMetrics:
    requests: int = 0
    backend_calls: int = 0
    cache_hits: int = 0
    reused_streams: int = 0
    superseded: int = 0
    cancelled: int = 0
    shown: int = 0
    empty: int = 0
    accepted: int = 0
    errors: int = 0
    prefills: int = 0  # read-aheads of the lines below the cursor (one token generated)
    # Why generations ended with nothing to show: "model" (it wrote nothing) or the
    # post-processing rule that dropped the rest.
    empty_reasons: Counter[str] = field(default_factory=Counter)
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=1000))
    prompt: PromptReuse = field(default_factory=PromptReuse)
    # The backend's measured prompt speed and the budget it gives (last model used).
    prompt_speed: dict[str, float | int | None] = field(default_factory=dict)

    def record_latency(self, ms: float) -> None:
        self.latencies_ms.append(ms)

    def snapshot(self) -> dict[str, float | int | str | None]:
        latencies = list(self.latencies_ms)
        shown = self.shown or 0
        return {
            "requests": self.requests,
            "backend_calls": self.backend_calls,
            "cache_hits": self.cache_hits,
            "reused_streams": self.reused_streams,
            "superseded": self.superseded,
            "cancelled": self.cancelled,
            "shown": shown,
            "empty": self.empty,
            "empty_reasons": ", ".join(
                f"{reason} {count}" for reason, count in self.empty_reasons.most_common()
            )
            or None,
            "accepted": self.accepted,
            "acceptance_rate": round(self.accepted / shown, 3) if shown else None,
            "errors": self.errors,
            "prefills": self.prefills,
            "latency_p50_ms": _round(percentile(latencies, 0.5)),
            "latency_p95_ms": _round(percentile(latencies, 0.95)),
            **self.prompt.snapshot(),
            **self.prompt_speed,
        }

    def markdown(self) -> str:
        snap = self.snapshot()
        lines = ["| metric | value |", "|---|---|"]
        lines += [
            f"| {name.replace('_', ' ')} | {value if value is not None else '-'} |"
            for name, value in snap.items()
        ]
        return "\n".join(lines)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
