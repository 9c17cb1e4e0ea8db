"""The settings of LM Studio model loads, per task, and of speculative decoding: their
descriptions and defaults, declared in `config.Settings` through the `*_field` helpers here
(so config.py grows by a line a setting), and `load_values` that reads them.

LM Studio 0.4's load API (`POST /api/v1/models/load`) takes `context_length`,
`flash_attention` and `offload_kv_cache_to_gpu`; the share of layers on the GPU and an idle
TTL are not part of it (`lms load --gpu/--ttl` only): the TTL of just-in-time loads is `ttl`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

LoadTask = Literal["completion", "chat", "embedding"]

_CONTEXT = (
    "Context length (tokens) {what} is loaded with when aigents-lsp loads it in LM Studio "
    "(`aigents.selectModel`, `aigents-lsp models load`; sent as `context_length`). Unset: "
    "LM Studio's default for the model."
)
_FLASH = (
    "Flash attention for {what} when aigents-lsp loads it in LM Studio (sent as "
    "`flash_attention`, LM Studio 0.4+). Unset: LM Studio's default."
)
_GPU = (
    "GPU offload of {what} when aigents-lsp loads it in LM Studio: whether its KV cache lives "
    "in GPU memory (sent as `offload_kv_cache_to_gpu`, LM Studio 0.4+; the share of layers "
    "on the GPU is LM Studio's own per-model setting, `lms load --gpu`). Unset: LM Studio's "
    "default."
)
_WHAT = {
    "completion": "the completion model",
    "chat": "the chat model",
    "embedding": "the embedding model",
}


def context_field(task: LoadTask) -> Any:
    return Field(None, ge=256, le=1_048_576, description=_CONTEXT.format(what=_WHAT[task]))


def flash_field(task: LoadTask) -> Any:
    return Field(None, description=_FLASH.format(what=_WHAT[task]))


def gpu_field(task: LoadTask) -> Any:
    return Field(None, description=_GPU.format(what=_WHAT[task]))


DRAFT_MODEL_DESCRIPTION = (
    "Speculative decoding (LM Studio 0.3.10+): a small model of the same family as the "
    "completion and chat models (it must share their vocabulary), sent as `draft_model` with "
    "every completion and chat request; LM Studio loads it itself. `aigents.stats` shows the "
    "draft tokens accepted and the speed-up; `aigents-lsp doctor` suggests one that is "
    "downloaded. Unset: no draft model."
)


def load_values(settings: object, task: LoadTask) -> dict[str, int | bool]:
    """The load settings of a task that are set (`settings`: a `config.Settings`), by LM
    Studio's field names."""
    values: dict[str, int | bool | None] = {
        "context_length": getattr(settings, f"{task}_context_length"),
        "flash_attention": getattr(settings, f"{task}_flash_attention"),
        "offload_kv_cache_to_gpu": getattr(settings, f"{task}_gpu_offload"),
    }
    return {k: v for k, v in values.items() if v is not None}
