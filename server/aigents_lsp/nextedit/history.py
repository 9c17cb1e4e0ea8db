"""The user's recent edits per document, as small line hunks, coalesced per typing burst.

A hunk is what one burst of typing changed: the lines as they were and as they are now.
Keystrokes that touch the same few lines within `BURST_SECONDS` of each other grow the open
hunk instead of adding one per character, so a model reads "renamed `foo` to `bar` on line 10"
and not twelve one-letter insertions. History is bounded (hunks per document, lines per hunk,
documents), holds only what the caller records (the LSP layer never records ignored or
secret files), and is redacted when it is rendered into a prompt, not here.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

BURST_SECONDS = 2.0  # a pause longer than this closes the open hunk
BURST_LINES = 2  # a change this many lines away from the open hunk starts a new one
MAX_HUNKS = 8  # per document
MAX_DOCUMENTS = 16
MAX_HUNK_LINES = 40  # a bigger change (a paste, a reformat) is kept as its first lines
ACCEPT_MATCH_SECONDS = 3.0


@dataclass
class Hunk:
    """Lines `start`.. of the document: `old` before the burst, `new` after it (endings cut)."""

    uri: str
    start: int
    old: list[str]
    new: list[str]
    at: float = field(default_factory=time.monotonic)
    predicted: bool = False  # the change was a suggestion the user accepted

    @property
    def noop(self) -> bool:
        return self.old == self.new


@dataclass(frozen=True)
class EditEvent:
    """One recorded edit, as prompts see it (plain data, path relative to the workspace)."""

    path: str
    start: int  # 0-based line of the hunk
    old: tuple[str, ...]
    new: tuple[str, ...]
    predicted: bool = False

    def unified(self) -> str:
        """The hunk as a unified diff body: `@@ -a,b +c,d @@` then `-` and `+` lines."""
        old_start = self.start + 1 if self.old else self.start
        new_start = self.start + 1 if self.new else self.start
        lines = [f"@@ -{old_start},{len(self.old)} +{new_start},{len(self.new)} @@"]
        lines += [f"-{line}" for line in self.old]
        lines += [f"+{line}" for line in self.new]
        return "\n".join(lines) + "\n"


def _strip(lines: Sequence[str]) -> list[str]:
    return [line.rstrip("\r\n") for line in lines]


class EditHistory:
    """Recent edits of every open document, plus the suggestions the user accepted."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._shadow: dict[str, list[str]] = {}  # each document's lines as last seen
        self._hunks: OrderedDict[str, deque[Hunk]] = OrderedDict()  # newest document last
        self._accepted: dict[str, str] = {}  # uri -> text of an accepted edit not yet seen

    def open(self, uri: str, lines: Sequence[str]) -> None:
        self._shadow[uri] = list(lines)

    def close(self, uri: str) -> None:
        self._shadow.pop(uri, None)
        self._hunks.pop(uri, None)
        self._accepted.pop(uri, None)

    def changed(self, uri: str, lines: Sequence[str], hint: tuple[int, int, int] | None) -> None:
        """The document is now `lines`. `hint` (start line, old end line, new end line; both
        ends inclusive) says which lines one change touched; without it the changed span is
        found by comparing with the previous lines (shared line objects compare fast)."""
        before = self._shadow.get(uri)
        if before is None:
            self._shadow[uri] = list(lines)
            return
        if hint is not None and (
            hint[1] >= len(before)
            or hint[2] >= len(lines)
            or len(lines) - len(before) != hint[2] - hint[1]
        ):
            hint = None  # not what one change did (clamped, or line endings merged)
        if hint is not None:
            start, old_end, new_end = hint
            old = before[start : old_end + 1]
            new = list(lines[start : new_end + 1])
            self._shadow[uri][start : old_end + 1] = new
        else:
            start, old, new = _changed_span(before, lines)
            self._shadow[uri] = list(lines)
        if old == new:
            return
        self._record(uri, start, before, old, new)

    def _record(
        self, uri: str, start: int, before: list[str], old: list[str], new: list[str]
    ) -> None:
        now = self._clock()
        hunks = self._hunks.get(uri)
        if hunks is None:
            hunks = self._hunks[uri] = deque(maxlen=MAX_HUNKS)
            while len(self._hunks) > MAX_DOCUMENTS:
                self._hunks.popitem(last=False)
        self._hunks.move_to_end(uri)
        last = hunks[-1] if hunks else None
        end = start + len(old)  # exclusive, in the lines before this change
        if (
            last is not None
            and now - last.at <= BURST_SECONDS
            and start <= last.start + len(last.new) + BURST_LINES
            and end >= last.start - BURST_LINES
        ):
            # Grow the open hunk over the union of both spans.
            low = min(last.start, start)
            high = max(last.start + len(last.new), end)  # in `before`
            tail = before[last.start + len(last.new) : high]
            last.old = _strip(before[low : last.start]) + last.old + _strip(tail)
            after = self._shadow[uri]
            last.new = _strip(after[low : high + len(new) - len(old)])
            last.start, last.at = low, now
            if last.noop and not last.predicted:
                hunks.pop()  # typed and deleted again: nothing happened
            return
        hunk = Hunk(uri, start, _strip(old), _strip(new), now)
        accepted = self._accepted.pop(uri, None)
        if accepted is not None and accepted.strip() and accepted.strip() in "\n".join(hunk.new):
            hunk.predicted = True
        hunks.append(hunk)

    def note_accepted(self, uri: str, text: str) -> None:
        """A suggestion was accepted: the hunk that applied it (just before or next) is marked
        as the model's, so prompts can tell it from the user's own typing."""
        hunks = self._hunks.get(uri)
        last = hunks[-1] if hunks else None
        recent = last is not None and self._clock() - last.at <= ACCEPT_MATCH_SECONDS
        if recent and last is not None and text.strip() in "\n".join(last.new):
            last.predicted = True
            return
        self._accepted[uri] = text

    def latest(self, uri: str) -> Hunk | None:
        hunks = self._hunks.get(uri)
        return hunks[-1] if hunks else None

    def events(
        self,
        allowed: Callable[[str], bool],
        path_of: Callable[[str], str],
        limit: int = 6,
    ) -> tuple[EditEvent, ...]:
        """The newest `limit` hunks of documents that may be used, oldest first, each cut to
        `MAX_HUNK_LINES` lines per side."""
        found: list[tuple[float, EditEvent]] = []
        for uri, hunks in self._hunks.items():
            if not allowed(uri):
                continue
            path = path_of(uri)
            for hunk in hunks:
                if hunk.noop:
                    continue
                event = EditEvent(
                    path,
                    hunk.start,
                    tuple(hunk.old[:MAX_HUNK_LINES]),
                    tuple(hunk.new[:MAX_HUNK_LINES]),
                    hunk.predicted,
                )
                found.append((hunk.at, event))
        found.sort(key=lambda pair: pair[0])
        return tuple(event for _, event in found[-limit:])


def _changed_span(before: Sequence[str], after: Sequence[str]) -> tuple[int, list[str], list[str]]:
    """(first changed line, old lines, new lines) between two versions of a document."""
    size = min(len(before), len(after))
    head = 0
    while head < size and (before[head] is after[head] or before[head] == after[head]):
        head += 1
    tail = 0
    while tail < size - head and (
        before[-1 - tail] is after[-1 - tail] or before[-1 - tail] == after[-1 - tail]
    ):
        tail += 1
    return head, list(before[head : len(before) - tail]), list(after[head : len(after) - tail])


def original_window(lines: Sequence[str], start: int, end: int, latest: Hunk | None) -> list[str]:
    """Lines `start`..`end` (exclusive) as they were before the latest hunk, when it lies in
    that window (Sweep's `original/` section); the current lines otherwise."""
    current = [line.rstrip("\r\n") for line in lines[start:end]]
    if latest is None or latest.predicted:
        return current
    low, high = latest.start, latest.start + len(latest.new)
    if low < start or high > end:
        return current
    return current[: low - start] + list(latest.old) + current[high - start :]
