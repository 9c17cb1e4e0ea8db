"""`textDocument/copilotInlineEdit`: next-edit suggestions on Copilot's wire format.

Params `{textDocument: {uri, version}, position}`; result `{edits: [{text, textDocument:
{uri, version}, range, command}]}` with the request's version echoed and one edit at most.
`textDocument/didShowInlineEdit` (`{item: {command: {arguments: [id]}}}`) counts a shown
edit; the item's command (`aigents.nextEditAccepted`, argument the id) is run by the editor on
accept, `aigents.nextEditDismissed` on dismiss. `textDocument/didFocus` (`{textDocument:
{uri}}`) makes the focused document the most recent one, first among the related snippets.
Only translation lives here: the edit history is fed from the document notifications, the
engine does the rest.
"""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from aigents_lsp.lsp.documents import LineDocument
from aigents_lsp.nextedit.history import EditHistory
from aigents_lsp.providers.base import ProviderError

if TYPE_CHECKING:
    from aigents_lsp.lsp.server import AigentsServer
    from aigents_lsp.nextedit.engine import (
        NextEdit,
        NextEditEngine,
        NextEditRequest,
        NextEditTarget,
    )

log = logging.getLogger(__name__)

INLINE_EDIT = "textDocument/copilotInlineEdit"
DID_SHOW = "textDocument/didShowInlineEdit"
DID_FOCUS = "textDocument/didFocus"  # copilot-lsp and sidekick.nvim send it on BufEnter
ACCEPTED_COMMAND = "aigents.nextEditAccepted"
DISMISSED_COMMAND = "aigents.nextEditDismissed"
PENDING = 64  # suggestions remembered for their accept/dismiss report
_WORD_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"


@dataclass(frozen=True)
class Offered:
    uri: str
    version: int
    text: str


class NextEditService:
    """The server's next-edit state: edit history, engine, the edits offered."""

    def __init__(self, ls: AigentsServer) -> None:
        self._ls = ls
        self.history = EditHistory()
        self._engine: NextEditEngine | None = None
        self.offered: OrderedDict[str, Offered] = OrderedDict()
        self._recording: dict[str, bool] = {}  # uri -> may its edits be kept (not ignored)

    @property
    def engine(self) -> NextEditEngine:
        if self._engine is None:
            from aigents_lsp.nextedit.engine import NextEditEngine

            self._engine = NextEditEngine(lambda: self._ls.settings)
        return self._engine

    # --- the edit history, fed by the document notifications ---------------------------------

    def opened(self, uri: str) -> None:
        document = self._ls.workspace.text_documents.get(uri)
        self._recording[uri] = self._ls.context_allowed(uri)
        if isinstance(document, LineDocument) and self._recording[uri]:
            self.history.open(uri, document.lines)

    def changed(self, params: types.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        if not self._recording.get(uri, False):
            return  # an ignored or secret file: its edits are never kept
        document = self._ls.workspace.text_documents.get(uri)
        if not isinstance(document, LineDocument):
            return
        hint = None
        changes = params.content_changes
        if len(changes) == 1 and isinstance(changes[0], types.TextDocumentContentChangePartial):
            change = changes[0]
            start, end = change.range.start.line, change.range.end.line
            if start <= end:
                hint = (start, end, start + change.text.count("\n"))
        self.history.changed(uri, document.lines, hint)

    def focused(self, uri: str) -> None:
        """The user looked at `uri`: its text is the most recent context (related snippets of
        completions and next edits), as if just edited; a document not open is no context."""
        recent = self._ls.recent_edits
        if uri in self._ls.workspace.text_documents:
            recent[uri] = recent.pop(uri, 0)  # newest last, its latest edit's line kept

    def closed(self, uri: str) -> None:
        self.history.close(uri)
        self._recording.pop(uri, None)
        if self._engine is not None:
            self._engine.tickets.close(uri)

    # --- requests ----------------------------------------------------------------------------

    def enabled_for(self, language: str) -> bool:
        settings = self._ls.settings
        return settings.next_edit_languages.get(language, settings.next_edit)

    async def target(self, model: str | None = None) -> NextEditTarget:
        from aigents_lsp.nextedit.engine import NextEditTarget
        from aigents_lsp.nextedit.formats import FORMATS, pick_format

        backend, settings = self._ls.backend, self._ls.settings
        provider = await backend.provider("completion")
        if model is None:
            model = settings.next_edit_model or await backend.model_for("completion")
        fmt = pick_format(model, settings.next_edit_format)
        if fmt.kind == "completion" and provider.chat_only(model):
            fmt = FORMATS["generic"]  # a backend that only chats gets the chat prompt
        return NextEditTarget(provider, model, fmt)

    async def suggest(self, uri: str, version: int | None, position: types.Position) -> Any:
        """The `copilotInlineEdit` result for a document position."""
        empty: dict[str, Any] = {"edits": []}
        ls = self._ls
        document = ls.workspace.text_documents.get(uri)
        if not isinstance(document, LineDocument):
            return empty
        current = document.version or 0
        if version is not None and version != current:
            return empty  # asked for a version the server no longer has
        version = current
        if not ls.context_allowed(uri) or not self.enabled_for(document.language_id or ""):
            self.engine.metrics.skipped += 1
            return empty
        request = self._request(document, version, position)
        edit = await self._generate(request, ls.settings.next_edit_debounce_ms / 1000)
        if edit is None:
            return empty
        if (document.version or 0) != version:
            self.engine.metrics.stale += 1
            return empty  # typed on meanwhile: an edit for an older text is never returned
        return {"edits": [self._item(document, request.uri, version, edit)]}

    def _request(
        self, document: LineDocument, version: int, position: types.Position
    ) -> NextEditRequest:
        from aigents_lsp.lsp.suggestions import related_snippets
        from aigents_lsp.nextedit.engine import NextEditRequest

        ls, uri = self._ls, document.uri
        line, column = document.to_server(position)
        return NextEditRequest(
            uri=uri,
            version=version,
            lines=list(document.lines),
            line=line,
            column=column,
            path=ls.relative_path(uri) or "untitled",
            language=document.language_id or "",
            events=self.history.events(ls.context_allowed, lambda u: ls.relative_path(u) or u),
            related=related_snippets(ls, uri)[:2],
            latest=self.history.latest(uri),
        )

    async def _generate(
        self, request: NextEditRequest, delay: float, model: str | None = None
    ) -> NextEdit | None:
        timeout = self._ls.settings.completion_timeout
        # The request's place in line is taken now, before the model is chosen (that awaits
        # the backend): a newer request for the document always supersedes this one.
        ticket = self.engine.tickets.enter(request.uri)

        def timed_out(where: NextEditTarget | None) -> None:
            log.info("next edit: no answer within %s s", timeout)

        return await self._ls.backend.serve(
            "completion",
            lambda: self.target(model),
            lambda where: self.engine.suggest(request, where, delay=delay, ticket=ticket),
            within=timeout,
            timed_out=timed_out,
        )

    def _offer(self, uri: str, version: int, text: str) -> str:
        ident = uuid.uuid4().hex[:16]
        self.offered[ident] = Offered(uri, version, text)
        while len(self.offered) > PENDING:
            self.offered.popitem(last=False)
        return ident

    def _item(self, document: LineDocument, uri: str, version: int, edit: NextEdit) -> Any:
        ident = self._offer(uri, version, edit.text)
        start = document.to_client(edit.start_line, edit.start_column)
        end = document.to_client(edit.end_line, edit.end_column)
        return {
            "text": edit.text,
            "textDocument": {"uri": uri, "version": version},
            "range": {
                "start": {"line": start.line, "character": start.character},
                "end": {"line": end.line, "character": end.character},
            },
            "command": {
                "title": "aigents: next edit accepted",
                "command": ACCEPTED_COMMAND,
                "arguments": [ident],
            },
        }

    # --- the completion path ------------------------------------------------------------------

    async def inline_completion(
        self, uri: str, position: types.Position, invoked: bool
    ) -> types.InlineCompletionList | None:
        """Ghost text from the next-edit model when the completion model is one (Sweep,
        Zeta, Instinct): its edit, when it is on the cursor's line, as an inline completion
        item, so editors without `copilotInlineEdit` benefit. None: not such a model (the
        FIM path answers)."""
        from aigents_lsp.nextedit.formats import format_for_model

        ls = self._ls
        settings = ls.settings
        document = ls.workspace.text_documents.get(uri)
        if not settings.next_edit or not isinstance(document, LineDocument):
            return None
        if not ls.context_allowed(uri) or not self.enabled_for(document.language_id or ""):
            return None
        try:
            model = await ls.backend.model_for("completion")
        except ProviderError:
            return None  # the FIM path reports it
        if format_for_model(model) is None:
            return None
        version = document.version or 0
        request = self._request(document, version, position)
        delay = 0.0 if invoked else settings.debounce_ms / 1000
        edit = await self._generate(request, delay, model)
        empty = types.InlineCompletionList(items=[])
        if edit is None or (document.version or 0) != version:
            return empty
        line = request.line
        if edit.start_line != line or edit.end_line != line:
            return empty  # an edit elsewhere is for copilotInlineEdit, not ghost text
        text = document.line_text(line)
        typed = len(text[: request.column]) - len(text[: request.column].rstrip(_WORD_CHARS))
        start = min(edit.start_column, request.column - typed)
        end = max(edit.end_column, request.column)
        insert = text[start : edit.start_column] + edit.text + text[edit.end_column : end]
        ident = self._offer(uri, version, edit.text)
        item = types.InlineCompletionItem(
            insert_text=insert,
            range=types.Range(
                start=document.to_client(line, start), end=document.to_client(line, end)
            ),
            command=types.Command(
                title="aigents: next edit accepted", command=ACCEPTED_COMMAND, arguments=[ident]
            ),
        )
        return types.InlineCompletionList(items=[item])

    # --- reports from the editor ----------------------------------------------------------------

    def shown(self, ident: str | None) -> None:
        if ident in self.offered:
            self.engine.metrics.shown += 1

    def accepted(self, ident: str | None) -> None:
        offered = self.offered.pop(ident, None) if ident else None
        if offered is None:
            return
        self.engine.metrics.accepted += 1
        self.history.note_accepted(offered.uri, offered.text)

    def dismissed(self, ident: str | None) -> None:
        if ident and self.offered.pop(ident, None) is not None:
            self.engine.metrics.dismissed += 1


def plain(value: Any) -> Any:
    """pygls hands params of methods it does not know as namedtuples: plain dicts/lists."""
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _invalid(message: str) -> Exception:
    from pygls.exceptions import JsonRpcInvalidParams

    return JsonRpcInvalidParams(message=f"invalid params: {message}")


def parse_params(params: Any) -> tuple[str, int | None, types.Position]:
    """`{textDocument: {uri, version?}, position: {line, character}}`, or InvalidParams."""
    data = plain(params)
    document = data.get("textDocument") if isinstance(data, dict) else None
    position = data.get("position") if isinstance(data, dict) else None
    if not isinstance(document, dict) or not isinstance(document.get("uri"), str):
        raise _invalid("expected textDocument.uri (a string)")
    version = document.get("version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        raise _invalid("textDocument.version must be an integer")
    if not isinstance(position, dict):
        raise _invalid("expected position {line, character}")
    line, character = position.get("line"), position.get("character")
    numbers = (line, character)
    if not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in numbers):
        raise _invalid("position.line and position.character must be integers >= 0")
    assert isinstance(line, int) and isinstance(character, int)
    return document["uri"], version, types.Position(line=line, character=character)


def _command_id(args: tuple[Any, ...]) -> str | None:
    first = plain(args[0]) if args else None
    if isinstance(first, list):
        first = first[0] if first else None
    return first if isinstance(first, str) else None


def register(server: AigentsServer) -> None:
    service = server.next_edit = NextEditService(server)

    @server.feature(INLINE_EDIT)
    async def inline_edit(ls: AigentsServer, params: Any) -> Any:
        uri, version, position = parse_params(params)
        return await service.suggest(uri, version, position)

    @server.feature(DID_SHOW)
    def did_show(ls: AigentsServer, params: Any) -> None:
        data = plain(params)
        item = data.get("item") if isinstance(data, dict) else None
        command = item.get("command") if isinstance(item, dict) else None
        arguments = command.get("arguments") if isinstance(command, dict) else None
        service.shown(_command_id(tuple(arguments or ())))

    @server.feature(DID_FOCUS)
    def did_focus(ls: AigentsServer, params: Any) -> None:
        data = plain(params)
        document = data.get("textDocument") if isinstance(data, dict) else None
        uri = document.get("uri") if isinstance(document, dict) else None
        if isinstance(uri, str):
            service.focused(uri)

    # Command handlers take no `ls` (their annotations are read at run time): the closure's.
    @server.command(ACCEPTED_COMMAND)
    def next_edit_accepted(*args: Any) -> None:
        service.accepted(_command_id(args))

    @server.command(DISMISSED_COMMAND)
    def next_edit_dismissed(*args: Any) -> None:
        service.dismissed(_command_id(args))
