"""What goes into a completion prompt, within the model's token budget.

- The local window: the prefix (most of the budget) and the suffix, cut at line boundaries.
- Snippets of other files (open documents, recently edited places), ranked by how many
  identifiers they share with the code around the cursor, deduplicated against the local
  window, each with its path. The caller never offers ignored or secret files.
- Token counts are estimated (a calibrated characters-per-token ratio), so building a prompt
  never waits for the network.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aigents_lsp.workspace.secrets import redact

if TYPE_CHECKING:
    from aigents_lsp.completion.engine import CompletionRequest
    from aigents_lsp.config import Settings

# Code averages ~3-4 characters per token with BPE tokenizers; without a tokenizer at the
# backend, stay on the safe side. With one (llama.cpp /tokenize), the engine measures it.
log = logging.getLogger(__name__)
CHARS_PER_TOKEN = 3.2
SNIPPET_LINES = 24
MAX_SNIPPETS = 4
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")
Snippet = tuple[str, str]


@dataclass(frozen=True)
class PromptContext:
    prefix: str
    suffix: str
    snippets: tuple[Snippet, ...] = ()


def estimate_tokens(text: str) -> int:
    return int(len(text) / CHARS_PER_TOKEN) + 1


def _tail_lines(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    cut = text[-max_chars:]
    newline = cut.find("\n")
    return cut[newline + 1 :] if 0 <= newline < len(cut) - 1 else cut


def _head_lines(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    newline = cut.rfind("\n")
    return cut[: newline + 1] if newline > 0 else cut


def prompt_budget(context_length: int | None, settings: Settings) -> int:
    """Tokens the prompt may use: the setting, capped by the model's real context."""
    budget = settings.completion_prompt_tokens
    if context_length:
        budget = min(budget, context_length - settings.completion_max_tokens - 64)
    return max(budget, 128)


def identifiers(text: str) -> set[str]:
    return set(_IDENT.findall(text))


def chunk(text: str, lines: int = SNIPPET_LINES) -> Iterable[str]:
    rows = text.split("\n")
    step = max(1, lines // 2)  # overlapping windows, so a function is rarely cut in two
    for start in range(0, max(1, len(rows) - step), step):
        yield "\n".join(rows[start : start + lines])


def rank_snippets(
    around_cursor: str, candidates: Sequence[Snippet], local_window: str, limit: int
) -> list[Snippet]:
    """The `limit` chunks of `candidates` sharing the most identifiers with the cursor's
    surroundings (Jaccard similarity), excluding text already in the local window."""
    wanted = identifiers(around_cursor)
    if not wanted:
        return []
    scored: list[tuple[float, int, Snippet]] = []
    for order, (path, text) in enumerate(candidates):
        for piece in chunk(text):
            stripped = piece.strip()
            if not stripped or stripped in local_window:
                continue
            found = identifiers(piece)
            if not found:
                continue
            score = len(wanted & found) / len(wanted | found)
            if score > 0.05:
                scored.append((score, -order, (path, piece)))
    scored.sort(key=lambda item: (item[0], item[1]), reverse=True)
    picked: list[Snippet] = []
    seen: set[str] = set()
    for _, _, (path, piece) in scored:
        if piece in seen:
            continue
        seen.add(piece)
        picked.append((path, piece))
        if len(picked) >= limit:
            break
    return picked


def build_context(
    request: CompletionRequest,
    related: Sequence[Snippet],
    context_length: int | None,
    settings: Settings,
    chars_per_token: float = CHARS_PER_TOKEN,
    *,
    uses_suffix: bool = True,
) -> PromptContext:
    """The prompt's parts within the budget: up to 15% suffix (when the template uses it),
    up to 15% snippets of other files (only what is used is taken), the rest prefix."""
    budget_chars = int(prompt_budget(context_length, settings) * chars_per_token)
    suffix = _head_lines(request.suffix, int(budget_chars * 0.15)) if uses_suffix else ""
    snippets: list[Snippet] = []
    if related:
        room = int(budget_chars * 0.15)
        around = request.prefix[-600:] + request.suffix[:200]
        local = request.prefix[-budget_chars:] + suffix
        for path, text in rank_snippets(around, related, local, MAX_SNIPPETS):
            if room - len(path) - 8 < 80:
                break
            fitted = _head_lines(text, room - len(path) - 8)
            if fitted.count("\n") >= 2:  # a few whole lines at least, or nothing
                snippets.append((path, fitted))
                room -= len(fitted) + len(path) + 8
    used = sum(len(text) + len(path) + 8 for path, text in snippets)
    prefix = _tail_lines(request.prefix, budget_chars - len(suffix) - used)
    # Obvious secrets (keys, tokens, passwords) never reach the model. Done here, on the few
    # kilobytes of the prompt, not on every keystroke's window.
    return PromptContext(
        _redacted(prefix), _redacted(suffix), tuple((p, _redacted(t)) for p, t in snippets)
    )


def _redacted(text: str) -> str:
    cleaned, count = redact(text)
    if count:
        log.info("redacted %d secret(s) from a completion prompt", count)
    return cleaned
