"""The next-edit engine: request -> editable region + history -> prompt -> stream -> one edit.

- A newer request for a document supersedes the older one at once: the older answers
  nothing, and its backend stream is closed (the backend stops generating).
- A cancelled request (`$/cancelRequest`) closes its stream the same way.
- The trigger delay (`next_edit_debounce_ms`) is waited out first, superseded meanwhile.
- "No edit" is cheap and silent: the stream is closed as soon as the answer says so, and the
  editor gets an empty list.
No pygls here: the LSP layer turns params into a `NextEditRequest` and the `NextEdit` back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aigents_lsp.nextedit.diffing import far_larger, minimal_edit, unlike
from aigents_lsp.nextedit.formats import NO_EDITS, NextEditFormat, NextEditInput
from aigents_lsp.nextedit.history import EditEvent, Hunk, original_window
from aigents_lsp.providers.base import ChatParams, CompletionParams, Provider, StreamDelta
from aigents_lsp.tickets import DocumentTickets, Superseded
from aigents_lsp.workspace.secrets import contains_secret, redact

if TYPE_CHECKING:
    from aigents_lsp.config import Settings

log = logging.getLogger(__name__)
CONTEXT_LINES = 24  # lines of code shown above and below the editable region
MAX_LINE_CHARS = 2000  # a minified line is not code a model can edit
TEMPERATURE = 0.0  # next-edit models are trained and evaluated greedy


@dataclass(frozen=True)
class NextEditRequest:
    """Where the user is (code points) and the document's lines (endings kept)."""

    uri: str
    version: int
    lines: Sequence[str]
    line: int
    column: int
    path: str = "untitled"
    language: str = ""
    events: tuple[EditEvent, ...] = ()
    related: tuple[tuple[str, str], ...] = ()
    latest: Hunk | None = None  # the document's latest hunk (Sweep's `original/` section)


@dataclass(frozen=True)
class NextEditTarget:
    provider: Provider
    model: str | None
    format: NextEditFormat


@dataclass(frozen=True)
class NextEdit:
    """Replace (start_line, start_column)..(end_line, end_column) with `text` (code points)."""

    start_line: int
    start_column: int
    end_line: int
    end_column: int
    text: str
    old: str
    model: str | None
    format: str
    latency_ms: float


@dataclass
class NextEditMetrics:
    requests: int = 0
    backend_calls: int = 0
    edits: int = 0  # answered with an edit
    no_edit: int = 0  # the model said no edit, or its rewrite changed nothing that counts
    rejected: int = 0  # unreadable or far larger than the region
    skipped: int = 0  # nothing to ask (no region, a secret in it, off for the language)
    superseded: int = 0
    cancelled: int = 0
    stale: int = 0  # the document changed while the model answered
    errors: int = 0
    shown: int = 0  # the editor said it showed one (`textDocument/didShowInlineEdit`)
    accepted: int = 0
    dismissed: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=500))

    def snapshot(self) -> dict[str, float | int | None]:
        ordered = sorted(self.latencies_ms)

        def at(q: float) -> float | None:
            if not ordered:
                return None
            return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 1)

        answered = self.edits + self.no_edit + self.rejected
        return {
            "requests": self.requests,
            "backend_calls": self.backend_calls,
            "edits": self.edits,
            "no_edit": self.no_edit,
            "rejected": self.rejected,
            "skipped": self.skipped,
            "superseded": self.superseded,
            "cancelled": self.cancelled,
            "stale": self.stale,
            "errors": self.errors,
            "shown": self.shown,
            "accepted": self.accepted,
            "dismissed": self.dismissed,
            "edit_rate": round(self.edits / answered, 3) if answered else None,
            "acceptance_rate": round(self.accepted / self.edits, 3) if self.edits else None,
            "latency_p50_ms": at(0.5),
            "latency_p95_ms": at(0.95),
        }


def region_bounds(line_count: int, line: int, size: int) -> tuple[int, int]:
    """The editable region's lines [start, end) around `line`: `size` lines, the cursor in
    the middle, moved inwards at the ends of the document."""
    size = max(1, size)
    above = (size - 1) // 2
    start = max(0, line - above)
    end = min(line_count, start + size)
    start = max(0, end - size)
    return start, max(end, min(line_count, line + 1))


def build_input(request: NextEditRequest, region_lines: int) -> tuple[NextEditInput, int] | None:
    """The prompt's parts and the region's first line; None when there is nothing to ask
    (an empty document, a secret or a minified line in the region)."""
    # Endings normalised: offsets in the region are then line/column, whatever the file uses.
    lines = [row.rstrip("\r\n") + "\n" for row in request.lines]
    if request.lines and not request.lines[-1].endswith(("\n", "\r")):
        lines[-1] = lines[-1][:-1]
    if not lines or request.line > len(lines):
        return None
    if request.line == len(lines):  # the empty line after a final newline
        lines.append("")
    start, end = region_bounds(len(lines), request.line, region_lines)
    region_rows = lines[start:end]
    if any(len(row) > MAX_LINE_CHARS for row in region_rows):
        return None
    region = "".join(region_rows)
    if contains_secret(region) or "\x00" in region:
        return None  # never rewrite around a secret: the model would see a placeholder
    cursor = sum(len(row) for row in lines[start : request.line]) + min(
        request.column, len(lines[request.line].rstrip("\n"))
    )
    before = "".join(lines[max(0, start - CONTEXT_LINES) : start])
    after = "".join(lines[end : end + CONTEXT_LINES])
    original = "".join(f"{row}\n" for row in original_window(lines, start, end, request.latest))
    if not region.endswith("\n"):
        original = original.removesuffix("\n")
    events = tuple(
        EditEvent(
            e.path,
            e.start,
            tuple(redact(x)[0] for x in e.old),
            tuple(redact(x)[0] for x in e.new),
            e.predicted,
        )
        for e in request.events
    )
    related = tuple((path, redact(text)[0]) for path, text in request.related)
    inp = NextEditInput(
        path=request.path,
        before=redact(before)[0],
        region=region,
        after=redact(after)[0],
        cursor=cursor,
        original_region=None if contains_secret(original) else original,
        events=events,
        related=related,
        language=request.language,
    )
    return inp, start


class NextEditEngine:
    """Owns the metrics and the per-document tickets for the server's lifetime."""

    def __init__(self, settings: Callable[[], Settings]) -> None:
        self._settings = settings
        self.metrics = NextEditMetrics()
        self.tickets = DocumentTickets()  # `close(uri)`: the document's request ends now

    async def suggest(
        self,
        request: NextEditRequest,
        target: NextEditTarget,
        delay: float = 0.0,
        ticket: int | None = None,
    ) -> NextEdit | None:
        """The edit for `request`, or None. Raises `ProviderError` from the backend.
        `ticket`: taken from `tickets.enter` when the editor asked (before choosing the
        model, which awaits); a request overtaken meanwhile by a newer one ends here."""
        metrics = self.metrics
        metrics.requests += 1
        started = time.perf_counter()
        uri = request.uri
        if ticket is None:
            ticket = self.tickets.enter(uri)
        try:
            await self.tickets.debounce(uri, ticket, delay)
            settings = self._settings()
            built = build_input(request, settings.next_edit_region_lines)
            if built is None:
                metrics.skipped += 1
                return None
            inp, first_line = built
            metrics.backend_calls += 1
            answer = await self.tickets.run(uri, ticket, self._generate(inp, target, settings))
        except Superseded:
            metrics.superseded += 1
            return None
        except asyncio.CancelledError:
            metrics.cancelled += 1
            raise
        except Exception:
            metrics.errors += 1
            raise
        rewritten = target.format.read(answer, inp)
        if rewritten is None:
            if answer.strip().startswith(NO_EDITS) or not answer.strip():
                metrics.no_edit += 1
            else:
                metrics.rejected += 1
            return None
        if far_larger(inp.region, rewritten) or unlike(inp.region, rewritten):
            metrics.rejected += 1
            return None
        edit = minimal_edit(inp.region, rewritten, inp.cursor)
        if edit is None:
            metrics.no_edit += 1
            return None
        start_line, start_column = _position(inp.region, edit.start, first_line)
        end_line, end_column = _position(inp.region, edit.end, first_line)
        latency = (time.perf_counter() - started) * 1000
        metrics.edits += 1
        metrics.latencies_ms.append(latency)
        return NextEdit(
            start_line,
            start_column,
            end_line,
            end_column,
            edit.text,
            edit.old,
            target.model,
            target.format.name,
            latency,
        )

    async def _generate(
        self, inp: NextEditInput, target: NextEditTarget, settings: Settings
    ) -> str:
        fmt = target.format
        budget = int((len(inp.before) * (fmt.name == "zeta") + 2 * len(inp.region)) / 3) + 64
        max_tokens = min(max(budget, 64), 2048)
        stream: AsyncIterator[StreamDelta]
        if fmt.kind == "chat":
            stream = target.provider.stream_chat(
                ChatParams(
                    messages=fmt.messages(inp),
                    model=target.model,
                    max_tokens=max_tokens,
                    temperature=TEMPERATURE,
                    stop=fmt.stop,
                )
            )
        else:
            stream = target.provider.stream_complete(
                CompletionParams(
                    prompt=fmt.prompt(inp),
                    model=target.model,
                    max_tokens=max_tokens,
                    temperature=TEMPERATURE,
                    stop=fmt.stop,
                )
            )
        limit = 2 * len(inp.region) + 1200 + len(inp.before) * (fmt.name == "zeta")
        parts: list[str] = []
        size = 0
        try:
            async for delta in stream:
                if not delta.text:
                    continue
                parts.append(delta.text)
                size += len(delta.text)
                head = "".join(parts[:8]).lstrip().lstrip("`").lstrip()
                if head.startswith(NO_EDITS):
                    return NO_EDITS  # said: nothing more to read
                if size > limit:
                    return "\x00"  # rambling: rejected, and the backend stops now
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        return "".join(parts)


def _position(region: str, offset: int, first_line: int) -> tuple[int, int]:
    head = region[:offset]
    line = head.count("\n")
    column = len(head) - (head.rfind("\n") + 1)
    return first_line + line, column
