"""The code in a model's answer: fenced blocks, think blocks and the prose around the code.

Small models wrap code in many ways: a fence tagged with another name of the language, several
blocks (the rewrite, a usage example, command output), fences closed on the last code line, a
markdown example inside a docstring, no fence at all and a "Here is…" line before the code.
`extract_code` picks the code the task asked for and leaves everything else out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from aigents_lsp.assist.languages import canonical_language
from aigents_lsp.providers.reasoning import strip_think

# CommonMark fences: at most 3 spaces of indentation; a closing fence has no info string.
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\s`]*)[^`]*$")
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


def content_bounds(lines: Sequence[str]) -> tuple[int, int]:
    """[start, end) of `lines` without the blank lines before and after."""
    start = next((i for i, line in enumerate(lines) if line.strip()), len(lines))
    end = len(lines)
    while end > start and not lines[end - 1].strip():
        end -= 1
    return start, end


def trim_blank_lines(lines: Sequence[str]) -> list[str]:
    """`lines` without the blank lines before and after."""
    start, end = content_bounds(lines)
    return list(lines[start:end])


def has_fence(text: str) -> bool:
    """Whether a line of `text` is a code fence (an opening or a closing one)."""
    return any(_FENCE.match(line) for line in text.split("\n"))


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
        return "\n".join(trim_blank_lines(block.body))
    if canonical_language(language) in _PROSE_LANGUAGES:
        return "\n".join(trim_blank_lines(lines))  # prose is the content here
    return "\n".join(trim_blank_lines(_strip_prose(lines)))
