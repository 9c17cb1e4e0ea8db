"""Every recorded LM Studio answer in `tests/fixtures/lmstudio/`, through our parsers.

Responses are replayed byte for byte (status, headers, body) through the real providers with an
httpx mock transport, so status handling, content types and parsing are all exercised. A new
fixture without a check here fails `test_every_fixture_is_checked`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from aigents_lsp.providers.base import (
    AuthRequired,
    BackendCrashed,
    BackendUnavailable,
    ChatMessage,
    ChatParams,
    CompletionParams,
    CompletionResult,
    ContextOverflow,
    InvalidRequest,
    ModelLoadFailed,
    NoModelLoaded,
    ProviderError,
    StreamDelta,
    UnknownModel,
    WrongRoute,
)
from aigents_lsp.providers.bodies import model_from_wire
from aigents_lsp.providers.errors import classify, error_code, error_message
from aigents_lsp.providers.lmstudio import LMStudioProvider
from aigents_lsp.providers.openai_compat import OpenAICompatibleProvider
from aigents_lsp.providers.openai_wire import StreamParser, collect, parse_completion
from aigents_lsp.providers.sse import SSEDecoder

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "lmstudio"
BASE = "http://lmstudio.test:1234/v1"


def _index() -> dict[str, dict[str, Any]]:
    index = json.loads((FIXTURES / "INDEX.json").read_text())
    return {entry["file"]: entry for entry in index["fixtures"]}


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def raw_response(name: str) -> httpx.Response:
    """The fixture's HTTP response exactly as recorded."""
    if name.endswith(".txt"):
        meta = _index()[name]
        headers = {k: v for k, v in meta["headers"].items() if k != "Transfer-Encoding"}
        return httpx.Response(
            meta["status"], headers=headers, content=(FIXTURES / name).read_bytes()
        )
    response = load(name)["response"]
    body = json.dumps(response["body"], separators=(",", ":")).encode()
    return httpx.Response(response["status"], headers=response["headers"], content=body)


Route = Callable[[httpx.Request], httpx.Response]


def serve(routes: dict[str, httpx.Response]) -> httpx.AsyncClient:
    """A client whose server answers `routes` (path -> response), 200 "Unexpected endpoint"
    otherwise, like LM Studio."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path in routes:
            return routes[request.url.path]
        unexpected = f"Unexpected endpoint or method. ({request.method} {request.url.path})"
        return httpx.Response(200, json={"error": unexpected})

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def with_provider(
    routes: dict[str, httpx.Response],
    use: Callable[[LMStudioProvider], Awaitable[Any]],
) -> Any:
    async with serve(routes) as client:
        provider = LMStudioProvider(
            BASE, client=client, api_key="sk-lm-abcdefgh:abcdefghijklmnopqrst"
        )
        return await use(provider)


async def stream_chat(provider: LMStudioProvider) -> list[StreamDelta]:
    params = ChatParams(messages=[ChatMessage("user", "hi")], model="m")
    return [delta async for delta in provider.stream_chat(params)]


async def stream_complete(provider: LMStudioProvider) -> list[StreamDelta]:
    params = CompletionParams(prompt="def add(a, b):\n    ", model="m")
    return [delta async for delta in provider.stream_complete(params)]


def parse_bytewise(data: bytes) -> list[StreamDelta]:
    """The stream parser fed one byte at a time (frames cut everywhere)."""
    parser = StreamParser(BASE)
    deltas: list[StreamDelta] = []
    for i in range(len(data)):
        deltas += parser.feed(data[i : i + 1])
    return deltas + parser.close()


# --- checks, one per fixture ------------------------------------------------------------------


async def check_greeting(name: str) -> None:
    routes = {"/lmstudio-greeting": raw_response(name)}
    assert await with_provider(routes, lambda p: p.detect()) is True


async def check_v1_models(name: str) -> None:
    async with serve({"/v1/models": raw_response(name)}) as client:
        models = await OpenAICompatibleProvider(BASE, client=client).list_models()
    ids = [entry["id"] for entry in load(name)["response"]["body"]["data"]]
    assert [m.id for m in models] == ids
    assert "qwen/qwen2.5-coder-14b:2" in ids
    assert all(m.state == "unknown" and m.type == "unknown" for m in models)


async def check_v0_models(name: str) -> None:
    models = await with_provider({"/api/v0/models": raw_response(name)}, lambda p: p.list_models())
    by_id = {m.id: m for m in models}
    gemma = by_id["gemma-3-4b-it"]
    assert (gemma.type, gemma.state, gemma.loaded_context_length) == ("vlm", "loaded", 4096)
    assert gemma.context_length == 4096 and gemma.max_context_length == 131072
    assert gemma.capabilities == ("tool_use", "vision")
    assert (gemma.arch, gemma.quantization, gemma.publisher) == (
        "gemma3",
        "Q4_K_M",
        "lmstudio-community",
    )
    nomic = by_id["text-embedding-nomic-embed-text-v1.5"]
    assert (nomic.type, nomic.state, nomic.context_length) == ("embeddings", "not-loaded", 2048)


async def check_v0_model_get(name: str) -> None:
    model = model_from_wire(load(name)["response"]["body"])
    assert model is not None
    assert (model.id, model.type, model.state) == ("qwen2-vl-7b-instruct", "vlm", "not-loaded")
    assert model.max_context_length == 32768 and model.quantization == "4bit"


async def check_v1_native_models(name: str) -> None:
    # No /api/v0 (answered "Unexpected endpoint"): the provider falls back to /api/v1/models.
    models = await with_provider({"/api/v1/models": raw_response(name)}, lambda p: p.list_models())
    body = load(name)["response"]["body"]["models"]
    assert [m.id for m in models] == [entry["key"] for entry in body]
    for model, entry in zip(models, body, strict=True):
        instances = entry.get("loaded_instances") or []
        assert model.state == ("loaded" if instances else "not-loaded")
        if instances:
            assert model.loaded_context_length == instances[0]["config"]["context_length"]
        assert model.type == ("embeddings" if entry["type"] == "embedding" else "llm")
    gemma = models[0]
    assert gemma.context_length == 4096 and "tool_use" in gemma.capabilities


def _message(name: str) -> dict[str, Any]:
    message: dict[str, Any] = load(name)["response"]["body"]["choices"][0]["message"]
    return message


async def check_chat_nonstream(name: str) -> None:
    body = load(name)["response"]["body"]
    result = parse_completion(body, BASE)
    assert result.text == _message(name)["content"]
    assert result.tool_calls == ()  # `"tool_calls": []` is not a tool call
    assert result.finish_reason == "stop" and result.model == body["model"]
    assert result.usage is not None and result.usage.total_tokens == body["usage"]["total_tokens"]
    # The same body sent to a streaming request (servers that ignore `stream`).
    routes = {"/v1/chat/completions": raw_response(name)}
    deltas = await with_provider(routes, stream_chat)
    assert collect(deltas).text == result.text


async def check_v0_chat(name: str) -> None:
    body = load(name)["response"]["body"]
    result = parse_completion(body, BASE)
    assert result.text == _message(name)["content"]
    assert result.stats is not None
    assert result.stats.tokens_per_second == body["stats"]["tokens_per_second"]
    assert result.stats.time_to_first_token == body["stats"]["time_to_first_token"]
    assert result.stats.stop_reason == "eosFound"


async def check_tool_call_nonstream(name: str) -> None:
    result = parse_completion(load(name)["response"]["body"], BASE)
    assert result.finish_reason == "tool_calls" and result.text == ""
    (call,) = result.tool_calls
    assert (call.id, call.name) == ("365174485", "search_products")
    assert json.loads(call.arguments) == {
        "query": "dell",
        "category": "electronics",
        "max_price": 50,
    }


async def check_completion_nonstream(name: str) -> None:
    body = load(name)["response"]["body"]
    result = parse_completion(body, BASE)
    assert result.text == body["choices"][0]["text"]
    assert result.finish_reason == body["choices"][0]["finish_reason"]


async def check_chat_stream(name: str) -> None:
    deltas = await with_provider({"/v1/chat/completions": raw_response(name)}, stream_chat)
    result = collect(deltas)
    assert result.text == "Hello! How can I help?"
    assert result.finish_reason == "stop" and result.model == "qwen/qwen2.5-coder-14b"
    assert all(d.reasoning == "" for d in deltas)
    assert deltas[-1].finish_reason == "stop" and deltas[-1].stats is not None
    assert collect(parse_bytewise((FIXTURES / name).read_bytes())).text == result.text


async def check_chat_stream_usage(name: str) -> None:
    deltas = await with_provider({"/v1/chat/completions": raw_response(name)}, stream_chat)
    result = collect(deltas)
    assert result.text == "Hello!" and result.finish_reason == "stop"
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (24, 5)


async def check_tool_call_stream(name: str) -> None:
    deltas = await with_provider({"/v1/chat/completions": raw_response(name)}, stream_chat)
    result = collect(deltas)
    assert result.finish_reason == "tool_calls" and result.text == ""
    (call,) = result.tool_calls
    assert (call.id, call.name) == ("814890118", "get_current_weather")
    assert json.loads(call.arguments) == {"location": "San Francisco"}
    assert collect(parse_bytewise((FIXTURES / name).read_bytes())).tool_calls == result.tool_calls


async def check_completion_stream(name: str) -> None:
    deltas = await with_provider({"/v1/completions": raw_response(name)}, stream_complete)
    assert [d.text for d in deltas if d.text] == ["return", " a +", " b"]
    assert collect(deltas).finish_reason == "stop"


async def check_embeddings(name: str) -> None:
    body = load(name)["response"]["body"]
    vectors = await with_provider(
        {"/v1/embeddings": raw_response(name)}, lambda p: p.embed(["Some text to embed"])
    )
    assert vectors == [body["data"][0]["embedding"]]


def _events(name: str) -> list[tuple[str | None, Any]]:
    def never(problem: str) -> ProviderError:
        raise AssertionError(problem)

    decoder = SSEDecoder(never, 1 << 20)
    events = decoder.feed((FIXTURES / name).read_bytes())
    assert decoder.finish() == ([], "")
    return [(event.event, json.loads(event.data)) for event in events]


async def check_named_event_stream(name: str) -> None:
    # /v1/responses, /v1/messages and /api/v1/chat streams: not spoken by the providers, but
    # the SSE layer must frame them and find no error in them.
    events = _events(name)
    assert events and all(kind and data.get("type") == kind for kind, data in events)
    assert all(error_message(200, data) is None for _, data in events)


async def check_other_body(name: str) -> None:
    # Bodies of routes the providers do not call: valid JSON, not mistaken for errors.
    fixture = load(name)
    assert fixture["response"]["status"] == 200
    assert error_message(200, fixture["response"]["body"]) is None


def expect_error(
    kind: type[ProviderError], call: Callable[[LMStudioProvider], Awaitable[Any]] = stream_chat
) -> Callable[[str], Awaitable[None]]:
    async def check(name: str) -> None:
        fixture = load(name)
        body = fixture["response"]["body"]
        routes = {fixture["request"]["path"]: raw_response(name)}
        with pytest.raises(kind) as caught:
            await with_provider(routes, call)
        error = caught.value
        expected = body["error"] if isinstance(body["error"], str) else body["error"]["message"]
        assert error.message == expected  # the backend's words, verbatim
        assert error.status == fixture["response"]["status"]
        assert BASE in error.hint
        # The same through the pure functions.
        status = fixture["response"]["status"]
        message = error_message(status, body)
        assert message is not None and message == expected
        assert isinstance(classify(status, message, error_code(body), BASE), kind)

    return check


async def list_v0_models(provider: LMStudioProvider) -> Any:
    return await provider.list_models()


async def embed_hello(provider: LMStudioProvider) -> Any:
    return await provider.embed(["hello"], model="e5-mistral-7b-instruct-embedding@q8_0")


async def check_server_not_running(name: str) -> None:
    assert load(name)["response"]["transport_error"].startswith("httpx.ConnectError")

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        provider = LMStudioProvider(BASE, client=client)
        with pytest.raises(BackendUnavailable) as caught:
            await provider.list_models()
        assert await provider.detect() is False
    assert "Connection refused" in caught.value.message
    assert f"Nothing answers at {BASE}" in caught.value.hint
    assert "lms server start" in caught.value.hint


CHECKS: dict[str, Callable[[str], Awaitable[None]]] = {
    "probe_lmstudio_greeting.json": check_greeting,
    "openai_v1_models.json": check_v1_models,
    "api_v0_models.json": check_v0_models,
    "api_v0_model_get.json": check_v0_model_get,
    "api_v1_models.json": check_v1_native_models,
    "openai_chat_completions_nonstream.json": check_chat_nonstream,
    "openai_chat_completions_structured_output.json": check_chat_nonstream,
    "openai_chat_completions_stream.txt": check_chat_stream,
    "openai_chat_completions_stream_include_usage.txt": check_chat_stream_usage,
    "openai_chat_completions_tool_call_nonstream.json": check_tool_call_nonstream,
    "openai_chat_completions_tool_call_stream.txt": check_tool_call_stream,
    "openai_completions_fim_prompt_nonstream.json": check_completion_nonstream,
    "openai_completions_stream.txt": check_completion_stream,
    "openai_embeddings.json": check_embeddings,
    "api_v0_embeddings.json": check_embeddings,
    "api_v0_chat_completions.json": check_v0_chat,
    "api_v0_chat_completions_speculative.json": check_v0_chat,
    "api_v0_completions.json": check_completion_nonstream,
    "openai_responses_nonstream.json": check_other_body,
    "openai_responses_stream.txt": check_named_event_stream,
    "anthropic_v1_messages_nonstream.json": check_other_body,
    "anthropic_v1_messages_stream.txt": check_named_event_stream,
    "api_v1_chat_nonstream.json": check_other_body,
    "api_v1_chat_stream.txt": check_named_event_stream,
    "api_v1_models_load.json": check_other_body,
    "api_v1_models_unload.json": check_other_body,
    "api_v1_models_download.json": check_other_body,
    "api_v1_models_download_status.json": check_other_body,
    "error_no_models_loaded_v04.json": expect_error(NoModelLoaded),
    "error_invalid_model_identifier_v04.json": expect_error(UnknownModel),
    "error_model_load_failed_not_embedding.json": expect_error(ModelLoadFailed, embed_hello),
    "error_response_format_json_object.json": expect_error(InvalidRequest),
    "error_context_overflow_nonstream_llamacpp.json": expect_error(ContextOverflow),
    "error_auth_missing_token.json": expect_error(AuthRequired, list_v0_models),
    "error_invalid_messages.json": expect_error(InvalidRequest),
    "error_embeddings_token_array_input.json": expect_error(InvalidRequest, embed_hello),
    "error_anthropic_messages.json": expect_error(InvalidRequest, lambda p: _post_messages(p)),
    "error_server_not_running.json": check_server_not_running,
}


async def _post_messages(provider: LMStudioProvider) -> Any:
    # No provider speaks /v1/messages; the shared JSON request path still reads the envelope.
    return await provider._request_json("POST", f"{provider.root}/v1/messages", {})


def test_every_fixture_is_checked() -> None:
    files = {p.name for p in FIXTURES.iterdir() if p.suffix in (".json", ".txt")}
    files.discard("INDEX.json")
    assert files == set(CHECKS), "add a check for new fixtures / remove stale ones"
    assert set(_index()) == files


@pytest.mark.parametrize("name", sorted(CHECKS))
async def test_fixture(name: str) -> None:
    await CHECKS[name](name)


# --- every error shape of fixtures/lmstudio/API.md §6, with or without a fixture ------------

NO_MODELS_03 = (
    "No models loaded. Please load a model in the developer page or use the `lms load` command."
)
OLD_UNKNOWN = 'Model "default" not found. Please specify a valid model.\n\nYour models:\n\nqwen3-8b'
OLD_OVERFLOW = (
    "Trying to keep the first 15857 tokens when context the overflows. However, the model is "
    "loaded with context length of only 4096 tokens, which is not enough. Try to load the "
    "model with a larger context length, or provide a shorter input"
)
MLX_OVERFLOW = (
    "Input does not fit in context length. The input has 31430 tokens, but the context length "
    "only supports 30000 tokens."
)
MALFORMED = (
    "Malformed LM Studio API token provided: 22aac52a71... Ensure you are using a valid token."
)

ERROR_SHAPES: list[tuple[str, int, object, type[ProviderError], str]] = [
    ("unknown route, HTTP 200", 200,
     {"error": "Unexpected endpoint or method. (POST /chat/completions)"}, WrongRoute,
     "Unexpected endpoint or method. (POST /chat/completions)"),
    ("no model loaded 0.4", 400,
     {"error": {"message": "No models loaded. Please load a model in the developer page or use "
                "the 'lms load' command.", "type": "invalid_request_error", "param": "model",
                "code": None}}, NoModelLoaded, "No models loaded."),
    ("no model loaded 0.3.5, 404 string", 404, {"error": NO_MODELS_03}, NoModelLoaded,
     NO_MODELS_03),
    ("unknown model, model_not_found", 400,
     {"error": {"message": 'Invalid model identifier "o4-mini". Please specify a valid '
                "downloaded model (e.g., a, b, c).", "type": "invalid_request_error",
                "param": "model", "code": "model_not_found"}}, UnknownModel,
     'Invalid model identifier "o4-mini"'),
    ("unknown model, old 404", 404, {"error": OLD_UNKNOWN}, UnknownModel, OLD_UNKNOWN),
    ("JIT load failed, not embedding", 400,
     {"error": {"message": 'Failed to load model "x". Error: Model is not embedding.',
                "type": "invalid_request_error", "param": "model", "code": "model_not_found"}},
     ModelLoadFailed, "Model is not embedding."),
    ("JIT load failed, engine aborted", 400,
     {"error": 'Failed to load model "x". Error: Engine protocol startup was aborted.'},
     ModelLoadFailed, "Engine protocol startup was aborted."),
    ("context overflow, llama.cpp", 400,
     {"error": "The number of tokens to keep from the initial prompt is greater than the "
               "context length (n_keep: 13055>= n_ctx: 4096). Try to load the model with a "
               "larger context length, or provide a shorter input."},
     ContextOverflow, "n_ctx: 4096"),
    ("context overflow, old wording", 400, {"error": OLD_OVERFLOW}, ContextOverflow, OLD_OVERFLOW),
    ("context overflow, MLX frame as a body", 200,
     {"error": {"message": MLX_OVERFLOW}, "message": MLX_OVERFLOW}, ContextOverflow, MLX_OVERFLOW),
    ("context overflow, llama.cpp server", 400,
     {"error": {"code": 400, "message": "the request exceeds the available context size, try "
                "increasing it", "type": "exceed_context_size_error"}},
     ContextOverflow, "exceeds the available context size"),
    ("json_object unsupported", 400,
     {"error": "'response_format.type' must be 'json_schema' or 'text'"}, InvalidRequest,
     "'response_format.type' must be 'json_schema' or 'text'"),
    ("invalid messages", 400,
     {"error": "Invalid 'messages' in payload. Please check the structure of your 'messages' "
               "and try again"}, InvalidRequest, "Invalid 'messages' in payload."),
    ("engine crash", 400,
     {"error": "The model has crashed without additional information. (Exit code: 11)"},
     BackendCrashed, "(Exit code: 11)"),
    ("auth: no token", 401,
     {"error": {"type": "invalid_request", "code": "invalid_api_key",
                "message": "An LM Studio API token is required to make requests to this server"}},
     AuthRequired, "An LM Studio API token is required"),
    ("auth: malformed token", 401,
     {"error": {"type": "invalid_request", "code": "invalid_api_key", "message": MALFORMED}},
     AuthRequired, MALFORMED),
    ("anthropic envelope", 400,
     {"type": "error", "error": {"type": "invalid_request_error",
                                 "message": "request.messages.1.role: Invalid discriminator"}},
     InvalidRequest, "request.messages.1.role: Invalid discriminator"),
    ("native v1 error event", 200,
     {"type": "error", "error": {"type": "model_not_found", "message": "Model 'x' not found"}},
     UnknownModel, "Model 'x' not found"),
    ("OpenAI-style 500", 500,
     {"error": {"message": "internal failure", "type": "internal_error"}}, BackendCrashed,
     "internal failure"),
    ("502 with a text body", 502, "Bad Gateway", BackendCrashed, "HTTP 502: Bad Gateway"),
    ("503 while loading (llama.cpp)", 503,
     {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}},
     BackendUnavailable, "Loading model"),
    ("404 without a message (another server)", 404, "", WrongRoute, "HTTP 404"),
    ("error with HTTP 200, unknown text", 200, {"error": "something odd"}, BackendCrashed,
     "something odd"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("status", "body", "kind", "words"),
    [case[1:] for case in ERROR_SHAPES],
    ids=[case[0] for case in ERROR_SHAPES],
)
async def test_error_shapes(
    status: int, body: object, kind: type[ProviderError], words: str
) -> None:
    message = error_message(status, body)
    assert message is not None and words in message
    error = classify(status, message, error_code(body), BASE)
    assert type(error) is kind and error.message == message and BASE in error.hint
    # Through the provider: as the answer to a (streaming) chat request.
    content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    response = httpx.Response(status, content=content)
    with pytest.raises(kind) as caught:
        await with_provider({"/v1/chat/completions": response}, stream_chat)
    assert caught.value.message.startswith(message)  # an empty body adds the reason phrase


def test_error_frame_shapes_in_a_stream() -> None:
    frames = (
        b'data: {"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}\n\n'
        b"event: error\n"
        b'data: {"error":{"message":"' + MLX_OVERFLOW.encode() + b'"},"message":"x"}\n\n'
    )
    parser = StreamParser(BASE)
    with pytest.raises(ContextOverflow) as caught:
        parser.feed(frames)
    assert caught.value.message == MLX_OVERFLOW and caught.value.status == 200
    # A JSON frame with a top-level "error" (no event line).
    parser = StreamParser(BASE)
    with pytest.raises(NoModelLoaded):
        parser.feed(b'data: {"error":"' + NO_MODELS_03.replace("`", "'").encode() + b'"}\n\n')
    # An error event whose data is not JSON: the text is the message.
    parser = StreamParser(BASE)
    with pytest.raises(BackendCrashed) as crashed:
        parser.feed(b"event: error\ndata: engine exploded\n\n")
    assert "engine exploded" in crashed.value.message


async def test_sse_fixture_replayed_by_the_fake_over_http(fake_lmstudio: Any) -> None:
    # The same bytes, chunked over a real socket by the fake, frame by frame.
    name = "openai_chat_completions_tool_call_stream.txt"
    fake_lmstudio.configure(sse_body=(FIXTURES / name).read_text())
    provider = OpenAICompatibleProvider(fake_lmstudio.base_url)
    try:
        result = await provider.chat(ChatParams(messages=[ChatMessage("user", "hi")]))
    finally:
        await provider.aclose()
    (call,) = result.tool_calls
    assert (call.id, call.name, call.arguments) == (
        "814890118",
        "get_current_weather",
        '{"location":"San Francisco"}',
    )


def test_results_are_plain_data() -> None:
    result = parse_completion(
        load("openai_chat_completions_nonstream.json")["response"]["body"], BASE
    )
    assert isinstance(result, CompletionResult)
