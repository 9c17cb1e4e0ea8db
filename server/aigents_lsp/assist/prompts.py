"""Every assist task's prompt in one place, and fitting prompts into the model's context.

Prompts are written for small local models (1-8B): one short system message per task, the code
in a fenced block tagged with its language, context before the task, the output format said
last. Code and context go through `redact` first. Context parts are rendered as sections with
fixed headings, so `fit_messages` can shrink them when the prompt is too long for the model.
"""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from aigents_lsp.assist.edits import canonical_language
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

HISTORY_OMITTED_NOTE = "(The earlier part of the conversation was omitted.)"

# --- languages -------------------------------------------------------------------------------

_NAMES = {
    "python": "Python", "javascript": "JavaScript", "typescript": "TypeScript", "go": "Go",
    "rust": "Rust", "java": "Java", "c": "C", "cpp": "C++", "csharp": "C#", "kotlin": "Kotlin",
    "swift": "Swift", "ruby": "Ruby", "php": "PHP", "lua": "Lua", "shell": "shell script",
    "scala": "Scala", "haskell": "Haskell", "elixir": "Elixir", "dart": "Dart", "zig": "Zig",
    "sql": "SQL", "html": "HTML", "css": "CSS", "yaml": "YAML", "toml": "TOML", "json": "JSON",
    "markdown": "Markdown", "r": "R", "julia": "Julia", "vue": "Vue", "svelte": "Svelte",
}  # fmt: skip
_EXTENSIONS = {"ex": "elixir", "exs": "elixir", "hs": "haskell", "jl": "julia"}

_DOC_STYLE = {
    "python": "a PEP 257 docstring as the first statement inside the function or class body",
    "javascript": "a JSDoc comment (/** ... */) directly above it, with @param and @returns",
    "typescript": "a TSDoc comment (/** ... */) directly above it, with @param and @returns",
    "rust": "/// doc comments directly above the item (with # Errors / # Panics if relevant)",
    "go": 'a // comment directly above it that starts with the declared name ("// Area ...")',
    "java": "a Javadoc comment (/** ... */) above it, with @param, @return and @throws",
    "kotlin": "a KDoc comment (/** ... */) above it, with @param and @return",
    "csharp": "/// XML documentation comments above it (<summary>, <param>, <returns>)",
    "c": "a Doxygen comment (/** ... */) above it, with @brief, @param and @return",
    "cpp": "a Doxygen comment (/** ... */) above it, with @brief, @param and @return",
    "swift": "/// documentation comments above it (- Parameters:, - Returns:)",
    "ruby": "YARD comments (# with @param and @return) above the method",
    "php": "a PHPDoc comment (/** ... */) above it, with @param and @return",
    "lua": "LuaLS annotations (--- with @param and @return) above the function",
    "shell": "# comments above the function: what it does, its arguments and its output",
}
_TEST_FRAMEWORK = {
    "python": "pytest: plain `def test_...` functions with assert, pytest.mark.parametrize",
    "go": "the standard testing package: table-driven `func TestXxx(t *testing.T)`, same package",
    "rust": "a `#[cfg(test)] mod tests { use super::*; ... }` module with `#[test]` functions",
    "java": "JUnit 5 (org.junit.jupiter.api.Test, Assertions)",
    "kotlin": "JUnit 5 with kotlin.test assertions",
    "csharp": "xUnit ([Fact], [Theory])",
    "cpp": "GoogleTest (TEST and EXPECT_EQ)",
    "c": "a small test program with assert.h",
    "swift": "XCTest",
    "ruby": "RSpec",
    "php": "PHPUnit",
}


def language_name(language: str, file_path: str | None = None) -> tuple[str, str]:
    """(Display name, fence tag) of an LSP language id, guessed from the path when unknown."""
    lang = canonical_language(language) if language and language != "plaintext" else ""
    if not lang and file_path and "." in file_path.rsplit("/", 1)[-1]:
        extension = file_path.rsplit(".", 1)[-1].lower()
        lang = _EXTENSIONS.get(extension) or canonical_language(extension)
    if not lang:
        return "code", ""
    return _NAMES.get(lang, lang.capitalize()), lang


def _js_framework(*texts: str | None) -> str:
    joined = "\n".join(text for text in texts if text)
    if "vitest" in joined:
        return "Vitest (import { describe, it, expect } from 'vitest')"
    if "jest" in joined or "@jest/globals" in joined:
        return "Jest (describe, it, expect)"
    return "Jest-style describe/it/expect (works with Jest and Vitest)"


def _import_hint(lang: str, file_path: str | None, test_path: str | None) -> str:
    """How the tests import the code under test, from the two workspace-relative paths."""
    if not file_path or file_path.startswith("/") or ":" in file_path:
        return ""
    stem = file_path.rsplit(".", 1)[0]
    if lang == "python":
        module = stem.removeprefix("src/").removesuffix("/__init__").replace("/", ".")
        return f"Import the code under test from `{module}`."
    if lang in ("javascript", "typescript") and test_path:
        relative = posixpath.relpath(stem, posixpath.dirname(test_path) or ".")
        relative = relative if relative.startswith(".") else f"./{relative}"
        return f'Import the code under test from "{relative}".'
    if lang == "rust":
        return "Use `use super::*;` inside the tests module."
    return f"The code under test is in `{file_path}`."


# --- building blocks -------------------------------------------------------------------------

_SECTION_HEADINGS = {
    "before": "Code above the selection (context only, do not repeat it):",
    "after": "Code below the selection (context only, do not repeat it):",
    "surrounding": "Surrounding code (context only):",
    "tests": "Existing tests (do not repeat them):",
}
_CONTEXT_KINDS = ("before", "after", "surrounding")


def _clean(text: str) -> str:
    return redact(text)[0]


def _fenced(code: str, tag: str) -> str:
    """`code` in a fence longer than any backtick run inside it."""
    runs = [len(run) for run in re.findall(r"`{3,}", code)]
    fence = "`" * max(3, *(run + 1 for run in runs)) if runs else "```"
    return f"{fence}{tag}\n{code.rstrip(chr(10))}\n{fence}"


def _section(kind: str, text: str, tag: str) -> str:
    return f"{_SECTION_HEADINGS[kind]}\n{_fenced(_clean(text), tag)}" if text.strip() else ""


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
    style = _DOC_STYLE.get(tag, f"the idiomatic {name} documentation comment, placed where its "
                           "tools expect it")  # fmt: skip
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
    if tag in ("javascript", "typescript"):
        framework = _js_framework(existing_tests, code)
    else:
        framework = _TEST_FRAMEWORK.get(tag, f"the standard {name} test framework")
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
        " ".join(filter(None, (task, _import_hint(tag, file_path, test_path)))),
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


# --- fitting the context ---------------------------------------------------------------------

_SECTION = re.compile(
    "(?P<head>" + "|".join(re.escape(h) for h in _SECTION_HEADINGS.values()) + ")\n"
    r"(?P<fence>`{3,})(?P<tag>[^\n]*)\n(?P<body>.*?)\n(?P=fence)(?=\n|\Z)(?:\n\n)?",
    re.DOTALL,
)
_KIND_OF_HEADING = {heading: kind for kind, heading in _SECTION_HEADINGS.items()}


def estimate_tokens(messages: Sequence[ChatMessage], chars_per_token: float = 3.2) -> int:
    """Rough token count of messages (characters / chars_per_token, plus a per-message cost)."""
    total = 0
    for message in messages:
        chars = len(message.content or "")
        chars += sum(len(call.name) + len(call.arguments) for call in message.tool_calls)
        total += math.ceil(chars / chars_per_token) + 4
    return total


def _shrunk_section(match: re.Match[str], kind: str, chars: int) -> str:
    """The section with about `chars` characters cut from its far side ("" once it is empty):
    code above loses its top, code below and tests their bottom, surroundings both ends."""
    lines = match["body"].split("\n")
    removed, from_top = 0, kind == "before"
    while lines and removed < chars:
        removed += len(lines.pop(0 if from_top else -1)) + 1
        from_top = not from_top if kind == "surrounding" else from_top
    if not "".join(lines).strip():
        return ""
    end = "\n\n" if match.group(0).endswith("\n\n") else ""
    fence = match["fence"]
    return f"{match['head']}\n{fence}{match['tag']}\n" + "\n".join(lines) + f"\n{fence}{end}"


def _shrink_largest(
    messages: list[ChatMessage], kinds: Sequence[str], chars: int
) -> list[ChatMessage] | None:
    """`messages` with the largest section of `kinds` shrunk by `chars` (None: no section)."""
    found: list[tuple[int, int, re.Match[str]]] = []
    for index, message in enumerate(messages):
        if message.role == "user" and message.content:
            for match in _SECTION.finditer(message.content):
                if _KIND_OF_HEADING[match["head"]] in kinds:
                    found.append((len(match["body"]), index, match))
    if not found:
        return None
    _, index, match = max(found, key=lambda item: item[0])
    content = messages[index].content or ""
    shrunk = _shrunk_section(match, _KIND_OF_HEADING[match["head"]], chars)
    new_content = (content[: match.start()] + shrunk + content[match.end() :]).rstrip("\n")
    return [
        *messages[:index],
        replace(messages[index], content=new_content),
        *messages[index + 1 :],
    ]


def fit_messages(
    messages: Sequence[ChatMessage],
    *,
    context_tokens: int,
    reserve_tokens: int,
    chars_per_token: float = 3.2,
) -> tuple[ChatMessage, ...]:
    """`messages` cut to fit `context_tokens` minus `reserve_tokens` (the answer's room).

    Trimmed in this order, each step only while still too long: the context sections (code
    above/below the selection, surrounding code; the bulkiest first), the existing tests, then
    the oldest turns of the conversation (see `trim_history`; a note in the system message says
    so). The system message, the latest user message's task and code, and the messages after it
    (tool calls of the current turn) are never cut, so the result may still be too long."""
    budget = context_tokens - reserve_tokens
    result = list(messages)
    for kinds in (_CONTEXT_KINDS, ("tests",)):
        while (excess := estimate_tokens(result, chars_per_token) - budget) > 0:
            shrunk = _shrink_largest(result, kinds, math.ceil(excess * chars_per_token))
            if shrunk is None:
                break
            result = shrunk
    if estimate_tokens(result, chars_per_token) <= budget:
        return tuple(result)
    pinned = next((i for i, m in enumerate(result) if m.role != "system"), len(result))
    last_user = max((i for i, m in enumerate(result) if m.role == "user"), default=-1)
    if last_user <= pinned:
        return tuple(result)
    head, history, tail = result[:pinned], result[pinned:last_user], result[last_user:]
    note_cost = math.ceil((len(HISTORY_OMITTED_NOTE) + 2) / chars_per_token)
    room = budget - estimate_tokens(head + tail, chars_per_token) - note_cost
    kept, dropped = trim_history(history, max_tokens=room, chars_per_token=chars_per_token)
    if dropped and head:
        note = f"{head[-1].content or ''}\n\n{HISTORY_OMITTED_NOTE}".lstrip()
        head[-1] = replace(head[-1], content=note)
    return (*head, *kept, *tail)


def trim_history(
    history: Sequence[ChatMessage], *, max_tokens: int, chars_per_token: float = 3.2
) -> tuple[list[ChatMessage], bool]:
    """The most recent conversation turns that fit in `max_tokens`, and whether any were dropped.

    A turn is a user message and everything after it up to the next user message, so an
    assistant's tool calls always stay with their tool results and the kept history still
    starts with a user message. System messages are always kept."""
    turns: list[list[ChatMessage]] = []
    for message in history:
        if message.role in ("user", "system") or not turns or turns[-1][0].role == "system":
            turns.append([message])
        else:
            turns[-1].append(message)
    dropped = False
    droppable = [i for i, turn in enumerate(turns) if turn[0].role != "system"]
    while (
        droppable and estimate_tokens([m for t in turns for m in t], chars_per_token) > max_tokens
    ):
        turns[droppable.pop(0)] = []
        dropped = True
    return [message for turn in turns for message in turn], dropped
