"""Streams in a backend's native format, read into the same `StreamDelta`s as OpenAI streams.

llama.cpp's `/infill` streams SSE frames `{"content": "...", "stop": false}` and ends with
`"stop": true` (no `[DONE]`); Ollama's `/api/generate` streams one JSON object per line,
`{"response": "...", "done": false}`, ending with `"done": true`. Each frame is translated to an
OpenAI-style chunk and folded by the same accumulator, so speed stats, limits and typed errors
work alike for every backend.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from aigents_lsp.providers.base import BadResponse, ProviderError, StreamDelta
from aigents_lsp.providers.errors import classify, error_code, error_message, excerpt, sentence
from aigents_lsp.providers.openai_wire import ChunkAccumulator
from aigents_lsp.providers.sse import SSEDecoder

Translate = Callable[[dict[str, Any]], tuple[dict[str, Any], bool]]
"""A native frame -> (an OpenAI-style chunk, whether it is the last frame)."""


class NativeStreamParser:
    """Bytes of a native stream (`sse` or `ndjson`) -> `StreamDelta`s; raises typed errors."""

    def __init__(
        self,
        translate: Translate,
        *,
        framing: str,
        base_url: str,
        backend: str,
        max_line_bytes: int,
        max_body_bytes: int,
    ) -> None:
        self._translate = translate
        self._framing = framing
        self.base_url = base_url
        self.backend = backend
        self._max_line = max_line_bytes
        self._max_body = max_body_bytes
        self._received = 0
        self._pending = bytearray()
        self._sse = SSEDecoder(self.bad, max_line_bytes)
        self._chunks = ChunkAccumulator(time.perf_counter, time.perf_counter())
        self.done = False

    def bad(self, problem: str) -> BadResponse:
        return BadResponse(
            problem,
            hint=sentence(
                f"{self.backend} at {self.base_url} sent a stream we do not understand — check "
                "that aigents.apiBase points at it and that aigents.provider names it"
            ),
            base_url=self.base_url,
        )

    def feed(self, data: bytes) -> list[StreamDelta]:
        if self.done:
            return []
        self._received += len(data)
        if self._received > self._max_body:
            raise self.bad(f"the stream is larger than {self._max_body} bytes")
        deltas: list[StreamDelta] = []
        for frame in self._frames(data):
            deltas += self._frame(frame)
            if self.done:
                break
        return deltas

    def close(self) -> list[StreamDelta]:
        """End of input: the final delta, or `BadResponse` when the stream was cut short."""
        if self.done:
            return []
        deltas: list[StreamDelta] = []
        if self._framing == "ndjson" and self._pending.strip():
            deltas += self._frame(bytes(self._pending).decode("utf-8", "replace"))
            self._pending.clear()
        elif self._framing == "sse":
            events, _partial = self._sse.finish()
            for event in events:
                deltas += self._frame(event.data)
        if self.done:
            return deltas
        if self._chunks.finish_reason is None:
            raise self.bad("stream ended before the answer was complete")
        self.done = True
        return [*deltas, self._chunks.final()]

    def _frames(self, data: bytes) -> Iterator[str]:
        if self._framing == "sse":
            for event in self._sse.feed(data):
                if event.event == "error":
                    self._raise_error(event.data)
                yield event.data
            return
        self._pending += data
        while (end := self._pending.find(b"\n")) >= 0:
            line = bytes(self._pending[:end])
            del self._pending[: end + 1]
            yield line.decode("utf-8", "replace")
        if len(self._pending) > self._max_line:
            raise self.bad(f"a stream line is longer than {self._max_line} bytes")

    def _frame(self, raw: str) -> list[StreamDelta]:
        data = raw.strip()
        if not data or data == "[DONE]":
            return []
        try:
            body = json.loads(data)
        except ValueError as exc:
            raise self.bad(
                f"invalid JSON in a stream frame ({exc}): {excerpt(data, 120)!r}"
            ) from None
        if not isinstance(body, dict):
            raise self.bad(f"a stream frame is not a JSON object: {excerpt(data, 120)!r}")
        if body.get("error"):
            self._raise_error(data)
        chunk, last = self._translate(body)
        deltas = self._chunks.feed(chunk)
        if last:
            self._chunks.finish_reason = self._chunks.finish_reason or "stop"
            self.done = True
            deltas.append(self._chunks.final())
        return deltas

    def _raise_error(self, data: str) -> None:
        try:
            body: object = json.loads(data)
        except ValueError:
            body = data
        message = error_message(200, body) or f"the backend reported an error: {excerpt(data)}"
        error: ProviderError = classify(
            200, message, error_code(body), self.base_url, backend=self.backend
        )
        raise error


def text_chunk(text: str, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    """An OpenAI-style completion chunk with one choice."""
    choice: dict[str, Any] = {"index": 0, "text": text}
    if finish:
        choice["finish_reason"] = finish
    return {"choices": [choice], **extra}
