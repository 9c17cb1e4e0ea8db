"""`aigents-lsp demo`: a real editor session, scripted over the LSP protocol.

Spawns `python -m aigents_lsp` on stdio exactly as an editor would, opens a sample file, asks
for ghost text and classic completions at a few places, and prints what came back and how long
it took. With no LM Studio running, the embedded engine answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

from aigents_lsp import __version__

SAMPLE = '''import math


def area_of_circle(radius: float) -> float:
    """Return the area of a circle with the given radius."""
    return math.pi * radius ** 2


def circumference(radius: float) -> float:
    """Return the circumference of a circle with the given radius."""
    return\x20


def fibonacci(n: int) -> int:
    """Return the n-th Fibonacci number."""

'''


class DemoClient(LanguageClient):
    def __init__(self) -> None:
        super().__init__("aigents-demo", __version__)
        self.statuses: list[dict[str, Any]] = []
        self.messages: list[str] = []


Handler = Callable[..., Any]


def _on(client: DemoClient, method: str) -> Callable[[Handler], Handler]:
    """`client.feature`, typed (pygls' client decorator has no annotations)."""
    register: Callable[[Handler], Handler] = client.feature(method)
    return register


def _client() -> DemoClient:
    client = DemoClient()

    @_on(client, "aigents/status")
    def on_status(ls: DemoClient, params: Any) -> None:
        # pygls hands unknown notifications over as a namedtuple `Object`
        status = params if isinstance(params, dict) else params._asdict()
        ls.statuses.append(status)
        print(
            f"  · status: {status.get('state')} ({status.get('provider')}"
            f"{', ' + str(status.get('model')) if status.get('model') else ''})"
        )

    @_on(client, types.WINDOW_SHOW_MESSAGE)
    def on_message(ls: DemoClient, params: types.ShowMessageParams) -> None:
        ls.messages.append(params.message)
        print(f"  · message: {params.message}")

    @_on(client, types.WINDOW_LOG_MESSAGE)
    def on_log(ls: DemoClient, params: types.LogMessageParams) -> None:
        print(f"  · log: {params.message}")

    @_on(client, types.WORKSPACE_APPLY_EDIT)
    def on_apply_edit(
        ls: DemoClient, params: types.ApplyWorkspaceEditParams
    ) -> types.ApplyWorkspaceEditResult:
        return types.ApplyWorkspaceEditResult(applied=True)  # shown, not written to disk

    @_on(client, types.WINDOW_WORK_DONE_PROGRESS_CREATE)
    def on_progress_create(ls: DemoClient, params: types.WorkDoneProgressCreateParams) -> None:
        return None

    @_on(client, types.PROGRESS)
    def on_progress(ls: DemoClient, params: types.ProgressParams) -> None:
        value = params.value
        message = getattr(value, "message", None) or (
            value.get("message") if isinstance(value, dict) else None
        )
        if message and not message.endswith("tok/s)"):  # live text of commands: too chatty
            print(f"  · progress: {message}")

    return client


def _position_after(text: str, marker: str) -> types.Position:
    offset = text.index(marker) + len(marker)
    before = text[:offset]
    return types.Position(line=before.count("\n"), character=len(before.rsplit("\n", 1)[-1]))


async def _drain(stream: asyncio.StreamReader | None, sink: list[bytes]) -> None:
    # The server logs to stderr; an unread pipe would fill up and block it.
    if stream is None:
        return
    while chunk := await stream.read(65536):
        sink.append(chunk)


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
    if custom_file:
        lines = text.split("\n")
        return [("end of file", types.Position(line=len(lines) - 1, character=len(lines[-1])))]
    body = '    """Return the n-th Fibonacci number."""\n'
    line = 'circumference of a circle with the given radius."""\n    return '
    return [
        ("body of fibonacci()", _position_after(text, body)),
        ("end of `return `", _position_after(text, line)),
    ]


def _show(label: str, suggestion: str | None, ms: float) -> bool:
    if not suggestion:
        print(f"\n{label}: no suggestion ({ms:.0f} ms)")
        return False
    print(f"\n{label} in {ms:.0f} ms:")
    for line in suggestion.split("\n"):
        print(f"    │ {line}")
    return True


async def _ask(
    client: DemoClient,
    document: types.TextDocumentIdentifier,
    position: types.Position,
    inline: bool,
) -> str | None:
    """Ghost text (inline completion) or the first completion item's text."""
    if inline:
        answer = await client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=document,
                position=position,
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Invoked
                ),
            )
        )
        found = answer.items if isinstance(answer, types.InlineCompletionList) else answer
        if not found:
            return None
        first = found[0].insert_text
        return first if isinstance(first, str) else first.value
    listed = await client.text_document_completion_async(
        types.CompletionParams(
            text_document=document,
            position=position,
            context=types.CompletionContext(trigger_kind=types.CompletionTriggerKind.Invoked),
        )
    )
    entries = listed.items if isinstance(listed, types.CompletionList) else listed
    if entries and entries[0].text_edit is not None:
        return entries[0].text_edit.new_text
    return None


def _function_range(text: str, name: str) -> types.Range:
    lines = text.split("\n")
    first = next(i for i, line in enumerate(lines) if line.startswith(f"def {name}("))
    last = first + 1
    while last < len(lines) and (lines[last].startswith(" ") or not lines[last].strip()):
        last += 1
    while not lines[last - 1].strip():
        last -= 1
    return types.Range(
        start=types.Position(line=first, character=0), end=types.Position(line=last, character=0)
    )


async def _assist(client: DemoClient, document: types.TextDocumentIdentifier, text: str) -> None:
    """Code actions (listed without a model call) and two commands, with timings."""
    selection = _function_range(text, "area_of_circle")
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
    argument = {
        "uri": document.uri,
        "range": client.protocol._converter.unstructure(selection),
        "show": False,
    }
    for command, extra in (
        ("aigents.explain", {}),
        ("aigents.edit", {"instruction": "Use a descriptive parameter name."}),
    ):
        t0 = time.perf_counter()
        try:
            result = await client.workspace_execute_command_async(
                types.ExecuteCommandParams(command=command, arguments=[{**argument, **extra}])
            )
        except Exception as error:  # e.g. the small model proposed no usable change
            ms = (time.perf_counter() - t0) * 1000
            print(f"\n{command} in {ms:.0f} ms: {error}")
            continue
        ms = (time.perf_counter() - t0) * 1000
        answer = result.get("markdown", "") if isinstance(result, dict) else str(result)
        applied = result.get("applied") if isinstance(result, dict) else None
        status = "" if applied is None else f" (edit {'applied' if applied else 'not applied'})"
        print(f"\n{command} in {ms:.0f} ms{status}:")
        for line in answer.strip().split("\n")[:12]:
            print(f"    │ {line}")


async def _session(
    text: str, uri: str, root: Path, env: dict[str, str], *, inline: bool, custom_file: bool
) -> tuple[int, dict[str, Any]]:
    """One editor session; returns (requests without a suggestion, last status)."""
    client = _client()
    started = time.perf_counter()
    await client.start_io(sys.executable, "-m", "aigents_lsp", env=env)
    stderr: list[bytes] = []
    server_process = getattr(client, "_server", None)
    drain = asyncio.create_task(_drain(getattr(server_process, "stderr", None), stderr))
    failures = 0
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
        for label, position in _targets(text, custom_file):
            label = f"{label} (line {position.line + 1})"
            t0 = time.perf_counter()
            try:
                suggestion = await _ask(client, document, position, inline)
            except Exception as error:  # the server's answer was an error: show it, go on
                print(f"\n{label}: the server answered with an error: {error}")
                failures += 1
                continue
            ms = (time.perf_counter() - t0) * 1000
            failures += not _show(label, suggestion, ms)
        if inline and not custom_file:
            await _assist(client, document, text)
        last = client.statuses[-1] if client.statuses else {}
        await client.shutdown_async(None)
        client.exit(None)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.stop(), 5)  # type: ignore[no-untyped-call]
        drain.cancel()
    if failures:
        tail = b"".join(stderr)[-2000:].decode("utf-8", "replace")
        if tail:
            print(f"server log (tail):\n{tail}", file=sys.stderr)
    return failures, last


async def run_demo(file: str | None = None, provider: str | None = None) -> int:
    text, uri, root = _load(file)
    env = {**os.environ}
    if provider:
        env["AIGENTS_PROVIDER"] = provider
    failures = 0
    print(f"aigents-lsp demo: `{sys.executable} -m aigents_lsp` over stdio, as an editor runs it")
    print("\n== an editor with ghost text (like VS Code) ==")
    missed, last = await _session(text, uri, root, env, inline=True, custom_file=bool(file))
    failures += missed
    print("\n== an editor without ghost text (like Neovim 0.11): one completion item ==")
    missed, last = await _session(text, uri, root, env, inline=False, custom_file=bool(file))
    failures += missed
    print(f"\nserved by: {last.get('provider')} / {last.get('model')}")
    if failures:
        print("demo: some requests got no suggestion; run `aigents-lsp doctor`.", file=sys.stderr)
        return 1
    print("demo: done.")
    return 0
