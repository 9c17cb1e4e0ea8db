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
import math
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from aigents_lsp.completion.budget import PromptBudget, common_prefix_length
from aigents_lsp.completion.cache import CacheKey, SuggestionCache
from aigents_lsp.completion.context import (
    CHARS_PER_TOKEN,
    PromptContext,
    anchored_prefix,
    build_context,
    redacted,
)
from aigents_lsp.completion.families import pick_template
from aigents_lsp.completion.metrics import CompletionMetrics
from aigents_lsp.completion.postprocess import cursor_indent, postprocess, should_stop
from aigents_lsp.completion.request import CompletionRequest, Suggestion, Target
from aigents_lsp.completion.scheduler import DocumentScheduler, Generation, Superseded
from aigents_lsp.completion.templates import FimTemplate, extract_fill, prefill_prompt
from aigents_lsp.providers.base import (
    ChatParams,
    CompletionParams,
    InfillParams,
    ProviderError,
    SpeedStats,
    StreamDelta,
)

__all__ = ["CompletionEngine", "CompletionRequest", "Suggestion", "Target", "decide_mode"]

if TYPE_CHECKING:
    from aigents_lsp.config import Settings

log = logging.getLogger(__name__)
Mode = Literal["single", "multi"]

MAX_MULTILINE_LINES = 12
MAX_DOCSTRING_LINES = 60  # looked back over to find the signature above a docstring
# Reading ahead is done when the backend would need at least this long for those lines...
PREFILL_WORTH_SECONDS = 0.15
# ...and it keeps a prompt cache: it said so (llama.cpp `cache_n`), or it is one known to.
CACHING_BACKENDS = frozenset({"lmstudio", "embedded", "llamacpp", "llamafile", "ollama"})
# More than this many non-space characters after the cursor (other than closers): no
# automatic suggestion, the user is editing inside a line.
MAX_TRAILING_CHARS = 3
MAX_STREAM_CHARS = 16_000  # far beyond any suggestion shown (12 lines)
_CLOSERS = set(")]}\"'`;:,.")
_BLOCK_OPENER = re.compile(r"(?:[:{(\[]|=>|->|\bthen|\bdo|\bbegin)\s*$")
_SIGNATURE = re.compile(r"^\s*(?:async\s+)?(?:def|class|fn|func|function|sub|proc)\b")
_COMMENT_OR_DOC = re.compile(r"^\s*(?:#|//|/\*|\*|--|\"\"\"|'''|\"|')")


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


@dataclass
class _Prefill:
    task: asyncio.Future[None]
    origin_line: int  # the cursor's line when it started
    last_line: int  # the last line it reads


@dataclass
class _StreamWatch:
    """When the first token came and what the backend said of the prompt."""

    started: float = field(default_factory=time.perf_counter)
    first_at: float | None = None
    prompt: SpeedStats | None = None


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
    if _opens_block(prefix.split("\n")[:-1][-MAX_DOCSTRING_LINES:]):
        return "multi"
    return "multi" if invoked else "single"


def _opens_block(lines: list[str]) -> bool:
    """Whether the last code before these lines' end opens a block: a signature or a block
    opener, possibly followed by comments and a docstring (of any length)."""
    index = len(lines) - 1
    while index >= 0:
        previous = lines[index].strip()
        index -= 1
        if not previous:
            continue
        if _BLOCK_OPENER.search(previous) or _SIGNATURE.match(previous):
            return True
        quote = previous[-3:]
        if quote in ('"""', "'''") and (len(previous) == 3 or previous.count(quote) == 1):
            # The end of a docstring of several lines: continue above its first line.
            while index >= 0 and quote not in lines[index]:
                index -= 1
            index -= 1
            continue
        if _COMMENT_OR_DOC.match(previous):
            continue
        return False
    return False


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
        self.budget = PromptBudget()
        self._ratios: dict[str, float] = {}
        self._calibration_failures: dict[str, tuple[int, float]] = {}
        self._contexts: dict[str, PromptContext] = {}  # the last one built, per document
        self._last_prompt: dict[str, str] = {}  # the last prompt sent, per backend model
        self._prefills: dict[str, _Prefill] = {}  # reading ahead, per document
        self._caching: set[str] = set()  # backend models that reported reusing a prompt

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

    def prompt_tokens(self, target: Target, settings: Settings) -> int:
        """The prompt budget: the user's `completion_prompt_tokens`, else what the backend
        reads within `completion_latency_ms`; capped by the model's context."""
        if settings.completion_prompt_tokens is not None:
            budget = settings.completion_prompt_tokens
        else:
            budget = self.budget.tokens(
                target.key, settings.completion_latency_ms, target.context_length
            )
        if target.context_length:
            budget = min(budget, target.context_length - settings.completion_max_tokens - 64)
        return max(budget, 128)

    def note_keystroke(self, uri: str) -> None:
        """A document changed: feeds the adaptive debounce."""
        self.debounce.keystroke(uri)

    def close(self, uri: str) -> None:
        self.scheduler.close(uri)
        self.cache.forget(uri)
        self.debounce.forget(uri)
        self._contexts.pop(uri, None)
        self._stop_prefill(uri)

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
                self._stop_prefill(request.uri, request.line)
                ratio = await self._chars_per_token(target, request.prefix)
                if not self.scheduler.current(request.uri, ticket):
                    # A newer request came while the tokenizer answered: it owns the
                    # document's generation now; starting ours would cancel it.
                    raise Superseded
                related = request.related() if request.related is not None else ()
                context = build_context(
                    request,
                    related,
                    self.prompt_tokens(target, settings),
                    ratio,
                    uses_suffix=template.kind != "prefix",
                    previous=self._contexts.get(request.uri),
                )
                self._contexts[request.uri] = context
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
        watch = _StreamWatch()
        try:
            await _consume(
                stream, generation, template, multiline, start_indent, max_lines, heal, watch
            )
        finally:
            self._note_prompt(target, sent, watch)
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
        if not self.debounce.typed_since(request.uri, generation.started):
            try:
                self._start_prefill(job)
            except Exception:  # reading ahead is an extra: it must never cost the answer
                log.exception("reading ahead could not start")
        return text

    # --- reading ahead --------------------------------------------------------------------------

    def _start_prefill(self, job: _Job) -> None:
        """After an answer, have the backend read the lines below the cursor (one token is
        generated and dropped), so that its prompt cache holds them when the user moves down
        and types there: the next prompt then shares its head up to the new cursor. The
        window's anchor is moved now if those lines would not fit from the current one."""
        settings = self._settings()
        lines = settings.completion_prefill_lines
        request, context = job.request, job.context
        if lines <= 0 or context.anchor_line < 0 or job.template.kind == "chat":
            return
        if job.template.name == "native" or request.uri in self._prefills:
            return
        rest_of_line, _, after = request.suffix.partition("\n")
        below = after.split("\n")[:lines]
        # The current anchor if the lines below fit after it, else a new one (the window half
        # full at the cursor, as the next request would choose) with the lines that fit.
        choices = [(context.prefix, context.anchor_line)]
        head, anchor = anchored_prefix(request.prefix, request.line, context.prefix_room)
        if anchor >= 0 and anchor != context.anchor_line:
            choices.append((redacted(head), anchor))
        for head, anchor in choices:  # noqa: B007 - the choice taken is used after the loop
            room = context.prefix_room - len(head) - len(rest_of_line)
            taken: list[str] = []
            for row in below:
                room -= len(row) + 1
                if room < 0:
                    break
                taken.append(row)
            if len(taken) >= min(len(below), 8):
                break
        else:
            return
        if len(taken) < 2:
            return
        # Only where it pays: a backend that reads these lines in a blink (a GPU) gains
        # nothing a user would notice, and one whose speed is unknown may not cache at all.
        key = job.target.key
        rate = self.budget.tokens_per_second(key)
        tokens = sum(len(row) + 1 for row in taken) / self._ratios.get(key, CHARS_PER_TOKEN)
        if rate is None or self.budget.samples(key) < 2 or tokens / rate < PREFILL_WORTH_SECONDS:
            return
        if key not in self._caching and job.target.provider.name not in CACHING_BACKENDS:
            return  # no sign that this backend keeps a prompt cache: it would be wasted
        prefix = "\n".join([head + redacted(rest_of_line), *map(redacted, taken)])
        ahead_line = request.line + len(taken)
        prompt = prefill_prompt(job.template, prefix, context.snippets, request.file_path)
        if prompt is None:
            return
        if anchor != context.anchor_line:  # the next request starts where this read did
            self._contexts[request.uri] = replace(context, anchor_line=anchor)
        task = asyncio.get_running_loop().create_task(
            self._prefill(job.target, prompt), name="completion-read-ahead"
        )
        self._prefills[request.uri] = _Prefill(task, request.line, ahead_line)
        task.add_done_callback(lambda _: self._prefill_done(request.uri, task))

    async def _prefill(self, target: Target, prompt: str) -> None:
        self.metrics.prefills += 1
        watch = _StreamWatch()
        stream = target.provider.stream_complete(
            CompletionParams(prompt=prompt, model=target.model, max_tokens=1, temperature=0.0)
        )
        try:
            async for delta in stream:
                watch.first_at = watch.first_at or time.perf_counter()
                if delta.prompt_stats is not None or (
                    delta.stats is not None and delta.stats.prompt_tokens is not None
                ):
                    watch.prompt = delta.prompt_stats or delta.stats
        except ProviderError as error:  # harmless: the next real request reports problems
            log.debug("reading ahead failed: %s", error)
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
            self._note_prompt(target, prompt, watch)

    def _prefill_done(self, uri: str, task: asyncio.Future[None]) -> None:
        current = self._prefills.get(uri)
        if current is not None and current.task is task:
            del self._prefills[uri]
        if not task.cancelled() and task.exception() is not None:
            log.warning("reading ahead failed", exc_info=task.exception())

    def _stop_prefill(self, uri: str, line: int | None = None) -> None:
        """Cancel the read-ahead unless the cursor moved into the lines it reads (a request
        there waits for it and gains from it; anywhere else it only delays the request)."""
        prefill = self._prefills.get(uri)
        if prefill is None:
            return
        if line is not None and prefill.origin_line < line <= prefill.last_line:
            return
        prefill.task.cancel()
        del self._prefills[uri]

    def _note_prompt(self, target: Target, prompt: str, watch: _StreamWatch) -> None:
        """Prompt tokens read and reused (the backend's counts, else estimated from what the
        prompt shares with the previous one) and a prompt-speed sample for the budget."""
        previous = self._last_prompt.get(target.key, "")
        self._last_prompt[target.key] = prompt
        stats = watch.prompt
        if stats is not None and stats.prompt_tokens is not None:
            read, cached = stats.prompt_tokens, stats.cached_tokens or 0
            if cached > 0:
                self._caching.add(target.key)
            if stats.prompt_seconds:
                self.budget.record(target.key, read, stats.prompt_seconds)
            self.metrics.prompt.record(read, cached, reported=True)
        elif watch.first_at is not None:
            ratio = self._ratios.get(target.key, CHARS_PER_TOKEN)
            shared = common_prefix_length(previous, prompt)
            read = int((len(prompt) - shared) / ratio) + 1
            cached = int(shared / ratio)
            self.budget.record(target.key, read, watch.first_at - watch.started)
            self.metrics.prompt.record(read, cached, reported=False)
        else:
            return  # cancelled before the backend answered: nothing known
        self.metrics.prompt_speed = self.budget.snapshot(target.key)


async def _consume(
    stream: AsyncIterator[StreamDelta],
    generation: Generation,
    template: FimTemplate,
    multiline: bool,
    start_indent: int,
    max_lines: int,
    heal: str = "",
    watch: _StreamWatch | None = None,
) -> None:
    """Read the stream into `generation.partial` (without the `heal` text the model was made
    to repeat); closing it early stops the backend. `watch` learns when the first token came
    and what the backend said of the prompt."""
    skip = len(heal)
    received = 0
    watch = watch or _StreamWatch()
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


class AdaptiveDebounce:
    """The pause to wait before asking the backend, learned from each document's typing
    rhythm: a gap is the end of typing when it is longer than this typist's usual gaps (their
    mean plus three deviations, plus a margin). A steady fast typist waits less than
    `debounce_ms` (down to half of it) without a request in the middle of a burst; an uneven
    or slow one waits longer (up to 2.5 times). `debounce_ms` until the rhythm is known."""

    KNOWN_AFTER = 6  # gaps seen before the rhythm is trusted
    MARGIN = 0.010

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._mean: dict[str, float] = {}
        self._variance: dict[str, float] = {}
        self._seen: dict[str, int] = {}

    def keystroke(self, uri: str) -> None:
        now = time.perf_counter()
        last = self._last.get(uri)
        self._last[uri] = now
        if last is None:
            return
        gap = now - last
        if gap >= 1.0:  # a pause longer than that is not typing rhythm
            return
        mean = self._mean.get(uri)
        if mean is None:
            self._mean[uri], self._variance[uri] = gap, 0.0
        else:  # exponentially weighted mean and variance (West's update)
            delta = gap - mean
            self._mean[uri] = mean + 0.2 * delta
            self._variance[uri] = 0.8 * (self._variance[uri] + 0.2 * delta * delta)
        self._seen[uri] = self._seen.get(uri, 0) + 1

    def seconds(self, uri: str, settings: Settings) -> float:
        base = settings.debounce_ms / 1000
        mean = self._mean.get(uri)
        if mean is None or not settings.adaptive_debounce:
            return base
        if self._seen.get(uri, 0) < self.KNOWN_AFTER:
            return min(max(base, mean * 1.6), base * 2.5)
        wait = mean + 3 * math.sqrt(self._variance[uri]) + self.MARGIN
        return min(max(base * 0.5, wait), base * 2.5)

    def typed_since(self, uri: str, moment: float) -> bool:
        """Whether a keystroke came in `uri` after `moment` (a `time.perf_counter()` value)."""
        last = self._last.get(uri)
        return last is not None and last > moment

    def forget(self, uri: str) -> None:
        for table in (self._last, self._mean, self._variance, self._seen):
            table.pop(uri, None)
