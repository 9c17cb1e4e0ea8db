"""The house rules that a linter does not hold: every module of the server stays at most 400
lines (STYLE.md), so a file that grows past it is split along what it is two of."""

from __future__ import annotations

from pathlib import Path

SERVER = Path(__file__).resolve().parents[2] / "server" / "aigents_lsp"
MAX_LINES = 400


def test_every_server_module_is_at_most_400_lines() -> None:
    long = {
        str(path.relative_to(SERVER)): count
        for path in sorted(SERVER.rglob("*.py"))
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"over {MAX_LINES} lines, split them: {long}"
