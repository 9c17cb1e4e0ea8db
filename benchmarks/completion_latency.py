"""Completion latency with a loaded model: the measurement behind `completion_deadline`.

    python benchmarks/completion_latency.py [--positions 12] [--provider embedded]

Drives the real server over stdio against the embedded llama.cpp engine (Gemma 3 270M, CPU),
or any provider the environment points at (`--provider lmstudio` with `AIGENTS_API_BASE`).
The document is argparse.py (~2,600 lines). At each of `--positions` places spread over the
file, the editor presses Enter and asks for an inline completion ("jump": a new context, the
prompt cache only partly reused), then types one character and asks again ("typing on": the
same context). The deadline is lifted (60 s) so nothing is cut. The engine's start is not
measured (one warm-up request first). Printed: p50, p90 and the worst latency of each kind,
and the share of requests a deadline of 1, 2, 3 and 5 s would have cut.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient

ROOT = Path(__file__).resolve().parents[1]
DEADLINES = (1.0, 2.0, 3.0, 5.0)


async def request(client: LanguageClient, uri: str, line: int, column: int) -> float:
    params = types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=column),
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Invoked
        ),
    )
    started = time.perf_counter()
    await client.text_document_inline_completion_async(params)
    return time.perf_counter() - started


def change(
    client: LanguageClient, uri: str, version: int, line: int, column: int, text: str
) -> None:
    position = types.Position(line=line, character=column)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=position, end=position), text=text
                )
            ],
        )
    )


def summary(name: str, seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    cut = ", ".join(f"{d:g} s: {sum(s > d for s in seconds)}/{len(seconds)}" for d in DEADLINES)
    return (
        f"{name:<10} n={len(seconds):<3} p50 {statistics.median(seconds) * 1000:6.0f} ms  "
        f"p90 {p90 * 1000:6.0f} ms  worst {max(seconds) * 1000:6.0f} ms  cut by a deadline of {cut}"
    )


async def run(positions: int, provider: str, source: str) -> None:
    home = tempfile.mkdtemp(prefix="aigents-latency-")
    env = {
        **os.environ,
        "AIGENTS_PROVIDER": provider,
        "AIGENTS_COMPLETION_DEADLINE": "60",
        "AIGENTS_COMPLETION_TIMEOUT": "60",
        "XDG_CONFIG_HOME": home,
        "XDG_STATE_HOME": home,
        "AIGENTS_LOG_LEVEL": "warning",
    }
    lines = source.split("\n")
    client = LanguageClient("completion-latency", "1")
    client.feature("aigents/status")(lambda ls, params: None)
    await client.start_io(sys.executable, "-m", "aigents_lsp", env=env)
    server = getattr(client, "_server", None)
    drains = []
    if server is not None and server.stderr is not None:
        drains.append(asyncio.create_task(server.stderr.read()))  # keep the pipe drained
    caps = types.ClientCapabilities(
        text_document=types.TextDocumentClientCapabilities(
            inline_completion=types.InlineCompletionClientCapabilities()
        ),
    )
    await client.initialize_async(types.InitializeParams(capabilities=caps))
    client.initialized(types.InitializedParams())
    uri = Path(argparse.__file__).as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="python", version=1, text=source
            )
        )
    )
    version = 1
    warm = await request(client, uri, 30, 0)
    print(f"warm-up (engine start, excluded): {warm:.1f} s", flush=True)
    jumps: list[float] = []
    typing: list[float] = []
    offset = 0  # lines inserted so far
    for index in range(positions):
        anchor = 60 + index * ((len(lines) - 200) // positions)
        while not lines[anchor].startswith("        ") or not lines[anchor].strip():
            anchor += 1
        line = anchor + offset
        indent = " " * (len(lines[anchor]) - len(lines[anchor].lstrip()))
        version += 1
        change(client, uri, version, line, len(lines[anchor]), "\n" + indent)
        offset += 1
        jumps.append(await request(client, uri, line + 1, len(indent)))
        version += 1
        change(client, uri, version, line + 1, len(indent), "s")
        typing.append(await request(client, uri, line + 1, len(indent) + 1))
        print(
            f"  line {line + 1}: jump {jumps[-1]:.2f} s, typing on {typing[-1]:.2f} s", flush=True
        )
    await client.shutdown_async(None)
    client.exit(None)
    await asyncio.sleep(0.3)
    print()
    print(summary("jump", jumps))
    print(summary("typing on", typing))
    print(summary("all", jumps + typing))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--positions", type=int, default=12)
    parser.add_argument("--provider", default="embedded")
    args = parser.parse_args()
    source = Path(argparse.__file__).read_text(encoding="utf-8")
    asyncio.run(run(args.positions, args.provider, source))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
