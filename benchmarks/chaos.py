"""Chaos: the real server over stdio, a stream of requests, and a backend that fails in every
way it can; then the backend comes back.

    python benchmarks/chaos.py [--seconds 5] [--only "slow drip"]

For each fault the fake LM Studio is switched to it, and for `--seconds` the editor types a
character and asks for an inline completion every 250 ms and runs a chat command
(`aigents.explain`) every 1.5 s. Then the fake is healthy again. Printed per fault:
- answered / sent: requests that got a response (a result or an error) / requests sent;
- worst and median response time while the fault lasted;
- error messages shown to the user (`window/showMessage`, a storm is > 2);
- recovery: seconds from the backend being back to the status saying `ready` and a
  completion succeeding.
Timeouts are the server's: completion_timeout 3 s, command_timeout 5 s, or with `--defaults`
its default deadlines (completion_deadline, first_token_timeout, stall_timeout...). The last
two rows are not faults: a just-in-time load of 20 s and a model at 5 tokens/s must be served
to the end, without an error (`cmd err` 0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from tests.e2e.test_fault_matrix import FAULTS as MATRIX  # noqa: E402
from tests.fakes.lmstudio_server import FakeLMStudio, default_models  # noqa: E402

from fuzz_lsp import Wire, initialize, server_env  # noqa: E402


def _not_loaded() -> list[dict[str, Any]]:
    models = default_models()
    for model in models:
        if model["type"] == "llm":
            model["state"] = "not-loaded"
            model.pop("loaded_context_length", None)
    return models


STEADY = " ".join(f"w{i}" for i in range(40))  # 40 tokens at 5 tokens/s: 8 s per answer
FAULTS: dict[str, dict[str, Any]] = {
    **MATRIX,
    "event: error": {
        "sse_body": 'event: error\ndata: {"error":{"message":"The model has crashed"}}\n\n'
    },
    "stalls mid-answer": {"reply": " ".join(f"w{i}" for i in range(40)), "stall_after": 3},
    # not faults: these must be served to the end, with progress, without an error
    "jit load 20 s": {"models": _not_loaded(), "load_delay": 20.0},
    "slow steady 5 tok/s": {"reply": STEADY, "completion_reply": "a + b", "token_delay": 0.2},
}
SERVED = ("jit load 20 s", "slow steady 5 tok/s")
COMPLETION_EVERY = 0.25
COMMAND_EVERY = 1.5
REPLY = "a + b"


@dataclass
class Row:
    fault: str
    sent: int = 0
    answered: int = 0
    errors: int = 0
    times: list[float] = field(default_factory=list)
    shown: int = 0
    recovery: float | None = None
    status: str = ""
    worst_completion: float = 0.0
    worst_command: float = 0.0
    command_errors: int = 0
    last_message: str = ""


class Editor:
    """One document the user types into, over the raw wire."""

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.uri = "file:///tmp/chaos/app.py"
        self.text = "def add(a, b):\n    return "
        self.version = 1
        self.count = 0

    async def open(self) -> None:
        await self.wire.send_json(
            {
                "jsonrpc": "2.0",
                "method": "textDocument/didOpen",
                "params": {
                    "textDocument": {
                        "uri": self.uri,
                        "languageId": "python",
                        "version": 1,
                        "text": self.text,
                    }
                },
            }
        )

    async def type(self, char: str) -> None:
        lines = self.text.split("\n")
        position = {"line": len(lines) - 1, "character": len(lines[-1])}
        self.version += 1
        self.text += char
        await self.wire.send_json(
            {
                "jsonrpc": "2.0",
                "method": "textDocument/didChange",
                "params": {
                    "textDocument": {"uri": self.uri, "version": self.version},
                    "contentChanges": [
                        {"range": {"start": position, "end": position}, "text": char}
                    ],
                },
            }
        )

    def end(self) -> dict[str, int]:
        lines = self.text.split("\n")
        return {"line": len(lines) - 1, "character": len(lines[-1])}

    async def complete(self, within: float = 30) -> tuple[dict[str, Any], float]:
        self.count += 1
        started = time.monotonic()
        answer = await self.wire.request(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": self.uri},
                "position": self.end(),
                "context": {"triggerKind": 1},
            },
            f"inline-{self.count}",
            within,
        )
        return answer, time.monotonic() - started

    async def explain(self) -> tuple[dict[str, Any], float]:
        self.count += 1
        started = time.monotonic()
        argument = {
            "uri": self.uri,
            "range": {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 0}},
            "show": False,
        }
        answer = await self.wire.request(
            "workspace/executeCommand",
            {"command": "aigents.explain", "arguments": [argument]},
            f"explain-{self.count}",
            30,
        )
        return answer, time.monotonic() - started


def suggested(answer: dict[str, Any]) -> bool:
    items = (answer.get("result") or {}).get("items") if isinstance(answer, dict) else None
    return bool(items)


async def healthy(wire: Wire, editor: Editor, fake: FakeLMStudio, within: float = 60) -> float:
    """Backend back: seconds until the status says ready and a completion succeeds."""
    fake.reset()
    fake.configure(completion_reply=REPLY, reply="It adds.")
    started = time.monotonic()
    while True:
        await editor.type(" ")
        answer, _ = await editor.complete()
        status = (wire.last.get("aigents/status") or {}).get("state")
        if suggested(answer) and status == "ready":
            return time.monotonic() - started
        if time.monotonic() - started > within:
            raise TimeoutError(f"not recovered in {within} s (status {status})")
        await asyncio.sleep(0.1)


async def run_fault(
    wire: Wire, editor: Editor, fake: FakeLMStudio, fault: str, seconds: float
) -> Row:
    row = Row(fault)
    behaviour = dict(FAULTS[fault])
    if behaviour.pop("refused", False):
        fake.refuse()
    fake.configure(**behaviour)
    shown_before = wire.notifications["window/showMessage"]
    pending: list[asyncio.Task[tuple[dict[str, Any], float]]] = []
    commands: set[asyncio.Task[tuple[dict[str, Any], float]]] = set()
    started = time.monotonic()
    next_command = started
    rng = random.Random(fault)
    while time.monotonic() - started < seconds:
        await editor.type(rng.choice("abcxyz_"))
        pending.append(asyncio.create_task(editor.complete()))
        if time.monotonic() >= next_command:
            pending.append(asyncio.create_task(editor.explain()))
            commands.add(pending[-1])
            next_command += COMMAND_EVERY
        await asyncio.sleep(COMPLETION_EVERY)
    row.sent = len(pending)
    for task in pending:
        try:
            answer, took = await task
        except TimeoutError:
            continue
        row.answered += 1
        row.times.append(took)
        if "error" in answer:
            row.errors += 1
        if task in commands:
            row.worst_command = max(row.worst_command, took)
            row.command_errors += "error" in answer
        else:
            row.worst_completion = max(row.worst_completion, took)
    errors = [
        1 for _ in range(wire.notifications["window/showMessage"] - shown_before)
    ]  # every showMessage during the fault (errors and infos: at most one each)
    row.shown = len(errors)
    if row.shown:
        row.last_message = str((wire.last.get("window/showMessage") or {}).get("message", ""))
    row.status = str((wire.last.get("aigents/status") or {}).get("state"))
    row.recovery = await healthy(wire, editor, fake)
    return row


def print_table(rows: list[Row]) -> None:
    head = (
        f"{'fault':<22} {'answered/sent':>13} {'errors':>6} {'cmd err':>7} {'worst ms':>9} "
        f"{'compl ms':>8} {'cmd ms':>7} {'p50 ms':>7} {'msgs':>4} {'status':>8} {'recovery s':>10}"
    )
    print(head)
    print("-" * len(head))
    for row in rows:
        worst = max(row.times) * 1000 if row.times else float("nan")
        p50 = statistics.median(row.times) * 1000 if row.times else float("nan")
        recovery = f"{row.recovery:.2f}" if row.recovery is not None else "never"
        print(
            f"{row.fault:<22} {f'{row.answered}/{row.sent}':>13} {row.errors:>6} "
            f"{row.command_errors:>7} {worst:>9.0f} {row.worst_completion * 1000:>8.0f} "
            f"{row.worst_command * 1000:>7.0f} {p50:>7.0f} {row.shown:>4} {row.status:>8} "
            f"{recovery:>10}"
        )


async def run(seconds: float, only: list[str] | None, defaults: bool) -> list[Row]:
    fake = FakeLMStudio(completion_reply=REPLY, reply="It adds.").start()
    home = Path(tempfile.mkdtemp(prefix="aigents-chaos-"))
    (home / "ws").mkdir()
    env = server_env(home, fake)
    if defaults:  # the fuzzer's environment sets short timeouts: back to the server's own
        env.pop("AIGENTS_COMPLETION_TIMEOUT", None)
        env.pop("AIGENTS_COMMAND_TIMEOUT", None)
    else:
        env.update(AIGENTS_COMPLETION_TIMEOUT="3", AIGENTS_COMMAND_TIMEOUT="5")
    wire = Wire(random.Random(0))
    wire.base_settings = {}
    wire.fuzz_answers = False  # an editor that answers the server at once, and right
    rows: list[Row] = []
    try:
        await wire.start(env, home / "server.stderr")
        await initialize(wire, home / "ws")
        editor = Editor(wire)
        await editor.open()
        await healthy(wire, editor, fake)
        for fault in only or list(FAULTS):
            row = await run_fault(wire, editor, fake, fault, seconds)
            rows.append(row)
            print(json.dumps(row.__dict__ | {"times": len(row.times)}), flush=True)
        alive = wire.alive
    finally:
        await wire.stop()
        fake.stop()
    print(f"server alive at the end: {alive}; stderr: {home / 'server.stderr'}")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long each fault lasts")
    parser.add_argument("--only", action="append", choices=list(FAULTS), help="just this fault")
    parser.add_argument(
        "--defaults",
        action="store_true",
        help="the server's default deadlines (else completion_timeout 3 s, command_timeout 5 s)",
    )
    args = parser.parse_args()
    rows = asyncio.run(run(args.seconds, args.only, args.defaults))
    print()
    print_table(rows)
    return 0 if all(r.answered == r.sent and r.recovery is not None for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
