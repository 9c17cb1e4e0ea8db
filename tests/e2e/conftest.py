"""End-to-end fixtures: the real server over stdio, driven by pytest-lsp."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Union

import pytest_asyncio
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

SERVER = [sys.executable, "-m", "aigents_lsp"]


def capabilities_of(editor: str) -> types.ClientCapabilities:
    """Real client capabilities. pytest-lsp's VS Code set is from 1.65; VS Code with
    vscode-languageclient 10 also offers inline completion (LSP 3.18), as added here."""
    capabilities = client_capabilities(editor)
    if editor.startswith("visual-studio-code") and capabilities.text_document is not None:
        capabilities.text_document.inline_completion = types.InlineCompletionClientCapabilities(
            dynamic_registration=True
        )
    return capabilities


def free_port() -> int:
    """A loopback port with nothing listening (for "backend is down")."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_env(home: Path, **settings: str) -> dict[str, str]:
    """The environment of a server under test: isolated config/state dirs, AIGENTS_* given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIGENTS_")}
    env.update(
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_STATE_HOME=str(home / "state"),
        LM_API_TOKEN="",
        LMSTUDIO_API_TOKEN="",
    )
    env.update({f"AIGENTS_{k.upper()}": v for k, v in settings.items()})
    return env


def server_log(home: Path) -> str:
    """The log file of a server started with `server_env(home)` (stderr has the same lines)."""
    path = home / "state" / "aigents-lsp" / "aigents-lsp.log"
    return path.read_text(encoding="utf-8") if path.exists() else ""


class StatusClient(LanguageClient):
    """The pytest-lsp client plus a record of `aigents/status` notifications."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.statuses: list[dict[str, Any]] = []
        self.init_result: types.InitializeResult | None = None
        self.documents: dict[str, str] = {}  # the editor's copy of each document
        self.versions: dict[str, int] = {}  # the version of each document open in the editor
        self.applied: list[types.WorkspaceEdit] = []
        self.questions: list[types.ShowMessageRequestParams] = []
        self.apply_asked = 0  # workspace/applyEdit requests received
        self.apply_gate: asyncio.Event | None = None  # set: applyEdit waits for it (a user)

    @property
    def encoding(self) -> str:
        """The position encoding the server chose (utf-16 when it said nothing)."""
        result = self.init_result
        chosen = result.capabilities.position_encoding if result is not None else None
        return str(chosen or "utf-16")


def make_client() -> StatusClient:
    from pygls.protocol import default_converter
    from pytest_lsp.client import register_lsp_features

    client = StatusClient(converter_factory=default_converter)
    register_lsp_features(client)  # pytest-lsp's handlers: configuration, progress, messages
    converter = client.protocol._converter

    def command_or_action(value: Any, _: Any) -> types.Command | types.CodeAction:
        # lsprotocol's union hook decodes a CodeAction that carries a command as a Command.
        if isinstance(value.get("command"), str):
            return converter.structure(value, types.Command)  # type: ignore[no-any-return]
        return converter.structure(value, types.CodeAction)  # type: ignore[no-any-return]

    converter.register_structure_hook(
        Union[types.Command, types.CodeAction],  # noqa: UP007 - the exact type to hook
        command_or_action,
    )

    @client.feature("aigents/status")
    def on_status(ls: StatusClient, params: Any) -> None:
        # pygls hands unknown notifications over as a namedtuple `Object`
        ls.statuses.append(params if isinstance(params, dict) else params._asdict())

    @client.feature(types.CLIENT_REGISTER_CAPABILITY)
    def on_register(ls: StatusClient, params: types.RegistrationParams) -> None:
        return None  # like an editor: dynamic registrations are accepted

    @client.feature(types.WINDOW_SHOW_MESSAGE_REQUEST)
    def on_message_request(
        ls: StatusClient, params: types.ShowMessageRequestParams
    ) -> types.MessageActionItem | None:
        ls.questions.append(params)
        return params.actions[0] if params.actions else None  # the user picks the first

    @client.feature(types.WORKSPACE_APPLY_EDIT)
    async def on_apply_edit(
        ls: StatusClient, params: types.ApplyWorkspaceEditParams
    ) -> types.ApplyWorkspaceEditResult:
        ls.apply_asked += 1
        if ls.apply_gate is not None:
            await ls.apply_gate.wait()
        # Like VS Code and Neovim: an edit for another version of an open document is
        # refused whole, and an applied one reaches the server as a didChange.
        ls.applied.append(params.edit)
        before = dict(ls.documents)
        try:
            apply_workspace_edit(ls.documents, params.edit, ls.versions, ls.encoding)
        except Exception as exc:
            return types.ApplyWorkspaceEditResult(applied=False, failure_reason=str(exc))
        for uri, text in ls.documents.items():
            if uri in ls.versions and before.get(uri) != text:
                replace_text(ls, uri, text)
        return types.ApplyWorkspaceEditResult(applied=True)

    return client


@pytest_asyncio.fixture
async def start_server(
    tmp_path: Path,
) -> AsyncIterator[Callable[..., Any]]:
    """`await start_server(editor="visual-studio-code", init_options=..., **AIGENTS_settings)`
    spawns the real server over stdio, runs initialize/initialized and returns the client."""
    started: list[StatusClient] = []

    async def start(
        editor: str = "visual-studio-code",
        init_options: dict[str, Any] | None = None,
        root: Path | None = None,
        **settings: str,
    ) -> StatusClient:
        config = ClientServerConfig(
            server_command=SERVER,
            client_factory=make_client,
            server_env=server_env(tmp_path, **settings),
        )
        client = await config.start()
        assert isinstance(client, StatusClient)
        started.append(client)
        workspace = root or tmp_path / "ws"
        workspace.mkdir(exist_ok=True)
        client.init_result = await client.initialize_session(
            types.InitializeParams(
                capabilities=capabilities_of(editor),
                initialization_options=init_options,
                root_uri=workspace.as_uri(),
                workspace_folders=[types.WorkspaceFolder(uri=workspace.as_uri(), name="ws")],
            )
        )
        return client

    yield start
    for client in started:
        try:
            await client.shutdown_session()
        finally:
            await client.stop()


def _units(char: str, encoding: str) -> int:
    if encoding == "utf-8":
        return len(char.encode("utf-8"))
    if encoding == "utf-32":
        return 1
    return 2 if ord(char) > 0xFFFF else 1


def _offset(text: str, position: types.Position, encoding: str = "utf-16") -> int:
    """A position in the negotiated encoding (utf-16: VS Code) -> string offset."""
    lines = text.split("\n")
    if position.line >= len(lines):
        return len(text)
    start = sum(len(line) + 1 for line in lines[: position.line])
    line, units, column = lines[position.line], 0, 0
    while column < len(line) and units < position.character:
        units += _units(line[column], encoding)
        column += 1
    return start + column


def apply_text_edits(text: str, edits: list[Any], encoding: str = "utf-16") -> str:
    spans = sorted(
        (
            (
                _offset(text, e.range.start, encoding),
                _offset(text, e.range.end, encoding),
                e.new_text,
            )
            for e in edits
        ),
        reverse=True,
    )
    for start, end, new in spans:
        text = text[:start] + new + text[end:]
    return text


class VersionMismatch(ValueError):
    """A versioned edit for a document the editor has at another version."""


def apply_workspace_edit(
    documents: dict[str, str],
    edit: types.WorkspaceEdit,
    versions: dict[str, int] | None = None,
    encoding: str = "utf-16",
) -> None:
    """Apply an edit to the editor's copy of the documents, as an editor would: all of it or
    (an error) nothing; with `versions`, an edit for another version of an open document is
    refused (`VersionMismatch`)."""
    for change in edit.document_changes or []:
        if isinstance(change, types.TextDocumentEdit) and versions is not None:
            uri, version = change.text_document.uri, change.text_document.version
            if version is not None and uri in versions and versions[uri] != version:
                raise VersionMismatch(
                    f"version mismatch: the edit is for version {version} of {uri}, "
                    f"the editor has version {versions[uri]}"
                )
    changed = dict(documents)
    for uri, edits in (edit.changes or {}).items():
        changed[uri] = apply_text_edits(changed[uri], list(edits), encoding)
    for change in edit.document_changes or []:
        if isinstance(change, types.CreateFile):
            changed.setdefault(change.uri, "")
        elif isinstance(change, types.TextDocumentEdit):
            uri = change.text_document.uri
            if uri not in changed:
                raise ValueError(f"edit for a document the editor does not have: {uri}")
            changed[uri] = apply_text_edits(changed[uri], list(change.edits), encoding)
        else:
            raise ValueError(f"unexpected change {change!r}")
    documents.update(changed)


async def until(predicate: Callable[[], Any], seconds: float = 10.0) -> None:
    """Wait until `predicate()` is true (notifications arrive on their own schedule)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not reached in {seconds} s")
        await asyncio.sleep(0.05)


def open_doc(client: LanguageClient, uri: str, text: str, language: str = "python") -> None:
    if isinstance(client, StatusClient):
        client.documents[uri] = text
        client.versions[uri] = 1
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id=language, version=1, text=text
            )
        )
    )


def type_text(client: StatusClient, uri: str, position: types.Position, text: str) -> None:
    """The user types `text` at `position` (UTF-16): the editor's copy changes, its version
    goes up, and the server gets an incremental didChange."""
    at = _offset(client.documents[uri], position, client.encoding)
    client.documents[uri] = client.documents[uri][:at] + text + client.documents[uri][at:]
    client.versions[uri] += 1
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(
                uri=uri, version=client.versions[uri]
            ),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=position, end=position), text=text
                )
            ],
        )
    )


def replace_text(client: StatusClient, uri: str, text: str) -> None:
    """The editor's copy of `uri` is now `text` (an applied edit): a whole-document didChange."""
    client.documents[uri] = text
    client.versions[uri] += 1
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(
                uri=uri, version=client.versions[uri]
            ),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )


def end_of(text: str) -> types.Position:
    lines = text.split("\n")
    return types.Position(line=len(lines) - 1, character=len(lines[-1]))


async def items(client: LanguageClient, uri: str, position: types.Position) -> list[str]:
    """Classic completion (editors without inline completion): the inserted texts."""
    result = await client.text_document_completion_async(
        types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=position,
            context=types.CompletionContext(trigger_kind=types.CompletionTriggerKind.Invoked),
        )
    )
    found = result.items if isinstance(result, types.CompletionList) else result or []
    return [item.text_edit.new_text for item in found if item.text_edit is not None]


async def inline(client: LanguageClient, uri: str, position: types.Position) -> list[str]:
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=position,
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Invoked
            ),
        )
    )
    items = result.items if isinstance(result, types.InlineCompletionList) else result or []
    return [shown_text(i) for i in items]


def shown_text(item: types.InlineCompletionItem) -> str:
    """What an editor shows of an item at the cursor: its text without the part its range
    covers before the cursor (items start at the word typed, which they repeat)."""
    text = item.insert_text if isinstance(item.insert_text, str) else item.insert_text.value
    span = item.range
    if span is not None and span.start.line == span.end.line:
        text = text[span.end.character - span.start.character :]
    return text


async def explain(client: LanguageClient, uri: str, lines: tuple[int, int] = (0, 1)) -> Any:
    """`aigents.explain` of whole `lines` (end exclusive) without showing the answer."""
    start, end = (types.Position(line=line, character=0) for line in lines)
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(
            command="aigents.explain",
            arguments=[{"uri": uri, "range": {"start": start, "end": end}, "show": False}],
        )
    )
    return result if isinstance(result, dict) else json.loads(json.dumps(result, default=vars))
