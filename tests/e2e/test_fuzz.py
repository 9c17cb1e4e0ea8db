"""Fuzzed LSP input (benchmarks/fuzz_lsp.py): after every sequence of random valid and invalid
messages the server is alive, has answered every request exactly once, and completes correctly.

A bounded run for CI; `python benchmarks/fuzz_lsp.py --messages 100000` for a long one. A
failure names its seed: `python benchmarks/fuzz_lsp.py --seed N --messages M` replays it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from fuzz_lsp import fuzz, print_report

SEEDS = [int(os.environ.get("AIGENTS_FUZZ_SEED", "20261125"))]
MESSAGES = int(os.environ.get("AIGENTS_FUZZ_MESSAGES", "12000"))


@pytest.mark.parametrize("seed", SEEDS)
async def test_fuzzed_messages_never_break_the_server(seed: int) -> None:
    report = await fuzz(MESSAGES, seed, sequence=40, answer_timeout=60)
    print_report(report)
    assert report.failure is None, f"seed {seed}: {report.failure}"
    assert report.messages == MESSAGES and report.probes == report.sequences
    runtime = report.runtime
    assert runtime["pending_requests"] == 0 and runtime["jobs"] == 0, runtime
    assert runtime["http_active"] == 0, runtime
