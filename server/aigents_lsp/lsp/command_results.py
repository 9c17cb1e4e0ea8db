"""What a command's result becomes in the editor: its edit applied with `workspace/applyEdit`
(refused, not moved, when the lines changed meanwhile), its markdown shown to clients that will
not render it themselves (as a file outside the workspace, pruned, or as a message), and the
answer every command gives (see docs/commands.md).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException

from aigents_lsp.lsp.logs import default_log_path
from aigents_lsp.lsp.requests import RequestFailed
from aigents_lsp.lsp.workspace_edits import (
    DocumentChanged,
    EditTarget,
    line_edits_to_workspace_edit,
    tests_edit,
)

if TYPE_CHECKING:
    from aigents_lsp.assist.tasks import AssistRequest, AssistResult, TaskName
    from aigents_lsp.lsp.server import AigentsServer

log = logging.getLogger("aigents_lsp.lsp.commands")  # one logger for the commands

TITLES = {
    "explain": "aigents: explaining",
    "edit": "aigents: editing",
    "fix": "aigents: fixing",
    "docstring": "aigents: writing a docstring",
    "tests": "aigents: writing tests",
    "chat": "aigents: thinking",
    "custom": "aigents: running an action",
}


async def deliver(
    ls: AigentsServer,
    task: TaskName,
    request: AssistRequest,
    result: AssistResult,
    target: EditTarget | None,
    *,
    show: Any = True,
) -> dict[str, Any]:
    """Apply the result's edit (if any) and answer; show the markdown to clients that will
    not render it themselves. An edit whose lines changed meanwhile is refused, not moved."""
    edit: types.WorkspaceEdit | None = None
    applied: bool | None = None
    created: str | None = None
    if result.edits and target is not None:
        try:
            edit = line_edits_to_workspace_edit(ls, target, list(result.edits), result.model)
        except DocumentChanged as changed:
            raise RequestFailed(message=f"aigents: {changed}") from None
    elif task == "tests" and result.file_text and target is not None:
        edit, created = tests_edit(ls, request, result.file_text)
    if edit is not None:
        params = types.ApplyWorkspaceEditParams(
            edit=edit, label=TITLES[task].replace("aigents: ", "AI: ")
        )
        try:
            response = await ls.workspace_apply_edit_async(params)
            applied, reason = bool(response.applied), response.failure_reason or "refused"
        except JsonRpcException as error:  # the editor answered with an error: not applied
            applied, reason = False, error.message
        if not applied:
            ls.notify_user(f"aigents: the editor did not apply the edit ({reason})", "warning")
    if show is not False and (
        task in ("explain", "chat") or (task == "custom" and not result.edits)
    ):
        await show_markdown(ls, task, result.markdown)
    payload = ls.protocol._converter.unstructure(edit) if edit is not None else None
    return {
        "markdown": result.markdown,
        "applied": applied,
        "edit": payload,
        "conversation": [{"role": m.role, "content": m.content} for m in result.conversation],
        "model": result.model,
        "file": created,
        "tools": list(result.tools_used),
    }


ANSWERS_KEPT = 20
"""Answers shown as markdown files: at most this many are kept (the newest)..."""
ANSWERS_MAX_AGE_SECONDS = 7 * 24 * 3600
"""...and none older than a week: they hold the user's code."""


def answers_folder() -> Path:
    """Where answers shown as markdown files go: the state dir, outside every workspace."""
    return default_log_path().parent / "answers"


def prune_answers(
    folder: Path,
    keep: int = ANSWERS_KEPT,
    max_age: float = ANSWERS_MAX_AGE_SECONDS,
    now: float | None = None,
) -> int:
    """Delete the answer files beyond the `keep` newest and those older than `max_age`
    seconds; the number deleted."""
    now = time.time() if now is None else now
    try:
        found = [(path.stat().st_mtime, path) for path in folder.glob("*.md")]
    except OSError as exc:
        log.warning("answers: cannot list %s to clean it up: %s", folder, exc)
        return 0
    found.sort(reverse=True)
    deleted = 0
    for rank, (mtime, path) in enumerate(found):
        if rank >= keep or now - mtime > max_age:
            try:
                path.unlink()
                deleted += 1
            except OSError as exc:
                log.warning("answers: cannot delete %s: %s", path, exc)
    return deleted


async def show_markdown(ls: AigentsServer, task: str, markdown: str) -> None:
    """For clients without our plugin: open the answer as a markdown file (outside the
    workspace, bounded by `prune_answers`), or show it as a message."""
    window = ls.client_capabilities.window
    if window and window.show_document and window.show_document.support:
        folder = answers_folder()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("%Y%m%d-%H%M%S")
            path = folder / f"{task}-{stamp}-{time.time_ns() % 1_000_000_000:09d}.md"
            path.write_text(markdown + "\n", encoding="utf-8")
            prune_answers(folder)
            await ls.window_show_document_async(
                types.ShowDocumentParams(uri=path.as_uri(), take_focus=False)
            )
            return
        except Exception as exc:
            log.warning(
                "aigents: could not open the answer as a document (%s); shown as a message", exc
            )
    text = markdown if len(markdown) <= 1500 else markdown[:1500] + " …"
    ls.notify_user(text, "info")
