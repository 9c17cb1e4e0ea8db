"""Backend failures as typed `ProviderError`s: the backend's own words plus a fix.

LM Studio reports errors in at least five shapes, sometimes with HTTP 200 (unknown routes, errors
inside an event stream); see `shared/lmstudio/API.md` §6. `error_message` finds the message in
any of them, `classify` turns status + message + code into the right error with a hint that names
the base URL, and `from_transport_error` does the same for httpx exceptions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aigents_lsp.providers.base import (
    AuthRequired,
    BackendCrashed,
    BackendTimeout,
    BackendUnavailable,
    BadResponse,
    ContextOverflow,
    InvalidRequest,
    ModelLoadFailed,
    NoModelLoaded,
    ProviderError,
    UnknownModel,
    WrongRoute,
)

if TYPE_CHECKING:
    import httpx  # ~40 ms: not before the `initialize` answer (lsp/ imports this module)

LMSTUDIO = "LM Studio"
"""The `backend` label that turns on LM Studio-specific fixes (`lms load`, Developer tab)."""

_CONTEXT_OVERFLOW = (
    "context length",
    "n_ctx",
    "trying to keep the first",
    "input does not fit",
    "context size",
    "context window",
    "exceed_context_size",
)
_UNKNOWN_MODEL = (
    "invalid model identifier",
    "not found. please specify a valid model",
    "not found, try pulling it first",  # Ollama
    "does not exist.",  # vLLM: "The model `x` does not exist."
    "model_not_found",
)
# Error `type`s that are really codes (llama.cpp; LM Studio's native v1 error events).
_CODES_IN_TYPE = ("exceed_context_size_error", "invalid_api_key", "model_not_found")
_AUTH = ("malformed lm studio api token", "lm studio api token is required", "invalid api key")


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def error_message(status: int | None, body: object) -> str | None:
    """The error message in a response body of any known shape, else None.

    Shapes: `{"error": "text"}` (also with HTTP 200), OpenAI `{"error": {"message", "type",
    "param", "code"}}`, LM Studio native `{"error": {"type", "code", "message"}}`, Anthropic
    `{"type": "error", "error": {...}}`, stream error frames `{"error": {"message"}, "message"}`.
    A non-2xx status without a recognisable message gives `HTTP <status>` (plus a text excerpt).
    """
    ok = status is None or 200 <= status < 300
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, str) and err.strip():
            return err
        if isinstance(err, dict):
            found = _text(err.get("message")) or _text(body.get("message"))
            found = found or _text(err.get("type")) or _text(err.get("code"))
            if found:
                return found
        if not ok:
            found = _text(body.get("message")) or _text(body.get("detail"))
            if found:
                return found
    if ok:
        return None
    if isinstance(body, str) and body.strip():
        return f"HTTP {status}: {excerpt(body)}"
    return f"HTTP {status}"


def error_code(body: object) -> str | None:
    """The machine-readable code of an error body (`model_not_found`, `invalid_api_key`...)."""
    if not isinstance(body, dict):
        return None
    err = body.get("error")
    if isinstance(err, dict):
        code = err.get("code")
        if isinstance(code, str) and code:
            return code
        kind = err.get("type")
        if isinstance(kind, str) and kind in _CODES_IN_TYPE:
            return kind
    return None


def sentence(text: str) -> str:
    """`text` with a capital first letter (hints may start with a backend label)."""
    return text[:1].upper() + text[1:]


def excerpt(text: str, limit: int = 160) -> str:
    """A short one-line preview of a body for error messages."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def classify(
    status: int | None,
    message: str,
    code: str | None,
    base_url: str,
    *,
    backend: str = LMSTUDIO,
) -> ProviderError:
    """The typed error for a backend's error answer; `message` is kept verbatim."""
    lower = message.lower()
    lms = backend == LMSTUDIO
    where = f"{backend} at {base_url}"

    def make(cls: type[ProviderError], hint: str) -> ProviderError:
        return cls(message, hint=sentence(hint), status=status, base_url=base_url)

    if status in (401, 403) or code == "invalid_api_key" or any(p in lower for p in _AUTH):
        fix = (
            "create a token under Developer → Server Settings → Manage Tokens and set "
            "aigents.apiKey (or LM_API_TOKEN)"
            if lms
            else "set aigents.apiKey to a valid key"
        )
        return make(AuthRequired, f"{where} refused the request without a valid API token — {fix}")
    if "unexpected endpoint or method" in lower or (status in (404, 405) and "model" not in lower):
        return make(
            WrongRoute,
            f"{where} does not serve this route — aigents.apiBase must be the OpenAI-compatible "
            "base URL ending in /v1, e.g. http://localhost:1234/v1",
        )
    if "no models loaded" in lower:
        fix = "load one in the Developer tab or run `lms load <model>`" if lms else "load one"
        return make(
            NoModelLoaded,
            f"No model is loaded in {backend} at {base_url} — {fix}, or set aigents.model",
        )
    if "failed to load model" in lower:
        log = " (`lms log stream` shows why)" if lms else ""
        return make(
            ModelLoadFailed,
            f"{where} could not load the model — check that it is the right kind (an embedding "
            f"model for embeddings) and that it fits in memory{log}, or set another aigents.model",
        )
    if code == "model_not_found" or any(p in lower for p in _UNKNOWN_MODEL):
        fix = " or download it with `lms get <model>`" if lms else ""
        return make(
            UnknownModel,
            f"{where} does not know this model — set aigents.model to one of the ids shown by "
            f"`aigents-lsp models`{fix}",
        )
    if any(p in lower for p in _CONTEXT_OVERFLOW) or code == "exceed_context_size_error":
        fix = " (`lms load <model> --context-length 16384`)" if lms else ""
        return make(
            ContextOverflow,
            f"The prompt does not fit in the context the model is loaded with at {base_url} — "
            f"load it with a larger context length{fix} or send less context",
        )
    if "model has crashed" in lower:
        fix = (
            "reload the model (`lms unload --all`, then `lms load <model>`)"
            if lms
            else "restart it"
        )
        return make(BackendCrashed, f"The model crashed in {where} — {fix} and try again")
    if status == 503:
        return make(
            BackendUnavailable,
            f"{where} is not ready (HTTP 503) — it may still be loading a model; try again soon",
        )
    if status is not None and 400 <= status < 500:
        return make(
            InvalidRequest,
            f"{where} rejected the request (HTTP {status}) — check aigents.model and the "
            "settings named in the message; if they look right this is a bug in aigents-lsp",
        )
    log = " (`lms log stream` shows it)" if lms else ""
    return make(
        BackendCrashed,
        f"{where} failed while answering — check its log{log}, reload the model and try again",
    )


def from_transport_error(
    exc: httpx.HTTPError,
    base_url: str,
    *,
    mid_stream: bool = False,
    backend: str = LMSTUDIO,
    read_timeout: float | None = None,
) -> ProviderError:
    """The typed error for an httpx exception (connection refused, timeout, cut stream...).

    `mid_stream`: the response had started, so a broken connection means a cut answer.
    """
    import httpx

    detail = str(exc) or type(exc).__name__
    start = (
        "start LM Studio's server (Developer tab or `lms server start`)"
        if backend == LMSTUDIO
        else f"start {backend}"
    )
    if isinstance(exc, httpx.ConnectTimeout):
        return BackendTimeout(
            detail,
            hint=f"No connection to {base_url} could be made in time — check the address, "
            f"{start}, or set aigents.apiBase",
            base_url=base_url,
        )
    if isinstance(exc, httpx.TimeoutException):
        waited = f" for {read_timeout:g} s" if read_timeout else ""
        return BackendTimeout(
            detail,
            hint=sentence(
                f"{backend} at {base_url} sent nothing{waited} — the model may still be loading "
                "or the prompt is very long; try again or raise aigents.readTimeout"
            ),
            base_url=base_url,
        )
    if isinstance(exc, httpx.ConnectError | httpx.UnsupportedProtocol | httpx.InvalidURL):
        return BackendUnavailable(
            detail,
            hint=f"Nothing answers at {base_url} — {start} or set aigents.apiBase",
            base_url=base_url,
        )
    if mid_stream and isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return BadResponse(
            f"the backend closed the stream mid-answer ({detail})",
            hint=sentence(
                f"{backend} at {base_url} stopped answering — it may have crashed or been "
                "stopped; try again"
            ),
            base_url=base_url,
        )
    if isinstance(exc, httpx.RemoteProtocolError | httpx.DecodingError | httpx.TooManyRedirects):
        return BadResponse(
            detail,
            hint=f"{base_url} did not answer as an HTTP API server — check aigents.apiBase",
            base_url=base_url,
        )
    return BackendUnavailable(
        detail,
        hint=f"The connection to {base_url} failed — {start} or set aigents.apiBase",
        base_url=base_url,
    )


# --- a backend that is there but not answering ------------------------------------------------


class FirstTokenTimeout(BackendTimeout):
    """The model is loaded and the server answers, but no token came in time."""


class StreamStalled(BackendTimeout):
    """The answer had started, then no new token came for a while (or bytes only trickle)."""


class BackendHung(BackendTimeout):
    """The server accepted the request but answers nothing, not even its model list."""


class ModelLoading(ProviderError):
    """The model is being loaded (LM Studio's just-in-time load): not an error, a wait."""

    kind = "loading"
