"""Start-up stays light: what is imported before the `initialize` answer excludes the heavy
modules, which load afterwards (in `initialized` or on first use).

Editors wait for that answer; a bare pygls server answers in ~320 ms here and aigents-lsp is
held within 1.2x of it (benchmarks/startup.py measures it). Rather than time it, this checks the
cause: a change that imports one of these before the answer fails here, with the module's name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

import pytest
from lsprotocol.converters import get_converter
from pytest_lsp import client_capabilities

PROBE = Path(__file__).with_name("import_probe.py")

# Each costs tens of ms to import (pydantic ~80, httpx ~40 with anyio/httpcore/h11/certifi) or
# pulls in one that does; none is needed to answer `initialize`.
HEAVY = (
    "pydantic",
    "httpx",
    "httpcore",
    "anyio",
    "numpy",
    "xllamacpp",
    "aigents_lsp.config",  # pydantic settings: loaded in `initialized`
    "aigents_lsp.completion",  # the completion engine, templates, post-processing
    "aigents_lsp.assist",  # prompts, edits, tools of the commands
    "aigents_lsp.index",  # the semantic index
    "aigents_lsp.providers.backend",  # built on first use, after the answer
    "aigents_lsp.providers.openai_compat",  # every HTTP provider (httpx)
    "aigents_lsp.providers.lmstudio",
    "aigents_lsp.providers.embedded",  # the embedded engine
)


def _frame(payload: dict[str, Any]) -> bytes:
    body = json.dumps(payload).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def _read_message(stream: IO[bytes]) -> dict[str, Any]:
    length = 0
    while (line := stream.readline()) not in (b"\r\n", b"\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    message: dict[str, Any] = json.loads(stream.read(length))
    return message


def heavy_among(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]


def modules_before_initialize(tmp_path: Path, editor: str) -> tuple[dict[str, Any], list[str]]:
    """Spawn the server as an editor does, send `initialize`; its answer and the modules
    imported before it."""
    out = tmp_path / "modules.json"
    workspace = tmp_path / "project"
    workspace.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIGENTS_")},
        "AIGENTS_IMPORT_PROBE": str(out),
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    capabilities = get_converter().unstructure(client_capabilities(editor))
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "processId": os.getpid(),
            "clientInfo": {"name": editor},
            "rootUri": workspace.as_uri(),
            "workspaceFolders": [{"uri": workspace.as_uri(), "name": "project"}],
            "capabilities": capabilities,
            "initializationOptions": {"aigents": {"provider": "lmstudio"}},
        },
    }
    proc = subprocess.Popen(
        [sys.executable, str(PROBE)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=workspace,
    )
    assert proc.stdin and proc.stdout
    try:
        proc.stdin.write(_frame(initialize))
        proc.stdin.flush()
        answer = _read_message(proc.stdout)
        proc.stdin.write(_frame({"jsonrpc": "2.0", "id": 2, "method": "shutdown"}))
        proc.stdin.write(_frame({"jsonrpc": "2.0", "method": "exit"}))
        proc.stdin.flush()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return answer, json.loads(out.read_text())


@pytest.mark.parametrize("editor", ["visual-studio-code", "neovim@v0.11.0", "emacs"])
def test_initialize_is_answered_without_the_heavy_modules(tmp_path: Path, editor: str) -> None:
    answer, modules = modules_before_initialize(tmp_path, editor)
    assert answer["id"] == 1
    assert answer["result"]["capabilities"]["executeCommandProvider"]["commands"]
    assert "aigents_lsp.lsp.server" in modules  # the probe saw the server that answered
    assert heavy_among(modules) == []


def test_the_check_would_catch_an_early_import() -> None:
    assert heavy_among(["pygls", "pydantic.main", "aigents_lsp.completion.engine"]) == [
        "pydantic.main",
        "aigents_lsp.completion.engine",
    ]
    assert heavy_among(["aigents_lsp.configuration_notes", "httpx_like"]) == []
