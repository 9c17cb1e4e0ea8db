"""`textDocument/inlineCompletion` (ghost text) and `textDocument/completion` (one AI item).

Only translation lives here: LSP params -> `CompletionRequest` -> engine -> LSP items. Which of
the two methods is advertised is decided at `initialize` from the client's capabilities and the
`completion_mode` setting, so an editor never shows the same suggestion twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from aigents_lsp.lsp.documents import LineDocument
from aigents_lsp.lsp.server import AigentsServer, expect
from aigents_lsp.paths import user_config_dir
from aigents_lsp.providers.base import ProviderError
from aigents_lsp.providers.errors import BackendHung, ModelLoading
from aigents_lsp.providers.waiting import WAIT_POLICY, WAIT_TRACKER, WaitPolicy, WaitTracker

if TYPE_CHECKING:
    # The engine (templates, post-processing) loads on the first request, not at start-up.
    from aigents_lsp.completion.request import CompletionRequest, Suggestion, Target

log = logging.getLogger(__name__)

ACCEPTED_COMMAND = "aigents.completionAccepted"
STATS_COMMAND = "aigents.stats"
PREFIX_WINDOW = 24_000  # characters read around the cursor; the engine budgets within them
SUFFIX_WINDOW = 8_000
RELATED_DOCUMENTS = 8
RELATED_LINES = 60
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


# --- requests ------------------------------------------------------------------------------------


def related_snippets(ls: AigentsServer, current: str) -> tuple[tuple[str, str], ...]:
    """Text of other open documents around their latest edits, newest first; never of
    ignored or secret files."""
    snippets: list[tuple[str, str]] = []
    for uri in reversed(list(ls.recent_edits)):
        if len(snippets) >= RELATED_DOCUMENTS:
            break
        if uri == current:
            continue
        if not ls.context_allowed(uri):
            continue
        document = ls.workspace.text_documents.get(uri)
        if not isinstance(document, LineDocument):
            continue
        line = ls.recent_edits[uri]
        start = max(0, line - RELATED_LINES // 2)
        text = "".join(document.lines[start : start + RELATED_LINES])
        if text.strip():
            snippets.append((ls.relative_path(uri) or uri, text))
    return tuple(snippets)


def build_request(
    ls: AigentsServer, document: LineDocument, position: types.Position, invoked: bool
) -> tuple[CompletionRequest, types.Position]:
    """The engine's request at a client position (any encoding; absurd positions clamped),
    and that position as the server understood it, in client units."""
    from aigents_lsp.completion.request import CompletionRequest

    line, column = document.to_server(position)
    prefix, suffix = document.window(line, column, PREFIX_WINDOW, SUFFIX_WINDOW)
    request = CompletionRequest(
        uri=document.uri,
        version=document.version or 0,
        prefix=prefix,
        suffix=suffix,
        line=line,
        column=column,
        language_id=document.language_id or "",
        invoked=invoked,
        file_path=ls.relative_path(document.uri),
        related=lambda: related_snippets(ls, document.uri),
    )
    return request, document.to_client(line, column)


async def target(ls: AigentsServer) -> Target:
    from aigents_lsp.completion.request import Target

    backend = ls.backend
    provider = await backend.provider("completion")
    model = await backend.model_for("completion")
    info = await backend.model_info(model, "completion")
    chat_only = provider.chat_only(model)
    return Target(
        provider=provider,
        model=model,
        arch=info.arch if info else None,
        context_length=info.context_length if info else None,
        chat_only=chat_only,
        # The server's own FIM (llama.cpp /infill, Ollama suffix) unless a template is set.
        native_fim=not chat_only
        and not ls.settings.completion_template
        and await provider.supports_infill(model),
    )


async def suggest(
    ls: AigentsServer, uri: str, position: types.Position, invoked: bool
) -> tuple[Suggestion, CompletionRequest, types.Position] | None:
    """Run the engine within the typing deadline (`completion_deadline`): past it the editor
    gets an empty answer at once. Backend failures become a status change and one message per
    incident, not an error popup on every keystroke. A model being loaded just in time gets an
    empty answer at once (the status and `$/progress` show the load). A result for an older
    version of the document is never shown.

    At the deadline, a generation still waiting for its first token (the backend is reading
    the prompt, or the embedded engine is starting) is kept going in the background until
    `completion_timeout`: closing it would
    throw away the prompt the backend is reading, and on a CPU every later request would read
    it from the start again; finished, it warms the prompt cache for the next keystroke (a
    newer request supersedes it at once). One already streaming tokens is closed: the prompt is
    read, and the backend's slot is free for the next request."""
    document = ls.workspace.text_documents.get(uri)
    if not isinstance(document, LineDocument):
        return None
    if not ls.context_allowed(uri):
        return None
    request, client_position = build_request(ls, document, position, invoked)
    if "\x00" in request.prefix[-2000:] or "\x00" in request.suffix[:2000]:
        return None  # binary content is never sent to a model
    settings = ls.settings
    deadline = min(settings.completion_deadline, settings.completion_timeout)
    # What the stream waits for, for the message when the deadline passes (this task only).
    tracker = WaitTracker()
    WAIT_TRACKER.set(tracker)
    # A kept-going generation: a hung server is found out (its model list does not answer
    # either), a stalled stream ends; the completion deadline is the limit otherwise.
    WAIT_POLICY.set(WaitPolicy(stall=settings.stall_timeout, hung_probe_after=deadline))
    work = asyncio.ensure_future(_generate(ls, request, tracker, deadline))
    try:
        suggestion = await asyncio.wait_for(asyncio.shield(work), deadline)
    except TimeoutError:
        reading = tracker.phase in ("first-token", "loading") or _engine_starting(work)
        if reading and settings.completion_timeout > deadline:
            ls.run_task(_keep_warming(work), "completion-warm-up")
        else:
            work.cancel()
            ls.run_task(_closed_at_deadline(ls, work, tracker, deadline), "completion-deadline")
        return None
    except asyncio.CancelledError:
        work.cancel()  # the editor cancelled (the user typed on): the stream is closed
        raise
    ls.persist_stats(every=10.0)
    if suggestion is None or (document.version or 0) != request.version:
        return None
    return suggestion, request, client_position


def _engine_starting(work: asyncio.Future[Any]) -> bool:
    """Whether the embedded engine is still starting for this generation (like a model load,
    its time is shown by `$/progress` and not held against the completion)."""
    target = getattr(work, "target", None)
    engine = getattr(target.provider, "engine", None) if target is not None else None
    running = getattr(engine, "running", None)
    return callable(running) and not running("completion")


async def _keep_warming(work: asyncio.Future[Any]) -> None:
    """The generation goes on unseen (it reports its own failures, once per incident)."""
    with contextlib.suppress(asyncio.CancelledError):
        await work


async def _closed_at_deadline(
    ls: AigentsServer, work: asyncio.Future[Any], tracker: WaitTracker, deadline: float
) -> None:
    """After the empty answer: why the deadline was missed, told once per incident."""
    with contextlib.suppress(asyncio.CancelledError):
        await work
    target = getattr(work, "target", None)  # where the generation went, once chosen
    if target is not None:
        ls.backend.explain_missed_deadline(
            target.provider, target.model, tracker, deadline, _deadline_setting(ls)
        )
    else:
        ls.backend.report_error(
            BackendHung(
                f"no completion within {deadline:g} s: choosing the model took too long",
                hint=f"{ls.backend.describe_provider()} does not answer its model list in "
                "time — it may be hung or overloaded; restart it or set aigents.model",
                base_url=ls.settings.base_url,
            )
        )


def _deadline_setting(ls: AigentsServer) -> str:
    settings = ls.settings
    if settings.completion_deadline <= settings.completion_timeout:
        return "completionDeadline"
    return "completionTimeout"


async def _generate(
    ls: AigentsServer, request: CompletionRequest, tracker: WaitTracker, deadline: float
) -> Suggestion | None:
    """The engine's suggestion within `completion_timeout`; every failure reported here."""
    backend = ls.backend
    current = asyncio.current_task()
    where: Target | None = None
    try:
        async with asyncio.timeout(ls.settings.completion_timeout):
            for attempt in (1, 2):
                where = await target(ls)
                if current is not None:
                    current.target = where  # type: ignore[attr-defined]
                await backend.ensure_loaded("completion", where.provider, where.model, wait=False)
                try:
                    async with backend.busy(where.model):
                        suggestion = await ls.completion_engine.complete(request, where)
                    break
                except ProviderError as error:
                    backend.report_error(error, where.provider)
                    # Routed: a provider that stopped answering hands over to the next one.
                    failed_over = (await backend.provider("completion")) is not where.provider
                    if attempt == 2 or not failed_over:
                        return None
        assert where is not None
        backend.mark_ready(where.model, where.provider)
        return suggestion
    except ModelLoading:  # shown by the status and `$/progress`; completions resume after it
        return None
    except ProviderError as error:  # choosing the model failed (e.g. nothing answers)
        backend.report_error(error, where.provider if where else None)
        return None
    except TimeoutError:
        if where is None:
            backend.report_error(
                BackendHung(
                    f"no completion within {deadline:g} s: choosing the model took too long",
                    hint=f"{backend.describe_provider()} does not answer its model list in "
                    "time — it may be hung or overloaded; restart it or set aigents.model",
                    base_url=ls.settings.base_url,
                )
            )
        else:
            backend.explain_missed_deadline(
                where.provider,
                where.model,
                tracker,
                ls.settings.completion_timeout,
                "completionTimeout",
            )
        return None
    except Exception:  # a bug of ours must not cost the user their editor session
        log.exception("completion failed at %s", request.uri)
        ls.completion_engine.metrics.errors += 1
        return None


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
        found = await suggest(ls, params.text_document.uri, params.position, invoked)
        if found is None:
            return types.InlineCompletionList(items=[])
        suggestion, _, position = found
        item = types.InlineCompletionItem(
            insert_text=suggestion.text,
            range=types.Range(start=position, end=position),
            command=_accept_command(suggestion, params.text_document.uri),
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

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: AigentsServer, params: types.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.completion_engine.note_keystroke(uri)
        for change in params.content_changes:
            if isinstance(change, types.TextDocumentContentChangePartial):
                ls.recent_edits.pop(uri, None)
                ls.recent_edits[uri] = change.range.start.line  # newest last

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: AigentsServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.completion_engine.close(uri)
        ls.recent_edits.pop(uri, None)

    @server.command(ACCEPTED_COMMAND)
    def completion_accepted(ls: AigentsServer, *args: Any) -> None:
        ls.completion_engine.metrics.accepted += 1
        ls.persist_stats(every=10.0)

    @server.command(STATS_COMMAND)
    def stats(ls: AigentsServer, *args: Any) -> dict[str, Any]:
        """Local completion metrics (also shown in the editor as a message), and what the
        process holds (`runtime`: tasks, sockets, HTTP connections, memory)."""
        snapshot = ls.completion_engine.metrics.snapshot()
        ls.persist_stats()
        summary = ", ".join(
            f"{k.replace('_', ' ')} {v}" for k, v in snapshot.items() if v is not None
        )
        ls.notify_user(f"aigents completion stats: {summary}", "info")
        from aigents_lsp.lsp import speculative
        from aigents_lsp.lsp.runtime import runtime_counters

        return {
            "completion": snapshot,
            "speculative": speculative.snapshot(ls),  # the draft model's record, if one is set
            "since": ls.started_at,
            "uptime_s": round(time.time() - ls.started_at, 1),
            "runtime": runtime_counters(ls),
        }
