"""Where a piece of code has strings, line comments and brackets: a one-pass scanner.

Not a parser: it knows each language's line-comment marker and whether `'` quotes strings, which
is what judging a suggestion's brackets at the cursor needs. `ScanState` carries what is open
(a string, a comment) from one piece of text to the next: the line before the cursor, then the
suggestion.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

OPENERS, CLOSERS = "([{", ")]}"
PAIR = {")": "(", "]": "[", "}": "{"}
"""Each closing bracket's opener."""

_HASH_COMMENT_LANGUAGES = frozenset(
    "python shellscript sh bash zsh fish ruby perl r yaml toml makefile dockerfile elixir nim "
    "julia powershell coffeescript cmake nix terraform".split()
)
_DASH_COMMENT_LANGUAGES = frozenset("lua sql haskell elm ada".split())
# Languages where ' is not a string delimiter (lifetimes, quoting, type variables, comments).
_NO_SINGLE_QUOTE_STRINGS = frozenset(
    "rust lisp clojure scheme racket commonlisp emacs-lisp elisp ocaml fsharp haskell vb "
    "verilog systemverilog".split()
)


@dataclass
class ScanState:
    """What is open where the scanned text ends: a string, a line comment."""

    quote: str | None = None  # the delimiter of the string we are in
    quote_at: int = -1  # where it opened in the scanned text; -1: before the cursor
    unclosed_at: int = -1  # first string opened here and left open at a line end
    comment: bool = False  # inside a line comment


def _comment_markers(language_id: str) -> tuple[str, ...]:
    if language_id in _HASH_COMMENT_LANGUAGES:
        return ("#",)
    if language_id in _DASH_COMMENT_LANGUAGES:
        return ("--",)
    return ("//",) if language_id else ("#", "//")


_STRING_PREFIXES = frozenset({"f", "r", "b", "u", "fr", "rf", "br", "rb"})


def _string_prefix(text: str, quote_at: int) -> bool:
    """`f'`, `rb'`, ...: the letters before a quote are a string prefix, not a word with an
    apostrophe (Python and friends)."""
    start = quote_at
    while start > 0 and text[start - 1].isalpha() and quote_at - start < 2:
        start -= 1
    word = text[start:quote_at].lower()
    before = text[start - 1] if start > 0 else " "
    return word in _STRING_PREFIXES and not (before.isalnum() or before == "_")


def scan_brackets(text: str, state: ScanState, language_id: str) -> Iterator[tuple[int, str]]:
    """(index, bracket) for brackets outside strings and line comments; updates `state`."""
    markers = _comment_markers(language_id)
    single_quotes = language_id not in _NO_SINGLE_QUOTE_STRINGS
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\n":
            state.comment = False
            if state.quote in ('"', "'"):  # plain strings end with the line
                if state.quote_at >= 0 and state.unclosed_at < 0:
                    state.unclosed_at = state.quote_at
                state.quote = None
        elif state.comment:
            pass
        elif state.quote:
            if ch == "\\":
                i += 1
            elif text.startswith(state.quote, i):
                i += len(state.quote) - 1
                state.quote = None
        elif any(text.startswith(marker, i) for marker in markers):
            state.comment = True
        elif ch in "\"'`":
            after_word = i > 0 and text[i - 1].isalnum() and not _string_prefix(text, i)
            apostrophe = ch == "'" and (not single_quotes or after_word)
            if not apostrophe:
                quote = ch * 3 if ch != "`" and text.startswith(ch * 3, i) else ch
                state.quote, state.quote_at = quote, i
                i += len(quote) - 1
        elif ch in OPENERS or ch in CLOSERS:
            yield i, ch
        i += 1


def match_brackets(text: str, state: ScanState, language_id: str) -> tuple[list[str], int]:
    """The brackets `text` leaves open, and how many closers in it match nothing in it."""
    stack: list[str] = []
    unmatched = 0
    for _, ch in scan_brackets(text, state, language_id):
        if ch in OPENERS:
            stack.append(ch)
        elif stack and stack[-1] == PAIR[ch]:
            stack.pop()
        else:
            unmatched += 1
    return stack, unmatched


def state_at_cursor(line_before: str, language_id: str) -> tuple[ScanState, list[str]]:
    """String/comment state at the cursor and the brackets open on its line before it."""
    state = ScanState()
    stack, _ = match_brackets(line_before, state, language_id)
    state.quote_at = -1
    return state, stack


def opened_in(text: str, line_before: str, language_id: str) -> int:
    """Brackets and strings the text opens and leaves open (closers of older brackets ignored)."""
    state, _ = state_at_cursor(line_before, language_id)
    stack, _ = match_brackets(text, state, language_id)
    open_string = state.unclosed_at >= 0 or (state.quote is not None and state.quote_at >= 0)
    return len(stack) + int(open_string)
