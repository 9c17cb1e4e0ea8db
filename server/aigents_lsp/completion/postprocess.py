"""From raw model output to what is shown at the cursor: each rule a pure function.

A rule takes the suggestion and the `CursorContext` (text around the cursor, line mode, the
document's indentation) and returns the suggestion changed, or None to show nothing. `RULES` is
the order `postprocess` applies them in: clean the raw text first (tokens, fences, loops,
whitespace), then shape it (indentation, block end, line count), then fit it to the document
(suffix overlap, brackets), and judge what is left last (repeats of neighbouring lines, junk).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aigents_lsp.completion.mode import indent_width, leading_whitespace
from aigents_lsp.completion.syntax import (
    OPENERS,
    PAIR,
    ScanState,
    match_brackets,
    opened_in,
    scan_brackets,
    state_at_cursor,
)
from aigents_lsp.completion.templates import strip_model_output

_BLOCK_OPENER = re.compile(r"(?:[:{(\[]|=>|\bthen|\bdo)\s*$")
_CLOSER_LINE = re.compile(r"[)\]}][)\]};,]*|(?:end|fi|done|esac|endif|endfor|endwhile)[;,)]*")
# A column-0 line that plausibly ends the cursor's block rather than continuing it.
_BLOCK_BOUNDARY = re.compile(
    r"[)\]}]|(?:else|elif|except|finally|catch|case|default|end|def|class|function|fn|func"
    r"|export|import|from|package|public|private|protected|static)\b|@|#include"
)
_BLOCK_END = re.compile(r"(?:return|raise|throw|break|continue)\b")


@dataclass(frozen=True)
class CursorContext:
    """What the rules know about the place a suggestion goes."""

    prefix: str  # document text before the cursor
    suffix: str  # document text after the cursor
    multiline: bool = False
    indent_unit: str = "    "  # the document's indentation: "\t" or some spaces
    max_lines: int = 12
    language_id: str = ""
    tokens: tuple[str, ...] = ()  # the template's special tokens

    @property
    def line_before(self) -> str:
        return self.prefix.rsplit("\n", 1)[-1]

    @property
    def line_after(self) -> str:
        return self.suffix.split("\n", 1)[0]

    @property
    def lines_below(self) -> list[str]:
        """The non-blank lines after the cursor's line, stripped."""
        return [line.strip() for line in self.suffix.split("\n")[1:] if line.strip()]


Rule = Callable[[str, CursorContext], str | None]


# --- small helpers -----------------------------------------------------------------------------


def _start_indent(text: str, ctx: CursorContext) -> int:
    """Cursor indentation; on an empty line, the indentation the suggestion itself starts at."""
    if ctx.line_before:
        return indent_width(ctx.line_before)
    return indent_width(text.split("\n", 1)[0])


def _is_closer_line(line: str) -> bool:
    return bool(_CLOSER_LINE.fullmatch(line.strip()))


def _nonblank(text: str) -> str | None:
    return text if text.strip() else None


# --- the rules, in pipeline order --------------------------------------------------------------


def strip_special_tokens(text: str, ctx: CursorContext) -> str | None:
    """Drop <think> blocks and the template's special tokens (cut at the first one left)."""
    return _nonblank(strip_model_output(text.replace("\r\n", "\n"), ctx.tokens))


_FENCE_LINE = re.compile(r"^[ \t]*```[\w+#.-]*[ \t]*$", re.MULTILINE)


def strip_code_fences(text: str, ctx: CursorContext) -> str | None:
    """Unwrap ```lang … ``` that chat-tuned models put around code (not in markdown documents)."""
    if ctx.language_id in ("markdown", "mdx") or "```" in ctx.prefix:
        return text
    first = _FENCE_LINE.match(text)
    if first:
        text = text[first.end() + 1 :]
    closing = _FENCE_LINE.search(text)
    if closing:
        text = text[: closing.start()]
    return _nonblank(text.rstrip())


_RUN = re.compile(r"(.{1,12}?)\1{4,}")


def truncate_repetition(text: str, ctx: CursorContext) -> str | None:
    """Degenerate loops - a block of 1-3 lines repeated 3 times, a short phrase repeated 5+ times
    (`a a a a a`), a closer run (`))))))`) - are cut after their first copy. Lines looping from
    the start keep theirs (the model's guess at the next statement, which it could not stop
    repeating); a phrase or closer run with nothing useful before it is nothing."""
    lines = text.split("\n")
    stripped = [line.strip() for line in lines]
    for i in range(len(lines)):
        for size in (1, 2, 3):
            block = stripped[i : i + size]
            if len(block) < size or all(not line or _is_closer_line(line) for line in block):
                continue
            if stripped[i + size : i + 2 * size] == block == stripped[i + 2 * size : i + 3 * size]:
                return "\n".join(lines[: i + size]).rstrip()
    for match in _RUN.finditer(text):
        unit = match.group(1)
        copies = len(match.group(0)) // len(unit)
        core = unit.strip()
        phrase = any(c.isalpha() for c in core) and not unit.isalnum() and copies >= 5
        closers = bool(core) and all(c in ")]};," for c in core) and copies >= 6
        if phrase or closers:
            useful = text[: match.start()].strip()
            return text[: match.start() + len(unit)].rstrip() if useful else None
    return text


def trim_whitespace(text: str, ctx: CursorContext) -> str | None:
    """Trailing whitespace and blank lines go; so do leading blanks of the first line when the
    cursor follows whitespace (no doubled space or indentation) and, multi-line on a blank
    line, leading newlines."""
    if ctx.multiline and not ctx.line_before.strip():
        text = text.lstrip("\n")
    lines = [line.rstrip() for line in text.split("\n")]
    if ctx.line_before[-1:] in (" ", "\t"):
        lines[0] = lines[0].lstrip(" \t")
    return _nonblank("\n".join(lines).rstrip())


def reindent_relative(text: str, ctx: CursorContext) -> str | None:
    """A multi-line suggestion written from column 0 while the cursor line is indented: indent
    its later lines by the cursor's indentation. Applied only when unambiguous: the first line
    opens a block whose body is not deeper than the cursor, or the later lines reach column 0
    with no blank line between and none there looks like the end of the cursor's block."""
    base = leading_whitespace(ctx.line_before)
    lines = text.split("\n")
    later = [line for line in lines[1:] if line.strip()]
    if not ctx.multiline or not base or not later or ctx.line_before.strip():
        return text
    opens_block = bool(_BLOCK_OPENER.search(lines[0]))
    relative_body = opens_block and indent_width(later[0]) <= indent_width(base)
    from_column_0 = (
        min(indent_width(line) for line in later) == 0
        and all(line.strip() for line in lines[1:])  # a blank line hints at top-level code
        and not any(_BLOCK_BOUNDARY.match(line) for line in later)
        and not _BLOCK_END.match(lines[0])
    )
    if not (relative_body or (from_column_0 and not opens_block)):
        return text
    return "\n".join([lines[0]] + [base + line if line.strip() else line for line in lines[1:]])


def _tabs_converter(later: list[str]) -> Callable[[str], str] | None:
    spaces = [ws.count(" ") for ws in map(leading_whitespace, later) if " " in ws]
    unit = next((u for u in (4, 2) if spaces and all(n % u == 0 for n in spaces)), 0)
    if not unit:
        return None
    return lambda ws: "\t" * (ws.count("\t") + ws.count(" ") // unit) + " " * (ws.count(" ") % unit)


def _spaces_converter(later: list[str], width: int, base: int) -> Callable[[str], str] | None:
    def columns(ws: str) -> int:
        return ws.count(" ") + width * ws.count("\t")

    deltas = [n - base for n in (columns(leading_whitespace(line)) for line in later) if n > base]
    step = min(deltas, default=0)
    scale = step in (2, 4) and step != width and all(d % step == 0 for d in deltas)
    if not scale and not any("\t" in leading_whitespace(line) for line in later):
        return None

    def convert(ws: str) -> str:
        n = columns(ws)
        return " " * (base + (n - base) // step * width if scale and n > base else n)

    return convert


def match_indentation(text: str, ctx: CursorContext) -> str | None:
    """Lines after the first use the document's indent unit: tabs <-> spaces, and 2 <-> 4 spaces
    for indentation deeper than the cursor's block (only when every such line agrees)."""
    lines, unit = text.split("\n"), ctx.indent_unit
    if not ctx.multiline or len(lines) < 2 or not unit or (unit.strip(" ") and unit != "\t"):
        return text
    later = [line for line in lines[1:] if line.strip()]
    if unit == "\t":
        convert = _tabs_converter(later)
    else:
        convert = _spaces_converter(later, len(unit), _start_indent(text, ctx))
    if convert is None:
        return text
    out = [lines[0]]
    for line in lines[1:]:
        ws = leading_whitespace(line)
        out.append(convert(ws) + line[len(ws) :] if line.strip() else line)
    return "\n".join(out)


def stop_at_dedent(text: str, ctx: CursorContext) -> str | None:
    """Multi-line: a line less indented than the cursor's block ends the suggestion. A closing
    line there (`}`, `end`) is kept when the document does not close the block already."""
    if not ctx.multiline:
        return text
    start = _start_indent(text, ctx)
    lines = text.split("\n")
    for i, line in enumerate(lines[1:], start=1):
        if line.strip() and indent_width(line) < start:
            kept = lines[:i]
            below = ctx.lines_below
            if _is_closer_line(line) and not (below and _is_closer_line(below[0])):
                kept.append(line)
            return _nonblank("\n".join(kept).rstrip())
    return text


def stop_at_blank_line(text: str, ctx: CursorContext) -> str | None:
    """Multi-line: a blank line after code ends the suggestion, as it ends a paragraph of
    code (the next one is suggested once this one is accepted). A small model that goes on
    past it mostly writes the rest of the file, or loops."""
    if not ctx.multiline:
        return text
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if i and not line.strip() and any(earlier.strip() for earlier in lines[:i]):
            return _nonblank("\n".join(lines[:i]).rstrip())
    return text


def limit_lines(text: str, ctx: CursorContext) -> str | None:
    """Single-line mode keeps the first line; multi-line mode at most `max_lines` lines."""
    keep = ctx.max_lines if ctx.multiline else 1
    return _nonblank("\n".join(text.split("\n")[:keep]).rstrip())


def remove_suffix_overlap(text: str, ctx: CursorContext) -> str | None:
    """Drop what the document already has after the cursor: last lines repeating the next lines,
    or an ending equal to the rest of the cursor's line (`print(|)` + `"hi")` -> `"hi"`) - unless
    the dropped part closes a bracket or string the suggestion itself opened (`foo()`)."""

    def opened_by(part: str) -> int:
        return opened_in(part, ctx.line_before, ctx.language_id)

    opened = opened_by(text)
    lines, below = text.split("\n"), ctx.lines_below
    for k in range(min(len(lines) - 1, len(below)), 0, -1):
        tail = [line.strip() for line in lines[-k:] if line.strip()]
        kept = "\n".join(lines[:-k]).rstrip()
        if tail and tail == below[: len(tail)] and opened_by(kept) <= opened:
            text, opened = kept, opened_by(kept)
            break
    rest = ctx.line_after.strip()
    if rest and text.rstrip().endswith(rest):
        kept = text.rstrip()[: -len(rest)].rstrip()
        if opened_by(kept) <= opened:
            text = kept
    return _nonblank(text)


def balance_brackets(text: str, ctx: CursorContext) -> str | None:
    """Cut at the first closer of a bracket opened neither in the suggestion nor before the
    cursor on its line (those the rest of the line closes already count as closed); then cut
    before a string the suggestion opens and never closes. A closer leading a later line is
    left to `stop_at_dedent`."""
    state, outer = state_at_cursor(ctx.line_before, ctx.language_id)
    rest_state = ScanState(quote=state.quote, comment=state.comment)
    _, closed_by_rest = match_brackets(ctx.line_after, rest_state, ctx.language_id)
    allowance = max(0, len(outer) - closed_by_rest)
    own: list[str] = []
    for i, ch in scan_brackets(text, state, ctx.language_id):
        if ch in OPENERS:
            own.append(ch)
            continue
        if own and own[-1] == PAIR[ch]:
            own.pop()
            continue
        line_start = text.rfind("\n", 0, i)
        leads_later_line = line_start >= 0 and not text[line_start + 1 : i].strip()
        if not own and outer and outer[-1] == PAIR[ch] and (allowance > 0 or leads_later_line):
            outer.pop()
            allowance -= 1
            continue
        if leads_later_line and not own:
            continue
        return _nonblank(text[:i].rstrip())
    unclosed = state.unclosed_at
    if unclosed < 0 and state.quote is not None and state.quote_at >= 0:
        unclosed = state.quote_at
    if unclosed < 0:
        return text
    closed = _close_docstring(text, unclosed, ctx)
    return closed if closed is not None else _nonblank(text[:unclosed].rstrip())


def _close_docstring(text: str, opened_at: int, ctx: CursorContext) -> str | None:
    """A multi-line suggestion that opens a docstring (a triple quote) and writes lines of it
    but was cut before closing it (a loop cut short, the line limit): the lines written are
    kept and the docstring closed, at its opening line's indentation. Cutting before the
    quote would leave nothing to show."""
    quote = text[opened_at : opened_at + 3]
    if not ctx.multiline or quote not in ('"""', "'''") or "\n" not in text[opened_at:]:
        return None
    body = text[opened_at + 3 :]
    if quote in body or not body.strip():
        return None
    line_start = text.rfind("\n", 0, opened_at) + 1
    line = text[line_start:opened_at] if line_start else ctx.line_before + text[:opened_at]
    indent = line[: len(line) - len(line.lstrip())]
    lines = text.rstrip().split("\n")[: max(1, ctx.max_lines - 1)]
    return "\n".join(lines) + "\n" + indent + quote


def drop_repeated_neighbours(text: str, ctx: CursorContext) -> str | None:
    """None when the resulting line repeats the line above or below, or when the suggested lines
    equal the next lines of the document (closing-only lines like `}` may repeat)."""
    region = ctx.line_before + text + ctx.line_after
    lines = [line.strip() for line in region.split("\n") if line.strip()]
    if all(_is_closer_line(line) for line in lines):
        return text
    if lines == ctx.lines_below[: len(lines)]:
        return None
    if len(lines) == 1:
        above = [line.strip() for line in ctx.prefix.split("\n")[:-1] if line.strip()]
        if above and lines[0] == above[-1]:
            return None
    return text


def reject_junk(text: str, ctx: CursorContext) -> str | None:
    """None for whitespace, or a single punctuation character the document already has next."""
    core = text.strip()
    if not core:
        return None
    if len(core) == 1 and not core.isalnum() and ctx.line_after.lstrip().startswith(core):
        return None
    return text


RULES: tuple[Rule, ...] = (
    strip_special_tokens,
    strip_code_fences,
    truncate_repetition,
    trim_whitespace,
    reindent_relative,
    match_indentation,
    stop_at_dedent,
    stop_at_blank_line,
    limit_lines,
    remove_suffix_overlap,
    balance_brackets,
    drop_repeated_neighbours,
    reject_junk,
)
"""The post-processing pipeline, in the order `postprocess` applies it."""


def postprocess(
    text: str,
    prefix: str,
    suffix: str,
    *,
    multiline: bool,
    indent_unit: str,
    max_lines: int = 12,
    language_id: str = "",
    tokens: Sequence[str] = (),
    dropped_by: list[str] | None = None,
) -> str | None:
    """The suggestion to show at the cursor, or None when nothing worth showing is left (then
    the rule that dropped it is appended to `dropped_by`: `aigents.stats` counts by it)."""
    ctx = CursorContext(
        prefix, suffix, multiline, indent_unit, max_lines, language_id, tuple(tokens)
    )
    result = text
    for rule in RULES:
        changed = rule(result, ctx)
        if changed is None:
            if dropped_by is not None:
                dropped_by.append(rule.__name__)
            return None
        result = changed
    return result
