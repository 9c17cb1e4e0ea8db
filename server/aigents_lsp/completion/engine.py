"""The completion engine: request -> cache | shared stream | new generation -> suggestion.

Order of business for each request, cheapest first:
1. decide the line mode (or that nothing should be suggested here);
2. the cache: an exact hit, or type-through (the user typed the start of a suggestion);
3. an in-flight stream whose context the new request extends (no new backend call);
4. otherwise wait for a pause in typing, then one new backend stream, stopped early.
No pygls here: the LSP layer turns params into a `CompletionRequest` and back.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from aigents_lsp.completion.cache import CacheKey, SuggestionCache
from aigents_lsp.completion.context import CHARS_PER_TOKEN, PromptContext, build_context
from aigents_lsp.completion.metrics import CompletionMetrics
from aigents_lsp.completion.postprocess import cursor_indent, postprocess, should_stop
from aigents_lsp.completion.scheduler import DocumentScheduler, Generation, Superseded
from aigents_lsp.completion.templates import FimTemplate, extract_fill, pick_template
from aigents_lsp.providers.base import (
    ChatParams,
    CompletionParams,
    InfillParams,
    Provider,
    StreamDelta,
)

if TYPE_CHECKING:
    from aigents_lsp.config import Settings

Mode = Literal["single", "multi"]

MAX_MULTILINE_LINES = 12
# More than this many non-space characters after the cursor (other than closers): no
# automatic suggestion, the user is editing inside a line.
MAX_TRAILING_CHARS = 3
MAX_STREAM_CHARS = 16_000  # far beyond any suggestion shown (12 lines)
_CLOSERS = set(")]}\"'`;:,.")
_BLOCK_OPENER = re.compile(r"(?:[:{(\[]|=>|->|\bthen|\bdo|\bbegin)\s*$")
_SIGNATURE = re.compile(r"^\s*(?:async\s+)?(?:def|class|fn|func|function|sub|proc)\b")
_COMMENT_OR_DOC = re.compile(r"^\s*(?:#|//|/\*|\*|--|\"\"\"|'''|\"|')")


@dataclass(frozen=True)
class CompletionRequest:
    """Where the user is and what surrounds the cursor (text already sliced from the document)."""

    uri: str
    version: int
    prefix: str  # a window of the text before the cursor (not necessarily all of it)
    suffix: str  # a window of the text after the cursor
    line: int = 0  # the cursor, in code points
    column: int = 0
    language_id: str = ""
    invoked: bool = False
    file_path: str | None = None
    # Snippets of other files (path, text); never ignored/secret files. Given as a function:
    # only a request that reaches the backend gathers them, not every keystroke.
    related: Callable[[], tuple[tuple[str, str], ...]] | None = None


@dataclass(frozen=True)
class Target:
    """Who answers: the provider, the model and what is known of it."""

    provider: Provider
    model: str | None
    arch: str | None = None
    context_length: int | None = None
    chat_only: bool = False
    native_fim: bool = False  # the backend renders FIM itself (`Provider.stream_infill`)


@dataclass(frozen=True)
class Suggestion:
    text: str
    model: str | None
    latency_ms: float
    multiline: bool
    source: Literal["backend", "cache", "stream"] = "backend"


@dataclass
class _Job:
    """What a generation needs to run, fixed when it starts."""

    request: CompletionRequest
    target: Target
    template: FimTemplate
    mode: Mode
    key: CacheKey
    context: PromptContext
    served_by: list[str | None] = field(default_factory=list)


def _is_closer_text(text: str) -> bool:
    return all(ch in _CLOSERS or ch.isspace() for ch in text)


def decide_mode(prefix: str, suffix: str, invoked: bool) -> Mode | None:
    """Single- or multi-line, decided before generating; None: suggest nothing here."""
    line_before = prefix.rsplit("\n", 1)[-1]
    line_after = suffix.split("\n", 1)[0]
    trailing = line_after.strip()
    if (
        not invoked
        and len(trailing.replace(" ", "")) > MAX_TRAILING_CHARS
        and not _is_closer_text(trailing)
    ):
        return None
    if line_before.strip() or trailing:
        return "single"
    # An empty line: multi-line when it opens a block (after a signature, a block opener, or
    # the docstring/comments that follow them).
    for previous in reversed(prefix.split("\n")[:-1][-8:]):
        if not previous.strip():
            continue
        if _BLOCK_OPENER.search(previous) or _SIGNATURE.match(previous):
            return "multi"
        if _COMMENT_OR_DOC.match(previous):
            continue
        break
    return "multi" if invoked else "single"


def indent_unit(prefix: str) -> str:
    """The document's indentation step, read from the lines before the cursor."""
    lines = prefix[-8000:].split("\n")
    if any(line.startswith("\t") for line in lines):
        return "\t"
    widths = sorted({len(line) - len(line.lstrip(" ")) for line in lines if line.strip()} - {0})
    steps = [b - a for a, b in zip([0, *widths], widths, strict=False) if b > a]
    step = min(steps) if steps else 4
    return " " * (step if step in (2, 3, 4, 8) else 4)


class CompletionEngine:
    """Owns the cache, the per-document scheduler and the metrics for the server's lifetime."""

    def __init__(self, settings: Callable[[], Settings]) -> None:
        self._settings = settings
        self.cache = SuggestionCache()
        self.scheduler = DocumentScheduler()
        self.metrics = CompletionMetrics()
        self.debounce = AdaptiveDebounce()
        self._ratios: dict[str, float] = {}

    async def _chars_per_token(self, target: Target, sample: str) -> float:
        """Characters per token of this model, measured once with the backend's tokenizer
        when it has one (llama.cpp `/tokenize`), else the calibrated estimate."""
        key = f"{target.provider.name}:{target.model}"
        ratio = self._ratios.get(key)
        if ratio is None:
            sample = sample[-6000:]
            tokens = await target.provider.count_tokens(sample, target.model) if sample else None
            ratio = CHARS_PER_TOKEN
            if tokens and len(sample) >= 500:
                ratio = min(max(len(sample) / tokens, 1.5), 6.0)
            self._ratios[key] = ratio
        return ratio

    def note_keystroke(self, uri: str) -> None:
        """A document changed: feeds the adaptive debounce."""
        self.debounce.keystroke(uri)

    def close(self, uri: str) -> None:
        self.scheduler.close(uri)
        self.cache.forget(uri)
        self.debounce.forget(uri)

    async def complete(self, request: CompletionRequest, target: Target) -> Suggestion | None:
        """The suggestion for `request`, or None. Raises `ProviderError` from the backend."""
        started = time.perf_counter()
        metrics = self.metrics
        metrics.requests += 1
        mode = decide_mode(request.prefix, request.suffix, request.invoked)
        if mode is None:
            metrics.empty += 1
            return None
        settings = self._settings()
        template = pick_template(
            target.model,
            target.arch,
            user_template=settings.completion_template,
            chat_only=target.chat_only,
            native=target.native_fim,
        )
        key = CacheKey.of(target.model, template.name, request.prefix, request.suffix)
        ticket = self.scheduler.enter(request.uri)
        hit = self.cache.get(request.uri, key)
        if hit is not None:
            metrics.cache_hits += 1
            return self._shown(hit.text, target.model, started, mode, "cache")
        generation = self.scheduler.generations.get(request.uri)
        typed = (
            generation.adoptable_by(
                request.line, request.column, request.prefix, key.suffix_head, key.model
            )
            if generation is not None
            else None
        )
        try:
            if generation is None or typed is None:
                if generation is not None:
                    generation.cancel()  # it cannot serve this context: stop the backend now
                delay = 0.0 if request.invoked else self.debounce.seconds(request.uri, settings)
                await self.scheduler.debounce(request.uri, ticket, delay)
                ratio = await self._chars_per_token(target, request.prefix)
                related = request.related() if request.related is not None else ()
                context = build_context(
                    request,
                    related,
                    target.context_length,
                    settings,
                    ratio,
                    uses_suffix=template.kind != "prefix",
                )
                job = _Job(request, target, template, mode, key, context)
                generation = self.scheduler.start(
                    Generation(
                        request.uri,
                        request.line,
                        request.column,
                        request.prefix,
                        key.suffix_head,
                        key.model,
                    ),
                    lambda g: self._generate(g, job),
                )
                typed = ""
                metrics.backend_calls += 1
            else:
                metrics.reused_streams += 1
            text = await self.scheduler.wait(request.uri, ticket, generation)
        except Superseded:
            metrics.superseded += 1
            return None
        except asyncio.CancelledError:
            metrics.cancelled += 1
            raise
        except Exception:
            metrics.errors += 1
            raise
        if not text or not text.startswith(typed) or len(text) <= len(typed):
            metrics.empty += 1
            return None
        source: Literal["backend", "stream"] = "stream" if typed else "backend"
        return self._shown(text[len(typed) :], target.model, started, mode, source)

    def _shown(
        self,
        text: str,
        model: str | None,
        started: float,
        mode: Mode,
        source: Literal["backend", "cache", "stream"],
    ) -> Suggestion:
        latency = (time.perf_counter() - started) * 1000
        self.metrics.shown += 1
        self.metrics.record_latency(latency)
        return Suggestion(text, model, latency, mode == "multi", source)

    async def _generate(self, generation: Generation, job: _Job) -> str | None:
        """One backend stream for `job`, stopped as soon as the shown part is complete."""
        request, target, template = job.request, job.target, job.template
        settings = self._settings()
        multiline = job.mode == "multi"
        start_indent = cursor_indent(request.prefix)
        max_lines = MAX_MULTILINE_LINES
        prefix, suffix = job.context.prefix, job.context.suffix
        heal = ""
        if template.kind == "chat":
            stream = target.provider.stream_chat(
                ChatParams(
                    messages=template.messages(
                        prefix, suffix, context=job.context.snippets, file_path=request.file_path
                    ),
                    model=target.model,
                    max_tokens=settings.completion_max_tokens,
                    temperature=settings.completion_temperature,
                )
            )
        elif template.name == "native":
            stream = target.provider.stream_infill(
                InfillParams(
                    prefix=prefix,
                    suffix=suffix,
                    model=target.model,
                    max_tokens=settings.completion_max_tokens if multiline else 48,
                    temperature=settings.completion_temperature,
                    stop=[] if multiline else ["\n"],
                    context=job.context.snippets,
                    file_path=request.file_path,
                )
            )
        else:
            stop = list(template.stop) + ([] if multiline else ["\n"])
            grammar = None
            if template.kind == "prefix" and not multiline and target.provider.supports_grammar:
                heal = healing_text(prefix)
            if heal:
                # Token healing: a prompt ending inside a word (or on a space) makes a base
                # model start a new token badly; end the prompt before it and make the model
                # write it first (a llama.cpp grammar), then drop it from the output.
                prefix = prefix[: -len(heal)]
                grammar = f'root ::= "{_gbnf_escape(heal)}" [^\\n]* "\\n"'
            prompt = template.render(
                prefix, suffix, context=job.context.snippets, file_path=request.file_path
            )
            stream = target.provider.stream_complete(
                CompletionParams(
                    prompt=prompt,
                    model=target.model,
                    max_tokens=settings.completion_max_tokens if multiline else 48,
                    temperature=settings.completion_temperature,
                    stop=stop,
                    grammar=grammar,
                )
            )
        await _consume(stream, generation, template, multiline, start_indent, max_lines, heal)
        raw = generation.text_so_far()
        if template.kind == "chat":
            raw = extract_fill(raw, request.prefix)
        text = postprocess(
            raw,
            request.prefix[-4000:],
            request.suffix[:4000],
            multiline=multiline,
            indent_unit=indent_unit(request.prefix),
            max_lines=max_lines,
            language_id=request.language_id,
            tokens=template.tokens,
        )
        if text:
            self.cache.put(request.uri, job.key, text)
        return text


async def _consume(
    stream: AsyncIterator[StreamDelta],
    generation: Generation,
    template: FimTemplate,
    multiline: bool,
    start_indent: int,
    max_lines: int,
    heal: str = "",
) -> None:
    """Read the stream into `generation.partial` (without the `heal` text the model was made
    to repeat); closing it early stops the backend."""
    skip = len(heal)
    received = 0
    try:
        async for delta in stream:
            text = delta.text
            if skip and text:
                cut = min(skip, len(text))
                text, skip = text[cut:], skip - cut
            if not text:
                continue
            generation.partial.append(text)
            received += len(text)
            if received > MAX_STREAM_CHARS:
                break  # a backend ignoring max_tokens (10 MB of one line) is not read to the end
            if template.kind != "chat" and should_stop(
                generation.text_so_far(),
                multiline=multiline,
                start_indent=start_indent,
                max_lines=max_lines,
            ):
                break
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


_HEAL_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}$")


def healing_text(prefix: str) -> str:
    """The end of the prompt to back off for token healing: a partly typed word, or the
    spaces after code on the cursor's line."""
    line = prefix.rsplit("\n", 1)[-1]
    if not line.strip():
        return ""
    word = _HEAL_WORD.search(line)
    if word:
        return word.group(0)
    stripped = line.rstrip(" ")
    return line[len(stripped) :] if len(stripped) < len(line) else ""


def _gbnf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


class AdaptiveDebounce:
    """The pause to wait before asking the backend, adapted to each document's typing speed:
    never shorter than the setting, a little longer for someone who types slowly (so a pause
    between two keystrokes is not mistaken for the end of typing)."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._gap: dict[str, float] = {}

    def keystroke(self, uri: str) -> None:
        now = time.perf_counter()
        last = self._last.get(uri)
        self._last[uri] = now
        if last is None:
            return
        gap = now - last
        if gap < 1.0:  # a pause longer than that is not typing rhythm
            old = self._gap.get(uri, gap)
            self._gap[uri] = 0.7 * old + 0.3 * gap

    def seconds(self, uri: str, settings: Settings) -> float:
        base = settings.debounce_ms / 1000
        gap = self._gap.get(uri)
        if gap is None or not settings.adaptive_debounce:
            return base
        return min(max(base, gap * 1.6), base * 2.5)

    def forget(self, uri: str) -> None:
        self._last.pop(uri, None)
        self._gap.pop(uri, None)
