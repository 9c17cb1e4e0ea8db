"""LSP fuzzer: random valid and invalid messages to the real server over stdio.

    python benchmarks/fuzz_lsp.py --messages 20000 --seed 1 [--sequence 40]

The server runs as a child process (`python -m aigents_lsp`) against an in-process fake
LM Studio. The framing is written here, byte by byte, so anything can be sent: bad JSON,
invalid UTF-8, wrong types, missing fields, huge or odd ids, unknown methods, absurd positions,
didOpen/didChange/didClose in any order, completion, inline completion, code actions, commands
with random arguments, `$/cancelRequest` of random ids, notifications with ids, batch arrays,
bad headers. Requests the server sends us (configuration, applyEdit, progress, ...) are
answered like an editor would, or with an error, or with junk, or late.

After every sequence: the server is alive, every message that was a request (a JSON object
with a `method` and an integer or string `id`) got exactly one well-formed response (a
`result` or an `error` with an integer code and a message), and a well-formed completion
request is answered correctly. A failure prints the seed and the sequence that caused it.

Not sent: `initialize` again, `shutdown` and `exit` (they end the session by design), and
settings that point the server at another backend or model (only the fake is ever used).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.lmstudio_server import FakeLMStudio  # noqa: E402

from aigents_lsp.lsp.features import create_server  # noqa: E402

PROBE_REPLY = "True"
URIS = [f"file:///tmp/fuzz/doc{i}.py" for i in range(6)] + [
    "file:///tmp/fuzz/notes.md",
    "untitled:Untitled-1",
    "file:///tmp/fuzz/%E2%9C%93%20space.py",
    "file:///etc/../tmp/fuzz/.env",
]
# Every command the server registers (so a new one is fuzzed too), an unknown one and none.
COMMANDS = [*sorted(create_server().protocol.fm.commands), "aigents.noSuchCommand", ""]
REQUEST_METHODS = [
    "textDocument/inlineCompletion",
    "textDocument/completion",
    "textDocument/codeAction",
    "codeAction/resolve",
    "workspace/executeCommand",
    "textDocument/hover",
    "completionItem/resolve",
    "aigents/noSuchMethod",
    "$/noSuchRequest",
    "",
]
NOTIFICATION_METHODS = [
    "textDocument/didOpen",
    "textDocument/didChange",
    "textDocument/didClose",
    "textDocument/didSave",
    "workspace/didChangeConfiguration",
    "workspace/didChangeWorkspaceFolders",
    "window/workDoneProgress/cancel",
    "$/setTrace",
    "$/cancelRequest",
    "$/noSuchNotification",
    "aigents/noSuchNotification",
]
# Settings the fuzzer may change: never the provider, the address, the models or the log file.
SETTING_KEYS = [
    "completion_temperature",
    "chatTemperature",
    "completion_max_tokens",
    "debounce_ms",
    "adaptiveDebounce",
    "completion_prompt_tokens",
    "completion_template",
    "tool_steps",
    "completion_mode",
    "log_level",
    "actions",
    "no_such_setting",
]
TEXTS = [
    "",
    "def add(a, b):\n    return ",
    "s = '😋 漢字'\nprint(s)\n",
    "x = 1\r\ny = 2\r\n",
    "\x00\x01binary\x00",
    "class A:\n    def f(self):\n        pass\n" * 20,
    "a" * 5000,
    "\n" * 300,
    "é" * 40 + "\ud83d" if False else "é" * 40,
    "API_KEY = 'sk-abcdefghijklmnopqrstuvwxyz0123456789'\n",
]


# --- messages -----------------------------------------------------------------------------------


def _junk(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value."""
    kinds = ["int", "str", "float", "bool", "null", "list", "dict", "bigint", "neg"]
    if depth > 2:
        kinds = kinds[:5]
    kind = rng.choice(kinds)
    if kind == "int":
        return rng.randint(0, 100)
    if kind == "bigint":
        return rng.choice([2**31, 2**53 + 1, 2**63, 2**80, 10**30])
    if kind == "neg":
        return -rng.randint(1, 2**40)
    if kind == "float":
        return rng.choice([0.5, -1.5, 1e308, 1e-300, 3.0])
    if kind == "str":
        return rng.choice(["", "x", "😋", "a" * rng.randint(1, 3000), "\x00", "file:///x"])
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "list":
        return [_junk(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {
        rng.choice(["uri", "range", "x", "line", "textDocument", "id"]): _junk(rng, depth + 1)
        for _ in range(rng.randint(0, 4))
    }


def _position(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.6:
        return {"line": rng.randint(0, 30), "character": rng.randint(0, 60)}
    if roll < 0.75:
        return {"line": rng.choice([0, 2**31 - 1, 10**6]), "character": rng.choice([0, 2**31 - 1])}
    if roll < 0.85:
        return {"line": -rng.randint(1, 9), "character": -rng.randint(1, 9)}
    if roll < 0.9:
        return {"line": "0", "character": None}
    return _junk(rng)


def _range(rng: random.Random) -> Any:
    if rng.random() < 0.9:
        return {"start": _position(rng), "end": _position(rng)}
    return _junk(rng)


def _uri(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.85:
        return rng.choice(URIS)
    if roll < 0.95:
        return rng.choice(["", "not a uri", "file://", "http://127.0.0.1:1/x.py", "file:///"])
    return _junk(rng)


def _text_document(rng: random.Random) -> Any:
    return {"uri": _uri(rng)} if rng.random() < 0.95 else _junk(rng)


def _maybe_break(rng: random.Random, params: dict[str, Any]) -> Any:
    """Sometimes drop a field, change a type, or send params that are not an object."""
    roll = rng.random()
    if roll < 0.75 or not params:
        return params
    if roll < 0.85:
        params = dict(params)
        params.pop(rng.choice(list(params)))
        return params
    if roll < 0.95:
        params = dict(params)
        params[rng.choice(list(params))] = _junk(rng)
        return params
    return rng.choice([[], [params], "params", 42, None])


def _settings(rng: random.Random) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for _ in range(rng.randint(0, 3)):
        key = rng.choice(SETTING_KEYS)
        values[key] = (
            rng.choice(["inline", "items", "off", "auto"]) if key == "completion_mode" else None
        ) or _junk(rng)
    return values


def params_for(rng: random.Random, method: str) -> Any:
    """Params for a method: mostly right, sometimes subtly or grossly wrong."""
    doc = _text_document(rng)
    if method == "textDocument/didOpen":
        params: dict[str, Any] = {
            "textDocument": {
                "uri": _uri(rng),
                "languageId": rng.choice(["python", "markdown", "plaintext", "", "rust"]),
                "version": rng.choice([0, 1, 7, -1, 2**31]),
                "text": rng.choice(TEXTS),
            }
        }
    elif method == "textDocument/didChange":
        changes: list[Any] = []
        for _ in range(rng.randint(0, 3)):
            if rng.random() < 0.2:
                changes.append({"text": rng.choice(TEXTS)})
            else:
                changes.append(
                    {"range": _range(rng), "text": rng.choice(["x", "", "😋\n", "\r\n"])}
                )
        params = {
            "textDocument": {"uri": _uri(rng), "version": rng.randint(-2, 50)},
            "contentChanges": changes,
        }
    elif method in ("textDocument/didClose", "textDocument/didSave"):
        params = {"textDocument": doc}
    elif method in ("textDocument/inlineCompletion", "textDocument/completion"):
        trigger = rng.choice([0, 1, 2, 3, 99])
        context: Any = {"triggerKind": trigger}
        if method == "textDocument/inlineCompletion" and rng.random() < 0.2:
            context["selectedCompletionInfo"] = {"range": _range(rng), "text": "x"}
        params = {"textDocument": doc, "position": _position(rng), "context": context}
    elif method == "textDocument/codeAction":
        params = {
            "textDocument": doc,
            "range": _range(rng),
            "context": {"diagnostics": rng.choice([[], [{"range": _range(rng), "message": "E"}]])},
        }
    elif method == "codeAction/resolve":
        params = {"title": "AI: explain", "data": _junk(rng), "kind": "refactor.rewrite"}
    elif method == "workspace/executeCommand":
        command = rng.choice(COMMANDS)
        argument: Any = {
            "uri": _uri(rng),
            "range": _range(rng),
            "instruction": rng.choice(["", "make it shorter", None]),
            "question": rng.choice(["", "why?", None]),
            "show": False,
            "name": rng.choice(["", "x"]),
            "conversation": rng.choice([[], [{"role": "user", "content": "hi"}], "bad"]),
            "model": rng.choice(["", "qwen2.5-coder-1.5b-instruct", "no/such-model", 5]),
            "task": rng.choice(["completion", "chat", "nonsense"]),
            "query": rng.choice(["", "def main", None]),
        }
        for key in rng.sample(list(argument), rng.randint(0, 3)):
            argument.pop(key)
        arguments = rng.choice([[argument], [argument] * 2, [], _junk(rng), [_junk(rng)]])
        params = {"command": command, "arguments": arguments}
    elif method == "workspace/didChangeConfiguration":
        params = {"settings": rng.choice([{"aigents": _settings(rng)}, None, _junk(rng)])}
    elif method == "workspace/didChangeWorkspaceFolders":
        params = {"event": {"added": [], "removed": []}}
    elif method == "window/workDoneProgress/cancel":
        params = {"token": rng.choice(["aigents-1234", 5, None])}
    elif method == "$/setTrace":
        params = {"value": rng.choice(["off", "verbose", "nonsense"])}
    else:
        params = {"textDocument": doc, "position": _position(rng)}
    return _maybe_break(rng, params)


@dataclass
class Frame:
    """What goes on the wire, and the id whose answer it expects (if any)."""

    data: bytes
    expects: Any = None  # a request id
    note: str = ""


def frame(body: bytes, headers: str | None = None) -> bytes:
    head = headers if headers is not None else f"Content-Length: {len(body)}\r\n\r\n"
    return head.encode("latin-1") + body


@dataclass
class Generator:
    rng: random.Random
    next_id: int = 0
    outstanding: list[Any] = field(default_factory=list)

    def new_id(self) -> Any:
        self.next_id += 1
        roll = self.rng.random()
        if roll < 0.5:
            return self.next_id
        if roll < 0.8:
            return f"f-{self.next_id}"
        if roll < 0.9:
            return 2**63 + self.next_id  # beyond int64
        return "ü" * 50 + str(self.next_id)

    def message(self) -> Frame:
        rng = self.rng
        roll = rng.random()
        if roll < 0.40:
            return self._request(rng.choice(REQUEST_METHODS[:5]))
        if roll < 0.72:
            return self._notification(rng.choice(NOTIFICATION_METHODS[:4]))
        if roll < 0.78:
            return self._cancel()
        if roll < 0.83:
            return self._request(rng.choice(REQUEST_METHODS + NOTIFICATION_METHODS))
        if roll < 0.86:
            return self._notification(rng.choice(REQUEST_METHODS + NOTIFICATION_METHODS))
        return self._malformed()

    def _request(self, method: str) -> Frame:
        msg_id = self.new_id()
        body = {"jsonrpc": "2.0", "id": msg_id, "method": method}
        if self.rng.random() < 0.97:
            body["params"] = params_for(self.rng, method)
        self.outstanding.append(msg_id)
        return Frame(frame(json.dumps(body).encode()), expects=msg_id, note=method)

    def _notification(self, method: str) -> Frame:
        body = {"jsonrpc": "2.0", "method": method, "params": params_for(self.rng, method)}
        return Frame(frame(json.dumps(body).encode()), note=method)

    def _cancel(self) -> Frame:
        rng = self.rng
        target = (
            rng.choice(self.outstanding)
            if self.outstanding and rng.random() < 0.7
            else rng.choice([0, -1, "nope", 2**70, None, [1], {"x": 1}])
        )
        body = {"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": target}}
        return Frame(frame(json.dumps(body).encode()), note="$/cancelRequest")

    def _malformed(self) -> Frame:
        rng = self.rng
        kind = rng.randrange(16)
        if kind == 0:
            return Frame(frame(b"{not json"), note="bad json")
        if kind == 1:
            return Frame(frame(b"\xff\xfe\x00 not utf-8"), note="invalid utf-8")
        if kind == 2:  # a request of the wrong JSON-RPC version: still a request with an id
            msg_id = self.new_id()
            body = {"jsonrpc": "1.0", "id": msg_id, "method": "textDocument/completion"}
            return Frame(frame(json.dumps(body).encode()), expects=msg_id, note="jsonrpc 1.0")
        if kind == 3:  # method of the wrong type
            msg_id = self.new_id()
            body = {"jsonrpc": "2.0", "id": msg_id, "method": rng.choice([42, None, [], {}])}
            return Frame(frame(json.dumps(body).encode()), expects=msg_id, note="method type")
        if kind == 4:  # an id of a type JSON-RPC does not allow: answered or not, no crash
            body = {"jsonrpc": "2.0", "id": rng.choice([1.5, True, [1], {"a": 1}, None])}
            body["method"] = "textDocument/completion"
            return Frame(frame(json.dumps(body).encode()), note="odd id")
        if kind == 5:  # a batch (LSP has none)
            batch = []
            expects = []
            for _ in range(rng.randint(0, 3)):
                msg_id = self.new_id()
                batch.append({"jsonrpc": "2.0", "id": msg_id, "method": "textDocument/completion"})
                expects.append(msg_id)
            return Frame(frame(json.dumps(batch).encode()), note="batch")
        if kind == 6:  # a notification method sent with an id: it is a request
            msg_id = self.new_id()
            method = rng.choice(NOTIFICATION_METHODS)
            body = {
                "jsonrpc": "2.0",
                "id": msg_id,
                "method": method,
                "params": params_for(rng, method),
            }
            return Frame(frame(json.dumps(body).encode()), expects=msg_id, note="notify+id")
        if kind == 7:  # a JSON value that is no message
            body_bytes = json.dumps(rng.choice([1, "x", None, [], True, {"a": 1}])).encode()
            return Frame(frame(body_bytes), note="not a message")
        if kind == 8:  # a response to nothing we were asked
            body = {"jsonrpc": "2.0", "id": rng.choice([1, "zz", 2**64]), "result": _junk(rng)}
            return Frame(frame(json.dumps(body).encode()), note="stray response")
        if kind == 9:  # an error response to nothing
            body = {"jsonrpc": "2.0", "id": 7, "error": {"code": "x", "message": 5}}
            return Frame(frame(json.dumps(body).encode()), note="stray error")
        if kind == 10:  # extra headers, lower-case header names, no space
            body_bytes = b'{"jsonrpc":"2.0","method":"$/noop"}'
            headers = rng.choice(
                [
                    f"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n"
                    f"Content-Length: {len(body_bytes)}\r\n\r\n",
                    f"content-length: {len(body_bytes)}\r\n\r\n",
                    f"Content-Length:{len(body_bytes)}\r\n\r\n",
                    f"X-Junk: 1\r\nContent-Length: {len(body_bytes)}\r\n\r\n",
                ]
            )
            return Frame(frame(body_bytes, headers), note="headers")
        if kind == 11:  # garbage between messages (a broken header line)
            return Frame(
                rng.choice([b"garbage\r\n", b"Content-Length: abc\r\n\r\n", b"\r\n", b"\n"]),
                note="garbage line",
            )
        if kind == 12:  # a huge body
            body = {
                "jsonrpc": "2.0",
                "method": "textDocument/didOpen",
                "params": {
                    "textDocument": {
                        "uri": rng.choice(URIS),
                        "languageId": "python",
                        "version": 1,
                        "text": "x = 1\n" * rng.randint(10_000, 200_000),
                    }
                },
            }
            return Frame(frame(json.dumps(body).encode()), note="huge didOpen")
        if kind == 13:  # deeply nested params
            depth = rng.choice([50, 500, 5000])
            msg_id = self.new_id()
            head = json.dumps({"jsonrpc": "2.0", "id": msg_id, "method": "textDocument/completion"})
            nested = "[" * depth + "1" + "]" * depth
            data = (head[:-1] + ', "params": ' + nested + "}").encode()
            # deeper than the JSON parser goes: a parse error, whose id nobody can know
            return Frame(frame(data), expects=msg_id if depth < 900 else None, note="nested")
        if kind == 14:  # a message with the jsonrpc key inside its params
            msg_id = self.new_id()
            body = {
                "jsonrpc": "2.0",
                "id": msg_id,
                "method": "workspace/executeCommand",
                "params": {"command": "aigents.stats", "arguments": [{"jsonrpc": "2.0", "id": 1}]},
            }
            return Frame(frame(json.dumps(body).encode()), expects=msg_id, note="inner jsonrpc")
        msg_id = self.new_id()  # params that are not an object, for a real method
        method = rng.choice(REQUEST_METHODS[:5])
        body = {"jsonrpc": "2.0", "id": msg_id, "method": method, "params": _junk(rng)}
        return Frame(frame(json.dumps(body).encode()), expects=msg_id, note="junk params")


# --- the wire -----------------------------------------------------------------------------------


class Wire:
    """The server process and a raw JSON-RPC reader of its stdout."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.process: asyncio.subprocess.Process | None = None
        self.responses: dict[Any, list[dict[str, Any]]] = {}
        self.notifications: Counter[str] = Counter()
        self.server_requests: Counter[str] = Counter()
        self.problems: list[str] = []
        self.received = 0
        self._reader: asyncio.Task[None] | None = None
        self._late: set[asyncio.Task[None]] = set()
        self.base_settings: dict[str, Any] = {}
        self.last: dict[str, Any] = {}  # the latest params of each notification method
        self.keep_messages = False  # keep every message the server sent (`messages`)
        self.fuzz_answers = True  # answer server requests wrongly or late now and then
        self.messages: list[Any] = []

    async def start(self, env: dict[str, str], stderr_path: Path) -> None:
        self._stderr = stderr_path.open("wb")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "aigents_lsp",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            limit=1 << 26,
        )
        self._reader = asyncio.create_task(self._read())

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def send(self, data: bytes) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(data)
        await self.process.stdin.drain()

    async def send_json(self, body: Any) -> None:
        await self.send(frame(json.dumps(body).encode()))

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        stdout = self.process.stdout
        while True:
            length = None
            while True:
                line = await stdout.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if length is None:
                self.problems.append("the server sent a message without Content-Length")
                continue
            raw = await stdout.readexactly(length)
            self.received += 1
            try:
                message = json.loads(raw)
            except ValueError:
                self.problems.append(f"the server sent invalid JSON: {raw[:200]!r}")
                continue
            self._dispatch(message)

    def _dispatch(self, message: Any) -> None:
        if self.keep_messages:
            self.messages.append(message)
        if isinstance(message, list):
            for item in message:
                self._dispatch(item)
            return
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            self.problems.append(f"not a JSON-RPC 2.0 message: {str(message)[:200]}")
            return
        method = message.get("method")
        if isinstance(method, str) and "id" in message:
            self.server_requests[method] += 1
            self._answer(message)
        elif isinstance(method, str):
            self.notifications[method] += 1
            self.last[method] = message.get("params")
        else:
            if ("result" in message) == ("error" in message):
                self.problems.append(f"a response needs result xor error: {str(message)[:200]}")
            error = message.get("error")
            if error is not None and not (
                isinstance(error, dict)
                and isinstance(error.get("code"), int)
                and isinstance(error.get("message"), str)
            ):
                self.problems.append(f"malformed error: {str(message)[:200]}")
            key = json.dumps(message.get("id"))
            self.responses.setdefault(key, []).append(message)

    def _answer(self, request: dict[str, Any]) -> None:
        """Answer a server request like an editor: mostly right, sometimes not."""
        method, msg_id = request["method"], request["id"]
        result: Any = None
        if method == "workspace/configuration":
            items = (request.get("params") or {}).get("items") or [{}]
            result = [self.base_settings for _ in items]
        elif method == "workspace/applyEdit":
            result = {"applied": self.rng.random() < 0.8}
        elif method == "window/showMessageRequest":
            actions = (request.get("params") or {}).get("actions") or []
            result = self.rng.choice(actions) if actions and self.rng.random() < 0.7 else None
        elif method == "window/showDocument":
            result = {"success": True}
        roll = self.rng.random() if self.fuzz_answers else 0.0
        if roll < 0.8:
            reply: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "result": result}
        elif roll < 0.9:
            reply = {"jsonrpc": "2.0", "id": msg_id, "error": {"code": -32603, "message": "no"}}
        else:
            reply = {"jsonrpc": "2.0", "id": msg_id, "result": _junk(self.rng)}
        if self.fuzz_answers and self.rng.random() < 0.1:  # late, as a busy editor
            task = asyncio.create_task(self._later(reply, self.rng.uniform(0.1, 1.0)))
            self._late.add(task)
            task.add_done_callback(self._late.discard)
        else:
            task = asyncio.create_task(self.send_json(reply))
            self._late.add(task)
            task.add_done_callback(self._late.discard)

    async def _later(self, reply: dict[str, Any], delay: float) -> None:
        await asyncio.sleep(delay)
        if self.alive:
            await self.send_json(reply)

    async def request(self, method: str, params: Any, msg_id: str, within: float) -> Any:
        """A well-formed request; its response (raises on timeout)."""
        key = json.dumps(msg_id)
        await self.send_json({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        deadline = time.monotonic() + within
        while not self.responses.get(key):
            if time.monotonic() > deadline or not self.alive:
                raise TimeoutError(f"no answer to {method} ({msg_id}) in {within} s")
            await asyncio.sleep(0.005)
        return self.responses.pop(key)[0]

    async def stop(self) -> None:
        for task in list(self._late):
            task.cancel()
        if self.process is not None and self.alive:
            try:
                await self.request("shutdown", None, "shutdown", 10)
                await self.send_json({"jsonrpc": "2.0", "method": "exit"})
                await asyncio.wait_for(self.process.wait(), 10)
            except (TimeoutError, ConnectionError, OSError):
                self.process.kill()
                await self.process.wait()
        if self._reader is not None:
            self._reader.cancel()
        self._stderr.close()


# --- the run ------------------------------------------------------------------------------------


@dataclass
class Report:
    seed: int
    messages: int = 0
    bytes: int = 0
    requests: int = 0
    sequences: int = 0
    probes: int = 0
    received: int = 0
    errors_by_code: Counter[int] = field(default_factory=Counter)
    internal_errors: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    failure: str | None = None
    seconds: float = 0.0
    stderr_path: str = ""
    runtime: dict[str, Any] = field(default_factory=dict)


def server_env(home: Path, fake: FakeLMStudio) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIGENTS_")}
    env.update(
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_STATE_HOME=str(home / "state"),
        LM_API_TOKEN="",
        LMSTUDIO_API_TOKEN="",
        PYTHONPATH=str(ROOT / "server"),
        AIGENTS_PROVIDER="lmstudio",
        AIGENTS_API_BASE=fake.base_url,
        AIGENTS_COMPLETION_MODEL="qwen2.5-coder-1.5b-instruct",
        AIGENTS_CHAT_MODEL="llama-3.2-3b-instruct",
        AIGENTS_COMPLETION_TIMEOUT="3",
        AIGENTS_COMMAND_TIMEOUT="3",
        AIGENTS_DEBOUNCE_MS="0",
        AIGENTS_LOG_LEVEL="warning",
    )
    return env


BASE_SETTINGS = {"debounce_ms": 0, "completion_mode": "auto", "completion_max_tokens": 64}
CAPABILITIES = {
    "textDocument": {
        "inlineCompletion": {"dynamicRegistration": True},
        "completion": {"completionItem": {"documentationFormat": ["markdown"]}},
        "codeAction": {"codeActionLiteralSupport": {"codeActionKind": {"valueSet": ["refactor"]}}},
    },
    "workspace": {
        "configuration": True,
        "applyEdit": True,
        "didChangeConfiguration": {"dynamicRegistration": True},
    },
    "window": {"workDoneProgress": True, "showDocument": {"support": True}},
    "general": {"positionEncodings": ["utf-16"]},
}


async def initialize(wire: Wire, root: Path) -> None:
    answer = await wire.request(
        "initialize",
        {
            "processId": os.getpid(),
            "rootUri": root.as_uri(),
            "capabilities": CAPABILITIES,
            "workspaceFolders": [{"uri": root.as_uri(), "name": "ws"}],
            "clientInfo": {"name": "fuzz"},
        },
        "init",
        30,
    )
    if "result" not in answer:
        raise RuntimeError(f"initialize failed: {answer}")
    await wire.send_json({"jsonrpc": "2.0", "method": "initialized", "params": {}})


async def probe(wire: Wire, number: int) -> str | None:
    """A well-formed session step after the fuzz: settings back, a document, a completion.
    None when the answer is right, else what was wrong."""
    await wire.send_json(
        {
            "jsonrpc": "2.0",
            "method": "workspace/didChangeConfiguration",
            "params": {"settings": {"aigents": BASE_SETTINGS}},
        }
    )
    uri = f"file:///tmp/fuzz/probe{number}.py"
    text = f"alive_{number} = "
    await wire.send_json(
        {
            "jsonrpc": "2.0",
            "method": "textDocument/didOpen",
            "params": {
                "textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}
            },
        }
    )
    params = {
        "textDocument": {"uri": uri},
        "position": {"line": 0, "character": len(text)},
        "context": {"triggerKind": 1},
    }
    try:
        answer = await wire.request("textDocument/inlineCompletion", params, f"probe-{number}", 20)
    except TimeoutError as exc:
        return str(exc)
    await wire.send_json(
        {
            "jsonrpc": "2.0",
            "method": "textDocument/didClose",
            "params": {"textDocument": {"uri": uri}},
        }
    )
    items = (answer.get("result") or {}).get("items") if isinstance(answer, dict) else None
    if not items or items[0].get("insertText") != PROBE_REPLY:
        return f"probe answered wrongly: {json.dumps(answer)[:300]}"
    return None


async def stats(wire: Wire, number: int) -> dict[str, Any]:
    answer = await wire.request(
        "workspace/executeCommand",
        {"command": "aigents.stats", "arguments": []},
        f"stats-{number}",
        20,
    )
    runtime: dict[str, Any] = (answer.get("result") or {}).get("runtime") or {}
    return runtime


async def fuzz(
    messages: int,
    seed: int,
    *,
    sequence: int = 40,
    answer_timeout: float = 30.0,
    log: Any = None,
) -> Report:
    """Send about `messages` fuzzed messages in sequences; stop at the first failure."""
    rng = random.Random(seed)
    report = Report(seed)
    fake = FakeLMStudio(completion_reply=PROBE_REPLY, reply="An answer.").start()
    home = Path(tempfile.mkdtemp(prefix="aigents-fuzz-"))
    (home / "ws").mkdir()
    wire = Wire(random.Random(seed + 1))
    wire.base_settings = BASE_SETTINGS
    report.stderr_path = str(home / "server.stderr")
    started = time.monotonic()
    try:
        await wire.start(server_env(home, fake), home / "server.stderr")
        await initialize(wire, home / "ws")
        generator = Generator(rng)
        while report.messages < messages and report.failure is None:
            report.sequences += 1
            sent: list[Frame] = []
            for _ in range(min(sequence, messages - report.messages)):
                item = generator.message()
                sent.append(item)
                await wire.send(item.data)
                report.messages += 1
                report.bytes += len(item.data)
                report.kinds[item.note] += 1
            expected = Counter(json.dumps(f.expects) for f in sent if f.expects is not None)
            report.requests += sum(expected.values())
            deadline = time.monotonic() + answer_timeout
            while wire.alive and time.monotonic() < deadline:
                if all(len(wire.responses.get(k, [])) >= n for k, n in expected.items()):
                    break
                await asyncio.sleep(0.01)
            missing = {
                k: n - len(wire.responses.get(k, []))
                for k, n in expected.items()
                if len(wire.responses.get(k, [])) < n
            }
            extra = {
                k: len(wire.responses.get(k, [])) - n
                for k, n in expected.items()
                if len(wire.responses.get(k, [])) > n
            }
            for key in expected:
                for response in wire.responses.pop(key, []):
                    error = response.get("error")
                    if isinstance(error, dict) and isinstance(error.get("code"), int):
                        report.errors_by_code[error["code"]] += 1
                        if error["code"] == -32603:  # an exception in a handler: a bug
                            report.internal_errors[str(error.get("message"))[:200]] += 1
            generator.outstanding.clear()
            problem = None
            if not wire.alive:
                problem = f"the server exited (code {wire.process and wire.process.returncode})"
            elif wire.problems:
                problem = "; ".join(wire.problems[:3])
            elif missing:
                notes = {json.dumps(f.expects): f.note for f in sent if f.expects is not None}
                problem = "requests never answered: " + ", ".join(
                    f"{k} ({notes.get(k)})" for k in list(missing)[:8]
                )
            elif extra:
                problem = f"requests answered more than once: {list(extra)[:8]}"
            else:
                problem = await probe(wire, report.sequences)
                report.probes += 1
            if problem is not None:
                report.failure = (
                    f"sequence {report.sequences} (seed {seed}): {problem}\n"
                    f"last messages of the sequence:\n"
                    + "\n".join(f"  {f.note}: {f.data[:300]!r}" for f in sent[-12:])
                )
            elif log is not None and report.sequences % 50 == 0:
                print(
                    f"  {report.messages} messages, {report.sequences} sequences, "
                    f"{time.monotonic() - started:.0f} s",
                    file=log,
                    flush=True,
                )
        if report.failure is None and wire.alive:
            # settled: late answers to the server's questions delivered, commands ended
            for attempt in range(50):
                report.runtime = await stats(wire, attempt)
                if not report.runtime.get("pending_requests") and not report.runtime.get("jobs"):
                    break
                await asyncio.sleep(0.2)
    finally:
        report.received = wire.received
        report.seconds = time.monotonic() - started
        await wire.stop()
        fake.stop()
    return report


def print_report(report: Report) -> None:
    print(
        f"seed {report.seed}: {report.messages} messages ({report.bytes / 1e6:.1f} MB) in "
        f"{report.sequences} sequences, {report.requests} requests, {report.probes} probes, "
        f"{report.received} messages from the server, {report.seconds:.0f} s "
        f"({report.messages / max(report.seconds, 1e-9):.0f} msg/s)"
    )
    codes = ", ".join(f"{code}: {n}" for code, n in sorted(report.errors_by_code.items()))
    print(f"error responses by code: {codes or 'none'}")
    for message, count in report.internal_errors.most_common(10):
        print(f"  internal error x{count}: {message}")
    if report.runtime:
        print(f"server at the end: {json.dumps(report.runtime)}")
    if report.failure:
        print(f"FAILED: {report.failure}")
        print(f"server stderr: {report.stderr_path}")
    else:
        print("OK: alive after every sequence, every request answered once, probes correct")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=None, help="default: random (printed)")
    parser.add_argument("--sequence", type=int, default=40, help="messages between probes")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    print(f"fuzzing with seed {seed}", flush=True)
    report = asyncio.run(fuzz(args.messages, seed, sequence=args.sequence, log=sys.stdout))
    print_report(report)
    return 1 if report.failure else 0


if __name__ == "__main__":
    raise SystemExit(main())
