"""editors/vim/aigents.vim in a real Vim 9 with Debian's ALE, the real server and the fake LM
Studio: ALE starts `aigents-lsp`, asking for completion (the config's CTRL-Space mapping) shows the
model's suggestion in the popup and accepting it writes it into the file.

Vim runs on a pseudo-terminal (it needs one for insert mode and the popup menu); the scenario is
tests/editors/vim_harness.vim, which types as a user would and records what it saw.
"""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.lmstudio_server import FakeLMStudio

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG = REPO_ROOT / "editors" / "vim" / "aigents.vim"
HARNESS = Path(__file__).with_name("vim_harness.vim")
ALE = Path("/usr/share/vim-ale")  # Debian's vim-ale
BIN = Path(sys.executable).parent
VIM = shutil.which("vim")
TIMEOUT = 60  # seconds for the popup; 2 shared cores

pytestmark = [
    pytest.mark.skipif(
        VIM is None, reason="vim is not installed; enable: bash .ci/install-editors"
    ),
    pytest.mark.skipif(
        not (ALE / "plugin" / "ale.vim").exists(),
        reason=f"ALE is not installed in {ALE}; enable: bash .ci/install-editors",
    ),
    pytest.mark.skipif(
        not (BIN / "aigents-lsp").exists(),
        reason=f"no aigents-lsp in {BIN}; enable: python3 dev.py setup",
    ),
]

SOURCE = "import math\n\n\ndef area(r):\n    return 3.14159 * r * r\n"


def run_vim(tmp_path: Path, fake: FakeLMStudio, typed: str) -> dict[str, Any]:
    """Open geometry.py in Vim with ALE and our config, run the harness, return its record."""
    assert VIM is not None
    home, workspace = tmp_path / "home", tmp_path / "ws"
    home.mkdir()
    workspace.mkdir()
    (workspace / "geometry.py").write_text(SOURCE)
    vimrc = tmp_path / "vimrc"
    vimrc.write_text(
        f"""set nocompatible
call ch_logfile($AIGENTS_CHANNEL_LOG, "w")
set runtimepath^={ALE} runtimepath+={ALE}/after
set noswapfile viminfo= shortmess+=I
filetype plugin on
let g:ale_lint_on_enter = 0
let g:ale_lint_on_text_changed = 'never'
source {CONFIG}
"""
    )
    results = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIGENTS_", "VIM"))}
    env.update(
        HOME=str(home),
        TERM="xterm",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",  # the config runs `aigents-lsp`
        AIGENTS_PROVIDER="lmstudio",
        AIGENTS_API_BASE=fake.base_url,
        AIGENTS_LOG_FILE=str(tmp_path / "aigents-lsp.log"),
        AIGENTS_LOG_LEVEL="debug",
        LM_API_TOKEN="",
        LMSTUDIO_API_TOKEN="",
        AIGENTS_RESULTS=str(results),
        AIGENTS_TYPE=typed,
        AIGENTS_TIMEOUT=str(TIMEOUT),
        AIGENTS_CHANNEL_LOG=str(tmp_path / "vim-channel.log"),
    )
    controller, terminal = pty.openpty()
    screen: list[bytes] = []

    def drain() -> None:  # Vim blocks when nobody reads its terminal
        try:
            while chunk := os.read(controller, 65536):
                screen.append(chunk)
        except OSError:
            pass

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        done = subprocess.run(
            [VIM, "-N", "-u", str(vimrc), "-i", "NONE", "-S", str(HARNESS), "geometry.py"],
            cwd=workspace,
            env=env,
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
            timeout=TIMEOUT + 30,
            check=False,
        )
    finally:
        os.close(terminal)
        reader.join(timeout=5)
        os.close(controller)
    assert results.exists(), (
        f"vim (exit {done.returncode}) wrote no results; screen: "
        f"{b''.join(screen)[-2000:].decode(errors='replace')}"
    )
    recorded: dict[str, Any] = json.loads(results.read_text())
    log = tmp_path / "aigents-lsp.log"
    server_log = log.read_text()[-3000:] if log.exists() else "(no server log)"
    assert "error" not in recorded, (
        f"{recorded}\n--- aigents-lsp log\n{server_log}\n"
        f"(Vim's channel log, every LSP message: {tmp_path / 'vim-channel.log'})"
    )
    recorded["file"] = (workspace / "geometry.py").read_text()
    return recorded


def test_ale_completion_shows_and_inserts_the_suggestion(
    tmp_path: Path, fake_lmstudio: FakeLMStudio
) -> None:
    fake_lmstudio.configure(completion_reply="a + b")
    recorded = run_vim(tmp_path, fake_lmstudio, "def add(a, b):\n    return ")
    assert recorded["items"] == ["a + b"], recorded
    assert recorded["file"] == SOURCE + "def add(a, b):\n    return a + b\n"
    assert any(r.path.endswith("/completions") for r in fake_lmstudio.requests)
