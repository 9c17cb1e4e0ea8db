"""A model's reasoning in its answer: inline `<think>…</think>` split off a stream as it comes
(`ThinkSplitter`), or dropped from a whole answer (`strip_think`). The completion engine and the
assist commands both read model output through these, so they live with the providers."""

from __future__ import annotations

import re

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL)


def _partial_suffix(text: str, tag: str) -> int:
    """How many trailing characters of `text` could be the start of `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0


class ThinkSplitter:
    """Splits inline `<think>…</think>` (at the start of an answer) into reasoning.

    Tags may be cut anywhere across chunks: possible tag prefixes are held back until the next
    chunk decides. Only a `<think>` before any visible text counts, so code that merely contains
    the tag is left alone.
    """

    OPEN = "<think>"
    CLOSE = "</think>"

    def __init__(self) -> None:
        self._state = "start"  # start -> thinking -> after -> answer, or start -> answer
        self._held = ""

    def feed(self, text: str) -> tuple[str, str]:
        """(visible text, reasoning) for one chunk of content."""
        buf, self._held = self._held + text, ""
        visible: list[str] = []
        reasoning: list[str] = []
        while buf:
            if self._state == "start":
                stripped = buf.lstrip()
                if stripped.startswith(self.OPEN):
                    self._state, buf = "thinking", stripped[len(self.OPEN) :]
                elif not stripped or self.OPEN.startswith(stripped):
                    self._held = buf  # whitespace or a partial "<thi": wait for more
                    break
                else:
                    self._state = "answer"
            elif self._state == "thinking":
                end = buf.find(self.CLOSE)
                if end >= 0:
                    reasoning.append(buf[:end])
                    self._state, buf = "after", buf[end + len(self.CLOSE) :]
                else:
                    keep = _partial_suffix(buf, self.CLOSE)
                    reasoning.append(buf[: len(buf) - keep])
                    self._held = buf[len(buf) - keep :]
                    break
            elif self._state == "after":
                buf = buf.lstrip()  # the blank lines between </think> and the answer
                if buf:
                    self._state = "answer"
            else:
                visible.append(buf)
                break
        return "".join(visible), "".join(reasoning)

    def flush(self) -> tuple[str, str]:
        """What is still held back when the stream ends."""
        held, self._held = self._held, ""
        return ("", held) if self._state == "thinking" else (held, "")


def strip_think(text: str) -> str:
    """Drop <think>…</think> blocks, an unterminated <think> and everything before a stray
    </think> (the opening tag was in the prompt)."""
    stripped = _THINK_BLOCK.sub("", text)
    if "<think>" in stripped:
        stripped = stripped[: stripped.index("<think>")]
    if "</think>" in stripped:
        stripped = stripped[stripped.rindex("</think>") + len("</think>") :]
    return stripped.lstrip("\n") if stripped != text else text
