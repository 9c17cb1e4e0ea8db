"""Cutting source files into chunks at function and class boundaries.

Python is cut with `ast` (top-level functions and classes; a large class into its methods;
module-level statements between them grouped). Other languages by a heuristic: a new block
starts at a non-blank line at the file's outermost indentation after a blank line or a closed
block, or at a line that declares something (`function`, `class`, `fn`, `func`, ...). Every
chunk is at most `max_lines` lines and `max_chars` characters: longer ones are split, at blank
lines where possible.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

MAX_LINES = 80
MAX_CHARS = 4000
MIN_LINES = 4  # smaller neighbouring blocks (imports, constants) are merged

_DECLARATION = re.compile(
    r"^\s*(?:(?:export|default|public|private|protected|internal|static|abstract|async|final|"
    r"pub(?:\([^)]*\))?|unsafe|inline|virtual|override|extern|open|sealed|data|const|local)\s+)*"
    r"(?:function\*?|def|class|interface|struct|enum|trait|impl|fn|func|fun|type|module|"
    r"namespace|object|record|sub|proc|macro|protocol|extension|union|package)\s+"
    r"(?:\([^)]*\)\s*)?([A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*)"
)
_ASSIGNED_FUNCTION = re.compile(
    r"^\s*(?:export\s+)?(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*=\s*(?:async\s+)?(?:function|\()"
)
_CLOSER = re.compile(r"^[\s]*(?:[}\])][;,)]*|end\b.*|fi|done|esac)\s*$")
_MARKDOWN_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")


@dataclass(frozen=True, slots=True)
class Chunk:
    """Lines `start`..`end` (0-based, inclusive) of one file."""

    start: int
    end: int
    text: str
    symbol: str = ""  # "Class.method", "function", a heading ...


def chunk_text(
    text: str,
    language: str = "",
    *,
    max_lines: int = MAX_LINES,
    max_chars: int = MAX_CHARS,
) -> list[Chunk]:
    """The chunks of one file's text; `language` is a file suffix (`py`, `ts`, `md`...)."""
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        return []
    spans: list[tuple[int, int, str]] | None = None
    if language in ("py", "pyi", "python"):
        spans = _python_spans(text, lines, max_lines)
    elif language in ("md", "markdown", "rst"):
        spans = _heading_spans(lines)
    if spans is None:
        spans = _heuristic_spans(lines)
    chunks: list[Chunk] = []
    for start, end, symbol in _merge_small(spans, lines):
        for piece_start, piece_end in _split(lines, start, end, max_lines, max_chars):
            while piece_start < piece_end and not lines[piece_start].strip():
                piece_start += 1  # a location starts at code, not at the blank lines before it
            while piece_end > piece_start and not lines[piece_end].strip():
                piece_end -= 1
            body = "\n".join(lines[piece_start : piece_end + 1])
            if body.strip():
                chunks.append(Chunk(piece_start, piece_end, body[:max_chars], symbol))
    return chunks


# --- Python ---------------------------------------------------------------------------------


def _node_start(node: ast.stmt) -> int:
    decorators: list[ast.expr] = getattr(node, "decorator_list", None) or []
    return min([node.lineno, *(d.lineno for d in decorators)]) - 1


def _python_spans(text: str, lines: list[str], max_lines: int) -> list[tuple[int, int, str]] | None:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None  # broken code is still worth indexing: the heuristic takes it
    spans: list[tuple[int, int, str]] = []
    loose: tuple[int, int] | None = None  # module-level statements not yet emitted

    def flush() -> None:
        nonlocal loose
        if loose is not None:
            spans.append((loose[0], loose[1], ""))
            loose = None

    for node in tree.body:
        start, end = _node_start(node), (node.end_lineno or node.lineno) - 1
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            flush()
            if isinstance(node, ast.ClassDef) and end - start + 1 > max_lines:
                spans.extend(_class_spans(node, start, end))
            else:
                spans.append((start, end, node.name))
        else:
            loose = (loose[0] if loose else start, end)
    flush()
    return _with_gaps(spans, len(lines))


def _class_spans(node: ast.ClassDef, start: int, end: int) -> list[tuple[int, int, str]]:
    """A large class: its header (up to the first method) and each method on its own."""
    spans: list[tuple[int, int, str]] = []
    cursor = start
    for child in node.body:
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            child_start = _node_start(child)
            if not spans and child_start > cursor:  # the class line, docstring, attributes
                spans.append((cursor, child_start - 1, node.name))
                cursor = child_start
            # Comments and attributes between methods go with the method that follows.
            child_end = (child.end_lineno or child.lineno) - 1
            spans.append((cursor, child_end, f"{node.name}.{child.name}"))
            cursor = child_end + 1
    if cursor <= end:
        spans.append((cursor, end, node.name))
    return spans


def _with_gaps(spans: list[tuple[int, int, str]], total: int) -> list[tuple[int, int, str]]:
    """Spans covering every line: comments between definitions join the next span."""
    covered: list[tuple[int, int, str]] = []
    cursor = 0
    for start, end, symbol in sorted(spans):
        start = max(start, cursor)
        if end < start:
            continue
        covered.append((cursor, end, symbol))
        cursor = end + 1
    if cursor < total:
        covered.append((cursor, total - 1, ""))
    return covered


# --- other languages ------------------------------------------------------------------------


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def symbol_of(line: str) -> str:
    """The name a line declares (`function foo`, `class Bar`, `const f = () =>`), or ""."""
    found = _DECLARATION.match(line) or _ASSIGNED_FUNCTION.match(line)
    return found.group(1) if found else ""


def _heuristic_spans(lines: list[str]) -> list[tuple[int, int, str]]:
    indents = [_indent(line) for line in lines if line.strip()]
    outer = min(indents) if indents else 0
    starts: list[int] = [0]
    after_gap = False
    for number, line in enumerate(lines):
        if not line.strip():
            after_gap = True
            continue
        top = _indent(line) == outer
        if number and top and not _CLOSER.match(line):
            previous = lines[number - 1]
            closed = bool(_CLOSER.match(previous)) and _indent(previous) == outer
            if after_gap or closed or symbol_of(line):
                if starts[-1] != number:
                    starts.append(number)
        after_gap = False
    spans: list[tuple[int, int, str]] = []
    for index, start in enumerate(starts):
        end = (starts[index + 1] if index + 1 < len(starts) else len(lines)) - 1
        while end > start and not lines[end].strip():
            end -= 1
        spans.append((start, end, _first_symbol(lines, start, end)))
    return spans


def _first_symbol(lines: list[str], start: int, end: int) -> str:
    for line in lines[start : min(end, start + 3) + 1]:
        if symbol := symbol_of(line):
            return symbol
    return ""


def _heading_spans(lines: list[str]) -> list[tuple[int, int, str]]:
    spans: list[tuple[int, int, str]] = []
    start, title, fenced = 0, "", False
    for number, line in enumerate(lines):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        heading = None if fenced else _MARKDOWN_HEADING.match(line)
        if heading and number > start:
            spans.append((start, number - 1, title))
            start = number
        if heading:
            title = heading.group(1)
    spans.append((start, len(lines) - 1, title))
    return spans


# --- sizes ----------------------------------------------------------------------------------


def _merge_small(spans: list[tuple[int, int, str]], lines: list[str]) -> list[tuple[int, int, str]]:
    """Neighbouring tiny spans without a symbol (imports, constants) become one."""
    merged: list[tuple[int, int, str]] = []
    for start, end, symbol in spans:
        if merged:
            last_start, last_end, last_symbol = merged[-1]
            small = end - start + 1 < MIN_LINES and (last_end - last_start + 1) < MIN_LINES * 4
            if small and not symbol and not last_symbol:
                merged[-1] = (last_start, end, last_symbol)
                continue
        merged.append((start, end, symbol))
    return merged


def _split(
    lines: list[str], start: int, end: int, max_lines: int, max_chars: int
) -> list[tuple[int, int]]:
    """`start..end` in pieces within the limits, cut at a blank line in a piece's second half
    when there is one."""
    pieces: list[tuple[int, int]] = []
    while start <= end:
        limit, size, stop = min(end, start + max_lines - 1), 0, start
        while stop <= limit:
            size += len(lines[stop]) + 1
            if size > max_chars and stop > start:
                stop -= 1
                break
            stop += 1
        else:
            stop = limit
        stop = min(stop, limit)
        if stop < end:
            half = start + (stop - start) // 2
            blank = next((i for i in range(stop, half, -1) if not lines[i].strip()), None)
            stop = blank if blank is not None else stop
        pieces.append((start, stop))
        start = stop + 1
    return pieces
