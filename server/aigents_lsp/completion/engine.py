"""One code completion: context -> prompt -> provider stream -> cleaned suggestion.

This is the foundation's engine: a prefix/suffix window, a FIM prompt when the model has FIM
tokens (prefix-only otherwise), single- or multi-line decided before generating, and streaming
with an early stop. Scheduling, caching and the template registry grow here (issue 3).
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass

from aigents_lsp.providers.base import CompletionParams, Provider

PREFIX_CHARS = 3000
SUFFIX_CHARS = 1000
MAX_MULTILINE_LINES = 8
_BLOCK_OPENER = re.compile(r"[:{(\[]\s*$|=>\s*$|\bthen\s*$|\bdo\s*$")


@dataclass(frozen=True)
class CompletionRequest:
    """Where the user is and what surrounds the cursor (text already sliced from the document)."""

    uri: str
    version: int
    prefix: str
    suffix: str
    language_id: str = ""
    invoked: bool = False


@dataclass(frozen=True)
class Suggestion:
    text: str
    model: str | None
    latency_ms: float
    multiline: bool


@dataclass(frozen=True)
class FimPrompt:
    prompt: str
    stop: tuple[str, ...]


def wants_multiline(prefix: str, suffix: str) -> bool:
    """Multi-line on an empty line after a block opener or a signature; single-line mid-line."""
    line_before = prefix.rsplit("\n", 1)[-1]
    line_after = suffix.split("\n", 1)[0]
    if line_before.strip() or line_after.strip():
        return False
    previous_lines = [line for line in prefix.split("\n")[:-1][-3:] if line.strip()]
    return bool(previous_lines) and bool(_BLOCK_OPENER.search(previous_lines[-1]))


def build_prompt(model: str | None, prefix: str, suffix: str) -> FimPrompt:
    """A FIM prompt for Qwen-Coder style models; prefix-only for models without FIM tokens."""
    prefix, suffix = prefix[-PREFIX_CHARS:], suffix[:SUFFIX_CHARS]
    name = (model or "").lower()
    if "qwen" in name and "coder" in name:
        special = ("<|endoftext|>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>")
        return FimPrompt(f"<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>", special)
    return FimPrompt(prefix, ())


def clean(text: str, request: CompletionRequest, multiline: bool) -> str:
    """Trim the raw model output to what can be shown at the cursor."""
    text = text.replace("\r\n", "\n")
    if not multiline:
        text = text.split("\n", 1)[0]
    else:
        text = "\n".join(text.split("\n")[:MAX_MULTILINE_LINES])
    text = text.rstrip()
    line_after = request.suffix.split("\n", 1)[0]
    # Drop closing characters the document already has right after the cursor.
    if line_after.strip() and text.endswith(line_after.strip()):
        text = text[: -len(line_after.strip())].rstrip()
    return "" if not text.strip() else text


async def complete(
    provider: Provider,
    request: CompletionRequest,
    *,
    model: str | None,
    max_tokens: int,
    temperature: float,
) -> Suggestion | None:
    """Stream a completion, stopping the backend as soon as the shown part is complete."""
    started = time.perf_counter()
    multiline = wants_multiline(request.prefix, request.suffix)
    prompt = build_prompt(model, request.prefix, request.suffix)
    stop = list(prompt.stop) + ([] if multiline else ["\n"])
    params = CompletionParams(
        prompt=prompt.prompt,
        model=model,
        max_tokens=max_tokens if multiline else min(max_tokens, 64),
        temperature=temperature,
        stop=stop,
    )
    pieces: list[str] = []
    served_by = model
    stream = provider.stream_complete(params)
    async with contextlib.aclosing(stream):  # type: ignore[type-var]
        async for delta in stream:
            pieces.append(delta.text)
            served_by = delta.model or served_by
            text = "".join(pieces)
            # Early stop: the backend stops generating when the stream closes.
            if not multiline and "\n" in text.lstrip("\n"):
                break
            if multiline and text.count("\n") >= MAX_MULTILINE_LINES:
                break
    cleaned = clean("".join(pieces), request, multiline)
    if not cleaned:
        return None
    elapsed = (time.perf_counter() - started) * 1000
    return Suggestion(cleaned, served_by, elapsed, multiline)
