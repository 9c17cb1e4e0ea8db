"""Spotting LM Studio's JIT auto-evict thrash as it happens: separate models for completion,
chat and embeddings, loaded just in time, unload each other on every switch (LM Studio keeps
one just-in-time model by default). `providers/models.swap_warning` predicts it from the model
list; this sees it: a model loaded just in time again after another one replaced it.

Detected at the second swap (A loaded, B replaces it, A again); told once per session.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ThrashDetector:
    """Fed every just-in-time load the server waited for, in order."""

    loads: list[str] = field(default_factory=list)
    swaps: int = 0  # loads of another model than the one loaded last
    thrashing: tuple[str, ...] = ()  # the models seen swapping, once detected
    told: bool = False

    def loaded(self, model: str) -> str | None:
        """Record a load; the message to tell the user when this load shows the thrash (once)."""
        previous = self.loads[-1] if self.loads else None
        again = model in self.loads and previous is not None and previous != model
        if previous is not None and previous != model:
            self.swaps += 1
        self.loads.append(model)
        if not again or self.told or previous is None:
            return None
        self.told = True
        self.thrashing = (model, previous)
        return thrash_message(model, previous, self.swaps, self.loads.count(model))


def thrash_message(model: str, other: str, swaps: int, times: int) -> str:
    return (
        f"aigents: LM Studio keeps reloading models: `{model}` was loaded just in time again "
        f"({times} times now) after `{other}` replaced it — {swaps} swaps so far. With JIT "
        "auto-evict (on by default) LM Studio keeps one just-in-time model, so separate "
        "models for completion, chat and embeddings unload each other on every switch, and "
        "each switch waits for a load. Fix: load them for good (`aigents.selectModel` does it "
        f"on LM Studio 0.4+, or `lms load {model}` and `lms load {other}`), or turn off "
        '"Only Keep Last JIT Loaded Model" in LM Studio\'s Developer → Server Settings, or use '
        "one model for both (set aigents.model)."
    )
