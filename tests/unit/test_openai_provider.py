"""The OpenAI-compatible provider against the fake LM Studio, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from aigents_lsp.providers.base import (
    AuthRequired,
    BackendCrashed,
    BackendTimeout,
    BackendUnavailable,
    BadResponse,
    ChatMessage,
    ChatParams,
    CompletionParams,
    ContextOverflow,
    ModelLoadFailed,
    NoModelLoaded,
    StreamDelta,
    ToolSpec,
    WrongRoute,
)
from aigents_lsp.providers.openai_compat import OpenAICompatibleProvider
from aigents_lsp.providers.openai_http import redact
from aigents_lsp.providers.openai_wire import StreamParser, collect
from aigents_lsp.providers.reasoning import ThinkSplitter
from tests.fakes.lmstudio_server import DEFAULT_TOKEN, FakeLMStudio

CHAT = ChatParams(messages=[ChatMessage("user", "Say hello.")], model="llama-3.2-3b-instruct")
CODE = CompletionParams(prompt="def add(a, b):\n    ", model="qwen2.5-coder-1.5b-instruct")
READ_FILE = ToolSpec(
    name="read_file",
    description="Read a file.",
    parameters={"type": "object", "properties": {"path": {"type": "string"}}},
)


@pytest.fixture
async def provider(fake_lmstudio: FakeLMStudio) -> AsyncIterator[OpenAICompatibleProvider]:
    p = OpenAICompatibleProvider(fake_lmstudio.base_url)
    yield p
    await p.aclose()


async def deltas_of(stream: AsyncIterator[StreamDelta]) -> list[StreamDelta]:
    return [delta async for delta in stream]


# --- streaming ----------------------------------------------------------------------------


async def test_stream_chat_tokens_then_a_final_delta(
    fake_lmstudio: FakeLMStudio, provider: OpenAICompatibleProvider
) -> None:
    fake_lmstudio.configure(reply="Hello there, friend.")
    deltas = await deltas_of(provider.stream_chat(CHAT))
    assert [d.text for d in deltas[:-1]] == ["Hello", " there,", " friend."]
    final = deltas[-1]
    assert final.finish_reason == "stop" and final.model == "llama-3.2-3b-instruct"
    assert final.usage is not None and final.usage.completion_tokens == 3  # empty-choices chunk
    assert final.stats is not None and final.stats.time_to_first_token is not None
    body = fake_lmstudio.last_request("/v1/chat/completions").body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [{"role": "user", "content": "Say hello."}]
    assert body["model"] == "llama-3.2-3b-instruct"


async def test_usage_on_the_finish_chunk(
    fake_lmstudio: FakeLMStudio, provider: OpenAICompatibleProvider
) -> None:
    fake_lmstudio.configure(usage="finish", reply="a b")
    result = await provider.chat(CHAT)
    assert result.usage is not None and result.usage.completion_tokens == 2
    assert result.text == "a b"


async def test_data_without_space_and_no_done(
    fake_lmstudio: FakeLMStudio, provider: OpenAICompatibleProvider
) -> None:
    fake_lmstudio.configure(sse_no_space=True, no_done=True, reply="x y")
    result = await provider.chat(CHAT)
    assert (result.text, result.finish_reason) == ("x y", "stop")


async def test_stream_complete_reads_choice_text(
    fake_lmstudio: FakeLMStudio, provider: OpenAICompatibleProvider
) -> None:
    fake_lmstudio.configure(completion_reply="return a + b\n\nprint(1)")
    params = CompletionParams(
        prompt=CODE.prompt, model=CODE.model, stop=("\n\n",), max_tokens=32, seed=7
    )
    result = await provider.complete(params)
    assert result.text == "return a + b" and result.finish_reason == "stop"
    body = fake_lmstudio.last_request("/v1/completions").body
    assert body["prompt"] == CODE.prompt and body["stop"] == ["\n\n"]
    assert body["max_tokens"] == 32 and body["seed"] == 7 and body["stream"] is True
    assert "stream_options" not in body and "messages" not in body


async def test_chat_body_carries_tools_and_format(
    fake_lmstudio: FakeLMStudio, provider: OpenAICompatibleProvider
) -> None:
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    params = ChatParams(
        messages=[ChatMessage("system", ""), ChatMessage("user", "hi")],
        model="llama-3.2-3b-instruct",
        tools=[READ_FILE],
        tool_choice="auto",
        response_format=schema,
        stop=("END",),
    )
    await provider.chat(params)
    body = fake_lmstudio.last_request("/v1/chat/completions").body
    assert body["tools"] == [READ_FILE.to_wire()] and body["tool_choice"] == "auto"
    assert body["response_format"] == schema and body["stop"] == ["END"]
    assert body["messages"][0] == {"role": "system", "content": " "}  # never empty


async def test_extra_body_is_merged(fake_lmstudio: FakeLMStudio) -> None:
    provider = OpenAICompatibleProvider(fake_lmstudio.base_url, extra_body={"top_k": 20})
    try:
        await provider.complete(CODE)
        await provider.chat(CHAT)
    finally:
        await provider.aclose()
    assert fake_lmstudio.last_request("/v1/completions").body["top_k"] == 20
    assert fake_lmstudio.last_request("/v1/chat/completions").body["top_k"] == 20


async def test_slow_drip_and_wrong_content_type_still_parse(
    fake_lmstudio: FakeLMStudio, provider: OpenAICompatibleProvider
) -> None:
    fake_lmstudio.configure(drip=0.0005, reply="drip drop")
    assert (await provider.chat(CHAT)).text == "drip drop"
    fake_lmstudio.configure(drip=0.0, wrong_content_type=True)
    assert (await provider.chat(CHAT)).text == "drip drop"


async def test_whole_json_answer_to_a_streaming_request(
    fake_lmstudio: FakeLMStudio, provider: OpenAICompatibleProvider
) -> None:
    fake_lmstudio.configure(ignore_stream=True, reply="all at once")
    deltas = await deltas_of(provider.stream_chat(CHAT))
    result = collect(deltas)
    assert result.text == "all at once" and result.tool_calls == ()  # "tool_calls": [] ignored
    assert result.finish_reason == "stop" and result.usage is not None


async def test_json_answer_that_is_no_completion(
    fake_lmstudio: FakeLMStudio, provider: OpenAICompatibleProvider
) -> None:
    fake_lmstudio.configure(ignore_stream=True, json_body={"status": "ok"})
    with pytest.raises(BadResponse, match="no choices"):
        await provider.chat(CHAT)


async def test_llama_cpp_timings_become_stats(
    fake_lmstudio: FakeLMStudio, provider: OpenAICompatibleProvider
) -> None:
    fake_lmstudio.configure(timings=True, ttft=0.02)
    result = await provider.complete(CODE)
    assert result.stats is not None and result.stats.time_to_first_token == pytest.approx(0.02)
    assert result.stats.tokens_per_second is not None
    assert provider.last_stats == result.stats


async def test_client_measures_speed_when_the_server_does_not(
    fake_lmstudio: FakeLMStudio, provider: OpenAICompatibleProvider
) -> None:
    fake_lmstudio.configure(ttft=0.05, token_delay=0.005, reply="one two three four")
    result = await provider.chat(CHAT)
    assert result.stats is not None and result.stats.time_to_first_token is not None
    assert result.stats.time_to_first_token >= 0.05
    assert result.stats.tokens_per_second is not None and result.stats.tokens_per_second > 0


# --- reasoning ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["reasoning_content", "reasoning", "think"])
async def test_reasoning_never_reaches_the_text(
    fake_lmstudio: FakeLMStudio, provider: OpenAICompatibleProvider, mode: str
) -> None:
    fake_lmstudio.configure(
        reasoning=mode, reasoning_text="Plan: greet.", reply="Hi!", chunk_chars=3
    )
    deltas = await deltas_of(provider.stream_chat(CHAT))
    result = collect(deltas)
    assert result.text == "Hi!"
    assert result.reasoning == "Plan: greet."
    assert all("think>" not in d.text for d in deltas)


def _split_everywhere(text: str) -> list[list[str]]:
    return [[text[:i], text[i:j], text[j:]] for i in range(len(text)) for j in range(i, len(text))]


@pytest.mark.parametrize(
    ("content", "text", "reasoning"),
    [
        ("<think>a < b</think>\n\nAnswer", "Answer", "a < b"),
        ("  <think>x</think>y", "y", "x"),
        ("No thinking here <think>", "No thinking here <think>", ""),
        ("<thin", "<thin", ""),
        ("<think>cut off", "", "cut off"),
        ("x = '<think>'", "x = '<think>'", ""),
    ],
)
def test_think_tags_split_at_every_point(content: str, text: str, reasoning: str) -> None:
    for pieces in _split_everywhere(content):
        splitter = ThinkSplitter()
        shown, thought = "", ""
        for piece in pieces:
            visible, hidden = splitter.feed(piece)
            shown, thought = shown + visible, thought + hidden
        visible, hidden = splitter.flush()
        assert (shown + visible, thought + hidden) == (text, reasoning), pieces


# --- tool calls -----------------------------------------------------------------------------


async def test_parallel_tool_calls_by_index(
    fake_lmstudio: FakeLMStudio, provider: OpenAICompatibleProvider
) -> None:
    fake_lmstudio.configure(
        tool_calls=[
            {"name": "read_file", "arguments": {"path": "README.md"}},
            {"name": "search", "arguments": {"query": "def main", "limit": 5}},
        ],
    )
    params = ChatParams(messages=CHAT.messages, model=CHAT.model, tools=[READ_FILE])
    deltas = await deltas_of(provider.stream_chat(params))
    assert all(d.tool_calls == () for d in deltas[:-1])
    first, second = deltas[-1].tool_calls
    assert (first.id, first.name, json.loads(first.arguments)) == (
        "365174485",
        "read_file",
        {"path": "README.md"},
    )
    assert (second.name, json.loads(second.arguments)) == (
        "search",
        {"query": "def main", "limit": 5},
    )
    assert deltas[-1].finish_reason == "tool_calls"


async def test_tool_calls_with_empty_names_and_no_ids(
    fake_lmstudio: FakeLMStudio, provider: OpenAICompatibleProvider
) -> None:
    fake_lmstudio.configure(
        tool_calls=[{"name": "read_file", "arguments": {"path": "a.py"}}],
        tool_call_empty_names=True,
        tool_call_omit_ids=True,
    )
    params = ChatParams(messages=CHAT.messages, model=CHAT.model, tools=[READ_FILE])
    result = await provider.chat(params)
    (call,) = result.tool_calls
    assert call.name == "read_file" and json.loads(call.arguments) == {"path": "a.py"}
    assert call.id.startswith("call_")


def test_tool_call_deltas_without_index() -> None:
    def frame(calls: list[dict[str, object]]) -> bytes:
        delta = {"choices": [{"index": 0, "delta": {"tool_calls": calls}}]}
        return b"data: " + json.dumps(delta).encode() + b"\n\n"

    parser = StreamParser("http://x/v1")
    data = (
        frame([{"id": "a", "function": {"name": "f", "arguments": '{"x":'}}])
        + frame([{"function": {"arguments": "1}"}}])
        + frame([{"id": "b", "function": {"name": "g", "arguments": "{}"}}])
        + b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}\n\n'
    )
    calls = (parser.feed(data) + parser.close())[-1].tool_calls
    assert [(c.id, c.name, c.arguments) for c in calls] == [("a", "f", '{"x":1}'), ("b", "g", "{}")]


# --- errors ---------------------------------------------------------------------------------


async def test_event_error_on_a_200_stream(
    fake_lmstudio: FakeLMStudio, provider: OpenAICompatibleProvider
) -> None:
    fake_lmstudio.configure(context_overflow=True)
    with pytest.raises(ContextOverflow) as caught:
        await provider.chat(CHAT)
    assert caught.value.message.startswith("Input does not fit in context length.")
    assert caught.value.status == 200 and fake_lmstudio.base_url in caught.value.hint


async def test_error_with_http_200(
    fake_lmstudio: FakeLMStudio, provider: OpenAICompatibleProvider
) -> None:
    message = "No models loaded. Please load a model in the developer page."
    fake_lmstudio.configure(error_200=message)
    with pytest.raises(NoModelLoaded) as caught:
        await provider.complete(CODE)
    assert caught.value.message == message


async def test_unknown_route_is_a_wrong_base_url(fake_lmstudio: FakeLMStudio) -> None:
    provider = OpenAICompatibleProvider(fake_lmstudio.root)  # forgot /v1
    try:
        with pytest.raises(WrongRoute) as caught:
            await provider.chat(CHAT)
        report = await provider.health()
    finally:
        await provider.aclose()
    assert caught.value.message == "Unexpected endpoint or method. (POST /chat/completions)"
    assert "/v1" in caught.value.hint
    assert not report.ok and "Unexpected endpoint" in report.message


async def test_cut_stream(fake_lmstudio: FakeLMStudio, provider: OpenAICompatibleProvider) -> None:
    fake_lmstudio.configure(cut_after=2, reply="one two three four")
    with pytest.raises(BadResponse) as caught:
        await provider.chat(CHAT)
    assert "closed the stream mid-answer" in caught.value.message


async def test_stream_ending_mid_frame(
    fake_lmstudio: FakeLMStudio, provider: OpenAICompatibleProvider
) -> None:
    fake_lmstudio.configure(truncate_after=2, reply="one two three four")
    with pytest.raises(BadResponse) as caught:
        await provider.chat(CHAT)
    assert "stream ended before the answer was complete" in caught.value.message


async def test_invalid_json_frame(
    fake_lmstudio: FakeLMStudio, provider: OpenAICompatibleProvider
) -> None:
    fake_lmstudio.configure(invalid_json_after=1)
    with pytest.raises(BadResponse) as caught:
        await provider.chat(CHAT)
    assert "invalid JSON in a stream frame" in caught.value.message
    assert "chatcmpl-broken" in caught.value.message  # an excerpt of the frame


async def test_http_5xx(fake_lmstudio: FakeLMStudio, provider: OpenAICompatibleProvider) -> None:
    fake_lmstudio.configure(http_status=500, http_body={"error": {"message": "boom"}})
    with pytest.raises(BackendCrashed) as caught:
        await provider.chat(CHAT)
    assert (caught.value.message, caught.value.status) == ("boom", 500)


async def test_crashed_model(
    fake_lmstudio: FakeLMStudio, provider: OpenAICompatibleProvider
) -> None:
    fake_lmstudio.configure(crashed=True)
    with pytest.raises(BackendCrashed, match="Exit code: 11"):
        await provider.complete(CODE)


async def test_garbage_body(
    fake_lmstudio: FakeLMStudio, provider: OpenAICompatibleProvider
) -> None:
    fake_lmstudio.configure(garbage_body=True)
    with pytest.raises(BadResponse) as caught:
        await provider.chat(CHAT)
    assert "Bad Gateway" in caught.value.message and "expected JSON" in caught.value.message


async def test_refused_connection(fake_lmstudio: FakeLMStudio) -> None:
    fake_lmstudio.refuse()
    provider = OpenAICompatibleProvider(fake_lmstudio.base_url)
    try:
        with pytest.raises(BackendUnavailable) as caught:
            await provider.chat(CHAT)
        report = await provider.health()
    finally:
        await provider.aclose()
    assert f"Nothing answers at {fake_lmstudio.base_url}" in caught.value.hint
    assert not report.ok


async def test_silent_server_times_out(fake_lmstudio: FakeLMStudio) -> None:
    fake_lmstudio.configure(silent=True)
    provider = OpenAICompatibleProvider(fake_lmstudio.base_url, read_timeout=0.2)
    try:
        with pytest.raises(BackendTimeout) as caught:
            await provider.chat(CHAT)
    finally:
        await provider.aclose()
    assert "readTimeout" in caught.value.hint


async def test_auth_token_is_sent_and_never_shown(fake_lmstudio: FakeLMStudio) -> None:
    fake_lmstudio.configure(auth_required=True)
    anonymous = OpenAICompatibleProvider(fake_lmstudio.base_url)
    with pytest.raises(AuthRequired) as missing:
        await anonymous.chat(CHAT)
    await anonymous.aclose()
    assert "API token is required" in missing.value.message
    assert "aigents.apiKey" in missing.value.hint

    good = OpenAICompatibleProvider(fake_lmstudio.base_url, api_key=DEFAULT_TOKEN)
    assert (await good.chat(CHAT)).text
    assert fake_lmstudio.last_request().headers["authorization"] == f"Bearer {DEFAULT_TOKEN}"
    assert DEFAULT_TOKEN not in repr(good) and "***" in repr(good)
    await good.aclose()

    secret = "22aac52a71f0-not-a-valid-token"
    bad = OpenAICompatibleProvider(fake_lmstudio.base_url, api_key=secret)
    with pytest.raises(AuthRequired) as malformed:
        await bad.chat(CHAT)
    with pytest.raises(AuthRequired) as listing:
        await bad.list_models()
    await bad.aclose()
    for error in (malformed.value, listing.value):
        shown = f"{error} {error!r} {error.args} {error.hint}"
        assert secret[:6] not in shown, shown  # LM Studio echoes the first 10 characters
        assert "Malformed LM Studio API token provided: ***" in error.message
    assert secret not in repr(bad)


# --- other operations -----------------------------------------------------------------------


async def test_embed_list_models_health(
    fake_lmstudio: FakeLMStudio, provider: OpenAICompatibleProvider
) -> None:
    vectors = await provider.embed(["a", "b", "c"], model="text-embedding-nomic-embed-text-v1.5")
    assert len(vectors) == 3 and all(len(v) == 8 for v in vectors) and vectors[0] != vectors[1]
    assert await provider.embed([]) == []
    with pytest.raises(ModelLoadFailed, match="Model is not embedding"):
        await provider.embed(["a"], model="llama-3.2-3b-instruct")
    models = await provider.list_models()
    assert "qwen/qwen3-8b" in [m.id for m in models]
    report = await provider.health()
    assert report.ok and report.backend == "openai-compatible" and report.latency_ms is not None


async def test_external_client_is_not_closed(fake_lmstudio: FakeLMStudio) -> None:
    async with httpx.AsyncClient() as client:
        provider = OpenAICompatibleProvider(fake_lmstudio.base_url, client=client)
        await provider.aclose()
        assert not client.is_closed
        assert (await provider.complete(CODE)).text


async def test_limits_bound_memory(
    fake_lmstudio: FakeLMStudio, provider: OpenAICompatibleProvider
) -> None:
    fake_lmstudio.configure(reply="x" * 2000, chunk_chars=2000)
    provider.max_line_bytes = 1000
    with pytest.raises(BadResponse, match="longer than 1000 bytes"):
        await provider.chat(CHAT)
    provider.max_line_bytes = 1 << 20
    provider.max_body_bytes = 1500
    with pytest.raises(BadResponse, match="larger than 1500 bytes"):
        await provider.chat(CHAT)
    fake_lmstudio.configure(ignore_stream=True)
    with pytest.raises(BadResponse, match="larger than 1500 bytes"):
        await provider.chat(CHAT)


# --- cancellation ---------------------------------------------------------------------------

LONG = " ".join(f"w{i}" for i in range(200))


async def test_closing_the_stream_stops_the_backend(
    fake_lmstudio: FakeLMStudio, provider: OpenAICompatibleProvider
) -> None:
    fake_lmstudio.configure(reply=LONG, token_delay=0.01)
    seen = 0
    async with contextlib.aclosing(provider.stream_chat(CHAT)) as stream:
        async for _ in stream:
            seen += 1
            if seen == 3:
                break
    await fake_lmstudio.wait_for(lambda: fake_lmstudio.disconnects == 1)
    generation = fake_lmstudio.generations[-1]
    assert generation.disconnected and not generation.finished
    await asyncio.sleep(0.05)
    assert generation.sent < generation.planned // 2  # it stopped generating


async def test_cancelling_the_task_stops_the_backend(
    fake_lmstudio: FakeLMStudio, provider: OpenAICompatibleProvider
) -> None:
    fake_lmstudio.configure(completion_reply=LONG, token_delay=0.01)
    task = asyncio.create_task(provider.complete(CODE))
    await fake_lmstudio.wait_for(
        lambda: bool(fake_lmstudio.generations) and fake_lmstudio.generations[-1].sent >= 2
    )
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await fake_lmstudio.wait_for(lambda: fake_lmstudio.disconnects == 1, within=5.0)
    generation = fake_lmstudio.generations[-1]
    assert generation.disconnected and generation.sent < generation.planned  # it stopped early


async def test_cancel_while_waiting_for_the_first_token(
    fake_lmstudio: FakeLMStudio, provider: OpenAICompatibleProvider
) -> None:
    fake_lmstudio.configure(ttft=5.0)
    task = asyncio.create_task(provider.chat(CHAT))
    await fake_lmstudio.wait_for(lambda: bool(fake_lmstudio.generations))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await fake_lmstudio.wait_for(lambda: fake_lmstudio.disconnects == 1, within=1.0)
    assert fake_lmstudio.generations[-1].sent == 0


async def test_the_connection_pool_survives_cancellations(
    fake_lmstudio: FakeLMStudio, provider: OpenAICompatibleProvider
) -> None:
    fake_lmstudio.configure(reply=LONG, token_delay=0.002)
    for _ in range(20):
        async with contextlib.aclosing(provider.stream_chat(CHAT)) as stream:
            async for _ in stream:
                break
    fake_lmstudio.configure(reply="still fine", token_delay=0.0)
    assert (await provider.chat(CHAT)).text == "still fine"


@pytest.mark.parametrize(
    ("echoed", "expected"),
    [
        ("bad key sk-lm-Qz7Kp2Wd:Xv9Lm4Rt8Bn3Hs6Jy1Fc here", "bad key *** here"),
        ("prefix sk-lm-Qz7K…", "prefix ***…"),  # a server echoing the start
        ("middle Xv9Lm4Rt8 only", "middle *** only"),  # a proxy echoing a piece
        (
            "Incorrect API key provided: sk-*****y1Fc. You can",
            "Incorrect API key provided: sk-***. You can",
        ),
        ("Incorrect API key provided: sk-*****abcd.", "Incorrect API key provided: sk-*****abcd."),
        ("short Qz7K and 2Wd: stay", "short Qz7K and 2Wd: stay"),  # under 6 characters
    ],
)
def test_redact_removes_every_echo_of_the_key(echoed: str, expected: str) -> None:
    assert redact(echoed, "sk-lm-Qz7Kp2Wd:Xv9Lm4Rt8Bn3Hs6Jy1Fc") == expected


def test_redact_in_a_large_body() -> None:
    body = "x" * 500_000 + "Rt8Bn3Hs6Jy1Fc" + "y" * 500_000
    assert (
        redact(body, "sk-lm-Qz7Kp2Wd:Xv9Lm4Rt8Bn3Hs6Jy1Fc") == "x" * 500_000 + "***" + "y" * 500_000
    )
