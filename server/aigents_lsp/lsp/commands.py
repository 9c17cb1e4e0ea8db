"""Inline chat commands (`workspace/executeCommand`): explain, edit, fix, docstring, tests,
chat, cancel. LSP arguments -> `AssistRequest` -> assist task -> result + `workspace/applyEdit`
(what a result becomes in the editor is lsp/command_results.py).

Every command answers with the same result shape (see docs/commands.md):
`{"markdown", "applied", "edit", "conversation", "model", "file"}`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams

from aigents_lsp.lsp.command_results import TITLES, deliver
from aigents_lsp.lsp.documents import LineDocument
from aigents_lsp.lsp.jobs import LiveProgress, run_job
from aigents_lsp.lsp.requests import RequestFailed, command_argument
from aigents_lsp.lsp.workspace_edits import (
    EditTarget,
)
from aigents_lsp.providers.base import ChatMessage, Provider, ProviderError

if TYPE_CHECKING:
    from aigents_lsp.assist.tasks import AssistRequest, AssistResult, TaskName
    from aigents_lsp.lsp.server import AigentsServer

log = logging.getLogger(__name__)

COMMANDS = {
    "explain": "aigents.explain",
    "edit": "aigents.edit",
    "fix": "aigents.fix",
    "docstring": "aigents.docstring",
    "tests": "aigents.tests",
    "chat": "aigents.chat",
}
CANCEL_COMMAND = "aigents.cancel"
ACTION_COMMAND = "aigents.action"
CONTEXT_CHARS = 6000  # text above/below a selection given to the model
REWRITE_CHOICES = {
    "Make it clearer": "Rewrite this code to be clearer and more idiomatic, same behaviour.",
    "Add error handling": "Add sensible error handling to this code.",
    "Optimize": "Make this code faster without changing its behaviour.",
    "Add type hints": "Add precise type annotations to this code.",
}


# --- arguments ---------------------------------------------------------------------------------


def _range(ls: AigentsServer, value: Any) -> types.Range:
    try:
        return ls.protocol._converter.structure(value, types.Range)
    except Exception as exc:
        raise JsonRpcInvalidParams(message=f"invalid `range`: {exc}") from None


def _document(ls: AigentsServer, uri: Any) -> LineDocument:
    if not isinstance(uri, str):
        raise JsonRpcInvalidParams(message="`uri` (the document) is required")
    document = ls.workspace.text_documents.get(uri)
    if not isinstance(document, LineDocument):
        raise JsonRpcInvalidParams(message=f"{uri} is not open in the editor")
    if not ls.context_allowed(uri):
        raise RequestFailed(
            message=f"{uri} is ignored or secret (.gitignore, .aigentsignore or the deny list): "
            "it is never sent to a model"
        )
    return document


def _diagnostics(ls: AigentsServer, value: Any) -> tuple[Any, ...]:
    from aigents_lsp.assist.prompts import DiagnosticInfo

    if not value:
        return ()
    try:
        found = ls.protocol._converter.structure(value, list[types.Diagnostic])
    except Exception as exc:
        raise JsonRpcInvalidParams(message=f"invalid `diagnostics`: {exc}") from None
    severities = {1: "error", 2: "warning", 3: "information", 4: "hint"}
    return tuple(
        DiagnosticInfo(
            message=d.message,
            line=d.range.start.line,
            source=d.source,
            code=str(d.code) if d.code is not None else None,
            severity=severities.get(int(d.severity or 1), "error"),
        )
        for d in found
    )


def _history(value: Any) -> tuple[ChatMessage, ...]:
    history: list[ChatMessage] = []
    for turn in value or []:
        if not isinstance(turn, dict) or turn.get("role") not in ("user", "assistant"):
            raise JsonRpcInvalidParams(
                message="`conversation` is a list of {role: user|assistant, content}"
            )
        history.append(ChatMessage(turn["role"], str(turn.get("content") or "")))
    return tuple(history)


def build_request(
    ls: AigentsServer, task: TaskName, arg: dict[str, Any], *, whole_block: bool = False
) -> tuple[AssistRequest, EditTarget | None]:
    """The assist request for a command's arguments (selection, context around it, ...), and
    the document as it saw it (version and lines: what the edit's line numbers refer to)."""
    from aigents_lsp.assist.selection import enclosing_block, selected_lines
    from aigents_lsp.assist.tasks import AssistRequest

    uri = arg.get("uri")
    if task == "chat" and not uri:
        question = str(arg.get("question") or "").strip()
        if not question:
            raise JsonRpcInvalidParams(message="`question` is required")
        return AssistRequest(
            "chat", question=question, history=_history(arg.get("conversation"))
        ), None
    document = _document(ls, uri)
    lines = [line.rstrip("\r\n") for line in document.lines] or [""]
    if arg.get("range") is not None:
        selection = _range(ls, arg["range"])
        start, _ = document.to_server(selection.start)
        end, end_column = document.to_server(selection.end)
        first, last = selected_lines(lines, start, end, end_column)
        if whole_block and first == last:  # a cursor: the function (or class) around it
            first, last = enclosing_block(lines, first)
    else:
        first, last = enclosing_block(lines, 0) if whole_block else (0, len(lines) - 1)
    code = "\n".join(lines[first : last + 1])
    before = "\n".join(lines[max(0, first - 200) : first])[-CONTEXT_CHARS:]
    after = "\n".join(lines[last + 1 : last + 200])[:CONTEXT_CHARS]
    request = AssistRequest(
        task,
        code=code,
        language=document.language_id or "",
        file_path=ls.relative_path(document.uri),
        first_line=first,
        before=before,
        after=after,
        instruction=str(arg.get("instruction") or ""),
        diagnostics=_diagnostics(ls, arg.get("diagnostics")),
        question=str(arg.get("question") or ""),
        history=_history(arg.get("conversation")),
        template=arg.get("template"),
        wants_edit=bool(arg.get("wantsEdit", False)),
    )
    return request, EditTarget.of(document, first, last)


# --- running ---------------------------------------------------------------------------------


async def execute(
    ls: AigentsServer, task: TaskName, arg: dict[str, Any], *, whole_block: bool = False
) -> dict[str, Any]:
    """Run one assist task as a cancellable job and answer with the result shape."""
    if task == "edit" and not str(arg.get("instruction") or "").strip():
        instruction = await ask_instruction(ls)
        if instruction is None:
            raise JsonRpcInvalidParams(message="`instruction` is required for aigents.edit")
        arg = {**arg, "instruction": instruction}
    request, target = build_request(ls, task, arg, whole_block=whole_block)
    if task == "tests" and target is not None:
        request = with_test_target(ls, request, target.document)

    async def work(progress: LiveProgress) -> dict[str, Any]:
        result = await run_task(ls, request, progress)
        return await deliver(ls, task, request, result, target, show=arg.get("show", True))

    return await run_job(ls, TITLES[task], work)


async def run_task(
    ls: AigentsServer, request: AssistRequest, progress: LiveProgress
) -> AssistResult:
    from aigents_lsp.assist.edits import EditRefused

    backend = ls.backend
    for attempt in (1, 2):
        provider = None
        try:
            provider = await backend.provider("chat")
            return await _assist_with(ls, provider, request, progress)
        except ProviderError as error:
            backend.report_error(error, provider)
            # Routed: nothing answered, so nothing was shown; the next provider takes over.
            retry = error.kind == "server_down" and attempt == 1
            if not retry or (await backend.provider("chat")) is provider:
                raise RequestFailed(message=str(error)) from None
        except EditRefused as refused:
            raise RequestFailed(message=f"aigents: {refused}") from None
    raise AssertionError("unreachable")


async def _assist_with(
    ls: AigentsServer, provider: Provider, request: AssistRequest, progress: LiveProgress
) -> AssistResult:
    from aigents_lsp.assist.tasks import AssistOptions, run_assist

    backend = ls.backend
    settings = ls.settings
    model = await backend.model_for("chat")
    # A model loaded just in time is waited for with progress, not against the first token.
    await backend.ensure_loaded("chat", provider, model, wait=True, on_wait=progress.note)
    info = await backend.model_info(model, "chat")
    options = AssistOptions(
        model=model,
        context_tokens=(info.context_length if info and info.context_length else 4096),
        chat_temperature=settings.chat_temperature,
        edit_temperature=settings.edit_temperature,
        max_tokens=settings.chat_max_tokens,
        max_tool_steps=settings.tool_steps,
        # The embedded engine's tiny model cannot call tools: give it search results.
        tool_support=False if provider.name == "embedded" else None,
    )
    async with backend.busy(model):
        result = await run_assist(
            provider,
            request,
            options,
            tools=ls.workspace_tools() if request.task in ("explain", "chat") else None,
            on_text=progress.text,
            on_tool=lambda name, summary: progress.note(f"{name}: {summary}"),
        )
    backend.mark_ready(model, provider)
    return result


def with_test_target(
    ls: AigentsServer, request: AssistRequest, document: LineDocument
) -> AssistRequest:
    from aigents_lsp.assist.selection import test_path_for
    from aigents_lsp.assist.tasks import AssistRequest

    relative = request.file_path or Path(document.path).name
    target = test_path_for(relative, request.language)
    root = ls.workspace_roots[0] if ls.workspace_roots else Path(document.path).parent
    path = root / target
    existing = None
    open_doc = ls.workspace.text_documents.get(path.as_uri())
    if not ls.context_allowed(path.as_uri()):
        # Ignored or secret: the model writes without seeing it (the tests are appended).
        log.info("tests: %s is ignored, so the model is not shown its tests", target)
    elif open_doc is not None:
        existing = open_doc.source
    elif path.is_file():
        existing = path.read_text(encoding="utf-8", errors="replace")
    return AssistRequest(**{**request.__dict__, "test_path": target, "existing_tests": existing})


async def ask_instruction(ls: AigentsServer) -> str | None:
    """A free-text question is not possible in LSP: offer common rewrites to pick from
    (our editor plugins ask for free text and call `aigents.edit` themselves)."""
    question = types.ShowMessageRequestParams(
        type=types.MessageType.Info,
        message="AI: Rewrite the selection how?",
        actions=[types.MessageActionItem(title=t) for t in REWRITE_CHOICES],
    )
    try:
        choice = await ls.window_show_message_request_async(question)
    except JsonRpcException:  # the editor could not ask: as if the user dismissed it
        return None
    if choice is None:
        return None
    return REWRITE_CHOICES.get(choice.title)


# --- registration ------------------------------------------------------------------------------


def register(server: AigentsServer) -> None:
    # Command handlers use `server` from here, not an `ls` parameter (see lsp/features.py).
    def make(task: TaskName, whole_block: bool) -> None:
        @server.command(COMMANDS[task])
        async def handler(*args: Any) -> dict[str, Any]:
            return await execute(server, task, command_argument(args), whole_block=whole_block)

    make("explain", False)
    make("edit", False)
    make("fix", False)
    make("docstring", True)
    make("tests", True)
    make("chat", False)

    @server.command(CANCEL_COMMAND)
    def cancel(*args: Any) -> dict[str, int]:
        """Cancel every running command (their backend streams are closed)."""
        return {"cancelled": server.jobs.cancel_all()}

    @server.command(ACTION_COMMAND)
    async def action(*args: Any) -> dict[str, Any]:
        """A user-defined action from the `actions` setting: {uri, range, name}."""
        arg = command_argument(args)
        found = next((a for a in server.settings.actions if a.title == arg.get("name")), None)
        if found is None:
            raise JsonRpcInvalidParams(message=f"no action named {arg.get('name')!r}")
        arg = {**arg, "template": found.prompt, "wantsEdit": found.edit}
        return await execute(server, "custom", arg)
