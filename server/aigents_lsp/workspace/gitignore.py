"""Gitignore patterns compiled to regular expressions, as git reads them.

`glob_to_regex` handles `*`, `**` as a whole path component, `?`, bracket expressions with
ranges, negation and POSIX classes (`[[:digit:]]`), and backslash escapes; `IgnorePattern.parse`
handles one line of an ignore file: comments, `!`, a trailing `/`, anchoring by a `/`, and
trailing spaces (dropped unless escaped). What the patterns decide is `ignore`'s business.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_POSIX_CLASSES = {
    "alnum": "a-zA-Z0-9", "alpha": "a-zA-Z", "blank": r" \t", "cntrl": r"\x00-\x1f\x7f",
    "digit": "0-9", "graph": "!-~", "lower": "a-z", "print": " -~", "punct": r"!-/:-@\[-`{-~",
    "space": r"\s", "upper": "A-Z", "xdigit": "0-9A-Fa-f",
}  # fmt: skip


def _class_to_regex(glob: str, start: int) -> tuple[str, int] | None:
    """The regex for the bracket expression opening at `glob[start]`, and the index after it."""
    i, n, items = start + 1, len(glob), list[str]()
    negate = i < n and glob[i] in "!^"
    i += negate
    while i < n:
        if glob[i] == "]" and items:  # a "]" first is a member
            body = "".join(items)
            return (f"[^/{body}]" if negate else f"(?!/)[{body}]"), i + 1
        end = glob.find(":]", i + 2) if glob.startswith("[:", i) else -1
        if end != -1 and glob[i + 2 : end] in _POSIX_CLASSES:
            items.append(_POSIX_CLASSES[glob[i + 2 : end]])
            i = end + 2
            continue
        i += glob[i] == "\\" and i + 1 < n  # an escaped character is just that character
        if i + 2 < n and glob[i + 1] == "-" and glob[i + 2] != "]":
            items.append(f"{re.escape(glob[i])}-{re.escape(glob[i + 2])}")
            i += 3
        else:
            items.append(re.escape(glob[i]))
            i += 1
    return None  # unterminated: the "[" is literal


def glob_to_regex(glob: str) -> str:
    """Regex source for a gitignore glob without its `!`, trailing `/` or anchoring `/`."""
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if c == "*":
            j = i
            while j < n and glob[j] == "*":
                j += 1
            whole_component = (i == 0 or glob[i - 1] == "/") and (j == n or glob[j] == "/")
            if j - i >= 2 and whole_component:  # "x/**", "**/x", "x/**/y"; else a plain "*"
                out.append(".*" if j == n else "(?:.*/)?")
                j += j < n  # the "/" after "**" is inside "(?:.*/)?"
            else:
                out.append("[^/]*")
            i = j
            continue
        if c == "[" and (bracket := _class_to_regex(glob, i)) is not None:
            out.append(bracket[0])
            i = bracket[1]
            continue
        if c == "\\" and i + 1 < n:
            i += 1
        out.append("[^/]" if c == "?" else re.escape(glob[i]))
        i += 1
    return "".join(out)


@dataclass(frozen=True, slots=True)
class IgnorePattern:
    """One compiled line of an ignore file."""

    text: str
    regex: re.Pattern[str]
    negated: bool
    dir_only: bool

    @classmethod
    def parse(cls, line: str, flags: int = 0) -> IgnorePattern | None:
        """The pattern on one line, or None for blank lines, comments and invalid patterns."""
        text = line.rstrip("\r").rstrip(" ")
        if text != line.rstrip("\r") and (len(text) - len(text.rstrip("\\"))) % 2:
            text += " "  # "\ " keeps the escaped trailing space
        if not text or text.startswith("#"):
            return None
        body = text[1:] if (negated := text.startswith("!")) else text
        body = body[:-1] if (dir_only := body.endswith("/")) else body
        anchored = "/" in body  # a slash at the start or in the middle anchors the pattern
        body = body.removeprefix("/")
        source = glob_to_regex(body) if anchored else f"(?:.*/)?{glob_to_regex(body)}"
        try:
            regex = re.compile(source, flags | re.DOTALL)
        except re.error:  # e.g. a reversed range "[z-a]": git never matches it either
            return None
        return cls(text, regex, negated, dir_only) if body else None
