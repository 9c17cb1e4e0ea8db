"""LM Studio's bodies, chunks and SSE frames, written the way LM Studio writes them.

Key order, compact JSON (Express `res.json`), `data: ` framing and error texts follow the
fixtures in `shared/lmstudio/fixtures/` and `shared/lmstudio/API.md` §6.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
from typing import Any

NO_MODELS_LOADED: dict[str, Any] = {
    "error": {
        "message": "No models loaded. Please load a model in the developer page or use the "
        "'lms load' command.",
        "type": "invalid_request_error",
        "param": "model",
        "code": None,
    }
}
AUTH_MISSING: dict[str, Any] = {
    "error": {
        "type": "invalid_request",
        "code": "invalid_api_key",
        "message": "An LM Studio API token is required to make requests to this server, but "
        "none was provided using the Authorization header using the 'Bearer' scheme (i.e., "
        "'Authorization: Bearer $LM_API_TOKEN'). Learn more at: "
        "https://lmstudio.ai/docs/developer/core/authentication.",
    }
}
CRASHED = {"error": "The model has crashed without additional information. (Exit code: 11)"}
JSON_OBJECT_UNSUPPORTED = {"error": "'response_format.type' must be 'json_schema' or 'text'"}
INVALID_MESSAGES = {
    "error": "Invalid 'messages' in payload. Please check the structure of your 'messages' "
    "and try again"
}
INVALID_INPUT = {"error": "'input' field must be a string or an array of strings"}
TOKEN_PATTERN = re.compile(r"sk-lm-[A-Za-z0-9]{8}:[A-Za-z0-9]{20}")


def dumps(obj: object) -> bytes:
    """JSON as Express sends it (`JSON.stringify`: compact, UTF-8)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def etag(body: bytes) -> str:
    """Express's weak ETag: length in hex and a base64 SHA-1 prefix."""
    digest = base64.b64encode(hashlib.sha1(body).digest()).decode()[:27]
    return f'W/"{len(body):x}-{digest}"'


def auth_malformed(token: str) -> dict[str, Any]:
    return {
        "error": {
            "type": "invalid_request",
            "code": "invalid_api_key",
            "message": f"Malformed LM Studio API token provided: {token[:10]}... Ensure you are "
            "using a valid token.",
        }
    }


def auth_invalid() -> dict[str, Any]:
    return {
        "error": {
            "type": "invalid_request",
            "code": "invalid_api_key",
            "message": "The provided LM Studio API token is not valid.",
        }
    }


def invalid_model(requested: str, known: list[str]) -> dict[str, Any]:
    examples = ", ".join(known[:3]) or "none"
    return {
        "error": {
            "message": f'Invalid model identifier "{requested}". Please specify a valid '
            f"downloaded model (e.g., {examples}).",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }


def load_failed(model: str, reason: str = "Model is not embedding.") -> dict[str, Any]:
    return {
        "error": {
            "message": f'Failed to load model "{model}". Error: {reason}',
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }


def unexpected_route(method: str, path: str) -> dict[str, Any]:
    return {"error": f"Unexpected endpoint or method. ({method} {path})"}


def context_overflow_nonstream(prompt_tokens: int, n_ctx: int) -> dict[str, Any]:
    return {
        "error": "The number of tokens to keep from the initial prompt is greater than the "
        f"context length (n_keep: {prompt_tokens}>= n_ctx: {n_ctx}). Try to load the model with "
        "a larger context length, or provide a shorter input."
    }


def context_overflow_stream(prompt_tokens: int, n_ctx: int) -> dict[str, Any]:
    message = (
        f"Input does not fit in context length. The input has {prompt_tokens} tokens, but the "
        f"context length only supports {n_ctx} tokens."
    )
    return {"error": {"message": message}, "message": message}


def frame(obj: object, *, space: bool = True) -> bytes:
    return (b"data: " if space else b"data:") + dumps(obj) + b"\n\n"


def done_frame(*, space: bool = True) -> bytes:
    return b"data: [DONE]\n\n" if space else b"data:[DONE]\n\n"


def error_frame(body: object) -> bytes:
    return b"event: error\ndata: " + dumps(body) + b"\n\n"


def split_tokens(text: str, chunk_chars: int | None = None) -> list[str]:
    """The pieces a reply is streamed in: words with their leading space, or fixed slices."""
    if chunk_chars:
        return [text[i : i + chunk_chars] for i in range(0, len(text), chunk_chars)]
    return re.findall(r"\s*\S+|\s+", text)


def approx_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def chat_chunk(
    ident: str, created: int, model: str, delta: dict[str, Any], finish: str | None = None
) -> dict[str, Any]:
    return {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def completion_chunk(
    ident: str, created: int, model: str, text: str, finish: str | None = None
) -> dict[str, Any]:
    return {
        "id": ident,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}],
    }


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def stats(tokens: int, ttft: float, seconds: float, stop_reason: str) -> dict[str, Any]:
    return {
        "tokens_per_second": tokens / seconds if seconds > 0 else 100.0,
        "time_to_first_token": ttft,
        "generation_time": seconds,
        "stop_reason": stop_reason,
    }


def draft_stats(draft_model: str, tokens: int, acceptance: float) -> dict[str, Any]:
    """The draft-token counts of `stats` with `draft_model` (LM Studio 0.3.10 changelog)."""
    accepted = round(tokens * acceptance)
    return {
        "draft_model": draft_model,
        "total_draft_tokens_count": tokens,
        "accepted_draft_tokens_count": accepted,
        "rejected_draft_tokens_count": tokens - accepted,
        "ignored_draft_tokens_count": 0,
    }


def timings(prompt: int, tokens: int, ttft: float, seconds: float) -> dict[str, Any]:
    """llama.cpp's `timings` object."""
    return {
        "prompt_n": prompt,
        "prompt_ms": ttft * 1000,
        "predicted_n": tokens,
        "predicted_ms": seconds * 1000,
        "predicted_per_second": tokens / seconds if seconds > 0 else 100.0,
    }


def native_extras(model: dict[str, Any]) -> dict[str, Any]:
    """`model_info` and `runtime` of `/api/v0` answers."""
    return {
        "model_info": {
            "arch": model.get("arch"),
            "quant": model.get("quantization"),
            "format": model.get("compatibility_type", "gguf"),
            "context_length": model.get("loaded_context_length") or 4096,
        },
        "runtime": {
            "name": "llama.cpp-linux-x86_64-avx2",
            "version": "1.3.0",
            "supported_formats": ["gguf"],
        },
    }


def embedding_vector(text: str, dimensions: int) -> list[float]:
    """A deterministic unit-ish vector for a text."""
    digest = hashlib.sha256(text.encode()).digest() * (1 + dimensions * 2 // 32)
    values = struct.unpack(f"{dimensions}h", digest[: dimensions * 2])
    return [round(v / 32768, 6) for v in values]


def api_v1_model(entry: dict[str, Any]) -> dict[str, Any]:
    """A `/api/v0/models` entry in the `/api/v1/models` shape."""
    loaded = entry.get("state") == "loaded"
    capabilities = entry.get("capabilities") or []
    return {
        "type": "embedding" if entry.get("type") == "embeddings" else "llm",
        "publisher": entry.get("publisher"),
        "key": entry["id"],
        "display_name": entry["id"],
        "architecture": entry.get("arch"),
        "quantization": {"name": entry.get("quantization"), "bits_per_weight": 4},
        "size_bytes": 1_000_000_000,
        "params_string": None,
        "loaded_instances": [
            {
                "id": entry["id"],
                "config": {
                    **entry.get("_load_config", {}),
                    "context_length": entry.get("loaded_context_length"),
                },
            }
        ]
        if loaded
        else [],
        "max_context_length": entry.get("max_context_length"),
        "format": entry.get("compatibility_type", "gguf"),
        "capabilities": {
            "vision": "vision" in capabilities,
            "trained_for_tool_use": "tool_use" in capabilities,
        },
    }


def native_chat_result(model: str, text: str, loaded_now: bool) -> dict[str, Any]:
    """The `chat.end` result (and non-streamed body) of `POST /api/v1/chat`; shape from
    `shared/lmstudio/fixtures/api_v1_chat_nonstream.json` (`model_load_time_seconds` only
    when this request loaded the model)."""
    stats: dict[str, Any] = {
        "input_tokens": 1,
        "total_output_tokens": 1,
        "reasoning_output_tokens": 0,
        "tokens_per_second": 50.0,
        "time_to_first_token_seconds": 0.1,
    }
    if loaded_now:
        stats["model_load_time_seconds"] = 0.1
    return {
        "model_instance_id": model,
        "output": [{"type": "message", "content": text}],
        "stats": stats,
        "response_id": "resp_" + "0" * 48,
    }
