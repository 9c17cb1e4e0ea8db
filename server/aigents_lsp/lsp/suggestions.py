"""One completion for the editor: params -> `CompletionRequest`, the backend's target, and the
engine run within the typing deadline, every backend failure turned into a status change and
one message per incident (lsp/completion.py turns the result into LSP items).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from aigents_lsp.lsp.documents import LineDocument
from aigents_lsp.providers.errors import BackendHung
from aigents_lsp.providers.waiting import WAIT_POLICY, WAIT_TRACKER, WaitPolicy, WaitTracker

if TYPE_CHECKING:
    # The engine (templates, post-processing) loads on the first request, not at start-up.
    from aigents_lsp.completion.request import CompletionRequest, Suggestion, Target
    from aigents_lsp.lsp.server import AigentsServer

log = logging.getLogger("aigents_lsp.lsp.completion")  # one logger for completion requests

PREFIX_WINDOW = 24_000  # characters read around the cursor; the engine budgets within them
SUFFIX_WINDOW = 8_000
RELATED_DOCUMENTS = 8
RELATED_LINES = 60


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
    # The request's place in line is taken now, before choosing the model (which awaits): a
    # request the editor sent earlier can never supersede this one by reaching the engine later.
    ticket = ls.completion_engine.scheduler.enter(uri)
    work = asyncio.ensure_future(_generate(ls, request, tracker, deadline, ticket))
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
    ls: AigentsServer,
    request: CompletionRequest,
    tracker: WaitTracker,
    deadline: float,
    ticket: int,
) -> Suggestion | None:
    """The engine's suggestion within `completion_timeout`; every failure reported here."""
    backend = ls.backend
    current = asyncio.current_task()

    async def choose() -> Target:
        where = await target(ls)
        if current is not None:
            current.target = where  # type: ignore[attr-defined]
        return where

    def timed_out(where: Target | None) -> None:
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

    try:
        return await backend.serve(
            "completion",
            choose,
            lambda where: ls.completion_engine.complete(request, where, ticket),
            within=ls.settings.completion_timeout,
            timed_out=timed_out,
            fail_over=True,  # routed: a provider that stopped answering hands over to the next
        )
    except Exception:  # a bug of ours must not cost the user their editor session
        log.exception("completion failed at %s", request.uri)
        ls.completion_engine.metrics.errors += 1
        return None
