"""Emacs 28 + eglot (Debian's elpa-eglot) in `emacs --batch` with the real server and the fake
LM Studio: eglot connects with the editors/emacs configuration, a completion request and
`completion-at-point` return the fake's reply, and `eglot-execute-command` runs a command.

tests/editors/eglot_harness.el drives Emacs and writes what it saw as JSON; asserts are here.
CI installs Emacs with .ci/install-editors; the test is skipped only when `emacs` is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.lmstudio_server import FakeLMStudio

HARNESS = Path(__file__).with_name("eglot_harness.el")
EMACS = shutil.which("emacs")
WAIT_SECONDS = 20

pytestmark = pytest.mark.skipif(
    EMACS is None, reason="emacs is not installed; enable: bash .ci/install-editors"
)


def run_emacs(tmp_path: Path, fake: FakeLMStudio, source: str, filename: str) -> dict[str, Any]:
    home = tmp_path / "home"
    workspace = tmp_path / "ws"
    (workspace / ".git").mkdir(parents=True)
    home.mkdir()
    (workspace / filename).write_text(source)
    results = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIGENTS_", "XDG_", "EMACS"))}
    env.update(
        HOME=str(home),
        AIGENTS_PROVIDER="lmstudio",
        AIGENTS_API_BASE=fake.base_url,
        LM_API_TOKEN="",
        LMSTUDIO_API_TOKEN="",
        EGLOT_TEST_SERVER=json.dumps([sys.executable, "-m", "aigents_lsp"]),
        EGLOT_TEST_OUT=str(results),
        EGLOT_TEST_TIMEOUT=str(WAIT_SECONDS),
    )
    assert EMACS is not None
    done = subprocess.run(
        [EMACS, "--batch", "-Q", "-l", str(HARNESS), filename],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS * 2 + 10,
        check=False,
    )
    output = f"stdout: {done.stdout}\nstderr: {done.stderr}"
    assert results.exists(), f"emacs wrote no results (exit {done.returncode})\n{output}"
    recorded: dict[str, Any] = json.loads(results.read_text())
    assert "error" not in recorded, f"{recorded['error']}\n{recorded}\n{output}"
    return recorded


def test_eglot_attaches_and_completes(tmp_path: Path, fake_lmstudio: FakeLMStudio) -> None:
    fake_lmstudio.configure(completion_reply="a + b")
    recorded = run_emacs(tmp_path, fake_lmstudio, "def add(a, b):\n    return ", "calc.py")

    assert recorded["major_mode"] == "python-mode"
    assert recorded["connected"] is True
    assert recorded["server_name"] == "aigents-lsp"
    assert recorded["completion_provider"] is True
    # Emacs advertises no inline completion: exactly one classic item carrying the reply.
    assert len(recorded["insert_texts"]) == 1
    assert "a + b" in recorded["insert_texts"][0]
    assert recorded["buffer_after_capf"] == "def add(a, b):\n    return a + b"
    assert {"completion", "uptime_s"} <= set(recorded["stats_keys"])
    assert any(r.path.endswith("/completions") for r in fake_lmstudio.requests)
