"""A model's answer turned into a safe, minimal edit: the code, re-indented, diffed by lines.

`plan_edit` is the whole road: `extract_code` takes the code out of the answer (fences, think
blocks, prose), `match_indentation` puts it back at the selection's indentation, and
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

from aigents_lsp.completion.templates import strip_think

# --- extracting the code ---------------------------------------------------------------------

# CommonMark fences: at most 3 spaces of indentation; a closing fence has no info string.
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\s`]*)[^`]*$")
_LANGUAGE_ALIASES = {
    "py": "python", "py3": "python", "python3": "python", "pyi": "python",
    "js": "javascript", "jsx": "javascript", "javascriptreact": "javascript",
    "mjs": "javascript", "cjs": "javascript", "node": "javascript",
    "ts": "typescript", "tsx": "typescript", "typescriptreact": "typescript", "mts": "typescript",
    "rs": "rust", "golang": "go", "c++": "cpp", "cc": "cpp", "cxx": "cpp", "hpp": "cpp",
    "h": "c", "cs": "csharp", "c#": "csharp", "kt": "kotlin", "kts": "kotlin", "rb": "ruby",
    "sh": "shell", "bash": "shell", "zsh": "shell", "shellscript": "shell", "yml": "yaml",
    "md": "markdown",
}  # fmt: skip
# Fenced blocks that are rarely the code asked for: command output, diffs, shell commands.
_NOT_CODE_TAGS = frozenset(
    "text txt plaintext plain output console terminal log diff patch shell-session".split()
)
_PROSE_LANGUAGES = frozenset("markdown plaintext text restructuredtext latex tex asciidoc".split())

_LEADING_PROSE = re.compile(
    r"(?:here(?:'s|’s| is| are)\b|sure\b|certainly\b|of course\b|okay\b|ok[,.!]|below is\b"
    r"|the (?:updated|fixed|corrected|rewritten|refactored|modified|new|complete|simplified"
    r"|resulting|improved) \w+|i(?:'ve|’ve| have| will|'ll|’ll)\b|this is the\b"
    r"|(?:updated|rewritten|fixed|corrected|refactored) (?:code|version|function)\b)",
    re.IGNORECASE,
)
_TRAILING_PROSE = re.compile(
    r"(?:this (?:change|code|version|update|fix|rewrite|refactor|ensures|will|should|way|makes"
    r"|uses|adds|removes|keeps|improves|handles|avoids|solution|approach)\b|these changes\b"
    r"|the (?:changes?|fix|main|key|above|updated|new|rewritten|refactored|code|function)\b"
    r"|i (?:changed|added|removed|replaced|renamed|made|updated|fixed|simplified|also|kept)\b"
    r"|i(?:'ve|’ve| have)\b|in this (?:version|code|change)\b|let me know\b|hope this\b"
    r"|feel free\b|\*\*)",
    re.IGNORECASE,
)
_PROSE_HEADING = re.compile(r"(?:Explanation|Changes|Key changes|What changed|Summary|Notes?)\s*:")
_SENTENCE_END = re.compile(r"[.!?:][`\"')*]*$")
_WORDLIKE = re.compile(r"[A-Za-z][A-Za-z'’-]*")
_CODE_SYMBOLS = re.compile(r"[;{}=]|\w\(")
_BULLET = re.compile(r"(?:[-*+]|\d+[.)])\s+[A-Za-z`*]")


@dataclass(frozen=True)
class _Block:
    info: str
    body: list[str]
    label: str = ""  # the prose line just above the block ("Usage:")


# A block introduced like this shows how to use or run the code; it is not the rewrite.
_EXAMPLE_LABEL = re.compile(
    r"\W*(?:usage|example|for example|to (?:test|use|run)|you can (?:test|use|run|call)|test"
    r"|before|original|old code|output|run|install|call(?:ing)? it)\b",
    re.IGNORECASE,
)


def canonical_language(tag: str) -> str:
    """A fence info string or LSP language id reduced to one name: "py" -> "python"."""
    name = tag.strip().lower().split(":", 1)[0].strip("{}.")
    return _LANGUAGE_ALIASES.get(name, name)


def _scan_block(lines: list[str], start: int, nested: bool) -> tuple[_Block, int, bool, int]:
    """The block opened at `start`: (block, index after it, closed, nesting depth at the end).

    With `nested`, an opening fence with an info string inside the block opens an inner block
    (a markdown example in a docstring) whose bare closing fence does not end the outer one."""
    opener = _FENCE.match(lines[start])
    assert opener is not None
    indent, fence = len(opener["indent"]), opener["fence"]
    body: list[str] = []
    depth, index = 0, start + 1
    label = next((ln for ln in reversed(lines[:start]) if ln.strip()), "")
    while index < len(lines):
        line = lines[index]
        match = _FENCE.match(line)
        if match and match["fence"][0] == fence[0] and len(match["fence"]) >= len(fence):
            if match["info"] and nested:
                depth += 1
            elif not match["info"] and depth:
                depth -= 1
            elif not match["info"]:
                return _Block(opener["info"], body, label), index + 1, True, 0
        # CommonMark: the opening fence's indentation is removed from the content lines.
        width = len(line) - len(line.lstrip(" "))
        line = line[min(indent, width) :]
        code, _, rest = line.rstrip().rpartition(fence)
        if not depth and not match and not rest and code.strip() and code[-1] != fence[0]:
            # "    return x```": a small model closed the fence on the last code line
            return _Block(opener["info"], [*body, code], label), index + 1, True, 0
        body.append(line)
        index += 1
    return _Block(opener["info"], body, label), index, False, depth


def _fenced_blocks(lines: list[str]) -> list[_Block]:
    blocks: list[_Block] = []
    index = 0
    while index < len(lines):
        if not _FENCE.match(lines[index]):
            index += 1
            continue
        block, after, closed, depth = _scan_block(lines, index, nested=True)
        if not closed and depth:  # an inner opener without its closer: read it flat instead
            block, after, closed, depth = _scan_block(lines, index, nested=False)
        blocks.append(block)
        index = after
    return blocks


def _content_bounds(lines: Sequence[str]) -> tuple[int, int]:
    """[start, end) of `lines` without the blank lines before and after."""
    start = next((i for i, line in enumerate(lines) if line.strip()), len(lines))
    end = len(lines)
    while end > start and not lines[end - 1].strip():
        end -= 1
    return start, end


def _trim_blank_lines(lines: Sequence[str]) -> list[str]:
    start, end = _content_bounds(lines)
    return list(lines[start:end])


def _pick_block(blocks: list[_Block], language: str) -> _Block | None:
    """The block in the language asked for, else an untagged or other-language block, else
    output/diff/shell blocks; in a tier, blocks not introduced as a usage example first, then
    the longest, then the first."""
    wanted = canonical_language(language) if language else ""
    ranked: list[tuple[int, bool, int, int, _Block]] = []
    for order, block in enumerate(blocks):
        size = len("\n".join(block.body).strip())
        if not size:
            continue
        tag = canonical_language(block.info)
        if wanted and tag == wanted:
            tier = 0
        elif tag in _NOT_CODE_TAGS or (tag == "shell" and wanted not in ("", "shell")):
            tier = 2
        else:
            tier = 1
        example = bool(_EXAMPLE_LABEL.match(block.label)) and not _FENCE.match(block.label)
        ranked.append((tier, example, -size, order, block))
    return min(ranked, key=lambda item: item[:4])[4] if ranked else None


def _is_sentence(line: str) -> bool:
    """A line that reads as a sentence: capitalised, three words or more, sentence punctuation
    at the end, mostly plain words and none of the symbols that make a line code."""
    text = line.strip()
    if not text[:1].isupper() or re.search("[{}=]", text) or not _SENTENCE_END.search(text):
        return False
    words = text.split()
    plain = [w for w in words if _WORDLIKE.fullmatch(w.strip(".,;:!?()`'\"*"))]
    return len(words) >= 3 and len(plain) >= 0.7 * len(words)


def _is_prose(lines: Sequence[str]) -> bool:
    """Sentences and markdown bullets only, with at least one sentence."""
    content = [line for line in lines if line.strip()]
    sentences = sum(1 for line in content if _is_sentence(line))
    bullets = sum(1 for line in content if _BULLET.match(line.strip()))
    return sentences > 0 and sentences + bullets == len(content)


def _strip_prose(lines: list[str]) -> list[str]:
    """Conservatively drop an unfenced answer's prose: "Here is…" lines before the code and an
    explanation after it (only lines at column 0 that read like the usual phrases)."""
    start = 0
    while start < len(lines):
        line = lines[start]
        opener = (
            line[:1] not in (" ", "\t")
            and not _CODE_SYMBOLS.search(line)
            and (_LEADING_PROSE.match(line) or (_is_sentence(line) and line.rstrip()[-1] == ":"))
        )
        if line.strip() and not opener and not _FENCE.match(line):
            break
        start += 1
    code = lines[start:]
    for index in range(1, len(code)):
        line = code[index]
        if line[:1] in (" ", "\t"):
            continue
        after_blank = not code[index - 1].strip()
        if _PROSE_HEADING.match(line) or (
            _TRAILING_PROSE.match(line) and (after_blank or _is_sentence(line))
        ):
            code = code[:index]
            break
    code = [line for line in code if not _FENCE.match(line)]  # a stray unmatched fence
    return [] if _is_prose(code) else code  # never hand prose back as code


def extract_code(answer: str, language: str = "") -> str:
    """The code in a model's answer, without a trailing newline ("" when there is none).

    Think blocks are dropped; a fenced block is preferred (the one tagged with `language`, else
    the longest sensible one); an unfenced answer loses its "Here is…" opener and trailing
    explanation. Indentation inside the code is kept exactly."""
    text = strip_think(answer.replace("\r\n", "\n").replace("\r", "\n"))
    lines = text.split("\n")
    block = _pick_block(_fenced_blocks(lines), language)
    if block is not None:
        return "\n".join(_trim_blank_lines(block.body))
    if canonical_language(language) in _PROSE_LANGUAGES:
        return "\n".join(_trim_blank_lines(lines))  # prose is the content here
    return "\n".join(_trim_blank_lines(_strip_prose(lines)))


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
MAX_GROWTH_RATIO = 5.0
MAX_GROWTH_LINES = 30
# "# ... rest of the code unchanged": a placeholder that would delete the code it stands for.
_ELISION = re.compile(
    r"^\s*(?:#|//|/\*+|--|;|<!--)\s*(?:\.\.\.|…|\[\.\.\.\]|.*\b(?:rest of (?:the )?(?:code|file"
    r"|function|class|method|implementation|body)|(?:existing|remaining|other|previous|original)"
    r" code|(?:code|rest|everything else) (?:remains? |stays? |is )?unchanged"
    r"|(?:omitted|elided) for brevity|same as (?:before|above))\b)",
    re.IGNORECASE,
)
_DIFF_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@")


def plan_edit(
    original: str,
    answer: str,
    *,
    first_line: int,
    language: str = "",
    max_growth: float = MAX_GROWTH_RATIO,
) -> list[LineEdit]:
    """The line edits that apply a model's rewrite of `original` (whole document lines starting
    at `first_line`), or EditRefused.

    Refused: an empty answer or empty code ("the model returned an empty rewrite"), an answer
    without code, a diff instead of code, code with "... rest unchanged" placeholders that the
    original does not have, a rewrite more than `max_growth` times and MAX_GROWTH_LINES lines
    longer than the original, and a rewrite equal to the original ("no change proposed").
    The original's blank lines before and after its content are kept, and so is its final
    newline (or its absence): edits replace whole lines. Trailing whitespace is not a change.
    """
    code = extract_code(answer, language)
    if not code.strip():
        said = strip_think(answer.replace("\r\n", "\n"))
        if not said.strip() or any(_FENCE.match(line) for line in said.split("\n")):
            raise EditRefused("the model returned an empty rewrite")
        snippet = " ".join(said.split())[:80]
        raise EditRefused(f"the model answered without code: “{snippet}”")
    old = split_lines(original)
    old_stripped = {line.strip() for line in old}
    code_lines = split_lines(code)
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
    if growth > MAX_GROWTH_LINES and len(code_lines) > max_growth * max(len(old), 1):
        raise EditRefused(
            f"the model returned {len(code_lines)} lines for a {len(old)}-line selection; "
            "it probably rewrote more than the selection"
        )
    new = split_lines(match_indentation(code, original))
    start, end = _content_bounds(old)
    if start < end:  # the model cannot be trusted with the blank lines around the content
        new = [*old[:start], *_trim_blank_lines(new), *old[end:]]
    edits = _diff_lines(old, new, first_line, True)
    if not edits:
        raise EditRefused("no change proposed")
    last_line = first_line + len(old)
    assert all(first_line <= e.start <= e.end <= last_line for e in edits), edits
    return edits
