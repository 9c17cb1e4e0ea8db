"""`aigents-lsp demo` with the embedded engine, as a new user first runs it: every step succeeds.

The demo judges each step itself (a suggestion came back, a command answered, an edit applied)
and prints `✓`/`✗` per step and `demo: N/N steps succeeded.`; its steps are the ones the small
embedded models do reliably (benchmarks/demo_steps.py). A step that starts failing fails here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from aigents_lsp import demo
from aigents_lsp.providers.engine_process import embedded_available
from tests.engine.engine_support import PreparedModels

pytestmark = [
    pytest.mark.engine,
    pytest.mark.skipif(
        not embedded_available(),
        reason="the `embedded` extra is not installed; enable: python3 dev.py setup",
    ),
]

HANG_GUARD = 3600  # seconds: only against a hang (a busy 2-core machine takes minutes)


def test_every_demo_step_succeeds(
    prepared: PreparedModels, cache_root_dir: Path, tmp_path: Path
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIGENTS_")},
        "AIGENTS_CACHE_DIR": str(cache_root_dir),  # the session's prepared models
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "PYTHONIOENCODING": "utf-8",
    }
    ran = subprocess.run(
        [sys.executable, "-m", "aigents_lsp", "demo", "--provider", "embedded"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=HANG_GUARD,
    )
    output = ran.stdout + ran.stderr
    assert ran.returncode == 0, output[-4000:]
    assert re.findall(r"^  ✗ .*$", ran.stdout, re.MULTILINE) == []
    succeeded = re.findall(r"^  ✓ (.*)$", ran.stdout, re.MULTILINE)
    # Both sessions' completions, the code actions and every command step, each one succeeded.
    commands = [step.label for step in demo.COMMAND_STEPS]
    assert [s for s in succeeded if s in commands] == commands
    places = len(demo._targets(demo.SAMPLE, custom_file=False))
    assert sum(s.startswith("ghost text: ") for s in succeeded) == places
    assert sum(s.startswith("completion item: ") for s in succeeded) == places
    assert "code actions listed" in succeeded
    total = len(succeeded)
    assert ran.stdout.rstrip().endswith(f"demo: {total}/{total} steps succeeded.")
