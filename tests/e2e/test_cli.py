"""The command line: doctor, models, TCP serving."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient

from tests.e2e.conftest import free_port, server_env
from tests.fakes.lmstudio_server import FakeLMStudio

CLI = [sys.executable, "-m", "aigents_lsp"]


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(CLI + args, env=env, capture_output=True, text=True, timeout=60)


def test_doctor_with_nothing_listening_fails_clearly(tmp_path: Path) -> None:
    port = free_port()
    result = _run(["doctor"], server_env(tmp_path, api_base=f"http://127.0.0.1:{port}/v1"))
    assert result.returncode == 1
    assert f"nothing answers at http://127.0.0.1:{port}/v1" in result.stdout
    assert "lms server start" in result.stdout  # the fix
    assert "Traceback" not in result.stdout + result.stderr


def test_doctor_against_lmstudio_passes_every_check(
    tmp_path: Path, fake_lmstudio: FakeLMStudio
) -> None:
    fake_lmstudio.configure(
        tool_calls=[{"name": "read_file", "arguments": '{"path": "README.md"}'}]
    )
    env = server_env(
        tmp_path, api_base=fake_lmstudio.base_url, api_key="sk-lm-abcdefgh:a1b2c3d4e5f6g7h8i9j0"
    )
    result = _run(["doctor", "--json"], env)
    report = json.loads(result.stdout)
    assert result.returncode == 0, result.stdout
    verdicts = {check["name"]: check["verdict"] for check in report["checks"]}
    assert set(verdicts.values()) == {"pass"}, verdicts
    assert {
        "server reachable",
        "is LM Studio",
        "models listed",
        "a model is loaded",
        "test completion",
        "tool calling",
        "embedding model present",
    } <= set(verdicts)
    # the token was sent, and never printed
    assert fake_lmstudio.last_request().headers["authorization"].startswith("Bearer sk-lm-")
    assert "a1b2c3d4e5" not in result.stdout + result.stderr


class _OtherProgram(BaseHTTPRequestHandler):
    """Some other web server holding the port (not LM Studio, not an LLM API)."""

    def do_GET(self) -> None:
        body = b"<html><body>Not here</body></html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_doctor_names_a_port_taken_by_something_else(tmp_path: Path) -> None:
    other = ThreadingHTTPServer(("127.0.0.1", 0), _OtherProgram)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{other.server_address[1]}/v1"
        result = _run(["doctor"], server_env(tmp_path, api_base=base))
    finally:
        other.shutdown()
    assert result.returncode == 1
    assert "[FAIL] is LM Studio" in result.stdout
    assert "Another program holds this port" in result.stdout


def test_models_table(tmp_path: Path, fake_lmstudio: FakeLMStudio) -> None:
    result = _run(["models"], server_env(tmp_path, api_base=fake_lmstudio.base_url))
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "MODEL",
        "TYPE",
        "STATE",
        "CONTEXT",
        "MAX",
        "CONTEXT",
        "ARCH",
        "QUANT",
    ]
    assert any(
        line.startswith("qwen2.5-coder-1.5b-instruct") and "loaded" in line for line in lines
    )


def test_models_with_nothing_listening(tmp_path: Path) -> None:
    result = _run(["models"], server_env(tmp_path, api_base=f"http://127.0.0.1:{free_port()}/v1"))
    assert result.returncode == 1
    assert "Nothing answers" in result.stderr or "nothing answers" in result.stderr.lower()


async def test_tcp_mode_serves_lsp_on_loopback(tmp_path: Path) -> None:
    port = free_port()
    env = server_env(tmp_path, provider="lmstudio", api_base=f"http://127.0.0.1:{free_port()}/v1")
    server = await asyncio.create_subprocess_exec(
        *CLI,
        "--tcp",
        str(port),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        client = LanguageClient("tcp-test", "1")
        for _ in range(100):
            try:
                await client.start_tcp("127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.1)
        result = await client.initialize_async(
            types.InitializeParams(capabilities=types.ClientCapabilities())
        )
        assert result.server_info is not None and result.server_info.name == "aigents-lsp"
        await client.shutdown_async(None)
        client.exit(None)
    finally:
        server.kill()
        await server.wait()


async def test_tcp_mode_answers_malformed_requests(tmp_path: Path) -> None:
    # The same message loop as stdio: a request with bad params gets an error, not silence.
    port = free_port()
    env = server_env(tmp_path, provider="lmstudio", api_base=f"http://127.0.0.1:{free_port()}/v1")
    server = await asyncio.create_subprocess_exec(
        *CLI, "--tcp", str(port), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.1)
        body = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "initialize", "params": 5})
        writer.write(f"content-length: {len(body)}\r\n\r\n{body}".encode())
        await writer.drain()
        headers = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        length = int(headers.split(b":")[1].split(b"\r\n")[0])
        answer = json.loads(await reader.readexactly(length))
        assert answer["id"] == 7 and answer["error"]["code"] in (-32602, -32600)
        writer.close()
    finally:
        server.kill()
        await server.wait()


def test_doctor_checks_the_next_edit_model_and_its_special_tokens(
    tmp_path: Path, fake_lmstudio: FakeLMStudio
) -> None:
    from tests.fakes.lmstudio_server import default_models

    models = default_models()
    models.append({**models[0], "id": "sweep-next-edit-1.5b"})
    fake_lmstudio.configure(models=models)
    env = server_env(
        tmp_path, api_base=fake_lmstudio.base_url, next_edit_model="sweep-next-edit-1.5b"
    )
    # The tokenizer splits `<|file_sep|>` (the fake counts ~4 characters a token): a failure.
    report = json.loads(_run(["doctor", "--json"], env).stdout)
    checks = {check["name"]: check for check in report["checks"]}
    assert checks["next-edit model loaded"]["verdict"] == "pass"
    assert "format sweep" in checks["next-edit model loaded"]["detail"]
    tokens = checks["next-edit special tokens"]
    assert tokens["verdict"] == "fail", tokens
    assert "<|file_sep|> = 3 token(s)" in tokens["detail"]
    assert "added tokens" in tokens["fix"]
    # A tokenizer that reads them as one token each: passes.
    fake_lmstudio.configure(single_tokens=("<|file_sep|>", "<|cursor|>"))
    report = json.loads(_run(["doctor", "--json"], env).stdout)
    checks = {check["name"]: check for check in report["checks"]}
    assert checks["next-edit special tokens"]["verdict"] == "pass", checks
