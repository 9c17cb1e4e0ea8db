"""A fake LM Studio server: real HTTP on 127.0.0.1, scripted replies, faults on demand.

In process (what the `fake_lmstudio` fixture does)::

    fake = FakeLMStudio(reply="return a + b", token_delay=0.01).start()
    fake.base_url                       # http://127.0.0.1:PORT/v1
    fake.configure(auth_required=True)  # flip any `Behaviour` field at runtime
    fake.refuse(); fake.accept()        # port closed / open again
    fake.requests, fake.disconnects, fake.generations
    fake.stop()

As a process (for end-to-end tests in another process)::

    python -m tests.fakes.lmstudio_server --port 0
    -> LISTENING http://127.0.0.1:PORT
    -> CONTROL http://127.0.0.1:CPORT
    POST /api/v1/models/load {"model": ...}                # blocks `load_delay` s (state
                                                          # "loading"); `load_failure` fails it
    POST {CONTROL}/__control {"context_overflow": true}   # any Behaviour field, "refused",
                                                          # or "reset": true
    GET  {CONTROL}/__control -> {"disconnects": ..., "requests": [...], "generations": [...]}

`FakeLMStudioProcess` wraps the process for tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from tests.fakes import lmstudio_replies as wire
from tests.fakes.lmstudio_downloads import Downloads, default_catalog

Reply = str | Callable[[dict[str, Any]], str]
ToolCalls = list[dict[str, Any]] | Callable[[dict[str, Any]], list[dict[str, Any]]]
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TOKEN = "sk-lm-fake0001:abcdefghijklmnopqrst"


def bag_of_words_vector(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector: each lower-cased word (identifiers split at `_` and
    camelCase) adds 1 to the dimension its hash picks."""
    vector = [0.0] * dimensions
    for word in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+", text):
        slot = int.from_bytes(hashlib.sha1(word.lower().encode()).digest()[:4], "big")
        vector[slot % dimensions] += 1.0
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [round(x / norm, 6) for x in vector]


def default_models() -> list[dict[str, Any]]:
    """What `/api/v0/models` lists by default: a code model, a chat model and an embedder
    loaded, one more model downloaded."""

    def entry(model_id: str, kind: str, arch: str, state: str, **extra: Any) -> dict[str, Any]:
        model: dict[str, Any] = {
            "id": model_id,
            "object": "model",
            "type": kind,
            "publisher": "lmstudio-community",
            "arch": arch,
            "compatibility_type": "gguf",
            "quantization": "Q4_K_M",
            "state": state,
            "max_context_length": extra.pop("max_context_length", 32768),
        }
        if state == "loaded":
            model["loaded_context_length"] = extra.pop("loaded_context_length", 4096)
        model.update(extra)
        return model

    return [
        entry("qwen2.5-coder-1.5b-instruct", "llm", "qwen2", "loaded", capabilities=["tool_use"]),
        entry("llama-3.2-3b-instruct", "llm", "llama", "loaded", capabilities=["tool_use"]),
        entry(
            "text-embedding-nomic-embed-text-v1.5",
            "embeddings",
            "nomic-bert",
            "loaded",
            max_context_length=2048,
            loaded_context_length=2048,
        ),
        entry("qwen/qwen3-8b", "llm", "qwen3", "not-loaded", capabilities=["tool_use"]),
    ]


@dataclass
class Behaviour:
    """Everything the fake does, all settable at runtime (`configure`, POST /__control)."""

    # scripted output
    reply: Reply = "Hello from the fake LM Studio!"
    completion_reply: Reply | None = None  # /v1/completions; None: `reply`
    ttft: float = 0.0  # seconds before the first token
    token_delay: float = 0.0  # seconds between tokens
    chunk_chars: int | None = None  # stream fixed slices instead of words
    reasoning: Literal["none", "reasoning_content", "reasoning", "think"] = "none"
    reasoning_text: str = "The user wants a greeting."
    tool_calls: ToolCalls | None = None  # [{"name", "arguments"}], sent when tools are given
    tool_call_empty_names: bool = False  # later tool-call chunks carry name "" (old builds)
    tool_call_omit_ids: bool = False
    usage: Literal["separate", "finish", "never"] = "separate"  # with include_usage
    timings: bool = False  # llama.cpp `timings` on the last chunk
    sse_no_space: bool = False  # "data:{...}"
    no_done: bool = False  # no [DONE] after the finish chunk
    sse_body: str | None = None  # replay these exact bytes to streaming requests
    json_body: dict[str, Any] | None = None  # and this body to non-streaming ones
    embedding_dimensions: int = 8
    # "hash": a vector per exact text; "words": a hashed bag of words (unit length), so texts
    # sharing words are close and search over them is testable
    embedding_kind: Literal["hash", "words"] = "hash"
    # models
    models: list[dict[str, Any]] = field(default_factory=default_models)
    jit: bool = True  # unloaded models load on demand; /v1/models lists all
    load_delay: float = 0.0
    context_length: int | None = None  # overflow when the prompt (~chars/4) exceeds it
    single_tokens: tuple[str, ...] = ()  # counted as one prompt token each (special tokens)
    native_api: bool = True  # /api/v0 and /api/v1 routes exist
    api_v1: bool = True  # LM Studio 0.4+: /api/v1/models, /api/v1/models/load and /unload
    auto_evict: bool = True  # a just-in-time load unloads the previous just-in-time model
    load_failure: str | None = None  # POST /api/v1/models/load fails with this reason
    # downloads (tests/fakes/lmstudio_downloads.py): a job moves a step per status request
    catalog: dict[str, dict[str, Any]] = field(default_factory=default_catalog)
    download_steps: int = 3
    download_hold: bool = False  # jobs stay where they are
    download_failure: str | None = None  # a job fails at its first step
    download_status_route: bool = True  # False: an older build without the per-job route
    # faults
    auth_required: bool = False
    auth_token: str = DEFAULT_TOKEN
    auth_echo: bool = False  # a 401 that repeats the token it was sent (some proxies do)
    no_model_loaded: bool = False
    unknown_model: bool = False
    context_overflow: bool = False
    http_status: int | None = None  # answer generation requests with this status
    http_body: Any = None
    crashed: bool = False
    garbage_body: bool = False
    invalid_json_after: int | None = None  # tokens, then a broken JSON frame
    cut_after: int | None = None  # tokens, then half a frame and the socket closes
    truncate_after: int | None = None  # tokens, then half a frame and a clean end
    silent: bool = False  # accept the request, never answer
    stall_after: int | None = None  # tokens, then silence with the connection open
    drip: float = 0.0  # send frames a few bytes at a time, this many seconds apart
    wrong_content_type: bool = False  # SSE bytes labelled text/plain
    ignore_stream: bool = False  # answer streaming requests with a whole JSON body
    error_200: str | None = None  # {"error": "..."} with HTTP 200 on generation routes
    # speculative decoding: /api/v0 whole answers to requests with `draft_model` carry the
    # draft-token counts (api_v0_chat_completions_speculative.json); `tokens_per_second` fixes
    # the speed `stats` report (None: measured), times `draft_speed_up` with a draft model
    tokens_per_second: float | None = None
    draft_acceptance: float = 0.75
    draft_speed_up: float = 1.6
    # capacity
    slots: int = 0  # generations served at once (others queue, like LM Studio); 0: unlimited


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any


@dataclass
class Generation:
    """One generation request and how it ended."""

    path: str
    model: str
    stream: bool
    planned: int  # tokens scripted
    sent: int = 0
    finished: bool = False
    disconnected: bool = False
    queued: float = 0.0  # time.perf_counter() when the request arrived
    started: float = 0.0  # ... when a slot was free and generation began
    ended: float = 0.0  # ... when the last byte went out or the client was gone


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], fake: FakeLMStudio, control_only: bool) -> None:
        self.fake = fake
        self.control_only = control_only
        self.connections: set[socket.socket] = set()  # guarded by fake._lock
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # a client that left is no news
            super().handle_error(request, client_address)


class FakeLMStudio:
    """The fake server. Thread-safe; state is read directly by tests."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **behaviour: Any) -> None:
        self.host = host
        self.port = port
        self.behaviour = Behaviour(**behaviour)
        self.requests: list[RecordedRequest] = []
        self.generations: list[Generation] = []
        self.disconnects = 0
        self.refused = False
        self.jit_loaded: list[str] = []  # models loaded just in time, oldest first
        self.native_chats = 0  # POST /api/v1/chat requests served
        self._lock = threading.RLock()
        self.downloads = Downloads(self._lock)
        self._slots: tuple[int, threading.Semaphore] | None = None
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._control: _Server | None = None
        self._ids = 0

    # --- lifecycle ------------------------------------------------------------------------

    def start(self, *, control_port: int | None = None) -> FakeLMStudio:
        """Listen (on `port`, 0: a free one); `control_port`: also a control-only listener
        that stays up while the API port refuses connections."""
        self._stopping.clear()
        self._listen()
        if control_port is not None:
            self._control = _Server((self.host, control_port), self, control_only=True)
            threading.Thread(target=self._control.serve_forever, args=(0.02,), daemon=True).start()
        return self

    def _listen(self) -> None:
        server = _Server((self.host, self.port), self, control_only=False)
        self.port = server.server_address[1]
        self._server = server
        self.refused = False
        # A short poll interval: `shutdown()` (stop, refuse) waits for one poll.
        threading.Thread(
            target=server.serve_forever, args=(0.02,), daemon=True, name="fake-lmstudio"
        ).start()

    def _close_listener(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(server.connections)
        for conn in connections:  # a stopped server drops its keep-alive connections too
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def refuse(self) -> None:
        """Close the port: connections are refused until `accept`."""
        self.refused = True
        self._close_listener()

    def accept(self) -> None:
        """Listen again on the same port."""
        if self._server is None:
            self._listen()

    def stop(self) -> None:
        self._stopping.set()
        self._close_listener()
        control, self._control = self._control, None
        if control is not None:
            control.shutdown()
            control.server_close()

    def __enter__(self) -> FakeLMStudio:
        return self if self._server else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- addresses --------------------------------------------------------------------------

    @property
    def root(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root}/v1"

    @property
    def control_url(self) -> str | None:
        if self._control is None:
            return None
        return f"http://{self.host}:{self._control.server_address[1]}"

    # --- behaviour and state ----------------------------------------------------------------

    def configure(self, **changes: Any) -> None:
        """Change behaviour fields (unknown names are an error); `refused` opens/closes the port."""
        refused = changes.pop("refused", None)
        with self._lock:
            self.behaviour = dataclasses.replace(self.behaviour, **changes)
        if refused is True:
            self.refuse()
        elif refused is False:
            self.accept()

    def reset(self) -> None:
        """Default behaviour, empty records, port open."""
        with self._lock:
            self.behaviour = Behaviour()
            self.requests.clear()
            self.generations.clear()
            self.disconnects = 0
            self.native_chats = 0
            self.jit_loaded.clear()
        self.downloads.clear()
        self.accept()

    def paths(self) -> list[str]:
        return [request.path for request in self.requests]

    def last_request(self, path: str | None = None) -> RecordedRequest:
        matching = [r for r in self.requests if path is None or r.path == path]
        if not matching:
            raise AssertionError(f"no request to {path or 'any path'}; got {self.paths()}")
        return matching[-1]

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "disconnects": self.disconnects,
                "refused": self.refused,
                "jit_loaded": list(self.jit_loaded),
                "native_chats": self.native_chats,
                "requests": [dataclasses.asdict(r) for r in self.requests],
                "generations": [dataclasses.asdict(g) for g in self.generations],
            }

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Block until `predicate()` holds (the server runs in other threads)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("the fake LM Studio did not reach the expected state")
            time.sleep(0.01)

    async def wait_for(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        """`wait_until` for async tests (does not block the event loop)."""
        import asyncio

        deadline = time.monotonic() + within
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("the fake LM Studio did not reach the expected state")
            await asyncio.sleep(0.01)

    def slot(self, slots: int) -> threading.Semaphore | None:
        """The semaphore that limits concurrent generations (None: unlimited)."""
        if slots <= 0:
            return None
        with self._lock:
            if self._slots is None or self._slots[0] != slots:
                self._slots = (slots, threading.Semaphore(slots))
            return self._slots[1]

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            self._ids += 1
            n = self._ids
        return f"{prefix}{n:021d}"[: len(prefix) + 21]


class _ClientGone(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 30

    # --- plumbing -------------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        # Headers and body are separate writes: without this, Nagle + delayed ACK cost 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.fake._lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.fake._lock:
            self.server.connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_response(self, code: int, message: str | None = None) -> None:
        # Express sends no Server header.
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_OPTIONS(self) -> None:
        self._dispatch("OPTIONS")

    def _send_json(self, status: int, body: object, content_type: str | None = None) -> None:
        data = body if isinstance(body, bytes) else wire.dumps(body)
        self.send_response(status)
        self.send_header("X-Powered-By", "Express")
        self.send_header("Content-Type", content_type or "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", wire.etag(data))
        self.send_header("Connection", "keep-alive")
        self.send_header("Keep-Alive", "timeout=5")
        self.end_headers()
        self.wfile.write(data)

    def _start_sse(self, content_type: str = "text/event-stream") -> None:
        self.send_response(200)
        self.send_header("X-Powered-By", "Express")
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "keep-alive")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _write_chunk(self, data: bytes) -> None:
        try:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        except OSError as exc:
            raise _ClientGone from exc

    def _end_chunks(self) -> None:
        try:
            self.wfile.write(b"0\r\n\r\n")
        except OSError as exc:
            raise _ClientGone from exc

    def _client_gone(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _wait(self, seconds: float) -> None:
        """Sleep, noticing a client that goes away (raises `_ClientGone`)."""
        deadline = time.monotonic() + seconds
        while True:
            if self._client_gone():
                raise _ClientGone
            left = deadline - time.monotonic()
            if left <= 0 or self.server.fake._stopping.is_set():
                return
            time.sleep(min(left, 0.005))

    def _abort(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # --- routing --------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        path = urlsplit(self.path).path
        if path == "/__control":
            self._control(method, body)
            return
        if self.server.control_only:
            self._send_json(404, {"error": "control listener: only /__control"})
            return
        with fake._lock:
            b = fake.behaviour
            headers = {k.lower(): v for k, v in self.headers.items()}
            fake.requests.append(RecordedRequest(method, path, headers, body))
        if b.silent:
            self._silent()
            return
        if path == "/lmstudio-greeting" and method == "GET":
            self._send_json(200, {"lmstudio": True})
            return
        if b.auth_required and (path.startswith(("/v1/", "/api/"))) and not self._authorized(b):
            return
        request = body if isinstance(body, dict) else {}
        native = path.startswith("/api/") and b.native_api
        if path.endswith("/models") and method == "GET" and not b.download_status_route:
            fake.downloads.advance_all(b)  # an older build: its downloads show in the list
        if method == "GET" and path == "/v1/models":
            self._send_json(200, self._v1_models(b))
        elif method == "GET" and path == "/api/v0/models" and native:
            self._send_json(200, {"object": "list", "data": self._v0_models(b, public=True)})
        elif method == "POST" and path == "/api/v1/models/download" and native and b.api_v1:
            self._send_json(*fake.downloads.start(b, request))
        elif (
            method == "GET"
            and path.startswith("/api/v1/models/download/status/")
            and native
            and b.api_v1
            and b.download_status_route
        ):
            job_id = unquote(path.removeprefix("/api/v1/models/download/status/"))
            self._send_json(*fake.downloads.status(b, job_id))
        elif method == "GET" and path.startswith("/api/v0/models/") and native:
            self._v0_model(b, unquote(path.removeprefix("/api/v0/models/")))
        elif method == "GET" and path == "/api/v1/models" and native and b.api_v1:
            self._send_json(200, {"models": [wire.api_v1_model(m) for m in self._v0_models(b)]})
        elif method == "POST" and path == "/api/v1/models/load" and native and b.api_v1:
            self._load(b, request)
        elif method == "POST" and path == "/api/v1/models/unload" and native and b.api_v1:
            self._unload(b, request)
        elif method == "POST" and path == "/api/v1/chat" and native and b.api_v1:
            self._native_chat(b, request)
        elif method == "POST" and path in ("/v1/chat/completions", "/api/v0/chat/completions"):
            _Generation(self, b, request, "chat", native).run()
        elif method == "POST" and path in ("/v1/completions", "/api/v0/completions"):
            _Generation(self, b, request, "completion", native).run()
        elif method == "POST" and path in ("/v1/embeddings", "/api/v0/embeddings"):
            self._embeddings(b, request)
        else:
            self._send_json(200, wire.unexpected_route(method, path))

    def _control(self, method: str, body: Any) -> None:
        fake = self.server.fake
        if method == "POST" and isinstance(body, dict):
            changes = dict(body)
            if changes.pop("reset", False):
                fake.reset()
            try:
                fake.configure(**changes)
            except TypeError as exc:
                self._send_json(400, {"error": str(exc)})
                return
        self._send_json(200, fake.state())

    def _silent(self) -> None:
        fake = self.server.fake
        while not fake._stopping.is_set() and not self._client_gone():
            time.sleep(0.01)
        self._abort()

    def _authorized(self, b: Behaviour) -> bool:
        header = self.headers.get("Authorization") or ""
        if not header.startswith("Bearer "):
            self._send_json(401, wire.AUTH_MISSING)
            return False
        token = header.removeprefix("Bearer ").strip()
        if b.auth_echo and token != b.auth_token:
            body = {"error": {"message": f"Invalid API token {token!r} (header: {header})"}}
            self._send_json(401, body)
            return False
        if not wire.TOKEN_PATTERN.fullmatch(token):
            self._send_json(401, wire.auth_malformed(token))
            return False
        if token != b.auth_token:
            self._send_json(401, wire.auth_invalid())
            return False
        return True

    # --- models ---------------------------------------------------------------------------

    def _v0_models(self, b: Behaviour, *, public: bool = False) -> list[dict[str, Any]]:
        """The model entries (`public`: without the fake's own `_` keys, as listed)."""
        with self.server.fake._lock:
            models = [
                {k: v for k, v in m.items() if not (public and k.startswith("_"))} for m in b.models
            ]
        if b.no_model_loaded:
            for model in models:
                model["state"] = "not-loaded"
                model.pop("loaded_context_length", None)
        return models

    def _v1_models(self, b: Behaviour) -> dict[str, Any]:
        models = self._v0_models(b)
        listed = models if b.jit else [m for m in models if m["state"] == "loaded"]
        data = [
            {"id": m["id"], "object": "model", "owned_by": "organization_owner"} for m in listed
        ]
        return {"data": data, "object": "list"}

    def _v0_model(self, b: Behaviour, model_id: str) -> None:
        found = next((m for m in self._v0_models(b, public=True) if m["id"] == model_id), None)
        if found is None:
            self._send_json(404, wire.invalid_model(model_id, [m["id"] for m in b.models]))
        else:
            self._send_json(200, found)

    def resolve(
        self, b: Behaviour, requested: object, embedding: bool
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """(model entry, None) or (None, error body) as LM Studio would decide."""
        with self.server.fake._lock:
            models = b.models
            known = [m["id"] for m in models]
            if b.no_model_loaded:
                return None, wire.NO_MODELS_LOADED
            if b.unknown_model:
                return None, wire.invalid_model(str(requested or "default"), known)
            fits = [m for m in models if (m["type"] == "embeddings") == embedding]
            loaded = [m for m in fits if m["state"] == "loaded"]
            if not requested:
                return (loaded[0], None) if loaded else (None, wire.NO_MODELS_LOADED)
            wanted = str(requested).split("@")[0]
            wanted = wanted.rsplit(":", 1)[0] if wanted.rsplit(":", 1)[-1].isdigit() else wanted
            entry = next((m for m in models if m["id"] in (requested, wanted)), None)
            if entry is None:
                return None, wire.invalid_model(str(requested), known)
            if embedding and entry["type"] != "embeddings":
                return None, wire.load_failed(str(requested))
            if entry["state"] == "loading":  # another request is loading it: wait with it
                loading = -1.0
            elif entry["state"] != "loaded":
                if not b.jit:
                    if not any(m["state"] == "loaded" for m in models):
                        return None, wire.NO_MODELS_LOADED
                    return None, wire.invalid_model(str(requested), known)
                self._just_in_time(b, entry)
                loading = b.load_delay
                entry["state"] = "loading" if loading else "loaded"  # loaded just in time
            else:
                loading = 0.0
        if loading > 0:
            self._jit_loading(entry, loading)
        elif loading < 0:
            while entry["state"] == "loading" and not self.server.fake._stopping.is_set():
                time.sleep(0.01)
        return entry, None

    def _jit_loading(self, entry: dict[str, Any], seconds: float, on_step: Any = None) -> None:
        """A just-in-time load: the state is `loading` for `seconds` (LM Studio finishes a load
        even when the client leaves), then `loaded`; `on_step(fraction)` as it goes."""
        fake = self.server.fake
        started = time.monotonic()
        while (done := time.monotonic() - started) < seconds and not fake._stopping.is_set():
            if on_step is not None:
                on_step(min(done / seconds, 1.0))
            time.sleep(min(0.25, seconds / 8))
        with fake._lock:
            entry["state"] = "loaded"
            entry["loaded_context_length"] = min(4096, entry.get("max_context_length") or 4096)

    def _just_in_time(self, b: Behaviour, entry: dict[str, Any]) -> None:
        """Record a just-in-time load; with auto-evict, unload the previous JIT model."""
        fake = self.server.fake
        if b.auto_evict:
            for model in b.models:
                if model["id"] in fake.jit_loaded and model is not entry:
                    model["state"] = "not-loaded"
                    model.pop("loaded_context_length", None)
                    model.pop("_load_config", None)
            fake.jit_loaded.clear()
        fake.jit_loaded.append(entry["id"])

    def _load(self, b: Behaviour, request: dict[str, Any]) -> None:
        """`POST /api/v1/models/load`: blocks while loading (state `loading`), then answers
        like LM Studio 0.4; not a JIT load, so nothing is auto-evicted."""
        fake = self.server.fake
        requested = request.get("model")
        with fake._lock:
            entry = next((m for m in b.models if m["id"] == requested), None)
            if not isinstance(requested, str) or entry is None:
                self._send_json(
                    400, wire.invalid_model(str(requested), [m["id"] for m in b.models])
                )
                return
            previous = entry["state"]
            entry["state"] = "loading"
            entry.pop("loaded_context_length", None)
        started = time.monotonic()
        # LM Studio finishes a load even when the client leaves.
        while time.monotonic() - started < b.load_delay and not fake._stopping.is_set():
            time.sleep(0.01)
        with fake._lock:
            if b.load_failure is not None:
                entry["state"] = "not-loaded" if previous != "loaded" else previous
                failed = True
            else:
                entry["state"] = "loaded"
                context = request.get("context_length")
                entry["loaded_context_length"] = (
                    context
                    if isinstance(context, int)
                    else min(4096, entry.get("max_context_length") or 4096)
                )
                # what `/api/v1/models` reads back (loaded_instances[].config), as 0.4 does
                entry["_load_config"] = {
                    "context_length": entry["loaded_context_length"],
                    "eval_batch_size": 512,
                    "parallel": 4,
                    "flash_attention": request.get("flash_attention", True),
                    "offload_kv_cache_to_gpu": request.get("offload_kv_cache_to_gpu", True),
                }
                if entry["id"] in fake.jit_loaded:
                    fake.jit_loaded.remove(entry["id"])
                failed = False
        if failed:
            self._send_json(400, wire.load_failed(requested, b.load_failure or ""))
            return
        answer: dict[str, Any] = {
            "type": "embedding" if entry["type"] == "embeddings" else "llm",
            "instance_id": requested,
            "load_time_seconds": round(time.monotonic() - started, 3),
            "status": "loaded",
        }
        if request.get("echo_load_config"):
            answer["load_config"] = dict(entry["_load_config"])
        self._send_json(200, answer)

    def _unload(self, b: Behaviour, request: dict[str, Any]) -> None:
        fake = self.server.fake
        instance = request.get("instance_id")
        with fake._lock:
            entry = next(
                (m for m in b.models if m["id"] == instance and m["state"] == "loaded"), None
            )
            if entry is not None:
                entry["state"] = "not-loaded"
                entry.pop("loaded_context_length", None)
                entry.pop("_load_config", None)
                if entry["id"] in fake.jit_loaded:
                    fake.jit_loaded.remove(entry["id"])
        if entry is None:
            self._send_json(400, wire.invalid_model(str(instance), [m["id"] for m in b.models]))
            return
        self._send_json(200, {"instance_id": instance})

    # --- native chat (LM Studio 0.4) ---------------------------------------------------------

    def _native_chat(self, b: Behaviour, request: dict[str, Any]) -> None:
        """`POST /api/v1/chat`, streamed with named events as in
        `shared/lmstudio/fixtures/api_v1_chat_stream.txt`: `model_load.*` when the model is
        loaded for this request, `prompt_processing.*`, `message.*`, then `chat.end`."""
        fake = self.server.fake
        requested = request.get("model")
        with fake._lock:
            entry = next((m for m in b.models if m["id"] == requested), None)
            if entry is None:
                known = [m["id"] for m in b.models]
                self._send_json(400, wire.invalid_model(str(requested), known))
                return
            load = entry["state"] != "loaded"
            if load:
                self._just_in_time(b, entry)
                entry["state"] = "loading"
            fake.native_chats += 1
        if not request.get("stream"):
            if load:
                self._jit_loading(entry, b.load_delay)
            self._send_json(200, wire.native_chat_result(str(requested), "Hi", load))
            return
        self._start_sse()

        def send(kind: str, **fields: Any) -> None:
            data = json.dumps({"type": kind, **fields})
            self._write_chunk(f"event: {kind}\ndata: {data}\n\n".encode())

        try:
            send("chat.start", model_instance_id=requested)
            if load:
                send("model_load.start", model_instance_id=requested)
                self._jit_loading(
                    entry,
                    b.load_delay,
                    lambda f: send(
                        "model_load.progress", model_instance_id=requested, progress=round(f, 2)
                    ),
                )
                send("model_load.end", model_instance_id=requested, load_time_seconds=b.load_delay)
            send("prompt_processing.start")
            send("prompt_processing.end")
            send("message.start")
            send("message.delta", content="Hi")
            send("message.end")
            send("chat.end", result=wire.native_chat_result(str(requested), "Hi", load))
            self._end_chunks()
        except _ClientGone:
            if load:  # LM Studio finishes a load even when the client leaves
                self._jit_loading(entry, 0.0)
            self.close_connection = True

    # --- embeddings -----------------------------------------------------------------------

    def _embeddings(self, b: Behaviour, request: dict[str, Any]) -> None:
        if b.http_status is not None:
            self._send_json(b.http_status, b.http_body or {"error": "Internal Server Error"})
            return
        entry, error = self.resolve(b, request.get("model"), embedding=True)
        if error is not None or entry is None:
            self._send_json(400, error)
            return
        texts = request.get("input")
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            self._send_json(400, wire.INVALID_INPUT)
            return
        data = [
            {
                "object": "embedding",
                "embedding": (
                    bag_of_words_vector(text, b.embedding_dimensions)
                    if b.embedding_kind == "words"
                    else wire.embedding_vector(text, b.embedding_dimensions)
                ),
                "index": i,
            }
            for i, text in enumerate(texts)
        ]
        usage = {"prompt_tokens": 0, "total_tokens": 0}
        self._send_json(
            200,
            {
                "object": "list",
                "data": data,
                "model": request.get("model") or entry["id"],
                "usage": usage,
            },
        )


class _Generation:
    """One chat or text completion: validation, faults, then the scripted answer."""

    def __init__(
        self,
        handler: _Handler,
        b: Behaviour,
        request: dict[str, Any],
        kind: Literal["chat", "completion"],
        native: bool,
    ) -> None:
        self.h = handler
        self.b = b
        self.request = request
        self.kind = kind
        self.native = native
        self.fake = handler.server.fake
        options = request.get("stream_options")
        self.include_usage = isinstance(options, dict) and options.get("include_usage") is True
        self.stream = request.get("stream") is True and not b.ignore_stream

    def run(self) -> None:
        b, h = self.b, self.h
        if b.error_200 is not None:
            h._send_json(200, {"error": b.error_200})
            return
        if b.http_status is not None:
            h._send_json(b.http_status, b.http_body or {"error": "Internal Server Error"})
            return
        if b.crashed:
            h._send_json(400, wire.CRASHED)
            return
        if b.garbage_body:
            h._send_json(200, b"<html><body>Bad Gateway</body></html>\n")
            return
        entry, error = h.resolve(b, self.request.get("model"), embedding=False)
        if error is not None or entry is None:
            h._send_json(400, error)
            return
        self.model = str(self.request.get("model") or entry["id"])
        self.entry = entry
        draft = self.request.get("draft_model")
        if draft is not None and not any(m["id"] == draft for m in b.models):
            h._send_json(400, wire.invalid_model(str(draft), [m["id"] for m in b.models]))
            return
        if self.kind == "chat" and not isinstance(self.request.get("messages"), list):
            h._send_json(400, wire.INVALID_MESSAGES)
            return
        response_format = self.request.get("response_format")
        if isinstance(response_format, dict) and response_format.get("type") == "json_object":
            h._send_json(400, wire.JSON_OBJECT_UNSUPPORTED)
            return
        prompt = self._prompt_text()
        special = 0
        for token in b.single_tokens:
            special += prompt.count(token)
            prompt = prompt.replace(token, "")
        self.prompt_tokens = wire.approx_tokens(prompt) + special
        n_ctx = b.context_length or entry.get("loaded_context_length") or 4096
        if b.context_overflow or (b.context_length and self.prompt_tokens > b.context_length):
            tokens = max(self.prompt_tokens, n_ctx + 1)
            if self.stream:
                h._start_sse()
                h._write_chunk(wire.error_frame(wire.context_overflow_stream(tokens, n_ctx)))
                h._end_chunks()
            else:
                h._send_json(400, wire.context_overflow_nonstream(tokens, n_ctx))
            return
        self._answer()

    def _prompt_text(self) -> str:
        if self.kind == "completion":
            return str(self.request.get("prompt") or "")
        messages = self.request.get("messages") or []
        return "".join(str(m.get("content") or "") for m in messages if isinstance(m, dict))

    def _script(self) -> tuple[list[tuple[str, str]], list[dict[str, Any]], str]:
        """(pieces as (field, text), tool calls, finish reason)."""
        b = self.b
        reply: Reply = b.reply
        if self.kind == "completion" and b.completion_reply is not None:
            reply = b.completion_reply
        text = reply(self.request) if callable(reply) else reply
        finish = "stop"
        stops = self.request.get("stop")
        for stop in [stops] if isinstance(stops, str) else stops or []:
            if isinstance(stop, str) and stop and stop in text:
                text = text[: text.index(stop)]
        calls: list[dict[str, Any]] = []
        if self.kind == "chat" and self.request.get("tools") and b.tool_calls is not None:
            calls = b.tool_calls(self.request) if callable(b.tool_calls) else list(b.tool_calls)
        pieces: list[tuple[str, str]] = []
        if self.kind == "chat" and not calls:
            if b.reasoning == "think":
                text = f"<think>{b.reasoning_text}</think>\n\n{text}"
            elif b.reasoning != "none":
                pieces += [
                    (b.reasoning, t) for t in wire.split_tokens(b.reasoning_text, b.chunk_chars)
                ]
        if not calls:
            pieces += [("content", t) for t in wire.split_tokens(text, b.chunk_chars)]
        limit = self.request.get("max_tokens")
        if isinstance(limit, int) and limit > 0 and len(pieces) > limit:
            pieces, finish = pieces[:limit], "length"
        if calls:
            finish = "tool_calls"
        return pieces, calls, finish

    def _answer(self) -> None:
        pieces, calls, finish = self._script()
        record = Generation(self.h.path, self.model, self.stream, planned=len(pieces) + len(calls))
        record.queued = time.perf_counter()
        with self.fake._lock:
            self.fake.generations.append(record)
        slot = self.fake.slot(self.b.slots)
        try:
            if slot is not None:
                slot.acquire()
            record.started = time.perf_counter()
            if self.stream:
                self._stream(record, pieces, calls, finish)
            else:
                self._whole(record, pieces, calls, finish)
        except _ClientGone:
            record.disconnected = True
            with self.fake._lock:
                self.fake.disconnects += 1
            self.h.close_connection = True
        finally:
            record.ended = time.perf_counter()
            if slot is not None:
                slot.release()

    # --- non-streaming --------------------------------------------------------------------

    def _whole(
        self,
        record: Generation,
        pieces: list[tuple[str, str]],
        calls: list[dict[str, Any]],
        finish: str,
    ) -> None:
        b = self.b
        started = time.monotonic()
        self.h._wait(b.ttft + b.token_delay * max(0, len(pieces) - 1))
        if b.json_body is not None:
            self.h._send_json(200, b.json_body)
            record.finished = True
            return
        ident = self.fake._next_id("chatcmpl-" if self.kind == "chat" else "cmpl-")
        created = int(time.time())
        usage = wire.usage(self.prompt_tokens, len(pieces))
        if self.kind == "completion":
            choice: dict[str, Any] = {
                "index": 0,
                "text": "".join(t for _, t in pieces),
                "logprobs": None,
                "finish_reason": finish,
            }
            body: dict[str, Any] = {
                "id": ident,
                "object": "text_completion",
                "created": created,
                "model": self.model,
                "choices": [choice],
                "usage": usage,
            }
        else:
            message: dict[str, Any] = {"role": "assistant"}
            if not calls:
                message["content"] = "".join(t for f, t in pieces if f == "content")
                reasoning = "".join(t for f, t in pieces if f != "content")
                if reasoning:
                    message[b.reasoning] = reasoning
            message["tool_calls"] = [self._call(i, c) for i, c in enumerate(calls)]
            body = {
                "id": ident,
                "object": "chat.completion",
                "created": created,
                "model": self.model,
                "choices": [
                    {"index": 0, "logprobs": None, "finish_reason": finish, "message": message}
                ],
                "usage": usage,
                "stats": {},
                "system_fingerprint": self.model,
            }
        seconds = max(time.monotonic() - started - b.ttft, 0.0)
        if self.native:
            body["stats"] = wire.stats(len(pieces), b.ttft, seconds, "eosFound")
            if b.tokens_per_second is not None:
                body["stats"]["tokens_per_second"] = b.tokens_per_second
            draft = self.request.get("draft_model")
            if isinstance(draft, str) and draft:
                body["stats"].update(wire.draft_stats(draft, len(pieces), b.draft_acceptance))
                body["stats"]["tokens_per_second"] *= b.draft_speed_up
            body.update(wire.native_extras(self.entry))
        if b.timings:
            body["timings"] = wire.timings(self.prompt_tokens, len(pieces), b.ttft, seconds)
        self.h._send_json(200, body)
        record.sent = len(pieces)
        record.finished = True

    def _call(self, index: int, call: dict[str, Any]) -> dict[str, Any]:
        ident = "" if self.b.tool_call_omit_ids else str(call.get("id") or 365174485 + index)
        arguments = call.get("arguments", {})
        return {
            "id": ident,
            "type": "function",
            "function": {
                "name": call["name"],
                "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
            },
        }

    # --- streaming ------------------------------------------------------------------------

    def _frames(
        self, pieces: list[tuple[str, str]], calls: list[dict[str, Any]], finish: str
    ) -> Iterator[tuple[bytes, bool]]:
        """(frame bytes, is a token) in order."""
        b = self.b
        space = not b.sse_no_space
        ident = self.fake._next_id("chatcmpl-" if self.kind == "chat" else "cmpl-")
        created = int(time.time())
        started = time.monotonic()
        for field_name, text in pieces:
            if self.kind == "completion":
                chunk = wire.completion_chunk(ident, created, self.model, text)
            else:
                delta = {"role": "assistant", field_name: text}
                chunk = wire.chat_chunk(ident, created, self.model, delta)
            yield wire.frame(chunk, space=space), True
        for index, call in enumerate(calls):
            whole = self._call(index, call)
            first: dict[str, Any] = {"index": index, "type": "function"}
            if whole["id"]:
                first["id"] = whole["id"]
            first["function"] = {"name": whole["function"]["name"], "arguments": ""}
            yield self._tool_frame(ident, created, first, space), True
            arguments = whole["function"]["arguments"]
            for i in range(0, len(arguments), 6):
                later: dict[str, Any] = {"index": index}
                if b.tool_call_empty_names:
                    later.update(id="", type="function")
                    later["function"] = {"name": "", "arguments": arguments[i : i + 6]}
                else:
                    later["function"] = {"arguments": arguments[i : i + 6]}
                yield self._tool_frame(ident, created, later, space), True
        if self.kind == "completion":
            last = wire.completion_chunk(ident, created, self.model, "", finish)
        else:
            last = wire.chat_chunk(ident, created, self.model, {}, finish)
        usage = wire.usage(self.prompt_tokens, len(pieces))
        if self.include_usage and b.usage == "finish":
            last["usage"] = usage
        seconds = max(time.monotonic() - started, 0.0)
        if b.timings:
            last["timings"] = wire.timings(self.prompt_tokens, len(pieces), b.ttft, seconds)
        yield wire.frame(last, space=space), False
        if self.include_usage and b.usage == "separate":
            extra = wire.chat_chunk(ident, created, self.model, {})
            extra["choices"] = []
            extra["usage"] = usage
            yield wire.frame(extra, space=space), False
        if not b.no_done:
            yield wire.done_frame(space=space), False

    def _tool_frame(self, ident: str, created: int, call: dict[str, Any], space: bool) -> bytes:
        delta = {"role": "assistant", "tool_calls": [call]}
        return wire.frame(wire.chat_chunk(ident, created, self.model, delta), space=space)

    def _send_frame(self, data: bytes) -> None:
        if not self.b.drip:
            self.h._write_chunk(data)
            return
        for i in range(0, len(data), 5):
            self.h._wait(self.b.drip)
            self.h._write_chunk(data[i : i + 5])

    def _stream(
        self,
        record: Generation,
        pieces: list[tuple[str, str]],
        calls: list[dict[str, Any]],
        finish: str,
    ) -> None:
        b, h = self.b, self.h
        h._start_sse("text/plain; charset=utf-8" if b.wrong_content_type else "text/event-stream")
        h._wait(b.ttft)
        if b.sse_body is not None:
            frames = [(part + "\n\n").encode() for part in b.sse_body.split("\n\n") if part]
            source: Iterator[tuple[bytes, bool]] = ((f, True) for f in frames)
        else:
            source = self._frames(pieces, calls, finish)
        for data, is_token in source:
            if is_token and record.sent:
                h._wait(b.token_delay)
            elif h._client_gone():
                raise _ClientGone
            if b.invalid_json_after is not None and record.sent == b.invalid_json_after:
                h._write_chunk(
                    b'data: {"id":"chatcmpl-broken","choices":[{"index":0,"delta":{"con\n\n'
                )
            if b.cut_after is not None and record.sent == b.cut_after:
                h._write_chunk(data[: len(data) // 2])
                h._abort()
                return
            if b.stall_after is not None and record.sent == b.stall_after and is_token:
                while not h._client_gone() and not self.fake._stopping.is_set():
                    time.sleep(0.01)
                raise _ClientGone
            if b.truncate_after is not None and record.sent == b.truncate_after:
                h._write_chunk(data[: len(data) // 2])
                h._end_chunks()
                return
            self._send_frame(data)
            if is_token:
                record.sent += 1
        h._end_chunks()
        record.finished = True


# --- as a process -----------------------------------------------------------------------------


class FakeLMStudioProcess:
    """The fake in a child process (`python -m tests.fakes.lmstudio_server`), driven over HTTP."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.process: subprocess.Popen[str] | None = None
        self.base_url = self.root = self.control_url = ""

    def start(self, timeout: float = 10.0) -> FakeLMStudioProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.lmstudio_server", "--port", "0", *self.args],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while not (self.root and self.control_url):
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the fake LM Studio process did not start")
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError("the fake LM Studio process exited")
            if line.startswith("LISTENING "):
                self.root = line.split()[1]
            elif line.startswith("CONTROL "):
                self.control_url = line.split()[1]
        self.base_url = f"{self.root}/v1"
        return self

    def control(self, **changes: Any) -> dict[str, Any]:
        """POST behaviour changes (`reset=True`, `refused=True`, any `Behaviour` field)."""
        request = urllib.request.Request(
            f"{self.control_url}/__control",
            data=json.dumps(changes).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            state: dict[str, Any] = json.load(response)
        return state

    def state(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.control_url}/__control", timeout=5) as response:
            state: dict[str, Any] = json.load(response)
        return state

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> FakeLMStudioProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--control-port", type=int, default=0)
    parser.add_argument("--reply", help="chat reply text")
    parser.add_argument("--completion-reply", help="/v1/completions reply text")
    parser.add_argument("--ttft", type=float, default=0.0)
    parser.add_argument("--token-delay", type=float, default=0.0)
    parser.add_argument("--behaviour", help="JSON object of Behaviour fields")
    args = parser.parse_args(argv)
    behaviour: dict[str, Any] = json.loads(args.behaviour) if args.behaviour else {}
    if args.reply is not None:
        behaviour["reply"] = args.reply
    if args.completion_reply is not None:
        behaviour["completion_reply"] = args.completion_reply
    behaviour.update(ttft=args.ttft, token_delay=args.token_delay)
    fake = FakeLMStudio(args.host, args.port, **behaviour).start(control_port=args.control_port)
    print(f"LISTENING {fake.root}", flush=True)
    print(f"CONTROL {fake.control_url}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
