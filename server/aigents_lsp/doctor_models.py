"""The model-management checks of `aigents-lsp doctor` (LM Studio): the draft model for
speculative decoding, and what to download for a task that no model suits. Each returns
`(name, verdict, detail, fix)`; doctor.py makes them its `Check`s."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from aigents_lsp.providers.base import ModelInfo, ProviderError
from aigents_lsp.providers.lmstudio import LMStudioProvider

Finding = tuple[str, Literal["pass", "warn", "fail", "skip"], str, str]


async def draft_model_check(
    provider: LMStudioProvider, models: Sequence[ModelInfo], model: str | None, draft: str | None
) -> Finding | None:
    """With `draft_model` set: how it does (measured). Without: a downloaded model of the
    completion model's family that could draft for it, when there is one (else None)."""
    from aigents_lsp.providers.speculative import SpeculativeStats, draft_candidates, measure

    name = "draft model"
    if draft:
        stats = SpeculativeStats(draft)
        try:
            await measure(provider, model, draft, stats)
        except ProviderError as error:
            return name, "fail", error.message, error.hint
        if stats.error:
            return (
                name,
                "warn",
                stats.error,
                "unset aigents.draftModel or pick a smaller model of the same family",
            )
        shown = stats.snapshot()
        rate = shown["acceptance_rate"]
        speed = shown["speed_up"]
        detail = (
            f"{draft}: {shown['accepted_draft_tokens']} of {shown['total_draft_tokens']} draft "
            f"tokens accepted ({rate:.0%})"
            if rate is not None
            else f"{draft}: no draft tokens"
        )
        detail += f", {speed}x the speed without it" if speed else ""
        slower = speed is not None and speed < 1.0
        fix = (
            "it slows generation down: unset aigents.draftModel or try a smaller one"
            if slower
            else ""
        )
        return name, "warn" if slower else "pass", detail, fix
    candidates = draft_candidates(models, model) if model else []
    if not candidates:
        return None
    best = candidates[0].id
    return (
        name,
        "skip",
        f"none set; {best} (downloaded) is of the same family as {model} and could draft for it",
        f"For speculative decoding set aigents.draftModel = {best} (LM Studio 0.3.10+; "
        "`aigents.stats` then shows the draft tokens accepted and the speed-up).",
    )


def suggestion_check(models: Sequence[ModelInfo]) -> Finding:
    """Which task no downloaded model suits, and what to download for it (sized for this
    machine's memory). Only next-edit missing still passes: it is optional."""
    from aigents_lsp.providers.suggestions import machine_memory, suggestions

    memory = machine_memory()
    found = suggestions(models, memory)
    budget = memory.budget_bytes
    sized = f" (sized for {budget / 1e9:.0f} GB: half this machine's RAM)" if budget else ""
    if not found:
        return "a model for each task", "pass", "completion, chat, embedding, next-edit", ""
    missing = ", ".join(s.task for s in found)
    lines = "; ".join(s.describe() for s in found)
    verdict: Literal["pass", "warn"] = "pass" if missing == "next-edit" else "warn"
    return (
        "a model for each task",
        verdict,
        f"no downloaded model suits {missing}{sized}: {lines}"
        if verdict == "warn"
        else f"all but next-edit; for next-edit suggestions: {lines}",
        f"Download what is suggested{sized}: {lines}",
    )
