"""The shape of a suggestion: decided before generating (`decide_mode`: single-line, multi-line
on an empty line that opens a block, or nothing while the user edits inside a line), and while it
streams (`should_stop`: the line or the block is complete); and the indentation both read.
"""

from __future__ import annotations

import re
from typing import Literal

Mode = Literal["single", "multi"]

TAB_WIDTH = 4
MAX_DOCSTRING_LINES = 60  # looked back over to find the signature above a docstring
# More than this many non-space characters after the cursor (other than closers): no
# automatic suggestion, the user is editing inside a line.
MAX_TRAILING_CHARS = 3
_CLOSERS = set(")]}\"'`;:,.")
_BLOCK_OPENER = re.compile(r"(?:[:{(\[]|=>|->|\bthen|\bdo|\bbegin)\s*$")
_SIGNATURE = re.compile(r"^\s*(?:async\s+)?(?:def|class|fn|func|function|sub|proc)\b")
_COMMENT_OR_DOC = re.compile(r"^\s*(?:#|//|/\*|\*|--|\"\"\"|'''|\"|')")


def _is_closer_text(text: str) -> bool:
    return all(ch in _CLOSERS or ch.isspace() for ch in text)


def decide_mode(prefix: str, suffix: str, invoked: bool) -> Mode | None:
    """Single- or multi-line, decided before generating; None: suggest nothing here."""
    line_before = prefix.rsplit("\n", 1)[-1]
    line_after = suffix.split("\n", 1)[0]
    trailing = line_after.strip()
    if (
        not invoked
        and len(trailing.replace(" ", "")) > MAX_TRAILING_CHARS
        and not _is_closer_text(trailing)
    ):
        return None
    if line_before.strip() or trailing:
        return "single"
    # An empty line: multi-line when it opens a block (after a signature, a block opener, or
    # the docstring/comments that follow them).
    if _opens_block(prefix.split("\n")[:-1][-MAX_DOCSTRING_LINES:]):
        return "multi"
    return "multi" if invoked else "single"


def _opens_block(lines: list[str]) -> bool:
    """Whether the last code before these lines' end opens a block: a signature or a block
    opener, possibly followed by comments and a docstring (of any length)."""
    index = len(lines) - 1
    while index >= 0:
        previous = lines[index].strip()
        index -= 1
        if not previous:
            continue
        if _BLOCK_OPENER.search(previous) or _SIGNATURE.match(previous):
            return True
        quote = previous[-3:]
        if quote in ('"""', "'''") and (len(previous) == 3 or previous.count(quote) == 1):
            # The end of a docstring of several lines: continue above its first line.
            while index >= 0 and quote not in lines[index]:
                index -= 1
            index -= 1
            continue
        if _COMMENT_OR_DOC.match(previous):
            continue
        return False
    return False


def indent_unit(prefix: str) -> str:
    """The document's indentation step, read from the lines before the cursor."""
    lines = prefix[-8000:].split("\n")
    if any(line.startswith("\t") for line in lines):
        return "\t"
    widths = sorted({len(line) - len(line.lstrip(" ")) for line in lines if line.strip()} - {0})
    steps = [b - a for a, b in zip([0, *widths], widths, strict=False) if b > a]
    step = min(steps) if steps else 4
    return " " * (step if step in (2, 3, 4, 8) else 4)


def leading_whitespace(line: str) -> str:
    """The spaces and tabs a line starts with."""
    return line[: len(line) - len(line.lstrip(" \t"))]


def indent_width(whitespace: str) -> int:
    """Columns taken by leading whitespace, a tab counting as TAB_WIDTH."""
    ws = leading_whitespace(whitespace)
    return ws.count(" ") + TAB_WIDTH * ws.count("\t")


def cursor_indent(prefix: str) -> int:
    """The indentation of the cursor's line: the block a multi-line suggestion starts in."""
    return indent_width(prefix.rsplit("\n", 1)[-1])


def should_stop(text_so_far: str, *, multiline: bool, start_indent: int, max_lines: int) -> bool:
    """Whether a stream can stop: single-line at the first newline; multi-line once `max_lines`
    lines are complete, a blank line follows code, or a complete later line is less indented
    than the block (`start_indent` from `cursor_indent`; at column 0, the first line's own
    indentation)."""
    if not multiline:
        return "\n" in text_so_far
    lines = text_so_far.split("\n")
    complete = lines[:-1]
    if len(complete) >= max_lines:
        return True
    seen_code = False
    for line in complete:
        if line.strip():
            seen_code = True
        elif seen_code:
            return True  # a blank line after code: the paragraph is complete
    start = start_indent or indent_width(lines[0])
    return any(line.strip() and indent_width(line) < start for line in complete[1:])
