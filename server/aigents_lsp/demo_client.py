"""The editor side of `aigents-lsp demo`: a pygls client that shows what the server sends
(status, messages, progress), accepts its edits without writing them, and asks for ghost text,
a completion item or a line range the way an editor does. The script is in demo.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

from aigents_lsp import __version__


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


def new_client() -> DemoClient:
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


def position_after(text: str, marker: str) -> types.Position:
    offset = text.index(marker) + len(marker)
    before = text[:offset]
    return types.Position(line=before.count("\n"), character=len(before.rsplit("\n", 1)[-1]))


async def drain(stream: asyncio.StreamReader | None, sink: list[bytes]) -> None:
    # The server logs to stderr; an unread pipe would fill up and block it.
    if stream is None:
        return
    while chunk := await stream.read(65536):
        sink.append(chunk)


async def ask(
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


def lines_range(text: str, first_line: str, count: int) -> types.Range:
    """`count` whole lines from the one that starts with `first_line`."""
    first = next(i for i, line in enumerate(text.split("\n")) if line.startswith(first_line))
    return types.Range(
        start=types.Position(line=first, character=0),
        end=types.Position(line=first + count, character=0),
    )
