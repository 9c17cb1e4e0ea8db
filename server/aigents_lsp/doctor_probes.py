"""The probes of `aigents-lsp doctor` that ask the model itself: does the backend reuse its
prompt cache (and how fast does it read prompts), and does the chat model call tools. Each
returns `(name, verdict, detail, fix)`; doctor.py makes them its `Check`s.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Literal

from aigents_lsp.config import Settings
from aigents_lsp.providers.base import (
    ChatMessage,
    ChatParams,
    CompletionParams,
    Provider,
    ProviderError,
    ToolSpec,
)

Verdict = Literal["pass", "warn", "fail", "skip"]
Finding = tuple[str, Verdict, str, str]


async def prompt_cache_probe(provider: Provider, model: str | None, settings: Settings) -> Finding:
    """The same ~500-token prompt twice: does the backend reuse its cache (llama.cpp's
    `timings`, else the second answer being much faster), and how fast does it read prompts
    (what sizes completion prompts when `completion_prompt_tokens` is unset)."""
    from aigents_lsp.completion.budget import PromptBudget

    marker = f"# doctor {time.time_ns()}\n"  # a head no earlier request had
    body = "".join(
        f"def step_{i}(value, limit={i}):\n    return min(value * {i}, limit)\n\n"
        for i in range(40)
    )
    params = CompletionParams(prompt=marker + body, model=model, max_tokens=1, temperature=0.0)
    # The same prompt with its first ten functions dropped: a completion window that moved
    # down. A backend with cache reuse (llama.cpp `--cache-reuse`) takes the rest from its
    # cache; one without reads it again.
    moved = replace(params, prompt=marker + body.split("\n", 30)[-1])
    try:
        times, stats = [], []
        for sent in (params, params, moved):
            started = time.perf_counter()
            result = await provider.complete(sent)
            times.append(time.perf_counter() - started)
            stats.append(result.stats)
    except ProviderError as error:
        return "prompt cache", "warn", error.message, error.hint
    cold, warm, slid = stats
    budget = PromptBudget()
    if cold and cold.prompt_tokens and cold.prompt_seconds:
        budget.record("probe", cold.prompt_tokens, cold.prompt_seconds)
    elif times[0] > times[1]:
        budget.record("probe", int(len(params.prompt) / 3.2), times[0] - times[1])
    rate = budget.tokens_per_second("probe")
    sized = (
        f"; reads ~{rate:.0f} prompt tokens/s, so completion prompts get "
        f"{budget.tokens('probe', settings.completion_latency_ms)} tokens "
        f"(completion_latency_ms {settings.completion_latency_ms})"
        if rate and settings.completion_prompt_tokens is None
        else ""
    )
    if warm is not None and warm.cached_tokens is not None and warm.prompt_tokens is not None:
        total = warm.cached_tokens + warm.prompt_tokens
        reused = warm.cached_tokens / total if total else 0.0
        verdict: Verdict = "pass" if reused >= 0.8 else "warn"
        detail = f"a repeated prompt reused {warm.cached_tokens} of {total} tokens{sized}"
        if slid is not None and slid.cached_tokens is not None and slid.prompt_tokens:
            moves = slid.cached_tokens > slid.prompt_tokens
            detail += (
                f"; with its first lines dropped it reused {slid.cached_tokens} of "
                f"{slid.cached_tokens + slid.prompt_tokens} (completion windows slide)"
                if moves
                else "; with its first lines dropped it read it all again (completion "
                "windows start afresh: llama-server's `--cache-reuse 256` avoids that)"
            )
    elif times[0] < 0.15:
        verdict = "pass"
        detail = (
            f"~500 prompt tokens answered in {times[0] * 1000:.0f} ms: fast enough that its "
            "prompt cache hardly matters"
        )
    else:
        faster = times[0] / times[1] if times[1] > 0 else 1.0
        verdict = "pass" if faster >= 1.5 else "warn"
        detail = (
            f"a repeated prompt took {times[1] * 1000:.0f} ms after {times[0] * 1000:.0f} ms "
            f"(the backend reports no cache counts){sized}"
        )
    fix = (
        ""
        if verdict == "pass"
        else "The backend re-reads the whole prompt on every completion: turn on its prompt "
        "cache (llama.cpp `--cache-prompt`, LM Studio keeps it on), or set a smaller "
        "completion_prompt_tokens."
    )
    return "prompt cache", verdict, detail, fix


async def tool_probe(provider: Provider, settings: Settings) -> Finding:
    """Does the chat model call a tool when asked to (the agent tools need it)?"""
    tool = ToolSpec(
        name="read_file",
        description="Read a file of the workspace.",
        parameters={
            "type": "object",
            "properties": {"path": {"type": "string"}},
            "required": ["path"],
        },
    )
    try:
        model = settings.model_for("chat") or await provider.resolve_model("chat")
        result = await provider.chat(
            ChatParams(
                messages=[ChatMessage("user", "Read the file README.md using the tool.")],
                model=model,
                tools=[tool],
                max_tokens=64,
                temperature=0.0,
            )
        )
    except ProviderError as error:
        return "tool calling", "warn", error.message, error.hint
    if result.tool_calls:
        return "tool calling", "pass", f"{result.model or model} called {tool.name}", ""
    return (
        "tool calling",
        "warn",
        f"{result.model or 'the chat model'} answered without calling the tool",
        "Chat still works (context is stuffed instead); for agent tools load a model trained "
        "for tool use (e.g. Qwen2.5-Instruct).",
    )
