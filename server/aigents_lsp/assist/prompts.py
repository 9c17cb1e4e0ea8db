"""Every assist task's prompt in one place.

Prompts are written for small local models (1-8B): one short system message per task, the code
in a fenced block tagged with its language, context before the task, the output format said
last. Code and context go through `redact` first. Context parts are rendered as sections with
the headings of `budget.SECTION_HEADINGS`, so `budget.fit_messages` can shrink them when the
prompt is too long for the model; each language's conventions come from `languages`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from aigents_lsp.assist.budget import SECTION_HEADINGS
from aigents_lsp.assist.languages import (
    doc_style,
    language_name,
    testing_framework,
    tests_import_hint,
)
from aigents_lsp.providers.base import ChatMessage
from aigents_lsp.workspace.secrets import redact


@dataclass(frozen=True)
class TaskPrompt:
    messages: tuple[ChatMessage, ...]
    temperature: float
    max_tokens: int
    task: str


@dataclass(frozen=True)
class DiagnosticInfo:
    """One diagnostic of the code to fix; `line` is the 0-based document line."""

    message: str
    line: int
    source: str | None = None
    code: str | None = None
    severity: str = "error"


TASK_TEMPERATURE = {
    "edit": 0.2, "fix": 0.1, "docstring": 0.2, "tests": 0.2, "rewrite": 0.2, "simplify": 0.2,
    "custom": 0.2, "explain": 0.3, "chat": 0.4,
}  # fmt: skip
"""Default sampling temperature per task; the settings' temperatures override it."""

TASK_MAX_TOKENS = {"explain": 1024, "chat": 2048, "custom": 1536}
"""Answer budget of prose answers; code answers get room to repeat the code (2048 at least)."""

ACTION_INSTRUCTIONS = {
    "rewrite": "Rewrite this code to be clearer and more idiomatic, keeping its behaviour.",
    "simplify": "Simplify this code: remove redundancy and needless complexity, keep behaviour.",
}
"""Instructions of the built-in code actions that are plain edits."""

# --- building blocks -------------------------------------------------------------------------


def _clean(text: str) -> str:
    return redact(text)[0]


def _fenced(code: str, tag: str) -> str:
    """`code` in a fence longer than any backtick run inside it."""
    runs = [len(run) for run in re.findall(r"`{3,}", code)]
    fence = "`" * max(3, *(run + 1 for run in runs)) if runs else "```"
    return f"{fence}{tag}\n{code.rstrip(chr(10))}\n{fence}"


def _section(kind: str, text: str, tag: str) -> str:
    return f"{SECTION_HEADINGS[kind]}\n{_fenced(_clean(text), tag)}" if text.strip() else ""


def _user(*parts: str) -> ChatMessage:
    return ChatMessage("user", "\n\n".join(part for part in parts if part))


def _system(language: str, *sentences: str) -> ChatMessage:
    who = f"You are an expert {language if language != 'code' else ''} programmer"
    intro = f"{' '.join(who.split())} working in the user's code editor."
    return ChatMessage("system", " ".join((intro, *sentences)))


def _code_only_rules(tag: str) -> str:
    return (
        f"Reply with ONLY the complete code in one ```{tag} block, with no explanation before or "
        "after it. Keep every line you were not asked to change exactly as it is (names, "
        "comments, formatting) and keep the original indentation. Never shorten the code with "
        "placeholders such as `...` or `# rest unchanged`."
    )


def _prompt(
    task: str,
    messages: Sequence[ChatMessage],
    temperature: float | None,
    max_tokens: int | None,
    code: str | None = None,
) -> TaskPrompt:
    """A TaskPrompt with the task's defaults; an answer that repeats `code` gets room for it."""
    if max_tokens is None:
        max_tokens = TASK_MAX_TOKENS.get(task, 2048)
        if code is not None:
            max_tokens = min(8192, max(2048, int(len(code) / 3.2 * 1.5) + 256))
    temperature = TASK_TEMPERATURE.get(task, 0.2) if temperature is None else temperature
    return TaskPrompt(tuple(messages), temperature, max_tokens, task)


def _where(file_path: str | None) -> str:
    return f" from `{file_path}`" if file_path else ""


# --- the tasks -------------------------------------------------------------------------------


def explain_prompt(
    code: str,
    *,
    language: str,
    file_path: str | None = None,
    surrounding: str = "",
    temperature: float | None = None,
    max_tokens: int | None = None,
) -> TaskPrompt:
    """Explain the selected code in markdown."""
    name, tag = language_name(language, file_path)
    system = _system(
        name,
        "Explain code to a developer, concisely: first one sentence on what it does, then the "
        "important steps, inputs and outputs, and anything surprising (edge cases, bugs, "
        "performance). Use short markdown paragraphs or bullets and `backticks` for names. "
        "Do not rewrite the code.",
    )
    user = _user(
        _section("surrounding", surrounding, tag),
        f"Explain this {name} code{_where(file_path)}:\n{_fenced(_clean(code), tag)}",
    )
    return _prompt("explain", (system, user), temperature, max_tokens)


def edit_prompt(
    code: str,
    instruction: str,
    *,
    language: str,
    file_path: str | None = None,
    before: str = "",
    after: str = "",
    task: str = "edit",
    temperature: float | None = None,
    max_tokens: int | None = None,
) -> TaskPrompt:
    """Rewrite the selection as the instruction says (also "rewrite" and "simplify" actions)."""
    name, tag = language_name(language, file_path)
    system = _system(name, "You change code exactly as instructed.", _code_only_rules(tag))
    user = _user(
        _section("before", before, tag),
        _section("after", after, tag),
        f"Selected code to change{_where(file_path)}:\n{_fenced(_clean(code), tag)}",
        f"Instruction: {_clean(instruction.strip())}",
        f"Reply with the rewritten code only, in one ```{tag} block.",
    )
    return _prompt(task, (system, user), temperature, max_tokens, code)


def format_diagnostics(
    diagnostics: Sequence[DiagnosticInfo], code: str = "", first_line: int | None = None
) -> str:
    """One markdown bullet per diagnostic; with `first_line`, the offending line is quoted."""
    lines = code.split("\n")
    bullets = []
    for diag in diagnostics:
        origin = " ".join(part for part in (diag.source, diag.code) if part)
        text = f"- line {diag.line + 1}: {diag.severity}{f' [{origin}]' if origin else ''}: "
        text += " ".join(_clean(diag.message).split())
        row = diag.line - first_line if first_line is not None else -1
        if 0 <= row < len(lines) and lines[row].strip():
            text += f" (in `{_clean(lines[row].strip())}`)"
        bullets.append(text)
    return "\n".join(bullets) or "(no diagnostics)"


def fix_prompt(
    code: str,
    diagnostics: Sequence[DiagnosticInfo],
    *,
    language: str,
    file_path: str | None = None,
    before: str = "",
    after: str = "",
    first_line: int | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
) -> TaskPrompt:
    """Fix the reported problems with the smallest change."""
    name, tag = language_name(language, file_path)
    system = _system(
        name,
        "You fix the problems reported by compilers and linters with the smallest change that "
        "fixes them; do not refactor or change behaviour otherwise.",
        _code_only_rules(tag),
    )
    user = _user(
        _section("before", before, tag),
        _section("after", after, tag),
        f"Selected code to fix{_where(file_path)}:\n{_fenced(_clean(code), tag)}",
        f"Problems reported:\n{format_diagnostics(diagnostics, code, first_line)}",
        f"Reply with the corrected code only, in one ```{tag} block.",
    )
    return _prompt("fix", (system, user), temperature, max_tokens, code)


def docstring_prompt(
    code: str,
    *,
    language: str,
    file_path: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
) -> TaskPrompt:
    """The same code with a docstring or doc comment in the language's convention."""
    name, tag = language_name(language, file_path)
    style = doc_style(tag, name)
    system = _system(name, f"You document code with {style}.", _code_only_rules(tag))
    user = _user(
        f"Code to document{_where(file_path)}:\n{_fenced(_clean(code), tag)}",
        f"Add {style}. Say what it does, its parameters, its result and its errors where useful. "
        f"Return the same code with only the documentation added, in one ```{tag} block.",
    )
    return _prompt("docstring", (system, user), temperature, max_tokens, code)


def tests_prompt(
    code: str,
    *,
    language: str,
    file_path: str | None = None,
    test_path: str | None = None,
    existing_tests: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
) -> TaskPrompt:
    """A new test file for the code, or (with `existing_tests`) only the tests to append."""
    name, tag = language_name(language, file_path)
    framework = testing_framework(tag, name, existing_tests, code)
    system = _system(
        name,
        f"You write focused unit tests with {framework}. Cover the normal cases, edge cases and "
        "errors; the tests must run as written (correct imports, no placeholders). Reply with "
        f"ONLY the test code in one ```{tag} block.",
    )
    target = f"`{test_path}`" if test_path else "the test file"
    if existing_tests and existing_tests.strip():
        task = (
            f"Write ONLY the new tests to append to {target}: do not repeat its imports or "
            "tests (put any import it lacks first)."
        )
    else:
        task = f"Write the complete test file {target} for this code."
    user = _user(
        f"Code under test{_where(file_path)}:\n{_fenced(_clean(code), tag)}",
        _section("tests", existing_tests or "", tag),
        " ".join(filter(None, (task, tests_import_hint(tag, file_path, test_path)))),
        f"Reply with the test code only, in one ```{tag} block.",
    )
    return _prompt("tests", (system, user), temperature, max_tokens, code)


def chat_prompt(
    question: str,
    *,
    history: Sequence[ChatMessage] = (),
    code: str | None = None,
    language: str = "",
    file_path: str | None = None,
    tools_available: bool = False,
    temperature: float | None = None,
    max_tokens: int | None = None,
) -> TaskPrompt:
    """A chat turn: the earlier turns, then the question about the selection (if any)."""
    name, tag = language_name(language, file_path)
    sentences = [
        "Answer the user's question concisely in markdown; put code in fenced blocks with a "
        "language tag. Say so when you are not sure."
    ]
    if tools_available:
        sentences.append(
            "You can call tools to read and search the workspace: use them when the answer "
            "depends on code you have not seen, instead of guessing."
        )
    earlier = tuple(replace(m, content=_clean(m.content)) if m.content else m for m in history)
    context = ""
    if code and code.strip():
        context = f"Selected code{_where(file_path)}:\n{_fenced(_clean(code), tag)}"
    elif file_path:
        context = f"(The user is editing `{file_path}`.)"
    user = _user(context, _clean(question.strip()))
    return _prompt("chat", (_system(name, *sentences), *earlier, user), temperature, max_tokens)


_CUSTOM_PLACEHOLDER = re.compile(r"[ \t]*\{selection\}[ \t]*|\{(file|language|diagnostics)\}")


def custom_prompt(
    template: str,
    *,
    selection: str,
    file: str = "",
    language: str = "",
    diagnostics: Sequence[DiagnosticInfo] = (),
    wants_edit: bool = False,
    temperature: float | None = None,
    max_tokens: int | None = None,
) -> TaskPrompt:
    """A user-defined action: {selection}, {file}, {language} and {diagnostics} are filled in
    one pass (braces in the code are never read as placeholders; unknown ones stay as they are).
    The selection goes in as a fenced block unless the template already fences it; a template
    without {selection} gets the selection appended."""
    name, tag = language_name(language, file or None)
    code = _clean(selection)
    values = {"file": file, "language": name, "diagnostics": format_diagnostics(diagnostics)}

    def fill(match: re.Match[str]) -> str:
        if match.group(1):
            return values[match.group(1)]
        fences = len(re.findall(r"^[ \t]*(?:```|~~~)", template[: match.start()], re.MULTILINE))
        if fences % 2:  # inside a fence of the template: the code as it is
            return match.group(0).replace("{selection}", code.rstrip("\n"))
        head = "\n" if match.start() > 0 and template[match.start() - 1] != "\n" else ""
        tail = "\n" if match.end() < len(template) and template[match.end()] != "\n" else ""
        return f"{head}{_fenced(code, tag)}{tail}"

    text = _CUSTOM_PLACEHOLDER.sub(fill, template.strip())
    if "{selection}" not in template and code.strip():
        text += f"\n\nCode{_where(file or None)}:\n{_fenced(code, tag)}"
    if not wants_edit:
        system = _system(name, "Answer concisely in markdown; put code in fenced blocks.")
        temperature = TASK_TEMPERATURE["explain"] if temperature is None else temperature
        return _prompt("custom", (system, _user(text)), temperature, max_tokens)
    system = _system(name, "You change code as the user asks.", _code_only_rules(tag))
    text += f"\n\nReply with the rewritten code only, in one ```{tag} block."
    return _prompt("custom", (system, _user(text)), temperature, max_tokens, code)
