"""What goes into a completion prompt, within a token budget, so that the backend can cache it.

- The local window: the prefix (most of the budget) and the suffix, cut at line boundaries.
  The prefix starts at an **anchored** line: typing, pressing Enter or moving around below it
  keeps the previous prompt's first line, so consecutive prompts in one file share their head
  and llama.cpp / LM Studio / Ollama reuse their prompt cache instead of reading the whole
  prompt again. When the text from the anchor no longer fits (or the cursor went above it),
  a new anchor leaves the prompt half full, so it can grow again before the next move.
- Each part has a fixed share of the budget (not what the others left over), so a change in
  the suffix or the snippets never moves the prefix's anchor.
- Snippets of other files (open documents, recently edited places), ranked by how many
  identifiers they share with the code around the cursor, deduplicated against the local
  window, each with its path. They are chosen when the anchor moves and kept while it stays,
  so they do not reshuffle between keystrokes. The caller never offers ignored or secret files.
- Token counts are estimated (a calibrated characters-per-token ratio), so building a prompt
  never waits for the network.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aigents_lsp.completion.budget import COLD_SHARE
from aigents_lsp.completion.request import CompletionRequest
from aigents_lsp.workspace.secrets import redact

# Code averages ~3-4 characters per token with BPE tokenizers; without a tokenizer at the
# backend, stay on the safe side. With one (llama.cpp /tokenize), the engine measures it.
log = logging.getLogger(__name__)
CHARS_PER_TOKEN = 3.2
SNIPPET_LINES = 24
MAX_SNIPPETS = 4
SUFFIX_SHARE = 0.15
SNIPPET_SHARE = 0.15
ANCHOR_LINES = 8  # a new prompt start is a line number divisible by this
SLIDE_SHARE = 0.75  # a window that slides down is left this full (it moves again later)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")
Snippet = tuple[str, str]


@dataclass(frozen=True)
class PromptContext:
    prefix: str
    suffix: str
    snippets: tuple[Snippet, ...] = ()
    anchor_line: int = 0  # the document line the prefix starts at (-1: not anchored)
    prefix_room: int = 0  # characters the prefix may use
    fresh_room: int | None = None  # characters read with nothing cached (None: prefix_room)
    end_line: int = 0  # the last document line the backend was sent (the cursor's, or below)
    slides: bool = False  # the window slides down (the backend moves cached tokens)
    slid: bool = False  # ... and this one did, from the previous window, which it overlaps


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


def _anchor_rank(row: str, line: int) -> int:
    """How good a prompt start `row` (document line `line`) is. A backend finds a moved
    window in its cache only if the window's first token is one it holds (llama.cpp's cache
    reuse): a blank line is not (its newline was merged with the one before, "\n\n"), and
    indentation may not be (some tokenizers merge it with the newline before). 2: code at
    column 0 (not a closing bracket), on any line; 1: an indented line on a multiple of
    ANCHOR_LINES; 0: a blank line on one; -1: not a prompt start."""
    if row[:1].strip() and row[0] not in ")]}":
        return 2
    if line % ANCHOR_LINES:
        return -1
    return 1 if row.strip() else 0


def _aligned_start(
    rows: list[str], first_line: int, limit: int, lowest: int, *, fill: bool = False
) -> int | None:
    """The earliest row at or after `lowest` from which the rows to the end fit in `limit`
    characters, among the best ranked prompt starts (`_anchor_rank`); None: none fits. Row 0
    counts only when it is the document's first line: otherwise it may be cut. With `fill`
    (a window started afresh, whose start the backend never looks for in its cache: only
    later windows grown from it share it) any start of rank 1 or more will do, the earliest:
    the room is not given away to reach code at column 0."""
    size = len(rows[-1])
    best: dict[int, int] = {}
    index = len(rows) - 1
    while size <= limit and index >= lowest:
        if index > 0 or first_line == 0:
            rank = _anchor_rank(rows[index], first_line + index)
            if rank >= 0:
                best[rank] = index
        if index == 0:
            break
        index -= 1
        size += len(rows[index]) + 1
    if fill and (best.get(1) is not None or best.get(2) is not None):
        return min(best.get(1, len(rows)), best.get(2, len(rows)))
    return best[max(best)] if best else None


def anchored_prefix(
    prefix: str,
    cursor_line: int,
    max_chars: int,
    previous_anchor: int | None = None,
    *,
    fresh_chars: int | None = None,
    slide: bool = False,
) -> tuple[str, int]:
    """The prefix to send, starting at a whole line, and that line's number.

    `prefix` ends at the cursor, on document line `cursor_line`; its first line may be cut
    (it is a window of the document), so it counts only when it is the document's first line.
    - The previous prompt's first line while the text from it still fits in `max_chars`
      (typing, Enter, moving down a little or anywhere below it): the backend's cache holds
      everything up to where the user was.
    - Else the file's start, when all of it fits in `fresh_chars` (default `max_chars`: what
      may be read with nothing cached): the head never moves again.
    - Else, with `slide` (a backend that moves a cached run of tokens to the front instead of
      reading it again: llama.cpp's cache reuse) and the cursor below the previous anchor: the
      window slides down, leaving it SLIDE_SHARE full, so it stays large and costs only the
      new lines.
    - Else a new anchor (a line number divisible by ANCHOR_LINES) leaving the prompt at about
      COLD_SHARE of `fresh_chars`: what the backend reads in time with nothing cached. It
      grows as the user moves down before it moves again.
    (sliding tail, -1) when not even one line fits."""
    rows = prefix.split("\n")
    first_line = cursor_line - (len(rows) - 1)
    fresh = max_chars if fresh_chars is None else min(fresh_chars, max_chars)
    index: int | None = None  # the previous anchor's row, when the cursor is below it
    if previous_anchor is not None and first_line <= previous_anchor <= cursor_line:
        index = previous_anchor - first_line
        if index > 0 or previous_anchor == 0:
            kept = "\n".join(rows[index:])
            if len(kept) <= max_chars:
                return kept, previous_anchor
    if first_line == 0 and len(prefix) <= fresh:
        return prefix, 0
    if index is not None and slide:
        best = _aligned_start(rows, first_line, int(max_chars * SLIDE_SHARE), index + 1)
        if best is not None:
            return "\n".join(rows[best:]), first_line + best
    limit = int(fresh * COLD_SHARE)
    best = _aligned_start(rows, first_line, limit, 0, fill=True)
    if best is None:
        return _tail_lines(prefix, max_chars), -1
    return "\n".join(rows[best:]), first_line + best


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


def _fit_snippets(ranked: Sequence[Snippet], room: int) -> tuple[Snippet, ...]:
    snippets: list[Snippet] = []
    for path, text in ranked:
        if room - len(path) - 8 < 80:
            break
        fitted = _head_lines(text, room - len(path) - 8)
        if fitted.count("\n") >= 2:  # a few whole lines at least, or nothing
            snippets.append((path, fitted))
            room -= len(fitted) + len(path) + 8
    return tuple(snippets)


def build_context(
    request: CompletionRequest,
    related: Sequence[Snippet],
    budget_tokens: int,
    chars_per_token: float = CHARS_PER_TOKEN,
    *,
    uses_suffix: bool = True,
    previous: PromptContext | None = None,
    window_tokens: int | None = None,
    slide: bool = False,
) -> PromptContext:
    """The prompt's parts within `budget_tokens`: 15% for the suffix (when the template uses
    it), 15% for snippets of other files (when there are any), the rest for the prefix.
    `window_tokens` (at least the budget): how large the prompt may grow while the user moves
    down from where it started; a prompt started afresh is sized by the budget alone, since
    the backend reads it with nothing cached. `slide`: the window slides instead of starting
    afresh when it is full (see `anchored_prefix`). `previous` is the last context built for
    this document: while the anchor stays or slides, its snippets are kept (the prompt's head
    must not change between keystrokes)."""
    budget_chars = int(budget_tokens * chars_per_token)
    window_chars = max(budget_chars, int((window_tokens or budget_tokens) * chars_per_token))
    suffix_room = int(budget_chars * SUFFIX_SHARE) if uses_suffix else 0
    snippet_room = int(budget_chars * SNIPPET_SHARE) if related else 0
    suffix = _head_lines(request.suffix, suffix_room) if uses_suffix else ""
    fresh_room = budget_chars - suffix_room - snippet_room
    prefix_room = window_chars - suffix_room - snippet_room
    prefix, anchor = anchored_prefix(
        request.prefix,
        request.line,
        prefix_room,
        previous.anchor_line if previous is not None else None,
        fresh_chars=fresh_room,
        slide=slide,
    )
    # Obvious secrets (keys, tokens, passwords) never reach the model. Done here, on the few
    # kilobytes of the prompt, not on every keystroke's window.
    prefix, suffix = redacted(prefix), redacted(suffix)
    slid = (
        slide and previous is not None and 0 <= previous.anchor_line < anchor <= previous.end_line
    )
    snippets: tuple[Snippet, ...] = ()
    if related:
        offered = {path for path, _ in related}
        if (
            previous is not None
            and anchor >= 0
            and (previous.anchor_line == anchor or slid)
            and all(path in offered for path, _ in previous.snippets)  # none became ignored
        ):
            snippets = previous.snippets
        else:
            around = request.prefix[-600:] + request.suffix[:200]
            ranked = rank_snippets(around, related, prefix + suffix, MAX_SNIPPETS)
            snippets = tuple((p, redacted(t)) for p, t in _fit_snippets(ranked, snippet_room))
    return PromptContext(
        prefix, suffix, snippets, anchor, prefix_room, fresh_room, request.line, slide, slid
    )


def redacted(text: str) -> str:
    """`text` with obvious secrets replaced (logged, never the secret itself)."""
    cleaned, count = redact(text)
    if count:
        log.info("redacted %d secret(s) from a completion prompt", count)
    return cleaned
