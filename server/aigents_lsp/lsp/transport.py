"""The message loop (stdio and TCP): pygls' framing, strict about what deserves an answer.

pygls' own loop parses with an `object_hook` and, when a message does not fit its type, logs
and drops it: a request with bad params, a wrong `jsonrpc`, a notification method sent with an
id or a batch was never answered, and the editor waited for good. It also read only
`Content-Length` spelt exactly so, and an editor's malformed answer to one of our requests left
the waiting handler hanging forever. Here every message with a usable id gets exactly one
response (its handler's, or a JSON-RPC error), and every answer to our requests resolves them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Protocol

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInternalError

if TYPE_CHECKING:
    from pygls.protocol import LanguageServerProtocol as JsonRPCProtocol

log = logging.getLogger(__name__)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
MAX_MESSAGE_BYTES = 256 << 20  # larger bodies are skipped in chunks, never held in memory
_SKIP_CHUNK = 1 << 20


class Reader(Protocol):
    def readline(self) -> Awaitable[bytes]: ...

    def readexactly(self, n: int) -> Awaitable[bytes]: ...


class StreamReaderAdapter:
    """An `asyncio.StreamReader` as a `Reader`: end of input mid-message gives what came."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    async def readline(self) -> bytes:
        return await self._reader.readline()

    async def readexactly(self, n: int) -> bytes:
        try:
            return await self._reader.readexactly(n)
        except asyncio.IncompleteReadError as error:
            return error.partial


def usable_id(value: Any) -> bool:
    """LSP request ids are integers or strings."""
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def is_notification_method(method: str) -> bool:
    """A method LSP defines as a notification (it takes no id and gets no answer)."""
    entry = types.METHOD_TO_TYPES.get(method)
    return entry is not None and entry[1] is None


def send_error(protocol: JsonRPCProtocol, msg_id: Any, code: int, message: str) -> None:
    protocol._send_data(
        {"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}}
    )


def dispatch(protocol: JsonRPCProtocol, body: bytes) -> None:
    """Parse one message body, check it is a message, and hand it to pygls."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # invalid UTF-8 is a ValueError too
        log.warning("a message that is not JSON: %s", str(exc)[:200])
        send_error(protocol, None, PARSE_ERROR, f"Parse error: {str(exc)[:200]}")
        return
    if isinstance(data, list):  # JSON-RPC batches are not part of LSP
        if not data:
            send_error(protocol, None, INVALID_REQUEST, "Invalid request: an empty batch")
        for item in data:
            reject(protocol, item, "Invalid request: LSP has no batches; send messages one by one")
        return
    if not isinstance(data, dict):
        send_error(protocol, None, INVALID_REQUEST, "Invalid request: not a JSON object")
        return
    if "method" not in data:
        handle_response(protocol, data)
        return
    method, has_id, msg_id = data["method"], "id" in data, data.get("id")
    problem = None
    if has_id and not usable_id(msg_id):
        problem = "the id must be an integer or a string"
    elif data.get("jsonrpc") != "2.0":
        problem = 'expected "jsonrpc": "2.0"'
    elif not isinstance(method, str):
        problem = "the method must be a string"
    elif has_id and is_notification_method(method):
        problem = f"{method} is a notification: send it without an id"
    elif has_id and getattr(protocol, "_shutdown", False) and method != types.EXIT:
        problem = "the server is shutting down"
    if problem is not None:
        reject(protocol, data, f"Invalid request: {problem}")
        return
    try:
        message = protocol.structure_message(data)
    except JsonRpcException as error:
        log.warning("%s: params do not fit (%s)", method, error.message)
        if not has_id:
            return
        features = protocol.fm
        if method in features.features or method in features.builtin_features:
            send_error(protocol, msg_id, INVALID_PARAMS, f"{method}: invalid params")
        else:
            send_error(protocol, msg_id, METHOD_NOT_FOUND, f"Method not found: {method}")
        return
    protocol.handle_message(message)


def reject(protocol: JsonRPCProtocol, item: Any, message: str) -> None:
    """Answer a request that cannot be handled; log a notification or response that cannot."""
    if isinstance(item, dict) and "method" in item and "id" in item:
        msg_id = item["id"] if usable_id(item["id"]) else None
        send_error(protocol, msg_id, INVALID_REQUEST, message)
    else:  # what it was, not what it said (it may carry settings, tokens, code)
        log.warning("ignored: %s (a %s)", message, type(item).__name__)


def handle_response(protocol: JsonRPCProtocol, data: dict[str, Any]) -> None:
    """The editor's answer to one of our requests. Answers to anything else are ignored (an
    id of a request of the editor's own must not touch that request); an answer that does not
    fit still resolves ours, as an error, so the handler waiting on it goes on."""
    msg_id = data.get("id")
    if not usable_id(msg_id) or msg_id not in protocol._result_types:
        log.warning("ignored a response to no request of ours (id %.40r)", msg_id)
        return
    try:
        message = protocol.structure_message(data)
        if data.get("jsonrpc") != "2.0" or ("result" in data) == ("error" in data):
            raise JsonRpcInternalError("not a JSON-RPC 2.0 response")
    except JsonRpcException:
        protocol._result_types.pop(msg_id, None)
        future = protocol._request_futures.pop(msg_id, None)
        if future is not None and not future.done():
            future.set_exception(JsonRpcInternalError("the editor's answer was malformed"))
        return
    protocol.handle_message(message)


async def run_async(stop_event: threading.Event, reader: Reader, protocol: JsonRPCProtocol) -> None:
    """Read `Content-Length` framed messages until end of input or `stop_event`."""
    while not stop_event.is_set():
        length: int | None = None
        while True:  # the header block: `Name: value` lines up to an empty line
            line = await reader.readline()
            if not line:
                return
            if not line.strip():
                if length is not None:
                    break
                continue  # a stray empty line, or a block without a usable length
            name, colon, value = line.partition(b":")
            if colon and name.strip().lower() == b"content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    length = None
                if length is not None and length < 0:
                    length = None
                if length is None:
                    log.warning("a bad header: %r", line[:100])
        if length > MAX_MESSAGE_BYTES:
            log.error("a message of %d bytes skipped (the limit is %d)", length, MAX_MESSAGE_BYTES)
            while length > 0:
                chunk = await reader.readexactly(min(length, _SKIP_CHUNK))
                if not chunk:
                    return
                length -= len(chunk)
            continue
        body = await reader.readexactly(length) if length else b""
        if len(body) < length:
            return  # end of input inside a message
        try:
            dispatch(protocol, body)
        except Exception:  # one message must never end the session
            log.exception("a message could not be handled")
