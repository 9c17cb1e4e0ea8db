"""Fitting a prompt into the model's context: token estimates, and shrinking what can be shrunk.

Prompts render their context (code above and below the selection, surrounding code, existing
tests) as sections: a fixed heading from `SECTION_HEADINGS`, then a fenced block. `fit_messages`
finds those sections again and cuts their far ends, then drops the oldest conversation turns,
until the messages fit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import replace

from aigents_lsp.providers.base import ChatMessage

HISTORY_OMITTED_NOTE = "(The earlier part of the conversation was omitted.)"

SECTION_HEADINGS = {
    "before": "Code above the selection (context only, do not repeat it):",
    "after": "Code below the selection (context only, do not repeat it):",
    "surrounding": "Surrounding code (context only):",
    "tests": "Existing tests (do not repeat them):",
}
"""The heading of each kind of shrinkable section; the fenced block follows on the next line."""

_CONTEXT_KINDS = ("before", "after", "surrounding")
_SECTION = re.compile(
    "(?P<head>" + "|".join(re.escape(h) for h in SECTION_HEADINGS.values()) + ")\n"
    r"(?P<fence>`{3,})(?P<tag>[^\n]*)\n(?P<body>.*?)\n(?P=fence)(?=\n|\Z)(?:\n\n)?",
    re.DOTALL,
)
_KIND_OF_HEADING = {heading: kind for kind, heading in SECTION_HEADINGS.items()}


def estimate_tokens(messages: Sequence[ChatMessage], chars_per_token: float = 3.2) -> int:
    """Rough token count of messages (characters / chars_per_token, plus a per-message cost)."""
    total = 0
    for message in messages:
        chars = len(message.content or "")
        chars += sum(len(call.name) + len(call.arguments) for call in message.tool_calls)
        total += math.ceil(chars / chars_per_token) + 4
    return total


def _shrunk_section(match: re.Match[str], kind: str, chars: int) -> str:
    """The section with about `chars` characters cut from its far side ("" once it is empty):
    code above loses its top, code below and tests their bottom, surroundings both ends."""
    lines = match["body"].split("\n")
    removed, from_top = 0, kind == "before"
    while lines and removed < chars:
        removed += len(lines.pop(0 if from_top else -1)) + 1
        from_top = not from_top if kind == "surrounding" else from_top
    if not "".join(lines).strip():
        return ""
    end = "\n\n" if match.group(0).endswith("\n\n") else ""
    fence = match["fence"]
    return f"{match['head']}\n{fence}{match['tag']}\n" + "\n".join(lines) + f"\n{fence}{end}"


def _shrink_largest(
    messages: list[ChatMessage], kinds: Sequence[str], chars: int
) -> list[ChatMessage] | None:
    """`messages` with the largest section of `kinds` shrunk by `chars` (None: no section)."""
    found: list[tuple[int, int, re.Match[str]]] = []
    for index, message in enumerate(messages):
        if message.role == "user" and message.content:
            for match in _SECTION.finditer(message.content):
                if _KIND_OF_HEADING[match["head"]] in kinds:
                    found.append((len(match["body"]), index, match))
    if not found:
        return None
    _, index, match = max(found, key=lambda item: item[0])
    content = messages[index].content or ""
    shrunk = _shrunk_section(match, _KIND_OF_HEADING[match["head"]], chars)
    new_content = (content[: match.start()] + shrunk + content[match.end() :]).rstrip("\n")
    return [
        *messages[:index],
        replace(messages[index], content=new_content),
        *messages[index + 1 :],
    ]


def fit_messages(
    messages: Sequence[ChatMessage],
    *,
    context_tokens: int,
    reserve_tokens: int,
    chars_per_token: float = 3.2,
) -> tuple[ChatMessage, ...]:
    """`messages` cut to fit `context_tokens` minus `reserve_tokens` (the answer's room).

    Trimmed in this order, each step only while still too long: the context sections (code
    above/below the selection, surrounding code; the bulkiest first), the existing tests, then
    the oldest turns of the conversation (see `trim_history`; a note in the system message says
    so). The system message, the latest user message's task and code, and the messages after it
    (tool calls of the current turn) are never cut, so the result may still be too long."""
    budget = context_tokens - reserve_tokens
    result = list(messages)
    for kinds in (_CONTEXT_KINDS, ("tests",)):
        while (excess := estimate_tokens(result, chars_per_token) - budget) > 0:
            shrunk = _shrink_largest(result, kinds, math.ceil(excess * chars_per_token))
            if shrunk is None:
                break
            result = shrunk
    if estimate_tokens(result, chars_per_token) <= budget:
        return tuple(result)
    pinned = next((i for i, m in enumerate(result) if m.role != "system"), len(result))
    last_user = max((i for i, m in enumerate(result) if m.role == "user"), default=-1)
    if last_user <= pinned:
        return tuple(result)
    head, history, tail = result[:pinned], result[pinned:last_user], result[last_user:]
    note_cost = math.ceil((len(HISTORY_OMITTED_NOTE) + 2) / chars_per_token)
    room = budget - estimate_tokens(head + tail, chars_per_token) - note_cost
    kept, dropped = trim_history(history, max_tokens=room, chars_per_token=chars_per_token)
    if dropped and head:
        note = f"{head[-1].content or ''}\n\n{HISTORY_OMITTED_NOTE}".lstrip()
        head[-1] = replace(head[-1], content=note)
    return (*head, *kept, *tail)


def trim_history(
    history: Sequence[ChatMessage], *, max_tokens: int, chars_per_token: float = 3.2
) -> tuple[list[ChatMessage], bool]:
    """The most recent conversation turns that fit in `max_tokens`, and whether any were dropped.

    A turn is a user message and everything after it up to the next user message, so an
    assistant's tool calls always stay with their tool results and the kept history still
    starts with a user message. System messages are always kept."""
    turns: list[list[ChatMessage]] = []
    for message in history:
        if message.role in ("user", "system") or not turns or turns[-1][0].role == "system":
            turns.append([message])
        else:
            turns[-1].append(message)
    dropped = False
    droppable = [i for i, turn in enumerate(turns) if turn[0].role != "system"]
    while (
        droppable and estimate_tokens([m for t in turns for m in t], chars_per_token) > max_tokens
    ):
        turns[droppable.pop(0)] = []
        dropped = True
    return [message for turn in turns for message in turn], dropped
