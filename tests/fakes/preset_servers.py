"""Fake Ollama, llama.cpp, vLLM and OpenAI servers on 127.0.0.1, each in its real wire format.

Formats (bodies and errors) follow each project's API documentation:
- Ollama: `/api/tags`, `/api/ps`, `/api/show`, NDJSON `/api/generate` (with `suffix` for models
  whose capabilities list `insert`), `{"error": "..."}` errors; OpenAI-compatible `/v1`.
- llama.cpp `llama-server`: `/health`, `/props`, SSE `/infill` (`{"content", "stop"}` frames, no
  `[DONE]`), `/tokenize`, `{"error": {"code", "message", "type"}}` errors; OpenAI-compatible `/v1`.
- vLLM: `/v1/models` with `max_model_len`, `/tokenize` `{count, tokens, max_model_len}`, errors
  `{"object": "error", "message", "type", "param", "code"}`.
- OpenAI: Bearer key required (401 `invalid_api_key`), chat models refused on `/v1/completions`.

    fake = FakePreset("ollama", reply="a + b").start()
    fake.base_url        # http://127.0.0.1:PORT/v1
    fake.requests        # [(method, path, body), ...]
    fake.stop(); fake.start()   # down, then back on the same port
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OLLAMA_MODELS = {
    # name: (family, quantization, capabilities, trained context)
    "qwen2.5-coder:1.5b": ("qwen2", "Q4_K_M", ["completion", "insert"], 32768),
    "llama3.2:3b": ("llama", "Q4_K_M", ["completion", "tools"], 131072),
    "nomic-embed-text:latest": ("nomic-bert", "F16", ["embedding"], 2048),
}
OLLAMA_LOADED = {"qwen2.5-coder:1.5b": 4096}
VLLM_MODEL = "Qwen/Qwen2.5-Coder-1.5B-Instruct"
OPENAI_KEY = "sk-test-fakeopenai0123456789"
OPENAI_MODELS = ("gpt-4.1-mini", "gpt-3.5-turbo-instruct", "text-embedding-3-small")


class FakePreset:
    """One fake server of `kind` ("ollama", "llamacpp", "vllm", "openai")."""

    def __init__(self, kind: str, *, reply: str = "a + b", port: int = 0) -> None:
        self.kind = kind
        self.reply = reply
        self.port = port
        self.requests: list[tuple[str, str, Any]] = []
        self._server: ThreadingHTTPServer | None = None
        self.connections: set[socket.socket] = set()

    def start(self) -> FakePreset:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Down for real: the listener closed and every open (keep-alive) connection cut."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for connection in list(self.connections):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()
        self.connections.clear()

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root}/v1"

    def paths(self) -> list[str]:
        return [path for _, path, _ in self.requests]

    def bodies(self, path: str) -> list[Any]:
        return [body for _, p, body in self.requests if p == path]

    def __enter__(self) -> FakePreset:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    fake: FakePreset
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.fake.connections.add(self.connection)

    def finish(self) -> None:
        self.fake.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    # --- plumbing -------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch(None)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = raw.decode("utf-8", "replace")
        self._dispatch(body)

    def _dispatch(self, body: Any) -> None:
        path = self.path.split("?", 1)[0]
        self.fake.requests.append((self.command, path, body))
        route = getattr(self, f"_{self.fake.kind}", None)
        if route is None or not route(path, body if isinstance(body, dict) else {}):
            self._json(404, self._not_found(path))

    def _json(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, frames: list[bytes], content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for frame in frames:
            self.wfile.write(f"{len(frame):x}\r\n".encode() + frame + b"\r\n")
            self.wfile.flush()
            time.sleep(0.002)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _not_found(self, path: str) -> object:
        if self.fake.kind == "ollama":
            return "404 page not found"
        if self.fake.kind == "vllm":
            return {"detail": "Not Found"}
        return {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}}

    def _pieces(self) -> list[str]:
        words = self.fake.reply.split(" ")
        return [w if i == 0 else " " + w for i, w in enumerate(words)]

    def _sse(self, chunks: list[dict[str, Any]], done: bool = True) -> None:
        frames = [f"data: {json.dumps(c)}\n\n".encode() for c in chunks]
        if done:
            frames.append(b"data: [DONE]\n\n")
        self._stream(frames, "text/event-stream")

    def _openai_stream(self, path: str, body: dict[str, Any], model: str) -> None:
        """`/v1/completions` or `/v1/chat/completions`, streamed the OpenAI way."""
        chat = path.endswith("chat/completions")
        created = int(time.time())
        kind = "chat.completion.chunk" if chat else "text_completion"
        chunks = []
        for piece in self._pieces():
            choice: dict[str, Any] = {"index": 0, "finish_reason": None}
            if chat:
                choice["delta"] = {"content": piece}
            else:
                choice["text"] = piece
            chunks.append(
                {
                    "id": "cmpl-1",
                    "object": kind,
                    "created": created,
                    "model": model,
                    "choices": [choice],
                }
            )
        last: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
        last["delta" if chat else "text"] = {} if chat else ""
        chunks.append(
            {"id": "cmpl-1", "object": kind, "created": created, "model": model, "choices": [last]}
        )
        chunks.append(
            {
                "id": "cmpl-1",
                "object": kind,
                "created": created,
                "model": model,
                "choices": [],
                "usage": {
                    "prompt_tokens": 10,
                    "completion_tokens": len(self._pieces()),
                    "total_tokens": 13,
                },
            }
        )
        self._sse(chunks)

    def _embeddings(self, body: dict[str, Any], model: str) -> None:
        inputs = body.get("input")
        texts = inputs if isinstance(inputs, list) else [inputs]
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(str(t))), 1.0, 0.5]}
            for i, t in enumerate(texts)
        ]
        self._json(
            200,
            {
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": 3, "total_tokens": 3},
            },
        )

    # --- Ollama ---------------------------------------------------------------------------------

    def _ollama(self, path: str, body: dict[str, Any]) -> bool:
        if path == "/" and self.command == "GET":
            data = b"Ollama is running"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif path == "/api/tags":
            self._json(
                200,
                {
                    "models": [
                        {
                            "name": name,
                            "model": name,
                            "modified_at": "2026-10-01T10:00:00Z",
                            "size": 986062089,
                            "digest": "a" * 64,
                            "details": {
                                "parent_model": "",
                                "format": "gguf",
                                "family": family,
                                "families": [family],
                                "parameter_size": "1.5B",
                                "quantization_level": quant,
                            },
                        }
                        for name, (family, quant, _, _) in OLLAMA_MODELS.items()
                    ]
                },
            )
        elif path == "/api/ps":
            self._json(
                200,
                {
                    "models": [
                        {
                            "name": name,
                            "model": name,
                            "size": 1,
                            "digest": "a" * 64,
                            "details": {"family": OLLAMA_MODELS[name][0]},
                            "expires_at": "2026-12-01T10:00:00Z",
                            "size_vram": 0,
                            "context_length": ctx,
                        }
                        for name, ctx in OLLAMA_LOADED.items()
                    ]
                },
            )
        elif path == "/api/show":
            name = body.get("model") or body.get("name")
            if name not in OLLAMA_MODELS:
                self._json(404, {"error": f"model '{name}' not found"})
                return True
            family, quant, caps, trained = OLLAMA_MODELS[name]
            self._json(
                200,
                {
                    "modelfile": f"FROM {name}",
                    "parameters": 'stop "<|endoftext|>"',
                    "template": "{{ .Prompt }}",
                    "details": {"family": family, "quantization_level": quant},
                    "model_info": {
                        "general.architecture": family,
                        f"{family}.context_length": trained,
                    },
                    "capabilities": caps,
                },
            )
        elif path == "/api/generate":
            self._ollama_generate(body)
        elif path == "/v1/models":
            self._json(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": name, "object": "model", "created": 1, "owned_by": "library"}
                        for name in OLLAMA_MODELS
                    ],
                },
            )
        elif path in ("/v1/chat/completions", "/v1/completions"):
            model = body.get("model")
            if not model:
                self._json(
                    400,
                    {
                        "error": {
                            "message": "model is required",
                            "type": "invalid_request_error",
                            "param": None,
                            "code": None,
                        }
                    },
                )
            elif model not in OLLAMA_MODELS:
                self._json(
                    404,
                    {
                        "error": {
                            "message": f'model "{model}" not found, try pulling it first',
                            "type": "api_error",
                            "param": None,
                            "code": None,
                        }
                    },
                )
            else:
                self._openai_stream(path, body, model)
        elif path == "/v1/embeddings":
            self._embeddings(body, str(body.get("model")))
        else:
            return False
        return True

    def _ollama_generate(self, body: dict[str, Any]) -> None:
        name = body.get("model")
        if name not in OLLAMA_MODELS:
            self._json(404, {"error": f'model "{name}" not found, try pulling it first'})
            return
        if "suffix" in body and "insert" not in OLLAMA_MODELS[name][2]:
            self._json(400, {"error": f"registry.ollama.ai/library/{name} does not support insert"})
            return
        stamp = "2026-11-25T10:00:00.000000Z"
        lines = [
            {"model": name, "created_at": stamp, "response": piece, "done": False}
            for piece in self._pieces()
        ]
        lines.append(
            {
                "model": name,
                "created_at": stamp,
                "response": "",
                "done": True,
                "done_reason": "stop",
                "context": [1, 2, 3],
                "total_duration": 90_000_000,
                "load_duration": 1_000_000,
                "prompt_eval_count": 12,
                "prompt_eval_duration": 20_000_000,
                "eval_count": len(lines),
                "eval_duration": 60_000_000,
            }
        )
        self._stream([json.dumps(line).encode() + b"\n" for line in lines], "application/x-ndjson")

    # --- llama.cpp ------------------------------------------------------------------------------

    def _llamacpp(self, path: str, body: dict[str, Any]) -> bool:
        model = "qwen2.5-coder-1.5b-q8_0.gguf"
        if path == "/health":
            self._json(200, {"status": "ok"})
        elif path == "/props":
            self._json(
                200,
                {
                    "default_generation_settings": {"n_ctx": 8192, "params": {}},
                    "total_slots": 1,
                    "model_path": f"/models/{model}",
                    "chat_template": "",
                    "build_info": "b6000-fake",
                },
            )
        elif path == "/v1/models":
            self._json(
                200,
                {
                    "object": "list",
                    "data": [
                        {
                            "id": model,
                            "object": "model",
                            "created": 1,
                            "owned_by": "llamacpp",
                            "meta": {
                                "vocab_type": 2,
                                "n_vocab": 151936,
                                "n_ctx_train": 32768,
                                "n_embd": 1536,
                                "n_params": 1543714304,
                                "size": 1,
                            },
                        }
                    ],
                },
            )
        elif path == "/tokenize":
            content = str(body.get("content", ""))
            self._json(200, {"tokens": list(range(len(content.split())))})
        elif path == "/infill":
            if not isinstance(body.get("input_prefix"), str):
                self._json(
                    400,
                    {
                        "error": {
                            "code": 400,
                            "message": '"input_prefix" is required',
                            "type": "invalid_request_error",
                        }
                    },
                )
                return True
            frames = [
                {
                    "index": 0,
                    "content": piece,
                    "tokens": [1],
                    "stop": False,
                    "id_slot": -1,
                    "tokens_predicted": i + 1,
                    "tokens_evaluated": 12,
                }
                for i, piece in enumerate(self._pieces())
            ]
            frames.append(
                {
                    "index": 0,
                    "content": "",
                    "tokens": [],
                    "stop": True,
                    "stop_type": "eos",
                    "model": model,
                    "tokens_predicted": len(frames),
                    "tokens_evaluated": 12,
                    "timings": {
                        "prompt_n": 12,
                        "prompt_ms": 8.0,
                        "predicted_n": len(frames),
                        "predicted_ms": 30.0,
                        "predicted_per_second": 100.0,
                    },
                }
            )
            if body.get("stream"):
                self._sse(frames, done=False)
            else:
                self._json(200, {"content": self.fake.reply, "stop": True})
        elif path in ("/v1/chat/completions", "/v1/completions"):
            self._openai_stream(path, body, model)
        elif path == "/v1/embeddings":
            self._embeddings(body, model)
        else:
            return False
        return True

    # --- vLLM -----------------------------------------------------------------------------------

    def _vllm(self, path: str, body: dict[str, Any]) -> bool:
        if path == "/health":
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/v1/models":
            self._json(
                200,
                {
                    "object": "list",
                    "data": [
                        {
                            "id": VLLM_MODEL,
                            "object": "model",
                            "created": 1,
                            "owned_by": "vllm",
                            "root": VLLM_MODEL,
                            "parent": None,
                            "max_model_len": 32768,
                            "permission": [{"id": "modelperm-1", "object": "model_permission"}],
                        }
                    ],
                },
            )
        elif path == "/tokenize":
            prompt = str(body.get("prompt", ""))
            tokens = list(range(len(prompt.split())))
            self._json(200, {"count": len(tokens), "max_model_len": 32768, "tokens": tokens})
        elif path in ("/v1/chat/completions", "/v1/completions"):
            model = body.get("model")
            if model != VLLM_MODEL:
                self._json(
                    404,
                    {
                        "object": "error",
                        "message": f"The model `{model}` does not exist.",
                        "type": "NotFoundError",
                        "param": None,
                        "code": 404,
                    },
                )
            else:
                self._openai_stream(path, body, model)
        else:
            return False
        return True

    # --- OpenAI ---------------------------------------------------------------------------------

    def _openai(self, path: str, body: dict[str, Any]) -> bool:
        given = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if given != OPENAI_KEY:
            shown = f"{given[:3]}*****{given[-4:]}" if given else ""
            self._json(
                401,
                {
                    "error": {
                        "message": f"Incorrect API key provided: {shown}. You can find your "
                        "API key at https://platform.openai.com/account/api-keys."
                        if given
                        else "You didn't provide an API key.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "invalid_api_key" if given else None,
                    }
                },
            )
            return True
        if path == "/v1/models":
            self._json(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": m, "object": "model", "created": 1, "owned_by": "system"}
                        for m in OPENAI_MODELS
                    ],
                },
            )
        elif path == "/v1/completions" and "instruct" not in str(body.get("model")):
            self._json(
                404,
                {
                    "error": {
                        "message": "This is a chat model and not supported in the v1/completions "
                        "endpoint. Did you mean to use v1/chat/completions?",
                        "type": "invalid_request_error",
                        "param": "model",
                        "code": None,
                    }
                },
            )
        elif path in ("/v1/chat/completions", "/v1/completions"):
            self._openai_stream(path, body, str(body.get("model")))
        elif path == "/v1/embeddings":
            self._embeddings(body, str(body.get("model")))
        else:
            return False
        return True
