"""Prompts the backend can cache: consecutive prompts in a file share their head, the budget
follows the backend's measured prompt speed, and reading ahead prepares the next prompt."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aigents_lsp.completion.budget import INITIAL_TOKENS, PromptBudget, common_prefix_length
from aigents_lsp.completion.context import anchored_prefix, build_context
from aigents_lsp.completion.engine import CompletionEngine
from aigents_lsp.completion.families import TEMPLATES, pick_template
from aigents_lsp.completion.request import CompletionRequest, Target
from aigents_lsp.completion.templates import prefill_prompt
from aigents_lsp.config import Settings
from aigents_lsp.providers.base import (
    CompletionParams,
    SpeedStats,
    StreamDelta,
)
from tests.unit.stub_provider import StubProvider

LINES = [f"    value_{i} = compute(value_{i - 1}, limit={i})" for i in range(2000)]


def request_at(line: int, typed: str = "", uri: str = "file:///a.py") -> CompletionRequest:
    """The cursor at the end of `line` of LINES plus `typed` (the window the LSP layer
    reads: at most 24,000 characters before the cursor)."""
    prefix = "\n".join(LINES[: line + 1])[-24_000:] + typed
    suffix = "\n" + "\n".join(LINES[line + 1 :])
    cursor_line = line + typed.count("\n")
    column = len(prefix) - prefix.rfind("\n") - 1
    return CompletionRequest(uri, 1, prefix, suffix, line=cursor_line, column=column)


def context_at(line: int, previous=None, typed: str = "", budget: int = 1024):  # type: ignore[no-untyped-def]
    return build_context(request_at(line, typed), (), budget, 3.2, previous=previous)


# --- the anchored window -------------------------------------------------------------------------


def test_typing_keeps_the_prompt_head() -> None:
    first = context_at(1000)
    typed = context_at(1000, first, typed="x = ")
    assert typed.anchor_line == first.anchor_line >= 0
    assert typed.prefix.startswith(first.prefix)


def test_moving_down_keeps_the_anchor_while_the_text_fits() -> None:
    first = context_at(1000)
    later = context_at(1010, first)
    assert later.anchor_line == first.anchor_line
    assert later.prefix.startswith(first.prefix)  # the whole previous prompt is reused


def test_moving_up_below_the_anchor_keeps_it() -> None:
    first = context_at(1000)
    up = context_at(995, first)
    assert up.anchor_line == first.anchor_line
    assert first.prefix.startswith(up.prefix.rsplit("\n", 1)[0])


def test_a_new_anchor_starts_half_full_on_a_line_divisible_by_eight() -> None:
    first = context_at(1000)
    assert first.anchor_line % 8 == 0
    assert len(first.prefix) <= first.prefix_room * 0.5 + 1
    # Far below: the text from the old anchor no longer fits, the window starts again.
    far = context_at(1400, first)
    assert far.anchor_line > first.anchor_line and far.anchor_line % 8 == 0


def test_a_cursor_above_the_anchor_moves_it() -> None:
    first = context_at(1000)
    above = context_at(first.anchor_line - 5, first)
    assert above.anchor_line < first.anchor_line


def test_the_file_start_is_kept_while_the_whole_file_fits() -> None:
    first = context_at(10)
    later = context_at(30, first)
    assert first.anchor_line == later.anchor_line == 0
    assert later.prefix.startswith(first.prefix)


def test_the_prefix_share_does_not_depend_on_the_suffix() -> None:
    """A suffix that changes (moving lines) must not move the prefix's anchor."""
    request = request_at(1000)
    short = CompletionRequest(request.uri, 1, request.prefix, "\n", line=1000, column=0)
    assert (
        build_context(request, (), 1024, 3.2).anchor_line
        == build_context(short, (), 1024, 3.2).anchor_line
    )


def test_snippets_stay_while_the_anchor_stays() -> None:
    shared = "def compute(value, limit):\n    return min(value_1000, value_999, limit)\n"
    related = (("b.py", shared * 6), ("c.py", shared.replace("min", "max") * 6))
    first = build_context(request_at(1000), related, 1024, 3.2)
    assert first.snippets
    moved = build_context(request_at(1003, "other("), related, 1024, 3.2, previous=first)
    assert moved.snippets == first.snippets
    # A file no longer offered (closed, or ignored now) leaves the prompt.
    gone = build_context(request_at(1003), related[1:], 1024, 3.2, previous=first)
    assert all(path != "b.py" for path, _ in gone.snippets) or first.snippets[0][0] != "b.py"


def sliding_at(line: int, previous=None, typed: str = "", budget: int = 512):  # type: ignore[no-untyped-def]
    """A backend that moves cached tokens: the window may grow to 4x the budget, and slides."""
    request = request_at(line, typed)
    return build_context(
        request, (), budget, 3.2, previous=previous, window_tokens=budget * 4, slide=True
    )


def test_a_sliding_window_starts_at_the_budget_then_grows_with_the_same_head() -> None:
    first = sliding_at(1000)
    assert len(first.prefix) <= first.fresh_room * 0.5 + 1  # cold: read with nothing cached
    down = first
    for line in range(1010, 1100, 10):  # moving down: the head stays while the window grows
        down = sliding_at(line, down)
        assert down.anchor_line == first.anchor_line
    assert len(down.prefix) > 2 * first.fresh_room  # larger than a cold prompt may be


def test_a_full_sliding_window_slides_down_past_its_anchor_three_quarters_full() -> None:
    window = sliding_at(1000)
    for line in range(1010, 1300, 10):
        moved = sliding_at(line, window)
        if moved.anchor_line != window.anchor_line:
            assert moved.slid and moved.anchor_line > window.anchor_line
            assert moved.anchor_line % 8 == 0
            assert len(moved.prefix) <= moved.prefix_room * 0.75 + 1
            # What the backend holds of the old window, from the new anchor on, is the head
            # of the new one: a KV shift, not a new read.
            kept = window.prefix[window.prefix.index(LINES[moved.anchor_line]) :]
            assert moved.prefix.startswith(kept)
            break
        window = moved
    else:
        raise AssertionError("the window never slid")


def test_a_jump_starts_a_sliding_window_afresh_within_the_budget() -> None:
    window = sliding_at(1000)
    jump = sliding_at(1800, window)
    assert not jump.slid and len(jump.prefix) <= jump.fresh_room * 0.5 + 1
    up = sliding_at(500, window)
    assert not up.slid and up.anchor_line < window.anchor_line


def test_a_window_started_afresh_fills_its_room() -> None:
    """A cold window does not give its room away to start at code in column 0: only windows
    grown from it look for its start in the backend's cache, and they share it whatever it
    is. It starts at the earliest line (of a multiple of 8) that fits."""
    rows = [f"    step_{i} = run(step_{i - 1})" for i in range(200)]
    rows[190] = "def late_function():"  # column-0 code 9 lines above the cursor
    prefix = "\n".join(rows) + "\n    "
    room = 60 * len(rows[0])
    window, anchor = anchored_prefix(prefix, 200, room * 2, fresh_chars=room * 2)
    assert anchor % 8 == 0 and anchor < 190
    assert room - 8 * (len(rows[0]) + 1) <= len(window) <= room


def test_the_file_start_is_read_whole_only_within_the_budget() -> None:
    """A small file's whole start is a prompt with nothing cached: it must fit the budget,
    not the larger window a warm prompt may grow to."""
    cold = sliding_at(150)  # ~7,000 characters: under the 4x window, over the budget
    assert cold.anchor_line > 0 and len(cold.prefix) <= cold.fresh_room
    small = sliding_at(20)
    assert small.anchor_line == 0


def test_snippets_stay_while_the_window_slides() -> None:
    shared = "def compute(value, limit):\n    return min(value_1000, value_999, limit)\n"
    related = (("b.py", shared * 6),)
    request = request_at(1000)
    window = build_context(request, related, 512, 3.2, window_tokens=2048, slide=True)
    assert window.snippets
    for line in range(1010, 1300, 10):
        moved = build_context(
            request_at(line), related, 512, 3.2, previous=window, window_tokens=2048, slide=True
        )
        assert moved.snippets == window.snippets
        window = moved


def test_a_single_huge_line_falls_back_to_a_sliding_tail() -> None:
    prefix, anchor = anchored_prefix("x" * 10_000, 0, 1000)
    assert anchor == -1 and len(prefix) == 1000


def test_common_prefix_length() -> None:
    assert common_prefix_length("abcdef", "abcxyz") == 3
    assert common_prefix_length("", "abc") == 0
    assert common_prefix_length("same", "same") == 4


# --- the budget follows the backend's speed ------------------------------------------------------


def test_budget_starts_small_and_follows_the_measured_speed() -> None:
    budget = PromptBudget()
    assert budget.tokens("cpu", 2000) == INITIAL_TOKENS
    budget.record("cpu", 500, 1.25)  # 400 tokens/s: a laptop CPU
    cpu = budget.tokens("cpu", 2000)
    budget.record("gpu", 4000, 1.0)  # 4,000 tokens/s
    gpu = budget.tokens("gpu", 2000)
    assert cpu < gpu
    assert cpu == 1280  # 400 tok/s x 1.5 s of reading x 2 (a cold prompt is half): 1,200
    budget.record("slow", 340, 1.0)  # the embedded engine here: 340 tok/s x 1.5 s x 1.5
    assert budget.tokens("slow", 1500) == 768  # 765, the nearest step: not 512
    assert gpu == 8192  # the cap
    assert budget.tokens("gpu", 2000, context_length=4096) <= 4096 - 256


def test_budget_ignores_small_samples_and_small_changes() -> None:
    budget = PromptBudget()
    budget.record("m", 20, 0.5)  # 20 tokens: mostly overhead, not a measure of reading
    assert budget.tokens_per_second("m") is None
    budget.record("m", 500, 1.0)
    first = budget.tokens("m", 2000)
    budget.record("m", 520, 1.0)  # 4% faster: the budget (and the anchor) stay
    assert budget.tokens("m", 2000) == first


def test_an_explicit_prompt_budget_wins() -> None:
    engine = CompletionEngine(lambda: Settings(completion_prompt_tokens=3000))
    engine.budget.record("p:m", 500, 5.0)  # very slow
    target = Target(provider=_Recorder(), model="m")
    assert engine.prompt_tokens(target, Settings(completion_prompt_tokens=3000)) == 3000
    assert engine.prompt_tokens(target, Settings()) == 512  # the floor: the speed is slow


# --- the engine: reuse counted, speed learned, reading ahead ----------------------------------


class _Recorder(StubProvider):
    """A provider answering one line, reporting llama.cpp-style prompt counts: everything
    shared with the previous prompt is 'cached'."""

    name = "p"

    def __init__(self) -> None:
        self.prompts: list[CompletionParams] = []
        self.release = asyncio.Event()
        self.release.set()

    async def stream_complete(self, params: CompletionParams) -> AsyncIterator[StreamDelta]:
        previous = self.prompts[-1].prompt if self.prompts else ""
        self.prompts.append(params)
        if params.max_tokens == 1:  # a read-ahead: held while `release` is clear
            await self.release.wait()
        shared = common_prefix_length(previous, params.prompt)
        stats = SpeedStats(
            prompt_tokens=(len(params.prompt) - shared) // 3 + 1,
            cached_tokens=shared // 3,
            prompt_seconds=0.5,
        )
        yield StreamDelta(text="total = 1", prompt_stats=stats)
        yield StreamDelta(text="\n", finish_reason="stop")


async def test_consecutive_requests_reuse_the_prompt_and_count_it() -> None:
    settings = Settings(debounce_ms=0, completion_prefill_lines=0)
    engine = CompletionEngine(lambda: settings)
    provider = _Recorder()
    target = Target(provider=provider, model="gemma-3-270m")
    await engine.complete(request_at(1000, "\n    "), target)
    await engine.complete(request_at(1004, "\n    "), target)
    first, second = provider.prompts[0].prompt, provider.prompts[1].prompt
    shared = common_prefix_length(first, second)
    assert shared >= len(first) - len(LINES[1000]) - 8  # all but the edited end
    snapshot = engine.metrics.snapshot()
    assert snapshot["prompt_counts_from_backend"] == 2
    assert snapshot["prompt_tokens_cached"] and snapshot["prompt_tokens_cached"] > 0
    assert engine.budget.tokens_per_second(target.key) is not None


async def test_reading_ahead_prepares_the_next_prompt_below() -> None:
    settings = Settings(debounce_ms=0, completion_prefill_lines=32, completion_prompt_tokens=2048)
    engine = CompletionEngine(lambda: settings)
    provider = _Recorder()
    target = Target(provider=provider, model="gemma-3-270m")
    provider.name = "llamacpp"  # a backend known to keep a prompt cache
    await engine.complete(request_at(300, uri="file:///warm.py"), target)  # a 2nd speed sample
    provider.prompts.clear()
    await engine.complete(request_at(1000), target)
    for _ in range(50):
        if len(provider.prompts) == 2:
            break
        await asyncio.sleep(0)
    ahead = provider.prompts[1]
    assert ahead.max_tokens == 1
    assert LINES[1020] in ahead.prompt  # the lines below the cursor
    await asyncio.sleep(0)
    # The user moves 25 lines down and types: the new prompt starts with the read-ahead
    # up to the new cursor's line.
    await engine.complete(request_at(1025, "\n    va"), target)
    third = next(p.prompt for p in reversed(provider.prompts) if p.max_tokens != 1)
    assert third.startswith(ahead.prompt[: ahead.prompt.index(LINES[1025])])
    assert engine.metrics.prefills >= 1


async def test_reading_ahead_stops_when_the_user_types_elsewhere() -> None:
    settings = Settings(debounce_ms=0, completion_prefill_lines=32)
    engine = CompletionEngine(lambda: settings)
    provider = _Recorder()
    provider.release.clear()  # read-aheads hang in the backend
    target = Target(provider=provider, model="gemma-3-270m")
    provider.name = "llamacpp"  # a backend known to keep a prompt cache
    await engine.complete(request_at(300, uri="file:///warm.py"), target)  # a 2nd speed sample
    provider.prompts.clear()
    await engine.complete(request_at(1000, "\n    "), target)
    for _ in range(50):
        if len(provider.prompts) == 2:
            break
        await asyncio.sleep(0)
    first = engine._prefills["file:///a.py"].task
    await engine.complete(request_at(500, "\n    "), target)
    await asyncio.sleep(0)
    assert first.cancelled()  # a request far above gains nothing from it, and waits for it
    assert engine._prefills["file:///a.py"].origin_line == 501  # the new place reads ahead


def test_prefill_prompt_is_the_head_of_the_prompt() -> None:
    for name in ("qwen-coder", "starcoder", "deepseek-coder", "prefix-only", "codellama"):
        template = TEMPLATES[name]
        context = (("b.py", "def helper():\n    return 1\n"),)
        head = prefill_prompt(template, "def f():\n    x = 1\n    y", context, "a.py")
        full = template.render(
            "def f():\n    x = 1\n    y = 2", "\nz", context=context, file_path="a.py"
        )
        assert head is not None and full.startswith(head), name
    assert prefill_prompt(TEMPLATES["codestral"], "x", (), None) is None  # suffix first
    assert prefill_prompt(pick_template(None, None, chat_only=True), "x", (), None) is None


# --- the debounce learns the typist's rhythm -------------------------------------------------


def _typed(gaps: list[float], monkeypatch) -> float:  # type: ignore[no-untyped-def]
    from aigents_lsp.completion import scheduler

    clock = [100.0]
    monkeypatch.setattr(scheduler.time, "perf_counter", lambda: clock[0])
    debounce = scheduler.AdaptiveDebounce()
    debounce.keystroke("u")
    for gap in gaps:
        clock[0] += gap
        debounce.keystroke("u")
    return debounce.seconds("u", Settings(debounce_ms=120))


def test_a_steady_fast_typist_waits_less_than_the_setting(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    wait = _typed([0.070, 0.072, 0.069, 0.071, 0.070, 0.073, 0.070, 0.071], monkeypatch)
    assert 0.073 < wait < 0.120  # longer than any of their gaps, shorter than 120 ms


def test_an_uneven_typist_waits_longer(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    wait = _typed([0.08, 0.25, 0.10, 0.30, 0.09, 0.22, 0.12, 0.28], monkeypatch)
    assert 0.25 < wait <= 0.300  # beyond most of their gaps, at most 2.5x the setting


def test_the_setting_holds_until_the_rhythm_is_known(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert _typed([0.05, 0.05], monkeypatch) == 0.120


async def test_without_backend_counts_the_reuse_is_estimated_from_the_shared_head() -> None:
    """LM Studio's OpenAI endpoint reports no prompt counts: the server estimates what the
    backend reused from what the prompt shares with the previous one, and times the first
    token of a mostly new prompt for the speed."""

    class Silent(_Recorder):
        async def stream_complete(self, params: CompletionParams) -> AsyncIterator[StreamDelta]:
            self.prompts.append(params)
            yield StreamDelta(text="total = 1")
            yield StreamDelta(text="\n", finish_reason="stop")

    settings = Settings(debounce_ms=0, completion_prefill_lines=0, completion_prompt_tokens=1024)
    engine = CompletionEngine(lambda: settings)
    target = Target(provider=Silent(), model="m")
    await engine.complete(request_at(1000, "\n    "), target)
    await engine.complete(request_at(1000, "\n    ab"), target)
    snapshot = engine.metrics.snapshot()
    assert snapshot["prompt_counts_from_backend"] == 0
    last_read, last_cached = snapshot["prompt_last_read"], snapshot["prompt_last_cached"]
    assert isinstance(last_read, int) and isinstance(last_cached, int)
    assert last_cached > 10 * last_read  # only the typed end is new


# --- sliding windows: learned from the backend's counts --------------------------------------


class _Shifting(_Recorder):
    """llama.cpp with cache reuse: a run of the previous prompt found again later in the new
    one (the window's head after a slide) is reused, not only the common head."""

    shifts = True

    async def stream_complete(self, params: CompletionParams) -> AsyncIterator[StreamDelta]:
        previous = self.prompts[-1].prompt if self.prompts else ""
        self.prompts.append(params)
        if params.max_tokens == 1:
            await self.release.wait()
        reused = common_prefix_length(previous, params.prompt)
        lines = params.prompt.split("\n")
        head = "\n".join(lines[1:3])  # the window's first whole lines (after the header)
        found = previous.find(head) if self.shifts and head else -1
        if found > 0 and reused < len(params.prompt) // 2:
            start = params.prompt.find(head)
            reused = start + common_prefix_length(previous[found:], params.prompt[start:])
        stats = SpeedStats(
            prompt_tokens=(len(params.prompt) - reused) // 3 + 1,
            cached_tokens=reused // 3,
            prompt_seconds=0.5,
        )
        yield StreamDelta(text="total = 1", prompt_stats=stats)
        yield StreamDelta(text="\n", finish_reason="stop")


async def _walk_down(engine: CompletionEngine, target: Target, lines: range) -> None:
    for line in lines:
        await engine.complete(request_at(line, "\n    "), target)


async def test_a_backend_seen_reusing_a_moved_prompt_gets_a_sliding_window() -> None:
    settings = Settings(debounce_ms=0, completion_prefill_lines=0)
    engine = CompletionEngine(lambda: settings)
    provider = _Shifting()
    target = Target(provider=provider, model="gemma-3-270m")
    assert not engine.slides(target)  # an OpenAI-compatible server: not known yet
    # Moving down until the window starts again: the backend reuses the lines it held.
    await _walk_down(engine, target, range(1000, 1400, 20))
    assert engine.slides(target)
    budget = engine.prompt_tokens(target, settings)
    assert engine.window_tokens(target, settings, budget) == 4 * budget
    # From now on the window grows past the budget and slides.
    for line in range(1400, 1800, 20):
        await engine.complete(request_at(line, "\n    "), target)
        # Each slid window read its new lines and reused the rest: it goes on sliding.
        assert engine.slides(target)
    assert max(len(p.prompt) for p in provider.prompts[-10:]) > budget * 3.2 * 1.5


async def test_a_backend_that_reads_a_moved_prompt_again_stops_sliding() -> None:
    settings = Settings(debounce_ms=0, completion_prefill_lines=0)
    engine = CompletionEngine(lambda: settings)
    provider = _Shifting()
    provider.name = "embedded"  # known to slide...
    target = Target(provider=provider, model="gemma-3-270m")
    assert engine.slides(target)
    provider.shifts = False  # ...but this one reads everything after the head again
    await _walk_down(engine, target, range(1000, 1800, 20))
    assert not engine.slides(target)


async def test_an_explicit_prompt_size_is_the_most_a_sliding_window_grows_to() -> None:
    settings = Settings(completion_prompt_tokens=1024)
    engine = CompletionEngine(lambda: settings)
    target = Target(provider=_Shifting(), model="m", context_length=4096)
    assert engine.window_tokens(target, settings, engine.prompt_tokens(target, settings)) == 1024
    small = Settings()
    capped = Target(provider=_Shifting(), model="m", context_length=1024)
    budget = engine.prompt_tokens(capped, small)
    assert engine.window_tokens(capped, small, budget) <= 1024 - small.completion_max_tokens


async def test_a_request_in_the_read_ahead_stops_it_on_a_backend_that_keeps_it() -> None:
    """llama.cpp keeps what it read of a prompt it stopped: the request need not wait for
    the lines below its cursor. A backend not known to keep it is waited for."""
    for name, stopped in (("embedded", True), ("lmstudio", False)):
        settings = Settings(debounce_ms=0, completion_prefill_lines=32)
        engine = CompletionEngine(lambda settings=settings: settings)  # type: ignore[misc]
        provider = _Shifting()
        provider.name = name
        target = Target(provider=provider, model="gemma-3-270m")
        await engine.complete(request_at(300, uri="file:///warm.py"), target)  # 2nd sample
        provider.release.clear()  # read-aheads hang in the backend
        await engine.complete(request_at(1000), target)
        for _ in range(50):
            if "file:///a.py" in engine._prefills:
                break
            await asyncio.sleep(0)
        ahead = engine._prefills["file:///a.py"].task
        request = asyncio.ensure_future(engine.complete(request_at(1020, "\n    va"), target))
        for _ in range(20):
            await asyncio.sleep(0)
        assert ahead.cancelled() is stopped, name
        provider.release.set()
        assert await request is not None


def _paused(monkeypatch, shown_between_bursts: bool) -> float:  # type: ignore[no-untyped-def]
    from aigents_lsp.completion import scheduler

    clock = [100.0]
    monkeypatch.setattr(scheduler.time, "perf_counter", lambda: clock[0])
    debounce = scheduler.AdaptiveDebounce()
    for _ in range(4):  # bursts of 8 keys 70 ms apart, 0.8 s apart
        for _ in range(8):
            debounce.keystroke("u")
            clock[0] += 0.070
        clock[0] += 0.4
        if shown_between_bursts:
            debounce.shown("u")
        clock[0] += 0.4
    return debounce.seconds("u", Settings(debounce_ms=120))


def test_pauses_between_bursts_are_not_typing_rhythm(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A pause to read a suggestion, or one far longer than the typist's gaps, does not make
    the debounce wait longer: the next burst's suggestion comes as soon as after the first."""
    assert _paused(monkeypatch, shown_between_bursts=True) < 0.1
    assert _paused(monkeypatch, shown_between_bursts=False) < 0.1


async def test_doctor_tells_whether_a_moved_window_is_read_again() -> None:
    from aigents_lsp.doctor_probes import prompt_cache_probe
    from aigents_lsp.providers.base import CompletionResult

    class Probed(_Shifting):
        async def complete(self, params: CompletionParams) -> CompletionResult:
            stats = None
            async for delta in self.stream_complete(params):
                stats = delta.prompt_stats or stats
            return CompletionResult("x", stats=stats)

    for shifts, said in ((True, "completion windows slide"), (False, "--cache-reuse 256")):
        provider = Probed()
        provider.shifts = shifts
        name, verdict, detail, _ = await prompt_cache_probe(provider, "m", Settings())
        assert (name, verdict) == ("prompt cache", "pass") and said in detail, detail
