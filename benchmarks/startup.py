"""Spawn -> `initialize` response: aigents-lsp against a bare pygls server, same run.

    python benchmarks/startup.py [--runs 15]

Both servers are spawned alternately with the same interpreter; the time is measured from
process spawn to the `initialize` response being read (raw JSON-RPC over stdio, no client
library in the way). Prints median / p90 for each and the ratio of medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent


def _frame(payload: dict[str, object]) -> bytes:
    body = json.dumps(payload).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def _read_message(stream: IO[bytes]) -> dict[str, object]:
    length = 0
    while True:
        line = stream.readline()
        if not line:
            raise RuntimeError("server closed stdout")
        if line in (b"\r\n", b"\n"):
            break
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    message: dict[str, Any] = json.loads(stream.read(length))
    return message


def spawn_to_initialize(command: list[str], env: dict[str, str]) -> float:
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"processId": os.getpid(), "rootUri": None, "capabilities": {}},
    }
    started = time.perf_counter()
    proc = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    assert proc.stdin and proc.stdout
    proc.stdin.write(_frame(init))
    proc.stdin.flush()
    while True:
        message = _read_message(proc.stdout)
        if message.get("id") == 1:
            break
    elapsed = (time.perf_counter() - started) * 1000
    for payload in (
        {"jsonrpc": "2.0", "id": 2, "method": "shutdown"},
        {"jsonrpc": "2.0", "method": "exit"},
    ):
        proc.stdin.write(_frame(payload))
    proc.stdin.flush()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "XDG_CONFIG_HOME": home, "XDG_STATE_HOME": home}
        commands = {
            "bare pygls": [sys.executable, str(HERE / "bare_server.py")],
            "aigents-lsp": [sys.executable, "-m", "aigents_lsp"],
        }
        for command in commands.values():  # warm the OS file cache and .pyc files
            spawn_to_initialize(command, env)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, command in commands.items():
                times[name].append(spawn_to_initialize(command, env))
    for name, values in times.items():
        values.sort()
        p90 = values[int(0.9 * (len(values) - 1))]
        print(f"{name:12s} median {statistics.median(values):6.1f} ms   p90 {p90:6.1f} ms")
    ratio = statistics.median(times["aigents-lsp"]) / statistics.median(times["bare pygls"])
    print(f"ratio (median aigents-lsp / bare pygls): {ratio:.2f}x  (target <= 1.2x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
