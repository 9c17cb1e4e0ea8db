#!/usr/bin/env python3
"""One-command setup and tasks for aigents-lsp, on any machine with Python 3.11+.

    python3 dev.py demo    # set up .venv (with the embedded engine) and run the demo session
    python3 dev.py test    # set up .venv (with dev tools) and run the whole test suite
    python3 dev.py lint    # ruff check, ruff format --check, mypy --strict, lint-imports
    python3 dev.py setup   # only set up .venv

Extra arguments after the verb go to the demo or to pytest. The venv lives in `.venv` (or
$AIGENTS_VENV); it is reused when pyproject.toml has not changed since it was set up.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("AIGENTS_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


def _say(message: str) -> None:
    print(f"[dev] {message}", flush=True)


def setup(extras: str) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may run on an old Python
        sys.exit(f"aigents-lsp needs Python 3.11 or newer (this is {sys.version.split()[0]})")
    stamp = VENV / f".aigents-setup-{extras.replace(',', '-')}"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.is_file() and stamp.read_text() == digest and PYTHON.exists():
        return
    if not PYTHON.exists():
        _say(f"creating {VENV}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    _say(f"installing aigents-lsp[{extras}] (editable) into {VENV}")
    subprocess.run(
        [
            str(PYTHON),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-e",
            f"{ROOT}[{extras}]",
        ],
        check=True,
    )
    stamp.write_text(digest)


LINTERS = (
    ["ruff", "check", "."],
    ["ruff", "format", "--check", "."],
    ["mypy", "--strict"],  # files and plugins from pyproject.toml
    ["lint-imports"],  # the import layers in pyproject.toml
)


def lint() -> int:
    """Every linter, each run even when one before it failed; non-zero if any failed."""
    failed = []
    for command in LINTERS:
        _say(" ".join(command))
        if subprocess.call([str(BIN / command[0]), *command[1:]], cwd=ROOT) != 0:
            failed.append(command[0] if command[0] != "ruff" else " ".join(command[:2]))
    if failed:
        _say(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    verb, rest = (argv[0], argv[1:]) if argv else ("demo", [])
    if verb == "setup":
        setup("embedded,dev")
        return 0
    if verb == "demo":
        setup("embedded")
        return subprocess.call([str(BIN / "aigents-lsp"), "demo", *rest])
    if verb == "lint":
        setup("embedded,dev")
        return lint()
    if verb == "test":
        setup("embedded,dev")
        code = subprocess.call([str(PYTHON), "-m", "pytest", *rest], cwd=ROOT)
        if code == 5:
            _say("pytest collected no tests: that is a failure")
            return 1
        return code
    print(__doc__)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
