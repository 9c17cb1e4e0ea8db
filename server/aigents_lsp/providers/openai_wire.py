"""The OpenAI completion stream as plain data, without I/O: SSE bytes or a JSON body in, deltas
out.

`StreamParser` takes the raw bytes of a `/v1/chat/completions` or `/v1/completions` stream
(or a whole JSON body) and returns `StreamDelta`s. Everything the backends are known to send is
accepted (see `shared/lmstudio/API.md`): `data:` with or without a space, `[DONE]` or no
`[DONE]`, `event: error` frames, frames whose JSON has a top-level `error`, reasoning as
`reasoning_content`, `reasoning` or inline `<think>…</think>`, tool calls in pieces by `index`,
usage on the finish chunk or on an empty-choices chunk. Memory is bounded by line and body limits.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from aigents_lsp.providers.base import (
    BadResponse,
    CompletionResult,
    ProviderError,
    SpeedStats,
    StreamDelta,
    ToolCall,
    Usage,
)
from aigents_lsp.providers.bodies import json_int, json_number
from aigents_lsp.providers.errors import (
    LMSTUDIO,
    classify,
    error_code,
    error_message,
    excerpt,
    sentence,
)
from aigents_lsp.providers.reasoning import ThinkSplitter
from aigents_lsp.providers.sse import MAX_LINE_BYTES, SSEDecoder, SSEEvent

MAX_BODY_BYTES = 16 << 20
"""Largest response body or whole stream accepted (16 MiB)."""

Clock = Callable[[], float]


@dataclass
class _ToolSlot:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class ToolCallAccumulator:
    """Tool calls assembled from deltas: the first piece names the call, later ones add
    argument fragments. Keyed by `index`; empty names and missing ids are tolerated."""

    def __init__(self) -> None:
        self._slots: dict[int, _ToolSlot] = {}
        self._alias: dict[int, int] = {}
        self._last: int | None = None

    def feed(self, calls: Iterable[object], *, whole: bool = False) -> bool:
        """Add one delta's `tool_calls`; `whole`: a complete message (each entry is one call).
        Returns whether anything was added."""
        added = False
        base = len(self._slots)
        for position, call in enumerate(calls):
            if not isinstance(call, dict):
                continue
            key = self._key(call, base + position if whole else None)
            slot = self._slots.setdefault(key, _ToolSlot())
            self._last = key
            call_id = call.get("id")
            if isinstance(call_id, str) and call_id and not slot.id:
                slot.id = call_id
            function = call.get("function")
            if isinstance(function, dict):
                name = function.get("name")
                if isinstance(name, str) and name and not slot.name:
                    slot.name = name
                arguments = function.get("arguments")
                if isinstance(arguments, str):
                    slot.arguments.append(arguments)
                elif isinstance(arguments, dict):
                    slot.arguments.append(json.dumps(arguments))
            added = True
        return added

    def _key(self, call: dict[str, Any], fixed: int | None) -> int:
        if fixed is not None:
            return fixed
        call_id = call.get("id") if isinstance(call.get("id"), str) else ""
        index = call.get("index")
        if isinstance(index, int) and not isinstance(index, bool):
            key = self._alias.get(index, index)
            slot = self._slots.get(key)
            if slot is not None and call_id and slot.id and call_id != slot.id:
                # A new call reusing an index (old servers' parallel calls): give it a new slot.
                key = max(self._slots) + 1
                self._alias[index] = key
            return key
        known = {slot.id: key for key, slot in self._slots.items() if slot.id}
        if call_id and call_id in known:
            return known[call_id]
        if call_id or self._last is None:
            return max(self._slots, default=-1) + 1
        return self._last

    def result(self) -> tuple[ToolCall, ...]:
        calls = []
        for key in sorted(self._slots):
            slot = self._slots[key]
            if not slot.name:
                continue  # a call without a function name cannot be run
            calls.append(
                ToolCall(
                    id=slot.id or f"call_{uuid.uuid4().hex[:24]}",
                    name=slot.name,
                    arguments="".join(slot.arguments) or "{}",
                )
            )
        return tuple(calls)


def parse_usage(value: object) -> Usage | None:
    if not isinstance(value, dict):
        return None
    prompt = json_int(value.get("prompt_tokens")) or 0
    completion = json_int(value.get("completion_tokens")) or 0
    total = json_int(value.get("total_tokens")) or prompt + completion
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total)


def parse_speed_stats(body: dict[str, Any]) -> SpeedStats | None:
    """LM Studio `stats` (native API) or llama.cpp `timings`, when present and not empty."""
    stats = body.get("stats")
    if isinstance(stats, dict) and stats:
        ttft = json_number(stats.get("time_to_first_token"))
        stop = stats.get("stop_reason")
        return SpeedStats(
            tokens_per_second=json_number(stats.get("tokens_per_second")),
            time_to_first_token=ttft or json_number(stats.get("time_to_first_token_seconds")),
            generation_time=json_number(stats.get("generation_time")),
            stop_reason=stop if isinstance(stop, str) else None,
        )
    timings = body.get("timings")
    if isinstance(timings, dict) and timings:
        prompt_ms = json_number(timings.get("prompt_ms"))
        predicted_ms = json_number(timings.get("predicted_ms"))
        return SpeedStats(
            tokens_per_second=json_number(timings.get("predicted_per_second")),
            time_to_first_token=prompt_ms / 1000 if prompt_ms is not None else None,
            generation_time=predicted_ms / 1000 if predicted_ms is not None else None,
            prompt_tokens=json_int(timings.get("prompt_n")),
            cached_tokens=json_int(timings.get("cache_n")),
            prompt_seconds=prompt_ms / 1000 if prompt_ms is not None else None,
        )
    usage = body.get("usage")
    details = usage.get("prompt_tokens_details") if isinstance(usage, dict) else None
    cached = json_int(details.get("cached_tokens")) if isinstance(details, dict) else None
    prompt = json_int(usage.get("prompt_tokens")) if isinstance(usage, dict) else None
    if cached is not None and prompt is not None:  # OpenAI's shape: read = prompt - cached
        return SpeedStats(prompt_tokens=max(prompt - cached, 0), cached_tokens=cached)
    return None


class ChunkAccumulator:
    """Folds chunks (or one whole body) into deltas; the final delta carries the totals."""

    def __init__(self, clock: Clock, started: float) -> None:
        self._clock = clock
        self._started = started
        self._think = ThinkSplitter()
        self._tools = ToolCallAccumulator()
        self._first_token_at: float | None = None
        self._pieces = 0
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.model: str | None = None
        self.stats: SpeedStats | None = None
        self._prompt_told = False

    def feed(self, body: dict[str, Any]) -> list[StreamDelta]:
        model = body.get("model")
        if isinstance(model, str) and model:
            self.model = model
        self.usage = parse_usage(body.get("usage")) or self.usage
        self.stats = parse_speed_stats(body) or self.stats
        choices = body.get("choices")
        if not isinstance(choices, list):
            return []
        deltas: list[StreamDelta] = []
        for position, choice in enumerate(choices):
            if isinstance(choice, dict) and choice.get("index", position) == 0:
                deltas += self._choice(choice)
        if deltas and not self._prompt_told and self.stats is not None:
            if self.stats.prompt_tokens is not None:
                self._prompt_told = True
                deltas[0] = replace(deltas[0], prompt_stats=self.stats)
        return deltas

    def _choice(self, choice: dict[str, Any]) -> list[StreamDelta]:
        whole = not isinstance(choice.get("delta"), dict) and isinstance(
            choice.get("message"), dict
        )
        part = choice.get("message") if whole else choice.get("delta")
        part = part if isinstance(part, dict) else {}
        content = choice.get("text") if isinstance(choice.get("text"), str) else part.get("content")
        explicit = part.get("reasoning_content") or part.get("reasoning")
        tool_calls = part.get("tool_calls")
        got_tools = isinstance(tool_calls, list) and self._tools.feed(tool_calls, whole=whole)
        text, thought = self._think.feed(content if isinstance(content, str) else "")
        reasoning = (explicit if isinstance(explicit, str) else "") + thought
        finish = choice.get("finish_reason")
        if isinstance(finish, str) and finish:
            self.finish_reason = finish
        if text or reasoning or got_tools or (isinstance(content, str) and content):
            self._pieces += 1
            if self._first_token_at is None:
                self._first_token_at = self._clock()
        if not (text or reasoning):
            return []
        return [StreamDelta(text=text, reasoning=reasoning, model=self.model)]

    def final(self) -> StreamDelta:
        text, reasoning = self._think.flush()
        return StreamDelta(
            text=text,
            reasoning=reasoning,
            finish_reason=self.finish_reason,
            usage=self.usage,
            model=self.model,
            tool_calls=self._tools.result(),
            stats=self._final_stats(),
        )

    def _final_stats(self) -> SpeedStats | None:
        """The backend's figures, completed by what was measured here where it gave none."""
        measured = self._measured()
        if self.stats is None or measured is None:
            return self.stats or measured
        return replace(
            self.stats,
            tokens_per_second=self.stats.tokens_per_second or measured.tokens_per_second,
            time_to_first_token=self.stats.time_to_first_token or measured.time_to_first_token,
            generation_time=self.stats.generation_time or measured.generation_time,
        )

    def _measured(self) -> SpeedStats | None:
        """Speed seen from the client when the backend reports none."""
        if self._first_token_at is None:
            return None
        now = self._clock()
        generating = now - self._first_token_at
        tokens = self.usage.completion_tokens if self.usage and self.usage.completion_tokens else 0
        tokens = tokens or self._pieces
        return SpeedStats(
            tokens_per_second=tokens / generating if generating > 0 else None,
            time_to_first_token=self._first_token_at - self._started,
            generation_time=generating,
        )


class StreamParser:
    """Bytes of an OpenAI-style answer -> `StreamDelta`s; raises typed `ProviderError`s.

    Feed the bytes with `feed`, then call `close` at the end of input. The last delta returned
    carries `finish_reason`, `usage`, the complete `tool_calls` and `stats`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        backend: str = LMSTUDIO,
        max_line_bytes: int = MAX_LINE_BYTES,
        max_body_bytes: int = MAX_BODY_BYTES,
        clock: Clock = time.perf_counter,
        started: float | None = None,
    ) -> None:
        self.base_url = base_url
        self.backend = backend
        self._max_body = max_body_bytes
        self._received = 0
        self._sse = SSEDecoder(self.bad, max_line_bytes)
        self._chunks = ChunkAccumulator(clock, clock() if started is None else started)
        self.done = False  # the final delta was returned

    def bad(self, problem: str) -> BadResponse:
        return BadResponse(
            problem,
            hint=sentence(
                f"{self.backend} at {self.base_url} sent something that is not an OpenAI-style "
                "answer — check that aigents.apiBase points at its /v1 API"
            ),
            base_url=self.base_url,
        )

    def _error(self, body: object, raw: str) -> ProviderError:
        message = error_message(200, body) or f"the backend reported an error: {excerpt(raw)}"
        return classify(200, message, error_code(body), self.base_url, backend=self.backend)

    def feed(self, data: bytes) -> list[StreamDelta]:
        if self.done:
            return []  # anything after [DONE] is ignored
        self._received += len(data)
        if self._received > self._max_body:
            raise self.bad(f"the stream is larger than {self._max_body} bytes")
        deltas: list[StreamDelta] = []
        for event in self._sse.feed(data):
            deltas += self._event(event)
            if self.done:
                break
        return deltas

    def close(self) -> list[StreamDelta]:
        """End of input: the final delta, or `BadResponse` if the answer was cut short."""
        if self.done:
            return []
        events, partial = self._sse.finish()
        deltas: list[StreamDelta] = []
        for event in events:
            deltas += self._event(event)
            if self.done:
                return deltas
        if partial.strip().replace(" ", "") == "data:[DONE]":
            return deltas + self._finish()
        if self._chunks.finish_reason is None:
            where = " (cut in the middle of a frame)" if partial.strip() else ""
            raise self.bad(f"stream ended before the answer was complete{where}")
        return deltas + self._finish()

    def feed_json(self, body: object) -> list[StreamDelta]:
        """A whole (non-streamed) completion body: its deltas and the final delta."""
        if not isinstance(body, dict):
            raise self.bad(f"the answer is not a JSON object: {excerpt(json.dumps(body))}")
        if body.get("error"):
            raise self._error(body, json.dumps(body))
        if not isinstance(body.get("choices"), list):
            raise self.bad(f"the answer has no choices: {excerpt(json.dumps(body))}")
        return self._chunks.feed(body) + self._finish()

    def _finish(self) -> list[StreamDelta]:
        self.done = True
        return [self._chunks.final()]

    def _event(self, event: SSEEvent) -> list[StreamDelta]:
        data = event.data.strip()
        if event.event == "error":
            try:
                body: object = json.loads(data)
            except ValueError:
                body = data
            raise self._error(body, data)
        if data == "[DONE]":
            return self._finish()
        if not data:
            return []
        try:
            body = json.loads(data)
        except ValueError as exc:
            problem = f"invalid JSON in a stream frame ({exc}): {excerpt(data, 120)!r}"
            raise self.bad(problem) from None
        if not isinstance(body, dict):
            raise self.bad(f"a stream frame is not a JSON object: {excerpt(data, 120)!r}")
        if body.get("error"):
            raise self._error(body, data)
        return self._chunks.feed(body)


def collect(deltas: Iterable[StreamDelta]) -> CompletionResult:
    """One `CompletionResult` from a whole stream of deltas."""
    text: list[str] = []
    reasoning: list[str] = []
    last = StreamDelta()
    model: str | None = None
    for delta in deltas:
        text.append(delta.text)
        reasoning.append(delta.reasoning)
        model = delta.model or model
        last = delta
    return CompletionResult(
        text="".join(text),
        reasoning="".join(reasoning),
        tool_calls=last.tool_calls,
        finish_reason=last.finish_reason,
        usage=last.usage,
        model=model,
        stats=last.stats,
    )


def parse_completion(body: object, base_url: str, *, backend: str = LMSTUDIO) -> CompletionResult:
    """A non-streamed `/v1/chat/completions` or `/v1/completions` body as a result."""
    return collect(StreamParser(base_url, backend=backend).feed_json(body))
