"""How reliably the embedded models do each candidate step of `aigents-lsp demo`.

    python benchmarks/demo_steps.py [--trials 5] [--only NAME ...]

One server session over stdio (as the demo runs it, provider `embedded`): every candidate is
run `--trials` times and judged by what a user would accept (a completion that is the right
code, an edit that applied and does what was asked). Completions are asked after a one-line
change at the top of the file each trial, so no answer comes from the completion cache.
Prints one line per candidate: successes/trials, median time, and the answers that failed.
The demo (server/aigents_lsp/demo.py) keeps only candidates that succeed every time here.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsprotocol import types

from aigents_lsp import demo
from aigents_lsp.demo_client import ask, drain, new_client

SAMPLE = demo.SAMPLE  # the demo's own sample: what is measured is what it shows


@dataclass
class Candidate:
    name: str
    kind: str  # "completion" or a command
    where: str  # completion: text the cursor follows; command: first line of the selection
    lines: int = 1  # command: lines selected
    instruction: str | None = None
    ok: Callable[[str], bool] = bool  # judged on the suggestion, or on the edited text


def _has(*parts: str) -> Callable[[str], bool]:
    return lambda text: all(p in text for p in parts)


CANDIDATES = [
    Candidate(
        "explain area_of_circle()",
        "aigents.explain",
        "def area_of_circle(",
        lines=3,
        ok=lambda answer: "area" in answer.lower() or "circle" in answer.lower(),
    ),
    Candidate(
        "edit area_of_circle(): descriptive parameter name",
        "aigents.edit",
        "def area_of_circle(",
        lines=3,
        instruction="Use a descriptive parameter name.",
    ),
    Candidate(
        "edit the return line of area_of_circle(): math.pi",
        "aigents.edit",
        "    return 3.14159",
        instruction="Replace 3.14159 with math.pi.",
        ok=lambda text: "math.pi * radius" in text and "3.14159" not in text,
    ),
    Candidate(
        "edit greet(): f-string",
        "aigents.edit",
        "def greet(",
        lines=2,
        instruction="Use an f-string.",
        ok=_has('print(f"Hello, {name}'),
    ),
    Candidate(
        "edit the print line of greet(): f-string",
        "aigents.edit",
        '    print("Hello, "',
        instruction="Use an f-string.",
        ok=_has('print(f"Hello, {name}'),
    ),
    Candidate(
        "docstring of is_even()",
        "aigents.docstring",
        "def is_even(",
        lines=2,
        ok=lambda text: text.count('"""') >= 12 and "def is_even(n: int) -> bool:" in text,
    ),
    Candidate(
        "complete: body of fibonacci()",
        "completion",
        '"""Return the n-th Fibonacci number."""\n',
        ok=_has("return"),
    ),
    Candidate(
        "complete: return of circumference()",
        "completion",
        'circumference of a circle with the given radius."""\n    return ',
        ok=_has("2", "pi", "radius"),
    ),
    Candidate(
        "complete: return of celsius_to_fahrenheit()",
        "completion",
        'from Celsius to Fahrenheit."""\n    return ',
        ok=_has("9", "5", "32"),
    ),
]


def _position(text: str, offset: int) -> types.Position:
    before = text[:offset]
    return types.Position(line=before.count("\n"), character=len(before.rsplit("\n", 1)[-1]))


def _offset(text: str, position: Any) -> int:
    lines = text.split("\n")
    return sum(len(line) + 1 for line in lines[: position["line"]]) + position["character"]


def _apply(text: str, edit: dict[str, Any]) -> str:
    changes = [e for change in edit.get("documentChanges", []) for e in change["edits"]]
    for change in sorted(changes, key=lambda e: _offset(text, e["range"]["start"]), reverse=True):
        start, end = _offset(text, change["range"]["start"]), _offset(text, change["range"]["end"])
        text = text[:start] + change["newText"] + text[end:]
    return text


async def run(trials: int, only: list[str], sample: str) -> int:
    root = Path(tempfile.mkdtemp(prefix="aigents-demo-steps-"))
    path = root / "sample.py"
    path.write_text(sample, encoding="utf-8")
    uri = path.as_uri()
    env = {
        **os.environ,
        "AIGENTS_PROVIDER": "embedded",
        "AIGENTS_COMMAND_TIMEOUT": "900",
        "AIGENTS_COMPLETION_TIMEOUT": "120",
        # What the demo sets: a small model's rambling is cut short (rambling is what breaks
        # an edit), and a command on a loaded machine ends in minutes, not tens of minutes.
        "AIGENTS_CHAT_MAX_TOKENS": os.environ.get("AIGENTS_CHAT_MAX_TOKENS", "256"),
    }
    client = new_client()
    await client.start_io(sys.executable, "-m", "aigents_lsp", env=env)
    log: list[bytes] = []
    server = getattr(client, "_server", None)
    drain_task = asyncio.create_task(drain(getattr(server, "stderr", None), log))
    await client.initialize_async(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(
                text_document=types.TextDocumentClientCapabilities(
                    inline_completion=types.InlineCompletionClientCapabilities()
                ),
                workspace=types.WorkspaceClientCapabilities(
                    apply_edit=True,
                    workspace_edit=types.WorkspaceEditClientCapabilities(document_changes=True),
                ),
                general=types.GeneralClientCapabilities(
                    position_encodings=[types.PositionEncodingKind.Utf16]
                ),
            ),
            root_uri=root.as_uri(),
        )
    )
    client.initialized(types.InitializedParams())
    document = types.TextDocumentIdentifier(uri=uri)
    version = 1
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="python", version=version, text=sample
            )
        )
    )
    text = sample
    for candidate in CANDIDATES:
        if only and not any(o in candidate.name for o in only):
            continue
        if candidate.where not in sample:
            continue
        successes, times, failed = 0, [], []
        for _ in range(trials):
            t0 = time.perf_counter()
            try:
                if candidate.kind == "completion":
                    version += 1
                    text = f"# trial {version}\n" + sample  # a new prefix: no cache hit
                    client.text_document_did_change(
                        types.DidChangeTextDocumentParams(
                            text_document=types.VersionedTextDocumentIdentifier(
                                uri=uri, version=version
                            ),
                            content_changes=[types.TextDocumentContentChangeWholeDocument(text)],
                        )
                    )
                    offset = text.index(candidate.where) + len(candidate.where)
                    answer = await ask(client, document, _position(text, offset), True) or ""
                    judged = answer
                else:
                    first = text.index(candidate.where)
                    start = _position(text, first)
                    selection = {
                        "start": {"line": start.line, "character": 0},
                        "end": {"line": start.line + candidate.lines, "character": 0},
                    }
                    argument: dict[str, Any] = {"uri": uri, "range": selection, "show": False}
                    if candidate.instruction:
                        argument["instruction"] = candidate.instruction
                    result = await client.workspace_execute_command_async(
                        types.ExecuteCommandParams(command=candidate.kind, arguments=[argument])
                    )
                    answer = result.get("markdown", "") if isinstance(result, dict) else ""
                    if candidate.kind == "aigents.explain":
                        judged = answer
                    else:
                        edit = result.get("edit") if isinstance(result, dict) else None
                        judged = _apply(text, edit) if result.get("applied") and edit else ""
            except Exception as error:
                answer, judged = f"error: {error}", ""
            times.append(time.perf_counter() - t0)
            if judged and candidate.ok(judged):
                successes += 1
            else:
                failed.append(answer.strip().replace("\n", "⏎")[:160])
        print(
            f"{successes}/{trials}  {statistics.median(times):5.1f} s  {candidate.name}",
            flush=True,
        )
        for answer in failed:
            print(f"      failed: {answer}", flush=True)
    await client.shutdown_async(None)
    client.exit(None)
    await asyncio.wait_for(client.stop(), 10)  # type: ignore[no-untyped-call]
    drain_task.cancel()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--only", nargs="*", default=[])
    args = parser.parse_args()
    return asyncio.run(run(args.trials, args.only, SAMPLE))


if __name__ == "__main__":
    raise SystemExit(main())
