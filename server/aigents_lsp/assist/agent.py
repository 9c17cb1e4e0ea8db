"""The tool-calling loop: ask the model, run the tools it calls, give it the results, repeat.

Every request is streamed: visible text goes to `on_text` as it arrives, reasoning never does.
A round of tool calls is bounded by `max_steps`; past it the model is asked once more, without
tools, for its answer. Models that cannot call tools still get help: when tool support is off,
the backend rejects `tools`, the loop searches the workspace for the question's keywords and puts
the hits in front of the question. LM Studio's text fallback for models without native tool
support (`[TOOL_REQUEST]{...}[END_TOOL_REQUEST]` in the content) is parsed into calls.
Cancelling the awaiting task closes the HTTP stream, so the backend stops generating.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from aigents_lsp.assist.tool_calls import ToolArgumentError, parse_arguments
from aigents_lsp.assist.tools import WorkspaceTools
from aigents_lsp.providers.base import ChatMessage, ChatParams, Provider, ProviderError, ToolCall
from aigents_lsp.providers.reasoning import ThinkSplitter

Stopped = Literal["answer", "step_limit", "no_tools"]

MAX_CALLS_PER_ROUND = 8
# More than any answer asked for (chat_max_tokens): a backend that ignores max_tokens is not
# read to the end (10 MB of answer cost seconds of CPU and blocked every other request).
MAX_ANSWER_CHARS = 200_000
"""More calls in one message are answered with an error instead of being run."""
STEP_LIMIT_NOTE = (
    "You have used all the tool calls allowed for this question. Do not call tools; answer now "
    "with what you found."
)
_REQUEST_OPEN, _REQUEST_CLOSE = "[TOOL_REQUEST]", "[END_TOOL_REQUEST]"
_TOOL_REQUEST = re.compile(r"\[TOOL_REQUEST\](.*?)(?:\[END_TOOL_REQUEST\]|\Z)", re.DOTALL)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")
_QUOTED = re.compile(r"`([^`\n]{3,60})`")
_CODE_LIKE = re.compile(r"_|[a-z][A-Z]|[A-Za-z]\d")
_STOPWORDS = frozenset(
    """the and for from with without into onto this that these those what which who whom whose
    where when why how does did done are was were been being its can could should would will
    shall may might must you they them their our your his her explain code file files function
    functions method methods class classes please tell show find about there here have has had
    use used using uses work works working make makes line lines some any all each more most
    other same such only own just also very than too not but then else let get set def return
    self import none true false elif while lambda yield async await const var public private
    static void int str bool dict list print pass break continue raise try except finally
    question answer selected selection following below above""".split()
)
_KEYWORDS = 3
_HITS_PER_KEYWORD = 8
_CONTEXT_HITS = 20


@dataclass(frozen=True)
class AgentResult:
    """What the loop ended with."""

    text: str
    """The answer (the last request's visible text), without reasoning or tool requests."""
    steps: int
    """Requests made to the model (a plain answer takes one)."""
    tool_calls: tuple[str, ...]
    """Names of the tools run, in order (context-stuffing searches included)."""
    stopped: Stopped
    """`answer`: the model answered; `step_limit`: it was made to answer after `max_steps`
    rounds of tools; `no_tools`: it answered without tools (see the module docstring)."""
    finish_reason: str | None = None
    """Of the last request: `stop`, `length` (cut at max_tokens), ..."""
    model: str | None = None
    """The model that answered, as the backend names it."""


@dataclass(frozen=True)
class _Step:
    text: str
    calls: tuple[ToolCall, ...]
    finish_reason: str | None
    model: str | None


class _Output:
    """Visible text to `on_text`; a blank line between the text of successive requests."""

    def __init__(self, sink: Callable[[str], None] | None) -> None:
        self._sink = sink
        self._any = self._separate = False

    def begin(self) -> None:
        self._separate = self._any

    def __call__(self, piece: str) -> None:
        if not piece:
            return
        if self._separate:
            piece, self._separate = "\n\n" + piece, False
        self._any = True
        if self._sink is not None:
            self._sink(piece)


class _LiveText:
    """One request's text, passed on as it arrives except from a `[TOOL_REQUEST]` on (and any
    possible start of one), which is held until the end decides whether it was a call."""

    def __init__(self, emit: _Output) -> None:
        self._emit = emit
        self.text = ""
        self._sent = 0
        self._marker: int | None = None

    def feed(self, piece: str) -> None:
        if not piece:
            return
        start = max(0, len(self.text) - len(_REQUEST_OPEN))  # only where the marker can be new
        self.text += piece
        if self._marker is None and (at := self.text.find(_REQUEST_OPEN, start)) >= 0:
            self._marker = at
        upto = self._marker if self._marker is not None else len(self.text) - _held(self.text)
        if upto > self._sent:
            self._emit(self.text[self._sent : upto])
            self._sent = upto

    def flush(self) -> None:
        self._emit(self.text[self._sent :])
        self._sent = len(self.text)


def _held(text: str) -> int:
    """How many trailing characters of `text` could start `[TOOL_REQUEST]`."""
    for size in range(min(len(_REQUEST_OPEN) - 1, len(text)), 0, -1):
        if text.endswith(_REQUEST_OPEN[:size]):
            return size
    return 0


def parse_tool_requests(text: str) -> tuple[str, tuple[ToolCall, ...]]:
    """LM Studio's text fallback `[TOOL_REQUEST]{"name": ..., "arguments": {...}}
    [END_TOOL_REQUEST]` -> (the text without the requests, calls with empty ids)."""
    calls: list[ToolCall] = []
    for found in _TOOL_REQUEST.finditer(text):
        body = found.group(1).strip()
        try:
            request, _ = json.JSONDecoder().raw_decode(body[body.find("{") :])
        except ValueError:
            continue
        name = request.get("name") if isinstance(request, dict) else None
        if not isinstance(name, str) or not name:
            continue
        arguments = request.get("arguments", request.get("parameters", {}))
        encoded = arguments if isinstance(arguments, str) else json.dumps(arguments)
        calls.append(ToolCall(id="", name=name, arguments=encoded))
    if not calls:
        return text, ()
    return _TOOL_REQUEST.sub("", text).strip(), tuple(calls)


def _with_ids(calls: Sequence[ToolCall], used: set[str]) -> tuple[ToolCall, ...]:
    """Calls with non-empty ids unique in the conversation (LM Studio bug #830 sends empty
    ids, which are rejected when echoed back). Nine alphanumerics: Mistral's templates insist."""
    fixed = []
    for call in calls:
        ident = call.id
        while not ident or ident in used:
            ident = uuid.uuid4().hex[:9]
        used.add(ident)
        fixed.append(call if ident == call.id else ToolCall(ident, call.name, call.arguments))
    return tuple(fixed)


def describe_call(call: ToolCall, output: str) -> str:
    """One short line for progress reports: what was asked and the first line of the answer."""
    try:
        args = parse_arguments(call.arguments)
    except ToolArgumentError:
        args = {}
    if call.name == "search_codebase":
        what = repr(str(args.get("query", "")))
        what += f" in {args['path_glob']}" if args.get("path_glob") else ""
    elif call.name == "read_file":
        what = str(args.get("path", ""))
        if args.get("start_line") or args.get("end_line"):
            what += f":{args.get('start_line') or 1}-{args.get('end_line') or ''}"
    elif call.name == "list_files":
        what = str(args.get("path") or ".")
        what += f" ({args['pattern']})" if args.get("pattern") else ""
    else:
        what = call.arguments
    line = f"{what} → {output.split(chr(10), 1)[0]}"
    return line if len(line) <= 160 else line[:159] + "…"


def _rejects_tools(error: ProviderError) -> bool:
    """Whether the backend refused the request because of `tools` (llama.cpp without --jinja,
    servers and models without tool support)."""
    return error.kind in ("invalid_request", "backend_error") and "tool" in error.message.lower()


def keywords(text: str, limit: int = _KEYWORDS) -> list[str]:
    """Words worth searching the workspace for: `quoted` spans and code-like names when there
    are any, else the most frequent, longest words; common English and keywords left out."""
    text = text[:4000]
    counts = Counter(_WORD.findall(text))
    ranked = sorted(counts, key=lambda word: (-counts[word], -len(word)))
    code = [q.strip() for q in _QUOTED.findall(text) if q.strip()]
    code += [word for word in ranked if _CODE_LIKE.search(word)]
    chosen: list[str] = []
    for word in code or ranked:
        if word.lower() not in _STOPWORDS and word.lower() not in map(str.lower, chosen):
            chosen.append(word)
    return chosen[:limit]


def _closing(stream: AsyncIterator[Any]) -> contextlib.AbstractAsyncContextManager[Any]:
    """`aclosing` for generator streams (all of ours), nothing for other iterators."""
    if isinstance(stream, AsyncGenerator):
        return contextlib.aclosing(stream)
    return contextlib.nullcontext()


async def _stream_step(provider: Provider, params: ChatParams, output: _Output) -> _Step:
    """One streamed request; the text is passed on live, the final delta's tool calls kept."""
    output.begin()
    think, live = ThinkSplitter(), _LiveText(output)
    calls: tuple[ToolCall, ...] = ()
    finish: str | None = None
    model: str | None = None
    stream = provider.stream_chat(params)
    received = 0
    async with _closing(stream):  # closed on cancellation too: the backend stops
        async for delta in stream:
            if delta.text:  # reasoning (delta.reasoning) is never shown
                live.feed(think.feed(delta.text)[0])
                received += len(delta.text)
            calls = delta.tool_calls or calls
            finish = delta.finish_reason or finish
            model = delta.model or model
            if received > MAX_ANSWER_CHARS:
                finish = "length"
                break
    live.feed(think.flush()[0])
    text, requested = parse_tool_requests(live.text)
    if not requested:
        live.flush()
    return _Step(text.strip(), calls or requested, finish, model)


async def _with_context(
    messages: Sequence[ChatMessage],
    tools: WorkspaceTools,
    on_tool: Callable[[str, str], None] | None,
    used: list[str],
) -> list[ChatMessage]:
    """`messages` with workspace search hits for the last user message's keywords put in
    front of it (in the same message: some chat templates allow no system message there)."""
    history = list(messages)
    at = next((i for i in range(len(history) - 1, -1, -1) if history[i].role == "user"), None)
    question = history[at].content if at is not None else None
    if at is None or not question:
        return history
    found: list[str] = []
    searched: list[str] = []
    for word in keywords(question):
        output = await tools.search_codebase(word)
        used.append("search_codebase")
        if on_tool is not None:
            call = ToolCall("", "search_codebase", json.dumps({"query": word}))
            on_tool("search_codebase", describe_call(call, output))
        searched.append(word)
        hits = [line for line in output.splitlines()[1:] if line and not line.startswith("[")]
        found += [hit for hit in hits[:_HITS_PER_KEYWORD] if hit not in found]
    if not found:
        return history
    terms = ", ".join(repr(word) for word in searched)
    context = (
        f"Workspace search results for {terms} (you cannot call tools; use them if they "
        "help):\n" + "\n".join(found[:_CONTEXT_HITS])
    )
    history[at] = ChatMessage("user", f"{context}\n\n{question}")
    return history


async def run_agent(
    provider: Provider,
    messages: Sequence[ChatMessage],
    *,
    model: str | None,
    tools: WorkspaceTools | None,
    max_steps: int = 4,
    temperature: float,
    max_tokens: int,
    on_text: Callable[[str], None] | None = None,
    on_tool: Callable[[str, str], None] | None = None,
    tool_support: bool | None = None,
) -> AgentResult:
    """Answer `messages`, letting the model call `tools` for up to `max_steps` rounds.

    `on_text(piece)` gets visible answer text as it streams (pieces, not the text so far; a
    blank line separates requests); `on_tool(name, summary)` is called after each tool run.
    `tool_support`: False when the model is known not to call tools (context is searched for it
    instead), None to find out. Raises `ProviderError` for backend failures; cancelling the
    awaiting task closes the stream and re-raises `CancelledError`.
    """
    output = _Output(on_text)
    used: list[str] = []

    async def answer(history: Sequence[ChatMessage], steps: int, stopped: Stopped) -> AgentResult:
        params = ChatParams(history, model, max_tokens=max_tokens, temperature=temperature)
        step = await _stream_step(provider, params, output)
        return AgentResult(
            step.text, steps + 1, tuple(used), stopped, step.finish_reason, step.model
        )

    if tools is None or max_steps <= 0:
        return await answer(messages, 0, "answer")
    if tool_support is False:
        return await answer(await _with_context(messages, tools, on_tool, used), 0, "no_tools")
    specs = tools.specs()
    history = list(messages)
    ids = {call.id for message in history for call in message.tool_calls}
    ids |= {message.tool_call_id for message in history if message.tool_call_id}
    steps = 0
    for _ in range(max_steps):
        params = ChatParams(
            history,
            model,
            max_tokens=max_tokens,
            temperature=temperature,
            tools=specs,
            tool_choice="auto",
        )
        try:
            step = await _stream_step(provider, params, output)
        except ProviderError as error:
            if not _rejects_tools(error):
                raise
            stuffed = await _with_context(messages, tools, on_tool, used)
            return await answer(stuffed, steps + 1, "no_tools")
        steps += 1
        if not step.calls:
            return AgentResult(
                step.text, steps, tuple(used), "answer", step.finish_reason, step.model
            )
        calls = _with_ids(step.calls, ids)
        history.append(ChatMessage("assistant", step.text or None, tool_calls=calls))
        for index, call in enumerate(calls):
            if index < MAX_CALLS_PER_ROUND:
                result = await tools.run(call)
            else:
                result = f"error: more than {MAX_CALLS_PER_ROUND} calls at once; not run"
            used.append(call.name)
            if on_tool is not None:
                on_tool(call.name, describe_call(call, result))
            history.append(ChatMessage("tool", result, tool_call_id=call.id))
    history.append(ChatMessage("user", STEP_LIMIT_NOTE))
    return await answer(history, steps, "step_limit")
