"""AI code actions: listed instantly (no model call), run on `codeAction/resolve`.

Kinds, so editors group them: `quickfix` "AI: Fix …" per diagnostic in range;
`refactor.rewrite` "AI: Rewrite…", "AI: Simplify", "AI: Add docstring" (and your own editing
actions); `source` "AI: Generate tests"; "AI: Explain" (and your own answering actions) run a
command. Clients that cannot resolve an action's edit get the same actions as commands.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from aigents_lsp.lsp.commands import (
    COMMANDS,
    ask_instruction,
    build_request,
    run_task,
    with_test_target,
)
from aigents_lsp.lsp.jobs import LiveProgress, run_job
from aigents_lsp.lsp.requests import RequestFailed, expect
from aigents_lsp.lsp.workspace_edits import (
    DocumentChanged,
    line_edits_to_workspace_edit,
    tests_edit,
)

if TYPE_CHECKING:
    from aigents_lsp.assist.tasks import TaskName
    from aigents_lsp.lsp.server import AigentsServer

log = logging.getLogger(__name__)

KINDS = [
    types.CodeActionKind.QuickFix,
    types.CodeActionKind.RefactorRewrite,
    types.CodeActionKind.Source,
    types.CodeActionKind.Empty,
]
SIMPLIFY = "Simplify this code without changing its behaviour."


def _supports_resolve(ls: AigentsServer) -> bool:
    text_document = ls.client_capabilities.text_document
    action = text_document.code_action if text_document else None
    support = action.resolve_support if action else None
    return bool(support and "edit" in support.properties)


def _wanted(kind: str, only: list[str] | None) -> bool:
    if not only:
        return True
    return any(kind == base or kind.startswith(base + ".") or base == "" for base in only)


def _action(
    ls: AigentsServer,
    title: str,
    kind: str,
    task: TaskName,
    arg: dict[str, Any],
    *,
    diagnostics: list[types.Diagnostic] | None = None,
    resolvable: bool = True,
) -> types.CodeAction:
    """An action that computes an edit on resolve, or runs a command when the client cannot
    resolve edits (or when the task has no edit, like Explain)."""
    if resolvable and _supports_resolve(ls):
        return types.CodeAction(
            title=title, kind=kind, diagnostics=diagnostics, data={"task": task, **arg}
        )
    command = COMMANDS.get(task, "aigents.action")
    return types.CodeAction(
        title=title,
        kind=kind,
        diagnostics=diagnostics,
        command=types.Command(title=title, command=command, arguments=[arg]),
    )


def list_actions(ls: AigentsServer, params: types.CodeActionParams) -> list[types.CodeAction]:
    """The AI actions for a range: pure bookkeeping, never a model call."""
    uri = params.text_document.uri
    if uri not in ls.workspace.text_documents or not ls.context_allowed(uri):
        return []
    converter = ls.protocol._converter
    selection = converter.unstructure(params.range)
    only = list(params.context.only) if params.context.only else None
    actions: list[types.CodeAction] = []
    if _wanted(types.CodeActionKind.QuickFix, only):
        for diagnostic in params.context.diagnostics[:5]:
            if diagnostic.source == "aigents":
                continue
            message = diagnostic.message.split("\n", 1)[0]
            short = message if len(message) <= 60 else message[:57] + "…"
            arg = {
                "uri": uri,
                "range": converter.unstructure(diagnostic.range),
                "diagnostics": [converter.unstructure(diagnostic)],
            }
            actions.append(
                _action(
                    ls,
                    f"AI: Fix “{short}”",
                    types.CodeActionKind.QuickFix,
                    "fix",
                    arg,
                    diagnostics=[diagnostic],
                )
            )
    base = {"uri": uri, "range": selection}
    if _wanted(types.CodeActionKind.RefactorRewrite, only):
        rewrite = types.CodeActionKind.RefactorRewrite
        actions.append(_action(ls, "AI: Rewrite…", rewrite, "edit", {**base, "ask": True}))
        actions.append(
            _action(ls, "AI: Simplify", rewrite, "edit", {**base, "instruction": SIMPLIFY})
        )
        actions.append(_action(ls, "AI: Add docstring", rewrite, "docstring", base))
    if _wanted(types.CodeActionKind.Empty, only):
        actions.append(
            _action(
                ls, "AI: Explain", types.CodeActionKind.Empty, "explain", base, resolvable=False
            )
        )
    if _wanted(types.CodeActionKind.Source, only):
        actions.append(
            _action(ls, "AI: Generate tests", types.CodeActionKind.Source, "tests", base)
        )
    for user_action in ls.settings.actions:
        kind = (
            types.CodeActionKind.RefactorRewrite if user_action.edit else types.CodeActionKind.Empty
        )
        if not _wanted(kind, only):
            continue
        arg = {**base, "name": user_action.title}
        if user_action.edit:
            actions.append(
                _action(
                    ls,
                    user_action.title,
                    kind,
                    "custom",
                    {**arg, "template": user_action.prompt, "wantsEdit": True},
                )
            )
        else:
            actions.append(
                types.CodeAction(
                    title=user_action.title,
                    kind=kind,
                    command=types.Command(
                        title=user_action.title, command="aigents.action", arguments=[arg]
                    ),
                )
            )
    return actions


async def resolve(ls: AigentsServer, action: types.CodeAction) -> types.CodeAction:
    """Run the model for an action and attach its edit."""
    data = action.data if isinstance(action.data, dict) else None
    if data is None or "task" not in data:
        return action
    task: TaskName = data["task"]
    arg = dict(data)
    if arg.pop("ask", False):
        instruction = await ask_instruction(ls)
        if instruction is None:
            return action  # the user dismissed the question: nothing to do
        arg["instruction"] = instruction
    whole_block = task in ("docstring", "tests", "fix")
    request, target = build_request(ls, task, arg, whole_block=whole_block)

    async def work(progress: LiveProgress) -> types.CodeAction:
        nonlocal request
        if task == "tests" and target is not None:
            request = with_test_target(ls, request, target.document)
        result = await run_task(ls, request, progress)
        if task == "tests" and result.file_text:
            action.edit, _ = tests_edit(ls, request, result.file_text)
        elif result.edits and target is not None:
            # The edit is versioned: an editor that changed the document since drops it.
            try:
                action.edit = line_edits_to_workspace_edit(
                    ls, target, list(result.edits), result.model
                )
            except DocumentChanged as changed:
                raise RequestFailed(message=f"aigents: {changed}") from None
        return action

    return await run_job(ls, action.title, work)


def register(server: AigentsServer) -> None:
    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=KINDS, resolve_provider=True),
    )
    def code_action(ls: AigentsServer, params: types.CodeActionParams) -> list[types.CodeAction]:
        return list_actions(ls, expect(params, types.CodeActionParams))

    @server.feature(types.CODE_ACTION_RESOLVE)
    async def code_action_resolve(ls: AigentsServer, action: types.CodeAction) -> types.CodeAction:
        return await resolve(ls, expect(action, types.CodeAction))
