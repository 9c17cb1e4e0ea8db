"""A model's answer turned into a safe, minimal edit: the code, re-indented, diffed by lines.

`plan_edit` is the whole road: `answers.extract_code` takes the code out of the answer (fences,
think blocks, prose), `match_indentation` puts it back at the selection's indentation, and
`line_edits` diffs it against the selection, so only the lines that really changed are touched.
Answers that cannot be applied safely raise `EditRefused` with a message for the user.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from aigents_lsp.assist.answers import content_bounds, extract_code, has_fence, trim_blank_lines
from aigents_lsp.assist.languages import canonical_language
from aigents_lsp.providers.reasoning import strip_think

# --- indentation -----------------------------------------------------------------------------

_IndentStyle = Literal["tab", "space"]


def _leading(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _indent_style(lines: Sequence[str]) -> _IndentStyle | None:
    counts = Counter(line[0] for line in lines if line.strip() and line[0] in " \t")
    if not counts:
        return None
    return "tab" if counts["\t"] > counts[" "] else "space"


def _indent_unit(lines: Sequence[str]) -> int:
    """The most common indentation step of space-indented lines (4 without evidence)."""
    steps: Counter[int] = Counter()
    previous: int | None = None
    for line in lines:
        if not line.strip():
            continue
        width = len(_leading(line).expandtabs(4))
        if previous is not None and 2 <= width - previous <= 8:
            steps[width - previous] += 1
        previous = width
    return steps.most_common(1)[0][0] if steps else 4


def _columns(whitespace: str, tab_width: int) -> int:
    column = 0
    for char in whitespace:
        column = (column // tab_width + 1) * tab_width if char == "\t" else column + 1
    return column


def match_indentation(code: str, original: str) -> str:
    """`code` re-indented like `original` (whole lines): the first non-blank line gets the
    original's indentation, the others keep their indentation relative to it, and tabs or
    spaces follow the original's style (a tab is one indentation step of the space side).

    Limitation: lines inside multi-line strings move with the code around them."""
    original_lines = original.split("\n")
    code_lines = code.split("\n")
    original_first = next((line for line in original_lines if line.strip()), None)
    code_first = next((line for line in code_lines if line.strip()), None)
    if original_first is None or code_first is None:
        return code
    code_style = _indent_style(code_lines)
    style = _indent_style(original_lines) or code_style or "space"
    space_side = original_lines if style == "space" else code_lines
    tab_width = _indent_unit(space_side)
    shift = _columns(_leading(original_first), tab_width) - _columns(
        _leading(code_first), tab_width
    )
    if shift == 0 and code_style in (None, style):
        return code
    result: list[str] = []
    for line in code_lines:
        if not line.strip():
            result.append("")
            continue
        whitespace = _leading(line)
        column = max(0, _columns(whitespace, tab_width) + shift)
        if style == "tab":
            indent = "\t" * (column // tab_width) + " " * (column % tab_width)
        else:
            indent = " " * column
        result.append(indent + line[len(whitespace) :])
    return "\n".join(result)


# --- line edits ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineEdit:
    """Replace document lines [start, end) (0-based) with `lines` (no line endings)."""

    start: int
    end: int
    lines: tuple[str, ...]


def split_lines(text: str) -> list[str]:
    """Lines without their endings (\\n, \\r\\n or \\r); a final newline ends the last line
    rather than starting an empty one, so "a\\n" and "a" are both ["a"]."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return lines[:-1] if lines[-1] == "" else lines


def line_edits(
    original: str, rewritten: str, first_line: int, *, ignore_trailing_whitespace: bool = False
) -> list[LineEdit]:
    """The minimal line edits turning `original` into `rewritten`; `first_line` is the
    document line of the original's first line. A pure insertion has start == end."""
    return _diff_lines(
        split_lines(original), split_lines(rewritten), first_line, ignore_trailing_whitespace
    )


def _diff_lines(
    old: Sequence[str], new: Sequence[str], first_line: int, ignore_trailing_whitespace: bool
) -> list[LineEdit]:
    old_keys = [line.rstrip() for line in old] if ignore_trailing_whitespace else old
    new_keys = [line.rstrip() for line in new] if ignore_trailing_whitespace else new
    # autojunk off: blank and brace lines are common, and junking them breaks minimality.
    matcher = difflib.SequenceMatcher(None, old_keys, new_keys, autojunk=False)
    return [
        LineEdit(first_line + i1, first_line + i2, tuple(new[j1:j2]))
        for tag, i1, i2, j1, j2 in matcher.get_opcodes()
        if tag != "equal"
    ]


def apply_line_edits(lines: Sequence[str], edits: Sequence[LineEdit]) -> list[str]:
    """`lines` (a whole document) with `edits` applied; edits must not overlap."""
    result = list(lines)
    for edit in sorted(edits, key=lambda e: (e.start, e.end), reverse=True):
        result[edit.start : edit.end] = edit.lines
    return result


REBASE_MAX_LINES = 20_000
"""Above this many changed lines between the two versions, an edit is not re-based."""


def rebase_line_edits(
    old: Sequence[str], new: Sequence[str], region: tuple[int, int], edits: Sequence[LineEdit]
) -> list[LineEdit] | None:
    """`edits` (line numbers of the document `old`) moved onto the document `new`, or None
    when the lines `region` [start, end) of `old` are not found unchanged in `new` (the user
    typed in them, or the change is too big to tell where they went).

    Lines are compared whole (endings included): an edit only moves when everything it was
    computed from is still there, as it was."""
    start, end = region
    if end > len(old) or start < 0 or start >= end:
        return None
    shortest = min(len(old), len(new))
    prefix = 0
    while prefix < shortest and old[prefix] == new[prefix]:
        prefix += 1
    suffix = 0
    while suffix < shortest - prefix and old[-1 - suffix] == new[-1 - suffix]:
        suffix += 1
    if end <= prefix:  # everything that changed is below the region
        shift: int | None = 0
    elif start >= len(old) - suffix:  # everything that changed is above it
        shift = len(new) - len(old)
    else:  # changes above and below (or inside): where did the region go?
        old_middle = old[prefix : len(old) - suffix]
        new_middle = new[prefix : len(new) - suffix]
        if max(len(old_middle), len(new_middle)) > REBASE_MAX_LINES:
            return None
        matcher = difflib.SequenceMatcher(None, old_middle, new_middle, autojunk=False)
        shift = None
        for tag, i1, i2, j1, _ in matcher.get_opcodes():
            if tag == "equal" and prefix + i1 <= start and end <= prefix + i2:
                shift = j1 - i1
                break
    if shift is None:
        return None
    return [LineEdit(e.start + shift, e.end + shift, e.lines) for e in edits]


def unified_diff(original: str, rewritten: str, path: str) -> str:
    """A unified diff of the two texts for a preview ("" when they are equal)."""
    diff = difflib.unified_diff(
        split_lines(original), split_lines(rewritten), f"a/{path}", f"b/{path}", lineterm=""
    )
    text = "\n".join(diff)
    return text + "\n" if text else ""


# --- planning an edit ------------------------------------------------------------------------


class EditRefused(Exception):
    """The answer cannot be applied safely; `message` tells the user why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# Growth beyond both limits means the model answered with more than the selection (often the
# whole file, or the code plus a usage example): applying it would duplicate code.
# A rewrite much longer than the selection is usually the model rewriting (or inventing)
# more than it was given: refused. Docstrings legitimately add lines: their callers allow more.
MAX_GROWTH_RATIO = 3.0
MAX_GROWTH_LINES = 8
# "# ... rest of the code unchanged": a placeholder that would delete the code it stands for.
_ELISION = re.compile(
    r"^\s*(?:#|//|/\*+|--|;|<!--)\s*(?:\.\.\.|…|\[\.\.\.\]|.*\b(?:rest of (?:the )?(?:code|file"
    r"|function|class|method|implementation|body)|(?:existing|remaining|other|previous|original)"
    r" code|(?:code|rest|everything else) (?:remains? |stays? |is )?unchanged"
    r"|(?:omitted|elided) for brevity|same as (?:before|above))\b)",
    re.IGNORECASE,
)
_DIFF_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@")


def _same(lines: Sequence[str], others: Sequence[str]) -> bool:
    return len(lines) == len(others) and all(
        a.strip() == b.strip() for a, b in zip(lines, others, strict=True)
    )


def _echo(lines: Sequence[str], context: Sequence[str], own: Sequence[str]) -> bool:
    """`lines` repeat `context` (not blank lines only), and the selection does not have them."""
    return _same(lines, context) and any(x.strip() for x in lines) and not _same(own, lines)


def drop_echoed_context(code: list[str], old: list[str], before: str, after: str) -> list[str]:
    """The rewrite without the lines around the selection that the model wrote again (asked
    to rewrite one line of a function, small models answer with the whole function)."""
    above = before.split("\n") if before else []
    below = after.split("\n") if after else []
    for k in range(min(len(code) - 1, len(above)), 0, -1):
        if _echo(code[:k], above[-k:], old[:k]):
            code = code[k:]
            break
    for k in range(min(len(code) - 1, len(below)), 0, -1):
        if _echo(code[-k:], below[:k], old[-k:]):
            code = code[:-k]
            break
    return code


def plan_edit(
    original: str,
    answer: str,
    *,
    first_line: int,
    language: str = "",
    max_growth: float = MAX_GROWTH_RATIO,
    max_growth_lines: int = MAX_GROWTH_LINES,
    before: str = "",
    after: str = "",
) -> list[LineEdit]:
    """The line edits that apply a model's rewrite of `original` (whole document lines starting
    at `first_line`), or EditRefused.

    Refused: an empty answer or empty code ("the model returned an empty rewrite"), an answer
    without code, a diff instead of code, code with "... rest unchanged" placeholders that the
    original does not have, a rewrite more than `max_growth` times and MAX_GROWTH_LINES lines
    longer than the original (`max_growth_lines`), and a rewrite equal to the original ("no
    change proposed").
    The original's blank lines before and after its content are kept, and so is its final
    newline (or its absence): edits replace whole lines. Trailing whitespace is not a change.
    """
    code = extract_code(answer, language)
    if not code.strip():
        said = strip_think(answer.replace("\r\n", "\n"))
        if not said.strip() or has_fence(said):
            raise EditRefused("the model returned an empty rewrite")
        snippet = " ".join(said.split())[:80]
        raise EditRefused(f"the model answered without code: “{snippet}”")
    old = split_lines(original)
    old_stripped = {line.strip() for line in old}
    code_lines = drop_echoed_context(split_lines(code), old, before, after)
    code = "\n".join(code_lines)
    if canonical_language(language) not in ("diff", "patch") and any(
        _DIFF_HUNK.match(line) for line in code_lines
    ):
        raise EditRefused("the model returned a diff instead of the rewritten code")
    elided = next(
        (line for line in code_lines if _ELISION.match(line) and line.strip() not in old_stripped),
        None,
    )
    if elided is not None:
        raise EditRefused(f"the model left part of the code out (“{elided.strip()}”)")
    growth = len(code_lines) - len(old)
    if growth > max_growth_lines and len(code_lines) > max_growth * max(len(old), 1):
        raise EditRefused(
            f"the model returned {len(code_lines)} lines for a {len(old)}-line selection; "
            "it probably rewrote more than the selection"
        )
    new = split_lines(match_indentation(code, original))
    start, end = content_bounds(old)
    if start < end:  # the model cannot be trusted with the blank lines around the content
        new = [*old[:start], *trim_blank_lines(new), *old[end:]]
    edits = _diff_lines(old, new, first_line, True)
    if not edits:
        raise EditRefused("no change proposed")
    last_line = first_line + len(old)
    assert all(first_line <= e.start <= e.end <= last_line for e in edits), edits
    return edits
