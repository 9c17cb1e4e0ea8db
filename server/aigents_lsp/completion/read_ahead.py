"""Reading ahead, and what each prompt cost: the engine's side of the backend's prompt cache.

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

from aigents_lsp.completion.budget import PromptBudget, common_prefix_length
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


@dataclass
class Prefill:
    task: asyncio.Future[None]
    origin_line: int  # the cursor's line when it started
    last_line: int  # the last line it reads


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
        self._prefills[request.uri] = Prefill(task, request.line, ahead_line)
        task.add_done_callback(lambda _: self._prefill_done(request.uri, task))

    async def _prefill(self, target: Target, prompt: str) -> None:
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

    def _note_prompt(self, target: Target, prompt: str, watch: PromptWatch) -> None:
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
