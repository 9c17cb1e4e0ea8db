"""Under CI=true a required test that skips fails the run (tests/conftest.py); elsewhere it
is an ordinary skip, named on the run's skipped-groups line. Checked on a required test that
always skips, run with the suite's conftest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

REQUIRED_AND_SKIPPED = """
import pytest


@pytest.mark.required_in_ci
def test_needs_a_tool():
    pytest.skip("the tool is not installed; enable: install the tool")
"""


def _run(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    test_file = tmp_path / "test_required.py"
    test_file.write_text(REQUIRED_AND_SKIPPED)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
         "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path), str(test_file)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_a_required_test_that_skips_fails_under_ci(tmp_path: Path) -> None:
    result = _run(tmp_path, "true")
    assert result.returncode == 1, result.stdout
    assert "required in CI" in result.stdout and "the tool is not installed" in result.stdout


def test_outside_ci_it_is_a_skip(tmp_path: Path) -> None:
    result = _run(tmp_path, None)
    assert result.returncode == 0, result.stdout
    assert "skipped" in result.stdout and "failed" not in result.stdout
    assert result.stdout.rstrip().splitlines()[-1] == (
        "[tests] skipped groups: test_required.py (1 skipped): "
        "the tool is not installed; enable: install the tool"
    )
