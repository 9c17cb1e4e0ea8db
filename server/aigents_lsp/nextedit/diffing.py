"""The model's rewritten region as one minimal edit, or none.

A next-edit model rewrites the whole editable region; what the user is shown is the smallest
change that region rewrite makes, at its place:
- no-op rewrites (the same text, or only trailing spaces changed) give nothing;
- a hunk that only re-types what is already there (a line inserted next to a copy of it) is
  dropped;
- a rewrite far larger than the region (a model that rambles on) is rejected;
- the cursor's line is kept intact when the model also changes other lines: the edit is
  about the other lines, and the user is typing on this one; when the cursor line is the
  only change, the edit is about it and is kept;
- of the hunks left, the one nearest the cursor is the edit (one edit per answer), trimmed to
  the characters that differ.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

GROWTH_LINES = 8  # a rewrite may add this many lines beyond twice the region's


@dataclass(frozen=True)
class RegionEdit:
    """Replace `region[start:end]` with `text` (offsets in the region's text)."""

    start: int
    end: int
    text: str
    old: str  # region[start:end]


@dataclass(frozen=True)
class _Hunk:
    first: int  # first region line replaced
    last: int  # one past the last region line replaced
    new: list[str]


def far_larger(region: str, rewritten: str) -> bool:
    """Whether a rewrite is too large to be an edit of `region` (see the module doc)."""
    region_lines = region.count("\n") + 1
    rewritten_lines = rewritten.count("\n") + 1
    return (
        rewritten_lines > 2 * region_lines + GROWTH_LINES
        or len(rewritten) > 2 * len(region) + 50 * GROWTH_LINES
    )


def minimal_edit(region: str, rewritten: str, cursor: int) -> RegionEdit | None:
    """The edit to show for a model's rewrite of `region` with the cursor at offset `cursor`."""
    if rewritten == region or far_larger(region, rewritten) or unlike(region, rewritten):
        return None
    old_lines = region.splitlines(keepends=True)
    new_lines = rewritten.splitlines(keepends=True)
    matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    hunks: list[_Hunk] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "replace" and i2 - i1 == j2 - j1:
            # Lines changed one for one are separate edits (a rename on two lines).
            hunks += [_Hunk(i1 + k, i1 + k + 1, [new_lines[j1 + k]]) for k in range(i2 - i1)]
        elif tag != "equal":
            hunks.append(_Hunk(i1, i2, new_lines[j1:j2]))
    hunks = [_without_retyped_edges(old_lines, h) for h in hunks]
    hunks = [h for h in hunks if not _noop(old_lines, h) and not _retyped(old_lines, h)]
    if not hunks:
        return None
    cursor_line = region[:cursor].count("\n")
    elsewhere = [h for h in hunks if not _touches(h, cursor_line)]
    if elsewhere:
        hunks = elsewhere  # keep the line the user is typing on intact
    hunk = min(hunks, key=lambda h: (_distance(h, cursor_line), h.first < cursor_line))
    return _trimmed(old_lines, hunk)


def _without_retyped_edges(old_lines: list[str], hunk: _Hunk) -> _Hunk:
    """The hunk without new lines at its edges that repeat the line just above or below it
    (a model that re-types its neighbour, then changes the line)."""
    new = list(hunk.new)
    replaced = hunk.last - hunk.first
    above = old_lines[hunk.first - 1].rstrip() if hunk.first > 0 else None
    below = old_lines[hunk.last].rstrip() if hunk.last < len(old_lines) else None
    while len(new) > replaced and above is not None and new and new[0].rstrip() == above:
        new.pop(0)
    while len(new) > replaced and below is not None and new and new[-1].rstrip() == below:
        new.pop()
    return hunk if len(new) == len(hunk.new) else _Hunk(hunk.first, hunk.last, new)


def unlike(region: str, rewritten: str) -> bool:
    """Whether a rewrite shares too little with the region to be an edit of it (garbage:
    an answer about something else)."""
    if len(region) > 4000 or region.count("\n") < 1:
        return False
    return difflib.SequenceMatcher(None, region, rewritten, autojunk=False).ratio() < 0.5


def _noop(old_lines: list[str], hunk: _Hunk) -> bool:
    old = [line.rstrip() for line in old_lines[hunk.first : hunk.last]]
    new = [line.rstrip() for line in hunk.new]
    return old == new


def _retyped(old_lines: list[str], hunk: _Hunk) -> bool:
    """A pure insertion of lines that are already there, right before or right after it."""
    if hunk.first != hunk.last or not hunk.new:
        return False
    size = len(hunk.new)
    new = [line.rstrip() for line in hunk.new]
    above = [line.rstrip() for line in old_lines[max(0, hunk.first - size) : hunk.first]]
    below = [line.rstrip() for line in old_lines[hunk.first : hunk.first + size]]
    return new in (above, below)


def _touches(hunk: _Hunk, line: int) -> bool:
    if hunk.first == hunk.last:  # an insertion before `first`
        return False
    return hunk.first <= line < hunk.last


def _distance(hunk: _Hunk, line: int) -> int:
    if hunk.first <= line < max(hunk.last, hunk.first + 1):
        return 0
    return hunk.first - line if hunk.first > line else line - (hunk.last - 1)


def _trimmed(old_lines: list[str], hunk: _Hunk) -> RegionEdit:
    start = sum(len(line) for line in old_lines[: hunk.first])
    old = "".join(old_lines[hunk.first : hunk.last])
    new = "".join(hunk.new)
    head = 0
    limit = min(len(old), len(new))
    while head < limit and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < limit - head and old[len(old) - 1 - tail] == new[len(new) - 1 - tail]:
        tail += 1
    # Whole words: "radius" -> "r" reads as that, not as "adius" deleted.
    while head > 0 and _word(old[head - 1]) and (_word_at(old, head) or _word_at(new, head)):
        head -= 1
    while (
        tail > 0
        and _word(old[len(old) - tail])
        and (_word_at(old, len(old) - tail - 1) or _word_at(new, len(new) - tail - 1))
    ):
        tail -= 1
    return RegionEdit(
        start + head,
        start + len(old) - tail,
        new[head : len(new) - tail],
        old[head : len(old) - tail],
    )


def _word(char: str) -> bool:
    return char.isalnum() or char == "_"


def _word_at(text: str, index: int) -> bool:
    return 0 <= index < len(text) and _word(text[index])
