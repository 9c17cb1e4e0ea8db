"""Server-sent events from bytes that arrive in arbitrary pieces (WHATWG framing), without I/O.
The streams of every HTTP backend (OpenAI-compatible and native) are framed this way."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aigents_lsp.providers.base import ProviderError

MAX_LINE_BYTES = 1 << 20
"""Longest SSE line accepted (1 MiB): a frame is one token, never megabytes."""


@dataclass(frozen=True)
class SSEEvent:
    event: str | None
    data: str


class SSEDecoder:
    """Server-sent events from bytes that arrive in arbitrary pieces (WHATWG framing)."""

    def __init__(self, on_error: Callable[[str], ProviderError], max_line_bytes: int) -> None:
        self._on_error = on_error
        self._max_line = max_line_bytes
        self._buffer = bytearray()
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, data: bytes) -> list[SSEEvent]:
        self._buffer += data
        events: list[SSEEvent] = []
        start = 0
        while (newline := self._buffer.find(b"\n", start)) >= 0:
            line = bytes(self._buffer[start:newline])
            start = newline + 1
            if len(line) > self._max_line:
                raise self._on_error(f"a stream line is longer than {self._max_line} bytes")
            event = self._line(line.removesuffix(b"\r").decode("utf-8", "replace"))
            if event is not None:
                events.append(event)
        del self._buffer[:start]
        if len(self._buffer) > self._max_line:
            raise self._on_error(f"a stream line is longer than {self._max_line} bytes")
        return events

    def finish(self) -> tuple[list[SSEEvent], str]:
        """At end of input: events still pending (no blank line after them), the partial line."""
        partial = self._buffer.decode("utf-8", "replace")
        self._buffer.clear()
        events = [] if not self._data else [SSEEvent(self._event, "\n".join(self._data))]
        self._data, self._event = [], None
        return events, partial

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            event = SSEEvent(self._event, "\n".join(self._data)) if self._data else None
            self._data, self._event = [], None
            return event
        if line.startswith(":"):
            return None  # a comment (keep-alive)
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value or None
        return None
