"""Prompt sizes, reading ahead, and what each prompt cost: the engine's side of the backend's
prompt cache.

After an answer the backend is made to read the lines below the cursor (one token generated and
dropped), so the next prompt shares its head with what the backend's cache holds. Every prompt
sent is noted: tokens read and reused (the backend's counts, else estimated from what it shares
with the previous prompt) and a prompt-speed sample for the budget. `ReadAhead` is the base of
`CompletionEngine` (completion/engine.py), which sets the state it uses.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from aigents_lsp.completion.budget import (
    MAX_TOKENS,
    SLIDING_WINDOW,
    PromptBudget,
    common_prefix_length,
)
from aigents_lsp.completion.context import CHARS_PER_TOKEN, PromptContext, anchored_prefix, redacted
from aigents_lsp.completion.metrics import CompletionMetrics
from aigents_lsp.completion.request import Target
from aigents_lsp.completion.templates import prefill_prompt
from aigents_lsp.providers.base import CompletionParams, ProviderError, SpeedStats

if TYPE_CHECKING:
    from aigents_lsp.completion.engine import Job
    from aigents_lsp.config import Settings

log = logging.getLogger("aigents_lsp.completion.engine")  # one logger for the whole engine

# Reading ahead is done when the backend would need at least this long for those lines...
PREFILL_WORTH_SECONDS = 0.15
# ...and it keeps a prompt cache: it said so (llama.cpp `cache_n`), or it is one known to.
CACHING_BACKENDS = frozenset({"lmstudio", "embedded", "llamacpp", "llamafile", "ollama"})
# Backends known to move a run of their cached prompt to the front instead of reading it again
# (the embedded engine runs llama.cpp with `n_cache_reuse`); others are learned from their
# counts: more tokens reused than the prompt shares with the one before.
SHIFTING_BACKENDS = frozenset({"embedded"})
# llama.cpp servers keep the tokens of a prompt they stopped reading (measured: a read-ahead
# closed after 1.5 s left 818 tokens for the next request to reuse).
PARTIAL_KEEPING_BACKENDS = frozenset({"embedded", "llamacpp", "llamafile"})
SHIFT_EVIDENCE_TOKENS = 32


@dataclass
class Prefill:
    task: asyncio.Future[None]
    origin_line: int  # the cursor's line when it started
    last_line: int  # the last line it reads
    keeps_partial: bool = False  # the backend keeps what it read of a prompt stopped midway


@dataclass
class PromptWatch:
    """When the first token came and what the backend said of the prompt."""

    started: float = field(default_factory=time.perf_counter)
    first_at: float | None = None
    prompt: SpeedStats | None = None


class ReadAhead:
    """Reading ahead and noting prompts, for `CompletionEngine`."""

    # Set by CompletionEngine.__init__.
    _settings: Callable[[], Settings]
    budget: PromptBudget
    metrics: CompletionMetrics
    _ratios: dict[str, float]
    _contexts: dict[str, PromptContext]
    _last_prompt: dict[str, str]
    _prefills: dict[str, Prefill]
    _caching: set[str]
    _shifting: set[str]
    _not_shifting: set[str]

    def slides(self, target: Target) -> bool:
        """Whether the completion window slides down for this backend (context.py): it is
        known, or was seen, to reuse a cached run of tokens moved to the front — or it
        reports what it reuses (llama.cpp's `timings`), so that the first slide tells. One
        seen reading a moved window again gets windows that start afresh."""
        key = target.key
        if key in self._not_shifting:
            return False
        return (
            key in self._shifting
            or key in self._caching
            or target.provider.name in SHIFTING_BACKENDS
        )

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

    def window_tokens(self, target: Target, settings: Settings, budget: int) -> int:
        """How large a sliding window may grow: the user's `completion_prompt_tokens` as it
        is (it is the most), else SLIDING_WINDOW times the budget, capped by the context. Only
        what is new is read as it grows, so only a prompt started afresh must fit the budget."""
        if settings.completion_prompt_tokens is not None:
            return budget
        window = min(budget * SLIDING_WINDOW, MAX_TOKENS)
        if target.context_length:
            window = min(window, target.context_length - settings.completion_max_tokens - 64)
        return max(window, budget)

    def _start_prefill(self, job: Job) -> None:
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
        slides = context.slides
        if slides:  # the window slides down far enough for the lines below
            room = context.prefix_room - len(rest_of_line) - sum(len(row) + 1 for row in below)
            head, anchor = anchored_prefix(
                request.prefix,
                request.line,
                max(room, 0),
                context.anchor_line,
                fresh_chars=context.fresh_room,
                slide=True,
            )
        else:
            head, anchor = anchored_prefix(request.prefix, request.line, context.prefix_room)
        if anchor >= 0 and anchor != context.anchor_line:
            choices.append((redacted(head), anchor))
        # Starting afresh costs a whole prompt: it is worth it only when fewer than 8 lines fit
        # from the current anchor. Sliding costs only what is new: it is done to read them all.
        enough = len(below) if slides else min(len(below), 8)
        picked: tuple[str, int, list[str]] | None = None
        for head, anchor in choices:
            room = context.prefix_room - len(head) - len(rest_of_line)
            taken: list[str] = []
            for row in below:
                room -= len(row) + 1
                if room < 0:
                    break
                taken.append(row)
            more = picked is None or len(taken) > len(picked[2])
            if len(taken) >= enough or (slides and more):
                picked = (head, anchor, taken)
            if len(taken) >= enough:
                break
        if picked is None:
            return
        head, anchor, taken = picked
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
        # The next request starts where this read did, and may slide on from there.
        self._contexts[request.uri] = replace(context, anchor_line=anchor, end_line=ahead_line)
        moved = head if anchor != context.anchor_line and slides else None
        task = asyncio.get_running_loop().create_task(
            self._prefill(job.target, prompt, moved), name="completion-read-ahead"
        )
        keeps = key in self._shifting or job.target.provider.name in PARTIAL_KEEPING_BACKENDS
        self._prefills[request.uri] = Prefill(task, request.line, ahead_line, keeps)
        task.add_done_callback(lambda _: self._prefill_done(request.uri, task))

    async def _prefill(self, target: Target, prompt: str, moved_head: str | None) -> None:
        self.metrics.prefills += 1
        watch = PromptWatch()
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
            self._note_prompt(target, prompt, watch, moved_head)

    def _prefill_done(self, uri: str, task: asyncio.Future[None]) -> None:
        current = self._prefills.get(uri)
        if current is not None and current.task is task:
            del self._prefills[uri]
        if not task.cancelled() and task.exception() is not None:
            log.warning("reading ahead failed", exc_info=task.exception())

    def _stop_prefill(self, uri: str, line: int | None = None) -> None:
        """Cancel the read-ahead, as a request at `line` is about to be sent. A request
        within the lines it reads gains from it: it waits for it, unless the backend keeps
        what it read so far (llama.cpp), where stopping it saves reading the lines below the
        cursor first. Anywhere else it only delays the request."""
        prefill = self._prefills.get(uri)
        if prefill is None:
            return
        inside = line is not None and prefill.origin_line < line <= prefill.last_line
        if inside and not prefill.keeps_partial:
            return
        prefill.task.cancel()
        del self._prefills[uri]

    def _note_prompt(
        self, target: Target, prompt: str, watch: PromptWatch, moved_head: str | None = None
    ) -> None:
        """Prompt tokens read and reused (the backend's counts, else estimated from what the
        prompt shares with the previous one) and a prompt-speed sample for the budget.
        `moved_head`: the first line of a window that slid down (context.py), to learn
        whether the backend really moves cached tokens."""
        key = target.key
        previous = self._last_prompt.get(key, "")
        self._last_prompt[key] = prompt
        stats = watch.prompt
        ratio = self._ratios.get(key, CHARS_PER_TOKEN)
        if stats is not None and stats.prompt_tokens is not None:
            read, cached = stats.prompt_tokens, stats.cached_tokens or 0
            if cached > 0:
                self._caching.add(key)
            # Reused past the head it shares with the previous prompt (in the backend's own
            # tokens: the share of the prompt's characters, of its token count). Compared only
            # while there is something to learn from it.
            learning = bool(moved_head) or (
                cached > SHIFT_EVIDENCE_TOKENS
                and (key not in self._shifting or key in self._not_shifting)
            )
            shared = common_prefix_length(previous, prompt) if learning else len(prompt)
            beyond_head = cached - (read + cached) * shared / max(len(prompt), 1)
            if beyond_head > SHIFT_EVIDENCE_TOKENS:
                self._shifting.add(key)
                self._not_shifting.discard(key)
            elif moved_head and moved_head[:200] in previous and read > SHIFT_EVIDENCE_TOKENS:
                # It held the window's lines, yet read them again: sliding costs it a cold
                # prompt each time. Windows start afresh for it from now on.
                self._not_shifting.add(key)
                log.info("%s reads a moved prompt again: completion windows do not slide", key)
            if stats.prompt_seconds:
                self.budget.record(key, read, stats.prompt_seconds)
            self.metrics.prompt.record(read, cached, reported=True)
        elif watch.first_at is not None:
            shared = common_prefix_length(previous, prompt)
            read = int((len(prompt) - shared) / ratio) + 1
            cached = int(shared / ratio)
            self.budget.record(key, read, watch.first_at - watch.started)
            self.metrics.prompt.record(read, cached, reported=False)
        else:
            return  # cancelled before the backend answered: nothing known
        # Whether windows slide for this backend (1) or start afresh when full (0).
        self.metrics.prompt_speed = {
            **self.budget.snapshot(key),
            "prompt_window_slides": int(self.slides(target)),
        }
