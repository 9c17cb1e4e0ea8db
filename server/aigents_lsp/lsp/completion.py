"""`textDocument/inlineCompletion` (ghost text) and `textDocument/completion` (one AI item).

Only translation lives here: LSP params -> `CompletionRequest` -> engine -> LSP items (the run
itself, within the typing deadline, is `suggest` in lsp/suggestions.py). Which of
the two methods is advertised is decided at `initialize` from the client's capabilities and the
`completion_mode` setting, so an editor never shows the same suggestion twice.
"""

from __future__ import annotations

import logging
import os
import re
import time
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from aigents_lsp.lsp.documents import LineDocument
from aigents_lsp.lsp.requests import expect
from aigents_lsp.lsp.suggestions import suggest
from aigents_lsp.paths import user_config_dir

if TYPE_CHECKING:
    # The engine (templates, post-processing) loads on the first request, not at start-up.
    from aigents_lsp.completion.request import Suggestion
    from aigents_lsp.lsp.server import AigentsServer

log = logging.getLogger(__name__)

ACCEPTED_COMMAND = "aigents.completionAccepted"
STATS_COMMAND = "aigents.stats"
_WORD_BEFORE = re.compile(r"\w+$")


# --- which method to advertise -----------------------------------------------------------------


def early_completion_mode(init_options: Any, roots: list[Path]) -> str:
    """`completion_mode` read without loading the settings model (that would delay the
    `initialize` answer); an invalid value means `auto` here and is reported later."""
    mode: Any = None
    for path in [user_config_dir() / "config.toml"] + [root / ".aigents.toml" for root in roots]:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            continue
        table = data.get("aigents", data)
        if isinstance(table, dict):
            mode = table.get("completion_mode", table.get("completionMode", mode))
    mode = os.environ.get("AIGENTS_COMPLETION_MODE") or mode
    if isinstance(init_options, dict):
        options = init_options.get("aigents", init_options)
        if isinstance(options, dict):
            mode = options.get("completionMode", options.get("completion_mode", mode))
    return mode if mode in ("auto", "inline", "items", "off") else "auto"


def choose_methods(ls: AigentsServer, params: types.InitializeParams, roots: list[Path]) -> None:
    """Unregister the completion method(s) this client should not be offered."""
    mode = early_completion_mode(params.initialization_options, roots)
    text_document = params.capabilities.text_document
    supports_inline = bool(text_document and text_document.inline_completion is not None)
    keep_inline = mode == "inline" or (mode == "auto" and supports_inline)
    keep_items = mode == "items" or (mode == "auto" and not supports_inline)
    features = ls.protocol.fm.features
    options = ls.protocol.fm.feature_options
    for method, keep in (
        (types.TEXT_DOCUMENT_INLINE_COMPLETION, keep_inline),
        (types.TEXT_DOCUMENT_COMPLETION, keep_items),
    ):
        if not keep:
            features.pop(method, None)
            options.pop(method, None)
    ls.completion_methods = [
        name for name, kept in (("inline", keep_inline), ("items", keep_items)) if kept
    ]
    log.info("completion offered as: %s", ", ".join(ls.completion_methods) or "nothing")


def _documentation(ls: AigentsServer, text: str, language: str) -> str | types.MarkupContent:
    """The whole suggestion: a markdown code block where the client renders markdown, plain
    text otherwise."""
    text_document = ls.client_capabilities.text_document
    completion = text_document.completion if text_document else None
    item = completion.completion_item if completion else None
    formats = (item.documentation_format if item else None) or []
    if types.MarkupKind.Markdown in formats:
        return types.MarkupContent(
            kind=types.MarkupKind.Markdown, value=f"```{language}\n{text}\n```"
        )
    return text


def _accept_command(suggestion: Suggestion, uri: str) -> types.Command:
    return types.Command(
        title="aigents: suggestion accepted",
        command=ACCEPTED_COMMAND,
        arguments=[{"uri": uri, "model": suggestion.model, "chars": len(suggestion.text)}],
    )


def register(server: AigentsServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(
        ls: AigentsServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList:
        params = expect(params, types.InlineCompletionParams)
        invoked = params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked
        uri = params.text_document.uri
        if ls.next_edit is not None:  # a next-edit model completes with its edits
            edited = await ls.next_edit.inline_completion(uri, params.position, invoked)
            if edited is not None:
                return edited
        found = await suggest(ls, uri, params.position, invoked)
        if found is None:
            return types.InlineCompletionList(items=[])
        suggestion, request, position = found
        # From the start of the word typed, repeated in the text: Neovim 0.12 (which never
        # cancels) then shows it without doubling what was typed meanwhile; VS Code likewise.
        word = _WORD_BEFORE.search(request.prefix[-200:])
        document = ls.workspace.text_documents.get(uri)
        typed, start = "", position
        if word and isinstance(document, LineDocument):
            typed = word.group(0)
            start = document.to_client(request.line, request.column - len(typed))
        item = types.InlineCompletionItem(
            insert_text=typed + suggestion.text,
            range=types.Range(start=start, end=position),
            command=_accept_command(suggestion, uri),
        )
        return types.InlineCompletionList(items=[item])

    @server.feature(
        types.TEXT_DOCUMENT_COMPLETION,
        types.CompletionOptions(trigger_characters=[".", "(", " ", "\n"]),
    )
    async def completion_items(
        ls: AigentsServer, params: types.CompletionParams
    ) -> types.CompletionList:
        params = expect(params, types.CompletionParams)
        context = params.context
        invoked = context is None or context.trigger_kind == types.CompletionTriggerKind.Invoked
        found = await suggest(ls, params.text_document.uri, params.position, invoked)
        if found is None:
            # Incomplete: the editor asks again as the user types.
            return types.CompletionList(is_incomplete=True, items=[])
        suggestion, request, position = found
        # The edit also covers the word being typed: clients that filter items by that word
        # (ALE, eglot, VS Code) keep a suggestion that continues it.
        word = _WORD_BEFORE.search(request.prefix[-200:])
        typed = word.group(0) if word and "\n" not in suggestion.text[:1] else ""
        document = ls.workspace.text_documents.get(params.text_document.uri)
        start = position
        if typed and isinstance(document, LineDocument):
            start = document.to_client(request.line, request.column - len(typed))
        else:
            typed = ""
        first_line = suggestion.text.lstrip("\n").split("\n", 1)[0].strip()
        item = types.CompletionItem(
            label=(first_line or suggestion.text.strip())[:80],
            kind=types.CompletionItemKind.Snippet,
            detail=f"aigents · {suggestion.model or 'AI'}",
            documentation=_documentation(ls, suggestion.text, request.language_id),
            filter_text=typed + first_line if typed else None,
            text_edit=types.TextEdit(
                range=types.Range(start=start, end=position), new_text=typed + suggestion.text
            ),
            insert_text_format=types.InsertTextFormat.PlainText,
            sort_text="0000",
            preselect=True,
            command=_accept_command(suggestion, params.text_document.uri),
        )
        return types.CompletionList(is_incomplete=True, items=[item])

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: AigentsServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.recent_edits.setdefault(params.text_document.uri, 0)
        if ls.next_edit is not None:
            ls.next_edit.opened(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: AigentsServer, params: types.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.completion_engine.note_keystroke(uri)
        for change in params.content_changes:
            if isinstance(change, types.TextDocumentContentChangePartial):
                ls.recent_edits.pop(uri, None)
                ls.recent_edits[uri] = change.range.start.line  # newest last
        if ls.next_edit is not None:
            ls.next_edit.changed(params)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: AigentsServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.completion_engine.close(uri)
        ls.recent_edits.pop(uri, None)
        if ls.next_edit is not None:
            ls.next_edit.closed(uri)

    @server.command(ACCEPTED_COMMAND)
    def completion_accepted(*args: Any) -> None:
        server.completion_engine.metrics.accepted += 1
        server.persist_stats(every=10.0)

    @server.command(STATS_COMMAND)
    def stats(*args: Any) -> dict[str, Any]:
        """Local completion and next-edit metrics, and what the process holds (`runtime`:
        tasks, sockets, HTTP connections, memory). Shown to the user as a message too, unless
        the argument says `show: false` (a status bar or dashboard polling it)."""
        from aigents_lsp.lsp import speculative
        from aigents_lsp.lsp.runtime import runtime_counters

        # Lenient: any argument (or none, as Helix and eglot send) is a request to see it.
        first = args[0] if args else None
        show = not (isinstance(first, dict) and first.get("show") is False)
        data = {
            "completion": server.completion_engine.metrics.snapshot(),
            "speculative": speculative.snapshot(server),  # the draft model's record, if set
            "next_edit": server.next_edit.engine.metrics.snapshot() if server.next_edit else None,
            "since": server.started_at,
            "uptime_s": round(time.time() - server.started_at, 1),
            "runtime": runtime_counters(server),
        }
        server.persist_stats(every=0.0 if show else 10.0)  # a poller writes no file each time
        if show:
            server.notify_user(stats_summary(data), "info")
        return data


def stats_summary(data: dict[str, Any]) -> str:
    """The message `aigents.stats` shows: a line of completion metrics, and one of next-edit
    metrics when the data has them."""
    lines = []
    for key, name in (("completion", "completion"), ("next_edit", "next-edit")):
        section = data.get(key)
        if isinstance(section, dict):
            summary = ", ".join(
                f"{k.replace('_', ' ')} {v}" for k, v in section.items() if v is not None
            )
            lines.append(f"aigents {name} stats: {summary}")
    return "\n".join(lines)
