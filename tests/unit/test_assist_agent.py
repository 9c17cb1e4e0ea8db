"""The tool-calling loop against the fake LM Studio over real HTTP, with a real workspace."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aigents_lsp.assist.agent import (
    STEP_LIMIT_NOTE,
    AgentResult,
    keywords,
    parse_tool_requests,
    run_agent,
)
from aigents_lsp.assist.tools import WorkspaceTools
from aigents_lsp.providers.base import ChatMessage, ChatParams, Provider, StreamDelta
from aigents_lsp.providers.lmstudio import LMStudioProvider
from aigents_lsp.providers.openai_compat import OpenAICompatibleProvider
from tests.fakes.lmstudio_server import FakeLMStudio

QUESTION = [
    ChatMessage("system", "You answer questions about the user's code."),
    ChatMessage("user", "Where is `parse_config` defined?"),
]
REQUEST = '[TOOL_REQUEST]{"name": "read_file", "arguments": {"path": "src/app.py"}}'


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src/app.py").write_text("import os\n\ndef parse_config(path):\n    return path\n")
    (root / "README.md").write_text("# Demo\n")
    (tmp_path / "secret.txt").write_text("the launch codes\n")
    return root


@pytest.fixture
def tools(workspace: Path) -> WorkspaceTools:
    return WorkspaceTools([workspace])


@pytest.fixture(params=["openai-compatible", "lmstudio"])
async def provider(
    request: pytest.FixtureRequest, fake_lmstudio: FakeLMStudio, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Provider]:
    monkeypatch.delenv("LM_API_TOKEN", raising=False)
    monkeypatch.delenv("LMSTUDIO_API_TOKEN", raising=False)
    if request.param == "lmstudio":
        made: Provider = LMStudioProvider(fake_lmstudio.base_url)
    else:
        made = OpenAICompatibleProvider(fake_lmstudio.base_url)
    yield made
    await made.aclose()


def chats(fake: FakeLMStudio) -> list[dict[str, Any]]:
    """The bodies of the chat requests the fake received, in order."""
    return [r.body for r in fake.requests if r.path == "/v1/chat/completions"]


def tool_results(body: dict[str, Any]) -> list[str]:
    return [m["content"] for m in body["messages"] if m["role"] == "tool"]


def until_a_tool_result(*calls: dict[str, Any]) -> Any:
    """A fake `tool_calls` script: `calls` first, nothing once a tool result came back."""
    return lambda body: [] if tool_results(body) else list(calls)


def answer_from_tools(body: dict[str, Any]) -> str:
    results = tool_results(body)
    return f"Seen: {results[-1].splitlines()[0]}" if results else "I need no tools."


async def run(
    provider: Provider, tools: WorkspaceTools | None, **options: Any
) -> tuple[AgentResult, list[str], list[tuple[str, str]]]:
    pieces: list[str] = []
    reports: list[tuple[str, str]] = []
    result = await run_agent(
        provider,
        options.pop("messages", QUESTION),
        model=None,
        tools=tools,
        temperature=0.2,
        max_tokens=256,
        on_text=pieces.append,
        on_tool=lambda name, summary: reports.append((name, summary)),
        **options,
    )
    return result, pieces, reports


# --- answers and tool rounds -------------------------------------------------------------------


async def test_a_text_answer_takes_one_step_and_streams(
    fake_lmstudio: FakeLMStudio, provider: Provider, tools: WorkspaceTools
) -> None:
    fake_lmstudio.configure(reply="It is defined in src/app.py.")
    result, pieces, reports = await run(provider, tools)
    assert result == AgentResult(
        "It is defined in src/app.py.", 1, (), "answer", "stop", result.model
    )
    assert len(pieces) > 1 and "".join(pieces) == result.text
    assert reports == []
    (body,) = chats(fake_lmstudio)
    assert body["tool_choice"] == "auto"
    assert [t["function"]["name"] for t in body["tools"]] == [
        "search_codebase",
        "read_file",
        "list_files",
    ]


@pytest.mark.parametrize("streamed", [True, False], ids=["streamed", "whole-json"])
async def test_a_tool_call_is_run_and_its_result_sent_back(
    fake_lmstudio: FakeLMStudio, provider: Provider, tools: WorkspaceTools, streamed: bool
) -> None:
    fake_lmstudio.configure(
        ignore_stream=not streamed,
        tool_calls=until_a_tool_result(
            {"name": "search_codebase", "arguments": {"query": "parse_config"}}
        ),
        reply=answer_from_tools,
    )
    result, pieces, reports = await run(provider, tools)
    assert result.text == "Seen: 1 match for 'parse_config':"
    assert (result.steps, result.tool_calls, result.stopped) == (2, ("search_codebase",), "answer")
    assert "".join(pieces) == result.text
    assert reports == [("search_codebase", "'parse_config' → 1 match for 'parse_config':")]
    second = chats(fake_lmstudio)[1]
    assistant, tool = second["messages"][-2:]
    assert assistant["tool_calls"] == [
        {
            "id": "365174485",
            "type": "function",
            "function": {"name": "search_codebase", "arguments": '{"query": "parse_config"}'},
        }
    ]
    assert tool == {
        "role": "tool",
        "tool_call_id": "365174485",
        "content": "1 match for 'parse_config':\nsrc/app.py:3: def parse_config(path):",
    }


async def test_several_rounds_with_ids_unique_in_the_conversation(
    fake_lmstudio: FakeLMStudio, provider: Provider, tools: WorkspaceTools
) -> None:
    def script(body: dict[str, Any]) -> list[dict[str, Any]]:
        done = len(tool_results(body))
        plan = [
            {"name": "list_files", "arguments": {"path": "src"}},
            {"name": "read_file", "arguments": {"path": "src/app.py", "start_line": 3}},
        ]
        return plan[done : done + 1]  # the fake gives both calls the same id

    fake_lmstudio.configure(tool_calls=script, reply=answer_from_tools)
    result, _, reports = await run(provider, tools)
    assert result.text == "Seen: src/app.py (lines 3-4 of 4)"
    assert (result.steps, result.tool_calls) == (3, ("list_files", "read_file"))
    assert [r[1] for r in reports] == [
        "src → 1 file under src:",
        "src/app.py:3- → src/app.py (lines 3-4 of 4)",
    ]
    messages = chats(fake_lmstudio)[-1]["messages"]
    call_ids = [c["id"] for m in messages for c in m.get("tool_calls", [])]
    answered = [m["tool_call_id"] for m in messages if m["role"] == "tool"]
    assert call_ids == answered and len(set(call_ids)) == 2 and all(call_ids)


async def test_the_step_bound_asks_for_an_answer_without_tools(
    fake_lmstudio: FakeLMStudio, provider: Provider, tools: WorkspaceTools
) -> None:
    fake_lmstudio.configure(
        tool_calls=[{"name": "search_codebase", "arguments": {"query": "os"}}],
        reply="Best answer so far.",
    )
    result, _, _ = await run(provider, tools, max_steps=2)
    assert result.text == "Best answer so far."
    assert (result.steps, result.stopped) == (3, "step_limit")
    assert result.tool_calls == ("search_codebase", "search_codebase")
    *with_tools, last = chats(fake_lmstudio)
    assert all(body["tools"] for body in with_tools) and len(with_tools) == 2
    assert "tools" not in last and "tool_choice" not in last
    assert last["messages"][-1] == {"role": "user", "content": STEP_LIMIT_NOTE}


async def test_parallel_calls_in_one_message_are_all_answered_in_order(
    fake_lmstudio: FakeLMStudio, provider: Provider, tools: WorkspaceTools
) -> None:
    fake_lmstudio.configure(
        tool_calls=until_a_tool_result(
            {"name": "read_file", "arguments": {"path": "README.md"}},
            {"name": "search_codebase", "arguments": {"query": "import"}},
        ),
        reply=lambda body: " | ".join(r.splitlines()[0] for r in tool_results(body)),
    )
    result, _, _ = await run(provider, tools)
    assert result.text == "README.md (lines 1-1 of 1) | 1 match for 'import':"
    messages = chats(fake_lmstudio)[-1]["messages"]
    (assistant,) = [m for m in messages if m.get("tool_calls")]
    ids = [c["id"] for c in assistant["tool_calls"]]
    assert ids == ["365174485", "365174486"]
    assert [m["tool_call_id"] for m in messages if m["role"] == "tool"] == ids


@pytest.mark.parametrize("streamed", [True, False], ids=["streamed", "whole-json"])
async def test_empty_tool_call_ids_are_replaced(
    fake_lmstudio: FakeLMStudio, provider: Provider, tools: WorkspaceTools, streamed: bool
) -> None:
    fake_lmstudio.configure(
        ignore_stream=not streamed,
        tool_call_omit_ids=True,
        tool_calls=until_a_tool_result({"name": "list_files", "arguments": {}}),
        reply=answer_from_tools,
    )
    result, _, _ = await run(provider, tools)
    assert result.text == "Seen: 2 files under .:"
    assistant, tool = chats(fake_lmstudio)[-1]["messages"][-2:]
    assert (
        assistant["tool_calls"][0]["id"]
        and assistant["tool_calls"][0]["id"] == tool["tool_call_id"]
    )


async def test_lm_studio_text_tool_requests_are_parsed_and_never_shown(
    fake_lmstudio: FakeLMStudio, provider: Provider, tools: WorkspaceTools
) -> None:
    def reply(body: dict[str, Any]) -> str:
        if tool_results(body):
            return answer_from_tools(body)
        return f"Let me look. {REQUEST}[END_TOOL_REQUEST]"

    fake_lmstudio.configure(reply=reply, chunk_chars=3)  # the markers arrive in pieces
    result, pieces, _ = await run(provider, tools)
    assert result.text == "Seen: src/app.py (lines 1-4 of 4)"
    assert (result.steps, result.tool_calls) == (2, ("read_file",))
    assert "".join(pieces) == "Let me look. \n\nSeen: src/app.py (lines 1-4 of 4)"
    assistant, tool = chats(fake_lmstudio)[-1]["messages"][-2:]
    assert assistant["content"] == "Let me look."
    assert assistant["tool_calls"][0]["function"] == {
        "name": "read_file",
        "arguments": '{"path": "src/app.py"}',
    }
    assert assistant["tool_calls"][0]["id"] == tool["tool_call_id"] != ""


async def test_a_path_escape_by_the_model_is_refused_and_the_loop_goes_on(
    fake_lmstudio: FakeLMStudio, provider: Provider, tools: WorkspaceTools
) -> None:
    fake_lmstudio.configure(
        tool_calls=until_a_tool_result(
            {"name": "read_file", "arguments": {"path": "../secret.txt"}}
        ),
        reply=answer_from_tools,
    )
    result, _, reports = await run(provider, tools)
    assert result.text == "Seen: refused: ../secret.txt is outside the workspace"
    assert reports[0][1].endswith("refused: ../secret.txt is outside the workspace")
    assert all("launch codes" not in json.dumps(body) for body in chats(fake_lmstudio))


async def test_reasoning_is_never_part_of_the_answer(
    fake_lmstudio: FakeLMStudio, provider: Provider, tools: WorkspaceTools
) -> None:
    for style in ("think", "reasoning_content", "reasoning"):
        fake_lmstudio.configure(reasoning=style, reasoning_text="Secret musing.", reply="Done.")
        result, pieces, _ = await run(provider, tools)
        assert result.text == "Done." and "".join(pieces) == "Done.", style


async def test_without_tools_the_model_just_answers(
    fake_lmstudio: FakeLMStudio, provider: Provider
) -> None:
    fake_lmstudio.configure(reply="Plain.")
    result, _, _ = await run(provider, None)
    assert (result.text, result.steps, result.stopped) == ("Plain.", 1, "answer")
    assert "tools" not in chats(fake_lmstudio)[0]


# --- models that cannot call tools -------------------------------------------------------------


async def test_without_tool_support_the_context_is_searched_for_the_model(
    fake_lmstudio: FakeLMStudio, provider: Provider, tools: WorkspaceTools
) -> None:
    fake_lmstudio.configure(reply="In src/app.py, line 3.")
    result, _, reports = await run(provider, tools, tool_support=False)
    assert (result.text, result.steps, result.stopped) == ("In src/app.py, line 3.", 1, "no_tools")
    assert result.tool_calls == ("search_codebase",)
    assert reports == [("search_codebase", "'parse_config' → 1 match for 'parse_config':")]
    (body,) = chats(fake_lmstudio)
    assert "tools" not in body
    assert body["messages"][0] == QUESTION[0].to_wire()
    assert body["messages"][-1]["content"] == (
        "Workspace search results for 'parse_config' (you cannot call tools; use them if they "
        "help):\nsrc/app.py:3: def parse_config(path):\n\nWhere is `parse_config` defined?"
    )


class RejectsTools(OpenAICompatibleProvider):
    """The real provider against a fake that answers HTTP 400 to any request with tools, as
    llama.cpp's server does without --jinja."""

    def __init__(self, fake: FakeLMStudio) -> None:
        super().__init__(fake.base_url)
        self.fake = fake

    async def stream_chat(self, params: ChatParams) -> AsyncGenerator[StreamDelta, None]:
        error = {"error": {"message": "tools param requires --jinja flag", "type": "invalid"}}
        self.fake.configure(
            http_status=400 if params.tools else None, http_body=error if params.tools else None
        )
        async with contextlib.aclosing(super().stream_chat(params)) as stream:
            async for delta in stream:
                yield delta


async def test_a_backend_that_rejects_tools_gets_context_instead(
    fake_lmstudio: FakeLMStudio, tools: WorkspaceTools
) -> None:
    fake_lmstudio.configure(reply="Found it.")
    provider = RejectsTools(fake_lmstudio)
    try:
        result, _, _ = await run(provider, tools)
    finally:
        await provider.aclose()
    assert (result.text, result.steps, result.stopped) == ("Found it.", 2, "no_tools")
    rejected, answered = chats(fake_lmstudio)
    assert rejected["tools"] and "tools" not in answered
    assert "src/app.py:3: def parse_config(path):" in answered["messages"][-1]["content"]


# --- cancellation ------------------------------------------------------------------------------


async def test_cancelling_stops_the_generation(
    fake_lmstudio: FakeLMStudio, provider: Provider, tools: WorkspaceTools
) -> None:
    fake_lmstudio.configure(reply="word " * 200, token_delay=0.02)
    started = asyncio.Event()
    task = asyncio.create_task(
        run_agent(
            provider,
            QUESTION,
            model=None,
            tools=tools,
            temperature=0.2,
            max_tokens=1024,
            on_text=lambda _: started.set(),
        )
    )
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await fake_lmstudio.wait_for(lambda: fake_lmstudio.disconnects == 1)
    (generation,) = fake_lmstudio.generations
    assert generation.disconnected and generation.sent < generation.planned


# --- pure helpers ------------------------------------------------------------------------------


def test_parse_tool_requests() -> None:
    text, calls = parse_tool_requests(
        'Sure.\n[TOOL_REQUEST]\n{"name": "list_files", "arguments": {}}\n[END_TOOL_REQUEST]\n'
        '[TOOL_REQUEST]{"name": "read_file", "arguments": "{\\"path\\": \\"a\\"}"}'
    )
    assert text == "Sure."
    assert [(c.id, c.name, c.arguments) for c in calls] == [
        ("", "list_files", "{}"),
        ("", "read_file", '{"path": "a"}'),
    ]
    assert parse_tool_requests("[TOOL_REQUEST] not json [END_TOOL_REQUEST]")[1] == ()
    assert parse_tool_requests("no request") == ("no request", ())


def test_keywords_prefer_quoted_and_code_like_words() -> None:
    assert keywords("Where is `parse_config` defined?") == ["parse_config"]
    assert keywords("How does the loadSettings function use CACHE_DIR and the cache?") == [
        "loadSettings",
        "CACHE_DIR",
    ]
    assert keywords("Which settings decide the cache size? The cache!") == [
        "cache",
        "settings",
        "decide",
    ]
    assert keywords("what is this") == []
