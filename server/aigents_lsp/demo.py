"""`aigents-lsp demo`: a real editor session, scripted over the LSP protocol.

Spawns `python -m aigents_lsp` on stdio exactly as an editor would, opens a sample file, asks
for ghost text and classic completions at a few places, runs a command or two, and prints what
came back and how long it took. With no LM Studio running, the embedded engine answers.

Every step is judged (a suggestion came back, a command answered, an edit applied) and the demo
ends with `demo: N/N steps succeeded.`, exit 0 only when all did. The built-in sample and steps
are ones the small embedded models do reliably: benchmarks/demo_steps.py measures candidates.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types

from aigents_lsp import __version__
from aigents_lsp.demo_client import DemoClient, ask, drain, lines_range, new_client, position_after

SAMPLE = '''import math


def area_of_circle(radius: float) -> float:
    """Return the area of a circle with the given radius."""
    return 3.14159 * radius ** 2


def circumference(radius: float) -> float:
    """Return the circumference of a circle with the given radius."""
    return\x20


def fibonacci(n: int) -> int:
    """Return the n-th Fibonacci number."""


def is_even(n: int) -> bool:
    return n % 2 == 0


def greet(name):
    print("Hello, " + name)


def celsius_to_fahrenheit(celsius: float) -> float:
    """Convert a temperature from Celsius to Fahrenheit."""
    return\x20
'''


@dataclass
class DemoReport:
    """Each step's outcome: (label, succeeded, why it failed)."""

    steps: list[tuple[str, bool, str]] = field(default_factory=list)

    def record(self, label: str, ok: bool, why: str = "") -> None:
        self.steps.append((label, ok, why))
        print(f"  {'✓' if ok else '✗'} {label}{'' if ok else f': {why}'}")

    @property
    def failed(self) -> list[str]:
        return [f"{label} ({why})" for label, ok, why in self.steps if not ok]


@dataclass(frozen=True)
class CommandStep:
    """A command on the lines of the sample that start at `first_line`."""

    command: str
    first_line: str
    lines: int
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        instruction = self.extra.get("instruction")
        return f"{self.command}" + (f" {instruction!r}" if instruction else "")


DEMO_COMPLETION_TIMEOUT = 120  # seconds
DEMO_CHAT_MAX_TOKENS = 256

# Each done reliably by the small embedded models on SAMPLE, measured by benchmarks/demo_steps.py
# (5 trials each): explain 5/5, this edit 5/5. A 3-line rename, a `math.pi` edit, the same
# f-string on both lines of greet() and a docstring for is_even() succeeded 0/5: the model
# rewrote more than the selection (or proposed no change).
COMMAND_STEPS = (
    CommandStep("aigents.explain", "def area_of_circle(", 3),
    CommandStep("aigents.edit", '    print("Hello, "', 1, {"instruction": "Use an f-string."}),
)


def _load(file: str | None) -> tuple[str, str, Path]:
    """(text, uri, workspace root). The sample lives in a fresh temporary workspace."""
    if not file:
        root = Path(tempfile.mkdtemp(prefix="aigents-demo-"))
        path = root / "sample.py"
        path.write_text(SAMPLE, encoding="utf-8")
        return SAMPLE, path.as_uri(), root
    path = Path(file).resolve()
    return path.read_text(encoding="utf-8"), path.as_uri(), path.parent


def _targets(text: str, custom_file: bool) -> list[tuple[str, types.Position]]:
    """Where completion is asked; in the sample, places Gemma 3 270M completed right 5/5
    (benchmarks/demo_steps.py)."""
    if custom_file:
        lines = text.split("\n")
        return [("end of file", types.Position(line=len(lines) - 1, character=len(lines[-1])))]
    body = '    """Return the n-th Fibonacci number."""\n'
    line = 'circumference of a circle with the given radius."""\n    return '
    return [
        ("body of fibonacci()", position_after(text, body)),
        ("end of `return `", position_after(text, line)),
    ]


def _show(label: str, suggestion: str | None, ms: float) -> bool:
    if not suggestion:
        print(f"\n{label}: no suggestion ({ms:.0f} ms)")
        return False
    print(f"\n{label} in {ms:.0f} ms:")
    for line in suggestion.split("\n"):
        print(f"    │ {line}")
    return True


async def _assist(
    client: DemoClient, document: types.TextDocumentIdentifier, text: str, report: DemoReport
) -> None:
    """Code actions (listed without a model call) and the commands, with timings."""
    selection = lines_range(text, "def area_of_circle(", 3)
    t0 = time.perf_counter()
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=document,
            range=selection,
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    ms = (time.perf_counter() - t0) * 1000
    titles = [a.title for a in actions or []]
    print(f"\ncode actions on area_of_circle() in {ms:.0f} ms (no model call): {', '.join(titles)}")
    report.record("code actions listed", bool(titles), "none listed")
    for step in COMMAND_STEPS:
        selected = lines_range(text, step.first_line, step.lines)
        argument = {
            "uri": document.uri,
            "range": client.protocol._converter.unstructure(selected),
            "show": False,
            **step.extra,
        }
        t0 = time.perf_counter()
        try:
            result = await client.workspace_execute_command_async(
                types.ExecuteCommandParams(command=step.command, arguments=[argument])
            )
        except Exception as error:  # e.g. the small model proposed no usable change
            ms = (time.perf_counter() - t0) * 1000
            print(f"\n{step.label} in {ms:.0f} ms: {error}")
            report.record(step.label, False, str(error))
            continue
        ms = (time.perf_counter() - t0) * 1000
        answer = result.get("markdown", "") if isinstance(result, dict) else str(result)
        applied = result.get("applied") if isinstance(result, dict) else None
        status = "" if applied is None else f" (edit {'applied' if applied else 'not applied'})"
        print(f"\n{step.label} on `{step.first_line.strip()}` in {ms:.0f} ms{status}:")
        for line in answer.strip().split("\n")[:12]:
            print(f"    │ {line}")
        if step.command == "aigents.explain":
            report.record(step.label, bool(answer.strip()), "an empty answer")
        else:
            report.record(step.label, applied is True, "the edit was not applied")


async def _session(
    text: str,
    uri: str,
    root: Path,
    env: dict[str, str],
    report: DemoReport,
    *,
    inline: bool,
    custom_file: bool,
) -> dict[str, Any]:
    """One editor session, its steps recorded in `report`; returns the last status."""
    client = new_client()
    started = time.perf_counter()
    await client.start_io(sys.executable, "-m", "aigents_lsp", env=env)
    stderr: list[bytes] = []
    server_process = getattr(client, "_server", None)
    draining = asyncio.create_task(drain(getattr(server_process, "stderr", None), stderr))
    failed_before = len(report.failed)
    text_capabilities = types.TextDocumentClientCapabilities(
        inline_completion=types.InlineCompletionClientCapabilities() if inline else None,
        completion=types.CompletionClientCapabilities(),
    )
    try:
        result = await client.initialize_async(
            types.InitializeParams(
                capabilities=types.ClientCapabilities(
                    text_document=text_capabilities,
                    workspace=types.WorkspaceClientCapabilities(
                        apply_edit=True,
                        workspace_edit=types.WorkspaceEditClientCapabilities(document_changes=True),
                    ),
                    window=types.WindowClientCapabilities(work_done_progress=True),
                    general=types.GeneralClientCapabilities(
                        position_encodings=[types.PositionEncodingKind.Utf16]
                    ),
                ),
                client_info=types.ClientInfo(name="aigents-demo", version=__version__),
                root_uri=root.as_uri(),
            )
        )
        init_ms = (time.perf_counter() - started) * 1000
        offered = "ghost text" if result.capabilities.inline_completion_provider else "items"
        print(f"initialized in {init_ms:.0f} ms; completion offered as {offered}")
        client.initialized(types.InitializedParams())
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id="python", version=1, text=text
                )
            )
        )
        document = types.TextDocumentIdentifier(uri=uri)
        kind = "ghost text" if inline else "completion item"
        for label, position in _targets(text, custom_file):
            label = f"{kind}: {label} (line {position.line + 1})"
            t0 = time.perf_counter()
            try:
                suggestion = await ask(client, document, position, inline)
            except Exception as error:  # the server's answer was an error: show it, go on
                print(f"\n{label}: the server answered with an error: {error}")
                report.record(label, False, str(error))
                continue
            ms = (time.perf_counter() - t0) * 1000
            report.record(label, _show(label, suggestion, ms), "no suggestion")
        if inline and not custom_file:
            await _assist(client, document, text, report)
        last = client.statuses[-1] if client.statuses else {}
        await client.shutdown_async(None)
        client.exit(None)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.stop(), 5)  # type: ignore[no-untyped-call]
        draining.cancel()
    if len(report.failed) > failed_before:
        tail = b"".join(stderr)[-2000:].decode("utf-8", "replace")
        if tail:
            print(f"server log (tail):\n{tail}", file=sys.stderr)
    return last


async def run_demo(file: str | None = None, provider: str | None = None) -> int:
    text, uri, root = _load(file)
    env = {**os.environ}
    if provider:
        env["AIGENTS_PROVIDER"] = provider
    # The first request waits while the embedded engine starts (seconds on a busy machine): a
    # demo is not a keystroke, so it waits longer than the editor default unless told.
    env.setdefault("AIGENTS_COMPLETION_TIMEOUT", str(DEMO_COMPLETION_TIMEOUT))
    # The typing deadline too: a demo request is asked once, not superseded by a keystroke.
    env.setdefault("AIGENTS_COMPLETION_DEADLINE", str(DEMO_COMPLETION_TIMEOUT))
    # Short answers: a small model's rambling (what breaks an edit) is cut, and the demo shows
    # the first lines of each answer anyway.
    env.setdefault("AIGENTS_CHAT_MAX_TOKENS", str(DEMO_CHAT_MAX_TOKENS))
    report = DemoReport()
    print(f"aigents-lsp demo: `{sys.executable} -m aigents_lsp` over stdio, as an editor runs it")
    print("\n== an editor with ghost text (like VS Code) ==")
    await _session(text, uri, root, env, report, inline=True, custom_file=bool(file))
    print("\n== an editor without ghost text (like Neovim 0.11): one completion item ==")
    last = await _session(text, uri, root, env, report, inline=False, custom_file=bool(file))
    print(f"\nserved by: {last.get('provider')} / {last.get('model')}")
    done = len(report.steps) - len(report.failed)
    if report.failed:
        print(
            f"demo: {done}/{len(report.steps)} steps succeeded; failed: "
            f"{'; '.join(report.failed)}. Run `aigents-lsp doctor`.",
            file=sys.stderr,
        )
        return 1
    print(f"demo: {done}/{len(report.steps)} steps succeeded.")
    return 0
