"""One assist task from request to result: prompt -> model (streamed, tools when useful) ->
markdown and/or line edits. Plain data in and out; the LSP layer does the rest."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from aigents_lsp.assist.agent import MAX_ANSWER_CHARS, run_agent
from aigents_lsp.assist.answers import extract_code
from aigents_lsp.assist.budget import fit_messages, trim_history
from aigents_lsp.assist.edits import (
    EditRefused,
    LineEdit,
    plan_edit,
    unified_diff,
)
from aigents_lsp.assist.prompts import (
    DiagnosticInfo,
    TaskPrompt,
    chat_prompt,
    custom_prompt,
    docstring_prompt,
    edit_prompt,
    explain_prompt,
    fix_prompt,
    tests_prompt,
)
from aigents_lsp.assist.tools import WorkspaceTools
from aigents_lsp.providers.base import ChatMessage, ChatParams, Provider

TaskName = Literal["explain", "edit", "fix", "docstring", "tests", "chat", "custom"]
EDIT_TASKS = ("edit", "fix", "docstring")


@dataclass(frozen=True)
class AssistRequest:
    task: TaskName
    code: str = ""  # the selected lines
    language: str = ""
    file_path: str | None = None  # relative to the workspace
    first_line: int = 0  # document line of the selection's first line
    before: str = ""  # text above the selection (bounded)
    after: str = ""  # text below the selection (bounded)
    instruction: str = ""
    diagnostics: tuple[DiagnosticInfo, ...] = ()
    question: str = ""
    history: tuple[ChatMessage, ...] = ()
    test_path: str | None = None
    existing_tests: str | None = None
    template: str | None = None  # a user-defined action's prompt
    wants_edit: bool = False  # a user-defined action that rewrites the selection


@dataclass(frozen=True)
class AssistResult:
    markdown: str
    edits: tuple[LineEdit, ...] = ()
    file_text: str | None = None  # tests: the new test file, or the tests to append
    conversation: tuple[ChatMessage, ...] = ()
    model: str | None = None
    tools_used: tuple[str, ...] = ()
    history_trimmed: bool = False


@dataclass(frozen=True)
class AssistOptions:
    model: str | None
    context_tokens: int = 4096
    chat_temperature: float | None = None
    edit_temperature: float | None = None
    max_tokens: int = 1024
    chars_per_token: float = 3.2
    max_tool_steps: int = 4
    tool_support: bool | None = None  # None: try, and fall back when the model cannot


@dataclass
class _Stream:
    pieces: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(self.pieces)


def build_prompt(request: AssistRequest, options: AssistOptions) -> TaskPrompt:
    """The prompt for a task, fitted to the model's context."""
    code, lang, path = request.code, request.language, request.file_path
    edit_t, chat_t = options.edit_temperature, options.chat_temperature
    if request.task == "explain":
        prompt = explain_prompt(
            code,
            language=lang,
            file_path=path,
            surrounding=request.before[-2000:],
            temperature=chat_t,
        )
    elif request.task == "edit":
        prompt = edit_prompt(
            code,
            request.instruction,
            language=lang,
            file_path=path,
            before=request.before,
            after=request.after,
            temperature=edit_t,
        )
    elif request.task == "fix":
        prompt = fix_prompt(
            code,
            request.diagnostics,
            language=lang,
            file_path=path,
            before=request.before,
            after=request.after,
            temperature=edit_t,
        )
    elif request.task == "docstring":
        prompt = docstring_prompt(code, language=lang, file_path=path, temperature=edit_t)
    elif request.task == "tests":
        prompt = tests_prompt(
            code,
            language=lang,
            file_path=path,
            test_path=request.test_path,
            existing_tests=request.existing_tests,
            temperature=edit_t,
        )
    elif request.task == "custom":
        prompt = custom_prompt(
            request.template or "{selection}",
            selection=code,
            file=path or "",
            language=lang,
            diagnostics=request.diagnostics,
            wants_edit=request.wants_edit,
            temperature=edit_t if request.wants_edit else chat_t,
        )
    else:
        prompt = chat_prompt(
            request.question, history=request.history, code=code or None, language=lang,
            file_path=path, tools_available=True, temperature=chat_t,
        )  # fmt: skip
    reserve = min(options.max_tokens, max(256, options.context_tokens // 3))
    messages = fit_messages(
        prompt.messages,
        context_tokens=options.context_tokens,
        reserve_tokens=reserve,
        chars_per_token=options.chars_per_token,
    )
    return TaskPrompt(messages, prompt.temperature, min(prompt.max_tokens, reserve), prompt.task)


async def run_assist(
    provider: Provider,
    request: AssistRequest,
    options: AssistOptions,
    *,
    tools: WorkspaceTools | None = None,
    on_text: Callable[[str], None] | None = None,
    on_tool: Callable[[str, str], None] | None = None,
) -> AssistResult:
    """Run one task. Raises `ProviderError` (backend) or `EditRefused` (unusable rewrite)."""
    trimmed = False
    if request.task == "chat" and request.history:
        budget = options.context_tokens // 2
        history, trimmed = trim_history(
            request.history, max_tokens=budget, chars_per_token=options.chars_per_token
        )
        request = AssistRequest(**{**request.__dict__, "history": tuple(history)})
    prompt = build_prompt(request, options)
    if request.task in ("explain", "chat"):
        pieces: list[str] = []

        def so_far(piece: str) -> None:  # the agent gives pieces; progress wants the text
            pieces.append(piece)
            if on_text is not None:
                on_text("".join(pieces))

        result = await run_agent(
            provider,
            prompt.messages,
            model=options.model,
            tools=tools,
            max_steps=options.max_tool_steps,
            temperature=prompt.temperature,
            max_tokens=prompt.max_tokens,
            on_text=so_far,
            on_tool=on_tool,
            tool_support=options.tool_support,
        )
        answer = result.text.strip() or "_The model gave no answer._"
        conversation: tuple[ChatMessage, ...] = ()
        if request.task == "chat":
            conversation = (
                *request.history,
                ChatMessage("user", request.question),
                ChatMessage("assistant", answer),
            )
        return AssistResult(
            answer, conversation=conversation, model=options.model,
            tools_used=result.tool_calls, history_trimmed=trimmed,
        )  # fmt: skip
    text = await _stream_text(provider, prompt, options.model, on_text)
    if request.task == "tests":
        code = extract_code(text, request.language)
        if not code.strip():
            raise EditRefused("the model wrote no tests")
        where = request.test_path or "the test file"
        return AssistResult(
            f"Tests for `{request.file_path or 'the selection'}` → `{where}`:\n\n"
            f"```{request.language}\n{code}\n```",
            file_text=code,
            model=options.model,
        )
    if request.task in EDIT_TASKS or (request.task == "custom" and request.wants_edit):
        edits = plan_edit(
            request.code,
            text,
            first_line=request.first_line,
            language=request.language,
            before=request.before,
            after=request.after,
        )
        rewritten = _apply(request.code, edits, request.first_line)
        diff = unified_diff(request.code, rewritten, request.file_path or "selection")
        summary = f"```diff\n{diff}\n```" if diff else "No change."
        return AssistResult(summary, edits=tuple(edits), model=options.model)
    return AssistResult(text.strip() or "_The model gave no answer._", model=options.model)


async def _stream_text(
    provider: Provider,
    prompt: TaskPrompt,
    model: str | None,
    on_text: Callable[[str], None] | None,
) -> str:
    """Stream a tool-less answer; closing (or cancelling) stops the backend."""
    collected = _Stream()
    stream = provider.stream_chat(
        ChatParams(
            messages=prompt.messages,
            model=model,
            max_tokens=prompt.max_tokens,
            temperature=prompt.temperature,
        )
    )
    received = 0
    async with contextlib.aclosing(stream):  # type: ignore[type-var]
        async for delta in stream:
            if delta.text:
                collected.pieces.append(delta.text)
                received += len(delta.text)
                if on_text is not None:
                    on_text(collected.text())
                if received > MAX_ANSWER_CHARS:
                    break  # a backend ignoring max_tokens is not read to the end
    return collected.text()


def _apply(original: str, edits: list[LineEdit], first_line: int) -> str:
    """The selection's text after `edits` (for the preview diff)."""
    lines = original.split("\n")
    for edit in sorted(edits, key=lambda e: e.start, reverse=True):
        lines[edit.start - first_line : edit.end - first_line] = list(edit.lines)
    return "\n".join(lines)
