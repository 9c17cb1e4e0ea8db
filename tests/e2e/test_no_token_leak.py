"""The API token never shows: run the server with a token everywhere a user can put one
(`AIGENTS_API_KEY`, `LM_API_TOKEN`, `initializationOptions`, `workspace/configuration`), debug
logging to a file, and provoke every error that could carry it (a 401 that echoes it, errors
that quote it, a refused connection, settings with the token in the wrong place). Then grep
everything the server wrote: log file, stderr, every message to the editor (logMessage,
showMessage, $/progress, aigents/status, responses) and `aigents-lsp doctor`'s output."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
from pathlib import Path

from tests.fakes.lmstudio_server import FakeLMStudio

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from fuzz_lsp import Wire, server_env

TOKEN = "sk-lm-Qz7Kp2Wd:Xv9Lm4Rt8Bn3Hs6Jy1Fc"
OTHER = "sk-lm-AAAAAAAA:BBBBBBBBBBBBBBBBBBBB"
SECRETS = (TOKEN, TOKEN.split(":")[1], TOKEN[:10], TOKEN[6:14])
URI = "file:///tmp/leak/app.py"
TEXT = "def add(a, b):\n    return "
ROOT = Path(__file__).resolve().parents[2]


def leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


def everything_written(tmp_path: Path, env: dict[str, str], said: str) -> dict[str, str]:
    """Where the token could show: messages to the editor, stderr, the log file (and its
    rotations), and `aigents-lsp doctor` / `models` run against a backend echoing it."""
    written = {
        "messages to the editor": said,
        "stderr": (tmp_path / "server.stderr").read_text(errors="replace"),
        "log file": "".join(
            p.read_text(errors="replace") for p in tmp_path.glob("server.log*") if p.is_file()
        ),
    }
    doctor_fake = FakeLMStudio(auth_required=True, auth_token=OTHER, auth_echo=True).start()
    try:
        env = {**env, "AIGENTS_API_BASE": doctor_fake.base_url}
        for args in (["doctor"], ["doctor", "--json"], ["models"]):
            done = subprocess.run(
                [sys.executable, "-m", "aigents_lsp", *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                cwd=ROOT,
            )
            written[f"aigents-lsp {' '.join(args)}"] = done.stdout + done.stderr
    finally:
        doctor_fake.stop()
    return written


async def provoke(wire: Wire, name: str, counter: list[int]) -> None:
    """A completion and a chat command, each answered (result or error) in time."""
    counter[0] += 1
    n = counter[0]
    position = {"line": 1, "character": 11}
    await wire.request(
        "textDocument/inlineCompletion",
        {"textDocument": {"uri": URI}, "position": position, "context": {"triggerKind": 1}},
        f"{name}-inline-{n}",
        20,
    )
    argument = {
        "uri": URI,
        "range": {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 0}},
        "show": False,
    }
    await wire.request(
        "workspace/executeCommand",
        {"command": "aigents.explain", "arguments": [argument]},
        f"{name}-explain-{n}",
        20,
    )


async def test_the_token_is_never_written_or_sent(tmp_path: Path) -> None:
    fake = FakeLMStudio(auth_required=True, auth_token=OTHER, auth_echo=True).start()
    wire = Wire(random.Random(3))
    wire.keep_messages = True
    wire.base_settings = {"apiKey": TOKEN, "logLevel": "debug"}
    log_file = tmp_path / "server.log"
    env = server_env(tmp_path, fake)
    env.update(
        AIGENTS_API_KEY=TOKEN,
        LM_API_TOKEN=TOKEN,
        LMSTUDIO_API_TOKEN=TOKEN,
        AIGENTS_LOG_LEVEL="debug",
        AIGENTS_LOG_FILE=str(log_file),
    )
    counter = [0]
    try:
        await wire.start(env, tmp_path / "server.stderr")
        workspace = tmp_path / "ws"
        workspace.mkdir()
        answer = await wire.request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": workspace.as_uri(),
                "capabilities": {
                    "textDocument": {"inlineCompletion": {}},
                    "workspace": {"configuration": True, "applyEdit": True},
                    "window": {"workDoneProgress": True},
                },
                "initializationOptions": {"aigents": {"apiKey": TOKEN}},
            },
            "init",
            30,
        )
        assert "result" in answer
        await wire.send_json({"jsonrpc": "2.0", "method": "initialized", "params": {}})
        await wire.send_json(
            {
                "jsonrpc": "2.0",
                "method": "textDocument/didOpen",
                "params": {
                    "textDocument": {"uri": URI, "languageId": "python", "version": 1, "text": TEXT}
                },
            }
        )
        await asyncio.sleep(0.5)
        # 1. a 401 that echoes the token it was sent (body and header)
        await provoke(wire, "echo401", counter)
        # 2. LM Studio's own 401 for a wrong token
        fake.configure(auth_echo=False)
        await provoke(wire, "lmstudio401", counter)
        # 3. errors that quote the token: HTTP 200 error, HTTP 500 body, SSE error event
        fake.configure(auth_required=False, error_200=f"the key {TOKEN} is revoked")
        await provoke(wire, "error200", counter)
        fake.configure(error_200=None, http_status=500, http_body={"error": f"key={TOKEN}"})
        await provoke(wire, "http500", counter)
        sse = 'event: error\ndata: {"error": {"message": "token ' + TOKEN + ' expired"}}\n\n'
        fake.configure(http_status=None, http_body=None, sse_body=sse)
        await provoke(wire, "sse", counter)
        # 4. nothing listening (health checks run with the token while it is away)
        fake.configure(sse_body=None)
        fake.refuse()
        await provoke(wire, "refused", counter)
        await asyncio.sleep(2.5)
        fake.accept()
        # 5. settings with the token in the wrong place or of the wrong type
        for values in (
            {"apiKey": [TOKEN]},
            {"apiKey": {"value": TOKEN}},
            {"completionTimeout": TOKEN},
            {"logLevel": TOKEN},
            {"model": 5, "chatModel": [TOKEN]},
            {TOKEN: TOKEN},
        ):
            await wire.send_json(
                {
                    "jsonrpc": "2.0",
                    "method": "workspace/didChangeConfiguration",
                    "params": {"settings": {"aigents": values}},
                }
            )
        await provoke(wire, "after-settings", counter)
        await wire.request(
            "workspace/executeCommand", {"command": "aigents.stats", "arguments": []}, "stats", 20
        )
        await asyncio.sleep(0.5)
    finally:
        await wire.stop()
        fake.stop()

    kinds = {m.get("method") for m in wire.messages if isinstance(m, dict)}
    assert {"window/showMessage", "aigents/status"} <= kinds, kinds  # the errors were told
    said = json.dumps(wire.messages)
    assert "***" in said  # the echoed token reached the editor scrubbed, not left out
    written = await asyncio.to_thread(everything_written, tmp_path, env, said)
    assert "DEBUG" in written["log file"]  # debug logging was on
    assert "401" in written["aigents-lsp doctor"] or "***" in written["aigents-lsp doctor"]
    found = {where: leaks(text) for where, text in written.items() if leaks(text)}
    excerpts = {
        where: text[max(0, text.find(found[where][0]) - 200) : text.find(found[where][0]) + 80]
        for where, text in written.items()
        if where in found
    }
    assert not found, excerpts
