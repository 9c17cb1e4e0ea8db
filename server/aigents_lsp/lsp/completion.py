"""`textDocument/inlineCompletion` (ghost text) and `textDocument/completion` (one AI item).

Only translation lives here: LSP params -> `CompletionRequest` -> engine -> LSP items.
"""

from __future__ import annotations

import logging

from lsprotocol import types
from pygls.workspace import TextDocument

from aigents_lsp.completion.engine import CompletionRequest, Suggestion, complete
from aigents_lsp.lsp.server import AigentsServer
from aigents_lsp.providers.base import ProviderError

log = logging.getLogger(__name__)


def request_at(
    doc: TextDocument, position: types.Position, invoked: bool
) -> tuple[CompletionRequest, types.Position]:
    """Slice prefix and suffix at a client position (any encoding); clamp absurd positions.
    Returns the request and the position as the server understood it, in client units."""
    lines = doc.lines
    server_pos = doc.position_codec.position_from_client_units(
        lines, types.Position(line=position.line, character=position.character)
    )
    line, char = server_pos.line, server_pos.character
    if lines:
        text_of_line = lines[line].rstrip("\r\n") if line < len(lines) else ""
        char = min(char, len(text_of_line))
    offset = sum(len(text) for text in lines[:line]) + char
    source = doc.source
    request = CompletionRequest(
        uri=doc.uri,
        version=doc.version or 0,
        prefix=source[:offset],
        suffix=source[offset:],
        language_id=doc.language_id or "",
        invoked=invoked,
    )
    client_pos = doc.position_codec.position_to_client_units(lines, type(server_pos)(line, char))
    return request, client_pos


async def suggest(ls: AigentsServer, request: CompletionRequest) -> Suggestion | None:
    """Run the engine; backend failures become a status change and one message, not an error
    popup on every keystroke."""
    settings = ls.settings
    backend = ls.backend
    try:
        provider = await backend.provider()
        model = await backend.model_for("completion")
        async with backend.busy(model):
            suggestion = await complete(
                provider,
                request,
                model=model,
                max_tokens=settings.completion_max_tokens,
                temperature=settings.completion_temperature,
            )
        backend.mark_ready(suggestion.model if suggestion else model)
    except ProviderError as error:
        backend.report_error(error)
        return None
    return suggestion


def _fresh(ls: AigentsServer, request: CompletionRequest) -> bool:
    """A result computed for an older version of the document is never shown."""
    try:
        doc = ls.workspace.get_text_document(request.uri)
    except Exception:
        return False
    return (doc.version or 0) == request.version


def register(server: AigentsServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(
        ls: AigentsServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList | None:
        doc = ls.workspace.get_text_document(params.text_document.uri)
        invoked = params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked
        request, position = request_at(doc, params.position, invoked)
        suggestion = await suggest(ls, request)
        if suggestion is None or not _fresh(ls, request):
            return types.InlineCompletionList(items=[])
        item = types.InlineCompletionItem(
            insert_text=suggestion.text,
            range=types.Range(start=position, end=position),
        )
        return types.InlineCompletionList(items=[item])

    @server.feature(
        types.TEXT_DOCUMENT_COMPLETION,
        types.CompletionOptions(trigger_characters=[".", "(", " "], resolve_provider=False),
    )
    async def classic_completion(
        ls: AigentsServer, params: types.CompletionParams
    ) -> types.CompletionList:
        doc = ls.workspace.get_text_document(params.text_document.uri)
        invoked = (
            params.context is None
            or params.context.trigger_kind == types.CompletionTriggerKind.Invoked
        )
        request, position = request_at(doc, params.position, invoked)
        suggestion = await suggest(ls, request)
        if suggestion is None or not _fresh(ls, request):
            return types.CompletionList(is_incomplete=True, items=[])
        first_line = suggestion.text.strip().split("\n", 1)[0]
        language = request.language_id or ""
        item = types.CompletionItem(
            label=first_line[:80] or suggestion.text.strip()[:80],
            kind=types.CompletionItemKind.Snippet,
            detail=f"aigents · {suggestion.model or 'AI'}",
            documentation=types.MarkupContent(
                kind=types.MarkupKind.Markdown,
                value=f"```{language}\n{suggestion.text}\n```",
            ),
            text_edit=types.TextEdit(
                range=types.Range(start=position, end=position), new_text=suggestion.text
            ),
            insert_text_format=types.InsertTextFormat.PlainText,
            sort_text="0",
            preselect=True,
        )
        return types.CompletionList(is_incomplete=True, items=[item])
