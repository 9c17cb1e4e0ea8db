"""What to download when no model suits a task, sized for the machine.

A task is suited when a downloaded model fits it: a FIM-capable code model for completion, an
instruct model for chat, an embedding model for the index, a next-edit model for next-edit
suggestions. For a task that has none, the suggestion is the largest model of a short list that
fits the memory, at the best quantization that fits, as a Hugging Face URL and a quantization
that `aigents.downloadModel` / `aigents-lsp models download` take as they are.

Memory: LM Studio's REST API does not report the machine's RAM or VRAM (only its app and
`lms runtime survey` do), so this is the memory of the machine the server runs on (the same
machine when LM Studio is local), read from the OS; a GPU's VRAM is not known here. A model is
sized at its weights plus a fifth for context and runtime, and is to take at most half the
RAM (the editor, the OS and the rest need theirs).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from aigents_lsp.providers.base import ModelInfo

SuggestTask = Literal["completion", "chat", "embedding", "next-edit"]
SUGGEST_TASKS: tuple[SuggestTask, ...] = ("completion", "chat", "embedding", "next-edit")
# Bits per weight of the common GGUF quantizations, best first.
QUANT_BITS: tuple[tuple[str, float], ...] = (("Q8_0", 8.5), ("Q6_K", 6.6), ("Q4_K_M", 4.85))
OVERHEAD = 1.2  # weights + context and runtime
RAM_SHARE = 0.5

# Code models trained with fill-in-the-middle tokens (completion/templates.py renders them).
_FIM = re.compile(
    r"qwen2\.5-coder|qwen3-coder|deepseek-coder|starcoder|codellama|code-llama|codestral|"
    r"codegemma|granite-\d*b?-?code|granite-code|stable-code|refact|codeqwen"
)
_INSTRUCT = re.compile(r"instruct|chat|-it\b|-it-|assistant|granite-4|qwen3-\d")
_NEXT_EDIT = re.compile(r"next-edit|sweep|zeta|instinct")


@dataclass(frozen=True)
class Candidate:
    task: SuggestTask
    url: str  # a Hugging Face model URL (what LM Studio's download API takes with a quant)
    name: str
    params: float  # billions
    why: str

    def size(self, bits: float) -> int:
        return int(self.params * 1e9 * bits / 8)


_HF = "https://huggingface.co/"
CANDIDATES: tuple[Candidate, ...] = (
    Candidate(
        "completion",
        _HF + "Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF",
        "Qwen2.5-Coder 0.5B",
        0.5,
        "a FIM code model",
    ),
    Candidate(
        "completion",
        _HF + "Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF",
        "Qwen2.5-Coder 1.5B",
        1.5,
        "a FIM code model",
    ),
    Candidate(
        "completion",
        _HF + "Qwen/Qwen2.5-Coder-7B-Instruct-GGUF",
        "Qwen2.5-Coder 7B",
        7.6,
        "a FIM code model",
    ),
    Candidate(
        "completion",
        _HF + "Qwen/Qwen2.5-Coder-14B-Instruct-GGUF",
        "Qwen2.5-Coder 14B",
        14.8,
        "a FIM code model",
    ),
    Candidate(
        "chat",
        _HF + "Qwen/Qwen2.5-1.5B-Instruct-GGUF",
        "Qwen2.5 1.5B Instruct",
        1.5,
        "an instruct model with tool use",
    ),
    Candidate(
        "chat",
        _HF + "Qwen/Qwen2.5-3B-Instruct-GGUF",
        "Qwen2.5 3B Instruct",
        3.1,
        "an instruct model with tool use",
    ),
    Candidate(
        "chat",
        _HF + "Qwen/Qwen2.5-7B-Instruct-GGUF",
        "Qwen2.5 7B Instruct",
        7.6,
        "an instruct model with tool use",
    ),
    Candidate(
        "chat",
        _HF + "Qwen/Qwen2.5-14B-Instruct-GGUF",
        "Qwen2.5 14B Instruct",
        14.8,
        "an instruct model with tool use",
    ),
    Candidate(
        "embedding",
        _HF + "nomic-ai/nomic-embed-text-v1.5-GGUF",
        "Nomic Embed Text v1.5",
        0.14,
        "an embedding model for the index",
    ),
    Candidate(
        "next-edit",
        _HF + "sweepai/sweep-next-edit-1.5B",
        "Sweep next-edit 1.5B",
        1.5,
        "a next-edit model (Sweep format)",
    ),
)


@dataclass(frozen=True)
class Memory:
    """The memory a model may take, and where the figure comes from."""

    ram_bytes: int | None
    vram_bytes: int | None = None
    source: str = "this machine (LM Studio's REST API does not report its hardware)"

    @property
    def budget_bytes(self) -> int | None:
        if self.vram_bytes:
            return self.vram_bytes
        return int(self.ram_bytes * RAM_SHARE) if self.ram_bytes else None

    def to_wire(self) -> dict[str, object]:
        return {
            "ramBytes": self.ram_bytes,
            "vramBytes": self.vram_bytes,
            "budgetBytes": self.budget_bytes,
            "source": self.source,
        }


def machine_memory() -> Memory:
    """The RAM of this machine (sysconf; None where the OS does not say)."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        ram = None
    return Memory(ram if ram and ram > 0 else None)


def suits(model: ModelInfo, task: SuggestTask) -> bool:
    name = f"{model.id} {model.arch or ''}".lower()
    embedding = model.type == "embeddings" or (model.type == "unknown" and "embed" in name)
    if task == "embedding":
        return embedding
    if embedding:
        return False
    if task == "completion":
        return bool(_FIM.search(name))
    if task == "next-edit":
        return bool(_NEXT_EDIT.search(name))
    return bool(_INSTRUCT.search(model.id.lower())) or "tool_use" in model.capabilities


@dataclass(frozen=True)
class Suggestion:
    task: SuggestTask
    candidate: Candidate
    quantization: str
    size_bytes: int
    fits: bool  # False: even the smallest does not fit the memory (suggested all the same)

    @property
    def spec(self) -> str:
        """What `aigents-lsp models download` takes."""
        return f"{self.candidate.url}@{self.quantization}"

    def describe(self) -> str:
        gb = self.size_bytes / 1e9
        fit = "" if self.fits else " (larger than the memory it should take: expect it slow)"
        return (
            f"{self.task}: {self.candidate.name} {self.quantization} ({gb:.1f} GB), "
            f"{self.candidate.why}{fit} — `aigents-lsp models download {self.spec}`"
        )

    def to_wire(self) -> dict[str, object]:
        return {
            "task": self.task,
            "model": self.candidate.url,
            "name": self.candidate.name,
            "quantization": self.quantization,
            "sizeBytes": self.size_bytes,
            "fits": self.fits,
            "why": self.candidate.why,
            "download": {"model": self.candidate.url, "quantization": self.quantization},
        }


def suggest_for(task: SuggestTask, memory: Memory) -> Suggestion:
    """The largest candidate for `task` that fits, at the best quantization that fits."""
    budget = memory.budget_bytes
    options = [c for c in CANDIDATES if c.task == task]
    for candidate in sorted(options, key=lambda c: c.params, reverse=True):
        for quant, bits in QUANT_BITS:
            size = candidate.size(bits)
            if budget is None or size * OVERHEAD <= budget:
                if budget is None and (candidate.params > 2 or quant != "Q4_K_M"):
                    continue  # memory unknown: a small model at Q4_K_M is the safe bet
                return Suggestion(task, candidate, quant, size, True)
    smallest = min(options, key=lambda c: c.params)
    quant, bits = QUANT_BITS[-1]
    return Suggestion(task, smallest, quant, smallest.size(bits), False)


def suggestions(
    models: Iterable[ModelInfo], memory: Memory, tasks: Sequence[SuggestTask] = SUGGEST_TASKS
) -> list[Suggestion]:
    """A suggestion for each task that no downloaded model suits."""
    listed = list(models)
    return [suggest_for(t, memory) for t in tasks if not any(suits(m, t) for m in listed)]
