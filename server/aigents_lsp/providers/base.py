"""The provider interface: plain data in, plain data out, no LSP anywhere.

Every backend (LM Studio, the embedded llama.cpp engine, other OpenAI-compatible servers) is a
`Provider`. Streams are async iterators of `StreamDelta`; consume them inside
`contextlib.aclosing(...)` (or let the awaiting task be cancelled) so the HTTP stream is closed
and the backend stops generating.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

ModelType = Literal["llm", "vlm", "embeddings", "unknown"]
ModelState = Literal["loaded", "not-loaded", "loading", "unknown"]


@dataclass(frozen=True)
class ModelInfo:
    """One model a backend knows about (LM Studio fills every field; others fewer)."""

    id: str
    type: ModelType = "unknown"
    state: ModelState = "unknown"
    max_context_length: int | None = None
    loaded_context_length: int | None = None
    arch: str | None = None
    quantization: str | None = None
    publisher: str | None = None
    capabilities: tuple[str, ...] = ()

    @property
    def context_length(self) -> int | None:
        """The context the model really runs with: the loaded one, else its maximum."""
        return self.loaded_context_length or self.max_context_length


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


@dataclass(frozen=True)
class SpeedStats:
    """Generation speed as the backend reports it (LM Studio `stats`, llama.cpp `timings`)."""

    tokens_per_second: float | None = None
    time_to_first_token: float | None = None  # seconds
    generation_time: float | None = None  # seconds
    stop_reason: str | None = None
    # Prompt tokens the backend read now and took from its prompt cache (llama.cpp `timings`
    # `prompt_n` / `cache_n`, OpenAI `usage.prompt_tokens_details.cached_tokens`).
    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    prompt_seconds: float | None = None  # time spent reading the prompt


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # a JSON string, as the model produced it


@dataclass(frozen=True)
class ToolSpec:
    """A function the model may call (OpenAI function-tool format)."""

    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"role": self.role}
        # LM Studio rejects empty message contents; a single space is accepted everywhere.
        wire["content"] = self.content if self.content else (None if self.tool_calls else " ")
        if self.tool_calls:
            wire["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in self.tool_calls
            ]
        if self.tool_call_id is not None:
            wire["tool_call_id"] = self.tool_call_id
        return wire


@dataclass(frozen=True)
class CompletionParams:
    """A raw-prompt completion (`/v1/completions`): no chat template is applied."""

    prompt: str
    model: str | None = None
    max_tokens: int = 128
    temperature: float = 0.2
    stop: Sequence[str] = ()
    top_p: float | None = None
    seed: int | None = None
    # A GBNF grammar the output must follow (llama.cpp servers only: `supports_grammar`).
    grammar: str | None = None
    # Ask for `usage` in the stream (`stream_options.include_usage`): prompt token counts.
    include_usage: bool = False


@dataclass(frozen=True)
class InfillParams:
    """A fill-in-the-middle request in the backend's own FIM format (llama.cpp `/infill`,
    Ollama `/api/generate` with `suffix`): the server applies the model's FIM tokens."""

    prefix: str
    suffix: str
    model: str | None = None
    max_tokens: int = 128
    temperature: float = 0.2
    stop: Sequence[str] = ()
    # Other files as (path, text), for servers that take repository context (`input_extra`).
    context: Sequence[tuple[str, str]] = ()
    file_path: str | None = None


@dataclass(frozen=True)
class ChatParams:
    messages: Sequence[ChatMessage]
    model: str | None = None
    max_tokens: int = 1024
    temperature: float = 0.3
    stop: Sequence[str] = ()
    tools: Sequence[ToolSpec] = ()
    tool_choice: str | None = None  # "auto" | "none" | "required"
    response_format: dict[str, Any] | None = None
    seed: int | None = None


@dataclass(frozen=True)
class StreamDelta:
    """One piece of a stream. `text` is never reasoning: that goes to `reasoning`."""

    text: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None
    # Complete tool calls (deltas accumulated by index), emitted once when the stream finishes.
    tool_calls: tuple[ToolCall, ...] = ()
    stats: SpeedStats | None = None
    # How the prompt was read (tokens read, tokens cached), on the first delta that knows it
    # (llama.cpp sends `timings` with every chunk when asked): a stream closed early still
    # tells it. `stats`, on the final delta only, carries the whole generation's figures.
    prompt_stats: SpeedStats | None = None


@dataclass(frozen=True)
class CompletionResult:
    text: str
    reasoning: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None
    stats: SpeedStats | None = None


@dataclass(frozen=True)
class HealthReport:
    ok: bool
    base_url: str
    backend: str  # "lmstudio", "llama.cpp", "openai-compatible", ...
    message: str = ""
    models: tuple[ModelInfo, ...] = ()
    latency_ms: float | None = None


# --- errors ---------------------------------------------------------------------------------


@dataclass
class ProviderError(Exception):
    """A backend failure the user can act on: the backend's own words plus a hint."""

    message: str
    hint: str = ""
    status: int | None = None
    base_url: str = ""
    kind: str = field(default="error", init=False)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message

    @property
    def user_message(self) -> str:
        return str(self)


class BackendUnavailable(ProviderError):
    """Nothing answers at the configured address (connection refused, DNS, reset)."""

    kind = "server_down"


class BackendTimeout(ProviderError):
    kind = "timeout"


class AuthRequired(ProviderError):
    kind = "auth"


class NoModelLoaded(ProviderError):
    kind = "no_model_loaded"


class UnknownModel(ProviderError):
    kind = "unknown_model"


class ModelLoadFailed(ProviderError):
    kind = "model_load_failed"


class ContextOverflow(ProviderError):
    kind = "context_overflow"


class WrongRoute(ProviderError):
    """The server answered "Unexpected endpoint" (often with HTTP 200): wrong base URL."""

    kind = "wrong_route"


class InvalidRequest(ProviderError):
    kind = "invalid_request"


class BadResponse(ProviderError):
    """The backend answered something that is not the API we speak (garbage, cut stream...)."""

    kind = "bad_response"


class BackendCrashed(ProviderError):
    kind = "backend_error"


# --- the interface --------------------------------------------------------------------------


class Provider(abc.ABC):
    """One LLM backend. Methods raise `ProviderError` subclasses, never raw httpx errors."""

    name: str = "provider"
    supports_grammar: bool = False  # honours CompletionParams.grammar (llama.cpp)

    @property
    @abc.abstractmethod
    def base_url(self) -> str: ...

    @abc.abstractmethod
    async def complete(self, params: CompletionParams) -> CompletionResult: ...

    @abc.abstractmethod
    def stream_complete(self, params: CompletionParams) -> AsyncIterator[StreamDelta]: ...

    @abc.abstractmethod
    async def chat(self, params: ChatParams) -> CompletionResult: ...

    @abc.abstractmethod
    def stream_chat(self, params: ChatParams) -> AsyncIterator[StreamDelta]: ...

    @abc.abstractmethod
    async def embed(self, texts: Sequence[str], model: str | None = None) -> list[list[float]]: ...

    @abc.abstractmethod
    async def list_models(self) -> list[ModelInfo]: ...

    @abc.abstractmethod
    async def health(self) -> HealthReport: ...

    async def count_tokens(self, text: str, model: str | None = None) -> int | None:
        """Tokens of `text` by the backend's own tokenizer; None when it offers none."""
        return None

    async def resolve_model(self, task: Literal["completion", "chat", "embedding"]) -> str | None:
        """The model id to use for a task when none is configured (None: let the server pick)."""
        return None

    async def supports_infill(self, model: str | None) -> bool:
        """Whether `stream_infill` works for `model` (the server renders the FIM prompt)."""
        return False

    def stream_infill(self, params: InfillParams) -> AsyncIterator[StreamDelta]:
        """A native fill-in-the-middle stream; only when `supports_infill` said yes."""
        raise NotImplementedError(f"{self.name} has no native fill-in-the-middle endpoint")

    def chat_only(self, model: str | None) -> bool:
        """True when `model` takes chat messages only (no raw `/v1/completions` prompts)."""
        return False

    @property
    def local(self) -> bool:
        """Whether code sent to this provider stays on this machine."""
        return True

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections and child processes."""
