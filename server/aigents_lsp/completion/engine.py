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
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from aigents_lsp.completion.budget import PromptBudget
from aigents_lsp.completion.cache import CacheKey, SuggestionCache
from aigents_lsp.completion.context import (
    CHARS_PER_TOKEN,
    PromptContext,
    build_context,
)
from aigents_lsp.completion.families import pick_template
from aigents_lsp.completion.metrics import CompletionMetrics
from aigents_lsp.completion.mode import Mode, cursor_indent, decide_mode, indent_unit, should_stop
from aigents_lsp.completion.postprocess import postprocess
from aigents_lsp.completion.read_ahead import Prefill, PromptWatch, ReadAhead
from aigents_lsp.completion.request import CompletionRequest, Suggestion, Target
from aigents_lsp.completion.scheduler import AdaptiveDebounce, DocumentScheduler, Generation
from aigents_lsp.completion.templates import FimTemplate, extract_fill
from aigents_lsp.providers.base import (
    ChatParams,
    CompletionParams,
    InfillParams,
    StreamDelta,
)
from aigents_lsp.tickets import Superseded

__all__ = ["CompletionEngine", "CompletionRequest", "Suggestion", "Target"]

if TYPE_CHECKING:
    from aigents_lsp.config import Settings

log = logging.getLogger(__name__)

MAX_MULTILINE_LINES = 12
MAX_STREAM_CHARS = 16_000  # far beyond any suggestion shown (12 lines)


@dataclass
class Job:
    """What a generation needs to run, fixed when it starts."""

    request: CompletionRequest
    target: Target
    template: FimTemplate
    mode: Mode
    key: CacheKey
    context: PromptContext
    served_by: list[str | None] = field(default_factory=list)


class CompletionEngine(ReadAhead):
    """Owns the cache, the per-document scheduler and the metrics for the server's lifetime."""

    def __init__(self, settings: Callable[[], Settings]) -> None:
        self._settings = settings
        self.cache = SuggestionCache()
        self.scheduler = DocumentScheduler()
        self.metrics = CompletionMetrics()
        self.debounce = AdaptiveDebounce()
        self.budget = PromptBudget()
        self._ratios: dict[str, float] = {}
        self._calibration_failures: dict[str, tuple[int, float]] = {}
        self._contexts: dict[str, PromptContext] = {}  # the last one built, per document
        self._last_prompt: dict[str, str] = {}  # the last prompt sent, per backend model
        self._prefills: dict[str, Prefill] = {}  # reading ahead, per document
        self._caching: set[str] = set()  # backend models that reported reusing a prompt
        # ... and those that reused a run of the cached prompt moved to the front (llama.cpp's
        # cache reuse): for them the window slides (context.anchored_prefix).
        self._shifting: set[str] = set()
        self._not_shifting: set[str] = set()  # ... and those seen reading it all again

    async def _chars_per_token(self, target: Target, sample: str) -> float:
        """Characters per token of this model, measured with the backend's tokenizer when it
        has one (llama.cpp `/tokenize`), else the calibrated estimate. A sample too short to
        tell, or a failed count, is tried again later (at most 3 times, 30 s apart) instead
        of keeping the estimate for good."""
        key = target.key
        ratio = self._ratios.get(key)
        if ratio is not None:
            return ratio
        sample = sample[-6000:]
        if len(sample) < 500:
            return CHARS_PER_TOKEN  # too short to measure: ask again with a longer one
        failures, last = self._calibration_failures.get(key, (0, 0.0))
        if failures >= 3 or (failures and time.monotonic() - last < 30.0):
            return CHARS_PER_TOKEN
        tokens = await target.provider.count_tokens(sample, target.model)
        if not tokens:
            self._calibration_failures[key] = (failures + 1, time.monotonic())
            if failures + 1 >= 3:
                log.info("no tokenizer at %s: prompt sizes are estimated", target.provider.name)
            return CHARS_PER_TOKEN
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
        self._contexts.pop(uri, None)
        self._stop_prefill(uri)

    async def complete(
        self, request: CompletionRequest, target: Target, ticket: int | None = None
    ) -> Suggestion | None:
        """The suggestion for `request`, or None. Raises `ProviderError` from the backend.
        `ticket`: taken from `scheduler.enter` when the editor asked (before choosing the
        model, which awaits); a request overtaken meanwhile by a newer one ends here."""
        started = time.perf_counter()
        metrics = self.metrics
        metrics.requests += 1
        if ticket is not None and not self.scheduler.current(request.uri, ticket):
            metrics.superseded += 1
            return None
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
        if ticket is None:
            ticket = self.scheduler.enter(request.uri)
        hit = self.cache.get(request.uri, key)
        if hit is not None:
            metrics.cache_hits += 1
            self.debounce.shown(request.uri)
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
                self._stop_prefill(request.uri, request.line)
                ratio = await self._chars_per_token(target, request.prefix)
                if not self.scheduler.current(request.uri, ticket):
                    # A newer request came while the tokenizer answered: it owns the
                    # document's generation now; starting ours would cancel it.
                    raise Superseded
                related = request.related() if request.related is not None else ()
                budget = self.prompt_tokens(target, settings)
                slide = self.slides(target)
                context = build_context(
                    request,
                    related,
                    budget,
                    ratio,
                    uses_suffix=template.kind != "prefix",
                    previous=self._contexts.get(request.uri),
                    window_tokens=self.window_tokens(target, settings, budget) if slide else None,
                    slide=slide,
                )
                self._contexts[request.uri] = context
                job = Job(request, target, template, mode, key, context)
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
        self.debounce.shown(request.uri)
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

    async def _generate(self, generation: Generation, job: Job) -> str | None:
        """One backend stream for `job`, stopped as soon as the shown part is complete."""
        request, target, template = job.request, job.target, job.template
        settings = self._settings()
        multiline = job.mode == "multi"
        start_indent = cursor_indent(request.prefix)
        max_lines = MAX_MULTILINE_LINES
        prefix, suffix = job.context.prefix, job.context.suffix
        heal = ""
        if template.kind == "chat":
            messages = template.messages(
                prefix, suffix, context=job.context.snippets, file_path=request.file_path
            )
            sent = "\n".join(message.content or "" for message in messages)
            stream = target.provider.stream_chat(
                ChatParams(
                    messages=messages,
                    model=target.model,
                    max_tokens=settings.completion_max_tokens,
                    temperature=settings.completion_temperature,
                )
            )
        elif template.name == "native":
            sent = "".join(text for _, text in job.context.snippets) + prefix + suffix
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
            prompt = sent = template.render(
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
        watch = PromptWatch()
        try:
            await _consume(
                stream, generation, template, multiline, start_indent, max_lines, heal, watch
            )
        finally:
            self._note_prompt(target, sent, watch, prefix if job.context.slid else None)
        raw = generation.text_so_far()
        if template.kind == "chat":
            raw = extract_fill(raw, request.prefix)
        dropped_by: list[str] = []
        text = postprocess(
            raw,
            request.prefix[-4000:],
            request.suffix[:4000],
            multiline=multiline,
            indent_unit=indent_unit(request.prefix),
            max_lines=max_lines,
            language_id=request.language_id,
            tokens=template.tokens,
            dropped_by=dropped_by,
        )
        if text:
            self.cache.put(request.uri, job.key, text)
        else:
            self.metrics.empty_reasons["model" if not raw.strip() else "".join(dropped_by)] += 1
        if not self.debounce.typed_since(request.uri, generation.started):
            try:
                self._start_prefill(job)
            except Exception:  # reading ahead is an extra: it must never cost the answer
                log.exception("reading ahead could not start")
        return text


async def _consume(
    stream: AsyncIterator[StreamDelta],
    generation: Generation,
    template: FimTemplate,
    multiline: bool,
    start_indent: int,
    max_lines: int,
    heal: str = "",
    watch: PromptWatch | None = None,
) -> None:
    """Read the stream into `generation.partial` (without the `heal` text the model was made
    to repeat); closing it early stops the backend. `watch` learns when the first token came
    and what the backend said of the prompt."""
    skip = len(heal)
    received = 0
    watch = watch or PromptWatch()
    try:
        async for delta in stream:
            if watch.first_at is None:
                watch.first_at = time.perf_counter()
            if watch.prompt is None:
                watch.prompt = delta.prompt_stats or (
                    delta.stats if delta.stats and delta.stats.prompt_tokens is not None else None
                )
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
