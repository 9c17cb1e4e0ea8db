"""The HTTP plumbing of the OpenAI-compatible providers: URLs and headers, bodies read within a
size limit, JSON and error answers (also LM Studio's HTTP 200 `{"error": ...}`) turned into
typed `ProviderError`s, and the API key kept out of every error text (`redact`).
`OpenAIHttp` is the base of `OpenAICompatibleProvider` (providers/openai_compat.py).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

import httpx

from aigents_lsp.providers.base import BadResponse, Provider, ProviderError
from aigents_lsp.providers.errors import classify, error_code, error_message, excerpt, sentence
from aigents_lsp.providers.errors import from_transport_error as _transport_error

log = logging.getLogger("aigents_lsp.providers.openai_compat")  # one logger for the provider

_MASKED_TAIL = re.compile(r"\*{3,}([A-Za-z0-9_\-]{1,8})")


def redact(text: str, secret: str | None) -> str:
    """`text` without `secret`: every run of 6+ characters of it (servers echo a token's
    prefix, proxies its middle), and the tail after a mask (OpenAI shows `sk-ab*****wxyz`)."""
    if not secret or not text:
        return text
    width = min(len(secret), 6)
    windows = {secret[i : i + width] for i in range(len(secret) - width + 1)}
    pattern = re.compile("|".join(map(re.escape, sorted(windows))))
    out: list[str] = []
    done = 0
    while found := pattern.search(text, done):
        start, end = found.start(), found.end()
        while end < len(text) and text[start : end + 1] in secret:  # the longest run
            end += 1
        out += (text[done:start], "***")
        done = end
    out.append(text[done:])
    masked = "".join(out)
    return _MASKED_TAIL.sub(lambda m: "***" if secret.endswith(m.group(1)) else m.group(0), masked)


class OpenAIHttp(Provider):
    """Requests to one OpenAI-compatible server and their errors, for its provider."""

    # Set by the provider class and its __init__.
    backend_label: str
    max_body_bytes: int
    max_error_bytes: int
    _base_url: str
    _api_key: str | None
    _read_timeout: float
    _client: httpx.AsyncClient

    def _url(self, path: str) -> str:
        return path if "://" in path else f"{self._base_url}/{path.lstrip('/')}"

    def _headers(self, *, stream: bool = False) -> dict[str, str]:
        headers = {"Accept": "text/event-stream" if stream else "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _bad(self, problem: str) -> BadResponse:
        return BadResponse(
            problem,
            hint=sentence(
                f"{self.backend_label} at {self._base_url} answered something unexpected — "
                "check that aigents.apiBase points at its OpenAI-compatible /v1 API"
            ),
            base_url=self._base_url,
        )

    def _transport_error(self, exc: httpx.HTTPError, *, mid_stream: bool) -> ProviderError:
        return _transport_error(
            exc,
            self._base_url,
            mid_stream=mid_stream,
            backend=self.backend_label,
            read_timeout=self._read_timeout,
        )

    def _typed(self, exc: Exception, *, mid_stream: bool) -> ProviderError:
        """Any failure of a request as a typed error without the API key in its texts."""
        if isinstance(exc, ProviderError):
            error, cause = self._scrub(exc), None  # never chain the unscrubbed error
        else:
            assert isinstance(exc, httpx.HTTPError)
            error = self._scrub(self._transport_error(exc, mid_stream=mid_stream))
            cause = exc  # kept for the debug log's traceback (holds no header)
        if error is not exc:
            error.__cause__, error.__suppress_context__ = cause, True
        return error

    def _scrub(self, error: ProviderError) -> ProviderError:
        """The error without the API key (or a prefix of it) in its texts."""
        message, hint = redact(error.message, self._api_key), redact(error.hint, self._api_key)
        if message == error.message and hint == error.hint:
            return error
        return type(error)(message, hint=hint, status=error.status, base_url=error.base_url)

    async def _read_bounded(
        self, response: httpx.Response, limit: int, *, cut: bool = False
    ) -> bytes:
        """The body, refusing (or with `cut`, truncating) more than `limit` bytes."""
        data = bytearray()
        async for chunk in response.aiter_bytes():
            data += chunk
            if len(data) > limit:
                if cut:
                    return bytes(data[:limit])
                raise self._bad(f"the answer is larger than {limit} bytes")
        return bytes(data)

    def _parse_json(self, raw: bytes, response: httpx.Response) -> object:
        try:
            return json.loads(raw)
        except ValueError:
            kind = response.headers.get("content-type") or "no content type"
            text = raw.decode("utf-8", "replace")
            raise self._bad(
                f"expected JSON, got {kind}: {excerpt(text) or 'an empty body'}"
            ) from None

    async def _raise_for_status(self, response: httpx.Response) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        raw = await self._read_bounded(response, self.max_error_bytes, cut=True)
        text = raw.decode("utf-8", "replace")
        try:
            body: object = json.loads(text)
        except ValueError:
            body = text or response.reason_phrase
        message = error_message(status, body) or f"HTTP {status}"
        raise classify(
            status, message, error_code(body), self._base_url, backend=self.backend_label
        )

    async def _request_json(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        timeouts: httpx.Timeout | None = None,
    ) -> object:
        """A JSON request whose answer is read with a size limit and checked for errors
        (including the HTTP 200 `{"error": ...}` answers LM Studio gives)."""
        responded = False
        extra: dict[str, Any] = {} if timeouts is None else {"timeout": timeouts}
        log.debug("%s %s", method, self._url(path))  # never the headers: they hold the token
        try:
            async with self._client.stream(
                method, self._url(path), json=body, headers=self._headers(), **extra
            ) as response:
                responded = True
                await self._raise_for_status(response)
                raw = await self._read_bounded(response, self.max_body_bytes)
            parsed = self._parse_json(raw, response)
            if isinstance(parsed, dict) and parsed.get("error"):
                message = error_message(200, parsed) or excerpt(raw.decode("utf-8", "replace"))
                raise classify(
                    200, message, error_code(parsed), self._base_url, backend=self.backend_label
                )
        except (httpx.HTTPError, ProviderError) as exc:
            raise self._typed(exc, mid_stream=responded)  # noqa: B904 - chained in _typed
        return parsed
