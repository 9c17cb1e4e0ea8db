"""What a command works on: the selected lines, or the function around the cursor; and where
the tests for a file go. Pure functions over lines of text."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

_DEFINITION = re.compile(
    r"^\s*(?:export\s+)?(?:default\s+)?(?:pub(?:\([^)]*\))?\s+)?(?:async\s+)?(?:static\s+)?"
    r"(?:def|class|fn|func|function|interface|struct|impl|enum|trait|"
    r"(?:public|private|protected)\s+[\w<>\[\], ]+\s*\w+\s*\()"
)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def selected_lines(lines: list[str], start: int, end: int, end_column: int) -> tuple[int, int]:
    """The [first, last] lines a range covers (a range ending at column 0 of a later line
    does not take that line)."""
    last = end - 1 if end > start and end_column == 0 else end
    last = max(start, min(last, len(lines) - 1))
    return max(0, min(start, len(lines) - 1)), last


def enclosing_block(lines: list[str], line: int) -> tuple[int, int]:
    """[first, last] lines of the definition (function, class, ...) around `line`, found by
    indentation and braces; the line itself when there is none."""
    if not lines:
        return 0, 0
    line = max(0, min(line, len(lines) - 1))
    first = None
    here = _indent(lines[line]) if lines[line].strip() else 10**6
    for row in range(line, -1, -1):
        text = lines[row]
        if text.strip() and _DEFINITION.match(text) and (_indent(text) < here or row == line):
            first = row
            break
        if text.strip():
            here = min(here, _indent(text))
    if first is None:
        return line, line
    base = _indent(lines[first])
    last = first
    depth = 0
    for row in range(first, len(lines)):
        text = lines[row]
        depth += text.count("{") - text.count("}")
        if row > first and text.strip():
            if _indent(text) <= base and depth <= 0 and not text.strip().startswith((")", "]")):
                if text.strip().startswith("}"):
                    last = row
                break
            last = row
        if row > first and depth <= 0 and "{" in lines[first] and text.strip().startswith("}"):
            last = row
            break
    return first, last


def test_path_for(file_path: str, language: str) -> str:
    """Where tests for `file_path` (relative, POSIX) conventionally go."""
    path = PurePosixPath(file_path)
    stem, parent = path.stem, path.parent
    if language == "python" or path.suffix == ".py":
        if parent.parts and parent.parts[0] in ("src", "server", "lib"):
            return str(PurePosixPath("tests") / f"test_{stem}.py")
        return str(parent / f"test_{stem}.py")
    if path.suffix in (".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs"):
        return str(parent / f"{stem}.test{path.suffix}")
    if path.suffix == ".go":
        return str(parent / f"{stem}_test.go")
    if path.suffix == ".java":
        return str(parent / f"{stem}Test.java")
    if path.suffix == ".rs":
        return str(path)  # Rust keeps unit tests in the file itself
    return str(parent / f"test_{path.name}")
