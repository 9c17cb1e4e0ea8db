"""Speculative decoding with LM Studio (0.3.10+): how well the draft model does.

Every completion and chat request carries `draft_model` (setting `draft_model`), but LM Studio
reports the draft tokens (`accepted_draft_tokens_count`, `rejected_…`, `total_…`,
`ignored_…`) only in the `stats` of a whole (non-streamed) answer of its native
`/api/v0` routes, and our requests stream. So the figures come from a measurement: the same
short prompt answered whole twice, with the draft model and without, through
`/api/v0/completions`; the speed-up is the ratio of the tokens per second LM Studio reports.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aigents_lsp.providers.base import ModelInfo
from aigents_lsp.providers.lmstudio import LMStudioProvider

_SIZE = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)b(?![a-z])")

PROBE_PROMPT = (
    "def fibonacci(n):\n"
    '    """Return the n-th Fibonacci number."""\n'
    "    a, b = 0, 1\n"
    "    for _ in range(n):\n"
)
PROBE_TOKENS = 48


@dataclass(frozen=True)
class DraftSample:
    """One answer's draft-token counts, as LM Studio's `stats` give them."""

    draft_model: str | None
    accepted: int
    rejected: int
    total: int
    ignored: int
    tokens_per_second: float | None


def _count(stats: dict[str, Any], key: str) -> int:
    value = stats.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def draft_sample(body: object) -> DraftSample | None:
    """The draft counts of an answer, None when it has none (no draft model, or streamed)."""
    stats = body.get("stats") if isinstance(body, dict) else None
    if not isinstance(stats, dict) or "accepted_draft_tokens_count" not in stats:
        return None
    speed = stats.get("tokens_per_second")
    model = stats.get("draft_model")
    return DraftSample(
        draft_model=model if isinstance(model, str) else None,
        accepted=_count(stats, "accepted_draft_tokens_count"),
        rejected=_count(stats, "rejected_draft_tokens_count"),
        total=_count(stats, "total_draft_tokens_count"),
        ignored=_count(stats, "ignored_draft_tokens_count"),
        tokens_per_second=float(speed) if isinstance(speed, int | float) else None,
    )


def _speed(body: object) -> float | None:
    stats = body.get("stats") if isinstance(body, dict) else None
    speed = stats.get("tokens_per_second") if isinstance(stats, dict) else None
    return float(speed) if isinstance(speed, int | float) and speed > 0 else None


@dataclass
class SpeculativeStats:
    """The draft model's record this session (`aigents.stats` shows `snapshot()`)."""

    draft_model: str | None = None
    samples: list[DraftSample] = field(default_factory=list)
    baseline_tokens_per_second: float | None = None  # the same prompt without the draft model
    error: str | None = None

    def record(self, sample: DraftSample) -> None:
        self.samples.append(sample)

    def snapshot(self) -> dict[str, Any]:
        accepted = sum(s.accepted for s in self.samples)
        rejected = sum(s.rejected for s in self.samples)
        total = sum(s.total for s in self.samples)
        speeds = [s.tokens_per_second for s in self.samples if s.tokens_per_second]
        with_draft = sum(speeds) / len(speeds) if speeds else None
        base = self.baseline_tokens_per_second
        return {
            "draft_model": self.draft_model,
            "samples": len(self.samples),
            "accepted_draft_tokens": accepted,
            "rejected_draft_tokens": rejected,
            "total_draft_tokens": total,
            "ignored_draft_tokens": sum(s.ignored for s in self.samples),
            "acceptance_rate": round(accepted / total, 3) if total else None,
            "tokens_per_second": round(with_draft, 1) if with_draft else None,
            "tokens_per_second_without_draft": round(base, 1) if base else None,
            "speed_up": round(with_draft / base, 2) if with_draft and base else None,
            "error": self.error,
        }


async def measure(
    provider: LMStudioProvider, model: str | None, draft_model: str, stats: SpeculativeStats
) -> None:
    """The probe: one short whole answer with the draft model, one without; the counts and
    speeds LM Studio reports go to `stats` (a `ProviderError` propagates)."""
    stats.draft_model = draft_model
    body: dict[str, Any] = {
        "prompt": PROBE_PROMPT,
        "max_tokens": PROBE_TOKENS,
        "temperature": 0.0,
        "stream": False,
    }
    if model:
        body["model"] = model
    url = f"{provider.root}/api/v0/completions"
    with_draft = await provider._request_json("POST", url, {**body, "draft_model": draft_model})
    sample = draft_sample(with_draft)
    if sample is None:
        stats.error = (
            "LM Studio answered without draft-token counts: is it 0.3.10+, and does the draft "
            f"model {draft_model} share the vocabulary of {model or 'the model'}?"
        )
        return
    stats.record(sample)
    stats.baseline_tokens_per_second = _speed(await provider._request_json("POST", url, body))
    stats.error = None


def parameters(model_id: str) -> float | None:
    """Billions of parameters as the id says (`qwen2.5-coder-1.5b-instruct` -> 1.5)."""
    found = _SIZE.findall(model_id.lower().rsplit("/", 1)[-1])
    return float(found[0]) if found else None  # the first: `26b-a4b` is 26B in all


def family(model_id: str) -> str:
    """The id without its size and variant: `qwen2.5-coder-1.5b-instruct` -> `qwen2.5-coder`."""
    name = model_id.lower().rsplit("/", 1)[-1].split("@")[0]
    head = _SIZE.split(name, maxsplit=1)[0]
    return head.strip("-_. ")


def draft_candidates(models: Iterable[ModelInfo], main: str) -> list[ModelInfo]:
    """Downloaded models that could draft for `main`: the same family (and architecture, when
    known), markedly smaller; the smallest first. (LM Studio checks the vocabulary itself.)"""
    listed = list(models)
    target = next((m for m in listed if m.id == main), None)
    size = parameters(main)
    if size is None:
        return []
    found = []
    for model in listed:
        other = parameters(model.id)
        if model.id == main or other is None or model.type not in ("llm", "unknown"):
            continue
        if family(model.id) != family(main) or other * 3 > size:
            continue
        if target is not None and target.arch and model.arch and model.arch != target.arch:
            continue
        found.append((other, model))
    return [m for _, m in sorted(found, key=lambda pair: pair[0])]
