"""Assist prompts: every task's messages, redaction, user templates and fitting the context."""

from __future__ import annotations

import pytest

from aigents_lsp.assist.budget import (
    HISTORY_OMITTED_NOTE,
    estimate_tokens,
    fit_messages,
    trim_history,
)
from aigents_lsp.assist.languages import language_name
from aigents_lsp.assist.prompts import (
    TASK_TEMPERATURE,
    DiagnosticInfo,
    TaskPrompt,
    chat_prompt,
    custom_prompt,
    docstring_prompt,
    edit_prompt,
    explain_prompt,
    fix_prompt,
)
from aigents_lsp.assist.prompts import tests_prompt as build_tests_prompt
from aigents_lsp.providers.base import ChatMessage, ToolCall

SECRET = 'API_KEY = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD"'
CODE = f"{SECRET}\n\ndef area(w, h):\n    return w * h\n"


def _user(prompt: TaskPrompt) -> str:
    assert prompt.messages[0].role == "system"
    assert prompt.messages[-1].role == "user"
    return prompt.messages[-1].content or ""


def _all_text(prompt: TaskPrompt) -> str:
    return "\n".join(message.content or "" for message in prompt.messages)


BUILDERS = {
    "explain": lambda: explain_prompt(
        CODE, language="python", file_path="geo.py", surrounding=SECRET
    ),
    "edit": lambda: edit_prompt(
        CODE, "add type hints", language="python", file_path="geo.py", before=SECRET, after="x"
    ),
    "fix": lambda: fix_prompt(
        CODE,
        [DiagnosticInfo("undefined name 'h2'", 3, "pyflakes", "F821", "error")],
        language="python",
        file_path="geo.py",
    ),
    "docstring": lambda: docstring_prompt(CODE, language="python", file_path="geo.py"),
    "tests": lambda: build_tests_prompt(
        CODE,
        language="python",
        file_path="src/pkg/geo.py",
        test_path="tests/test_geo.py",
        existing_tests=None,
    ),
    "chat": lambda: chat_prompt(
        "why multiply?",
        history=[],
        code=CODE,
        language="python",
        file_path="geo.py",
        tools_available=False,
    ),
    "custom": lambda: custom_prompt(
        "Tidy {selection}", selection=CODE, file="geo.py", language="python", wants_edit=True
    ),
}


@pytest.mark.parametrize("task", sorted(BUILDERS))
def test_every_prompt_has_the_code_in_a_tagged_fence_and_no_secret(task: str) -> None:
    prompt = BUILDERS[task]()
    user = _user(prompt)
    assert "```python\n<redacted:" in user or "```python\nAPI_KEY" in user
    assert "def area(w, h):\n    return w * h\n```" in user
    assert "sk-proj-abcdefghijklmnop" not in _all_text(prompt)
    assert "Python" in prompt.messages[0].content  # type: ignore[operator]
    assert prompt.task == task
    assert prompt.temperature == TASK_TEMPERATURE[task]
    assert prompt.max_tokens >= 1024


def test_edit_prompt_carries_the_instruction_context_and_output_format() -> None:
    prompt = edit_prompt(
        "    return a+b\n",
        "use snake_case",
        language="typescript",
        file_path="m.ts",
        before="function add(a, b) {\n",
        after="}\n",
        temperature=0.7,
    )
    user = _user(prompt)
    assert "Instruction: use snake_case" in user
    assert user.index("function add(a, b) {") < user.index("    return a+b")
    assert user.endswith("in one ```typescript block.")
    assert "ONLY the complete code" in (prompt.messages[0].content or "")
    assert prompt.temperature == 0.7


def test_rewrite_and_simplify_are_edit_prompts_with_their_own_task() -> None:
    prompt = edit_prompt("x = 1", "simplify", language="python", task="simplify")
    assert prompt.task == "simplify" and prompt.temperature == TASK_TEMPERATURE["simplify"]


def test_fix_prompt_lists_diagnostics_and_quotes_the_line() -> None:
    diagnostics = [
        DiagnosticInfo("Cannot find name 'y'.", 11, "ts", "2304", "error"),
        DiagnosticInfo("unused variable", 10, None, None, "warning"),
    ]
    prompt = fix_prompt(
        "let x = 1;\nreturn y;\n", diagnostics, language="typescript", first_line=10
    )
    user = _user(prompt)
    assert "- line 12: error [ts 2304]: Cannot find name 'y'. (in `return y;`)" in user
    assert "- line 11: warning: unused variable (in `let x = 1;`)" in user
    assert prompt.temperature == 0.1


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("python", "PEP 257 docstring"),
        ("typescript", "/** ... */"),
        ("javascriptreact", "JSDoc"),
        ("rust", "///"),
        ("go", "starts with the declared name"),
        ("java", "Javadoc"),
        ("cpp", "Doxygen"),
        ("c", "Doxygen"),
        ("elm", "idiomatic Elm documentation comment"),
    ],
)
def test_docstring_prompt_uses_the_language_convention(language: str, expected: str) -> None:
    prompt = docstring_prompt("code", language=language)
    assert expected in _user(prompt)
    assert "only the documentation added" in _user(prompt)


@pytest.mark.parametrize(
    ("language", "file_path", "test_path", "existing", "expected"),
    [
        ("python", "src/pkg/geo.py", "tests/test_geo.py", None, "from `pkg.geo`"),
        ("python", "src/pkg/geo.py", "tests/test_geo.py", None, "pytest"),
        ("typescript", "src/geo.ts", "src/__tests__/geo.test.ts", None, 'from "../geo"'),
        ("typescript", "geo.ts", "geo.test.ts", "import { it } from 'vitest'", "Vitest"),
        ("javascript", "a.js", "a.test.js", "const x = jest.fn()", "Jest"),
        ("go", "geo.go", "geo_test.go", None, "testing"),
        ("rust", "src/geo.rs", "src/geo.rs", None, "#[cfg(test)]"),
        ("java", "Geo.java", "GeoTest.java", None, "JUnit 5"),
    ],
)
def test_tests_prompt_picks_framework_and_imports(
    language: str, file_path: str, test_path: str, existing: str | None, expected: str
) -> None:
    prompt = build_tests_prompt(
        "code",
        language=language,
        file_path=file_path,
        test_path=test_path,
        existing_tests=existing,
    )
    assert expected in _all_text(prompt)


def test_tests_prompt_extending_a_file_asks_for_new_tests_only() -> None:
    existing = "import pytest\n\ndef test_old():\n    assert True\n"
    prompt = build_tests_prompt(
        "def f(): ...",
        language="python",
        file_path="f.py",
        test_path="test_f.py",
        existing_tests=existing,
    )
    user = _user(prompt)
    assert "Existing tests (do not repeat them):" in user and "def test_old():" in user
    assert "ONLY the new tests to append to `test_f.py`" in user
    new_file = build_tests_prompt("def f(): ...", language="python", file_path="f.py")
    assert "complete test file" in _user(new_file)


def test_chat_prompt_keeps_history_redacted_and_mentions_tools() -> None:
    history = [ChatMessage("user", f"look: {SECRET}"), ChatMessage("assistant", "ok")]
    prompt = chat_prompt(
        "and now?",
        history=history,
        code=None,
        language="go",
        file_path="main.go",
        tools_available=True,
    )
    roles = [message.role for message in prompt.messages]
    assert roles == ["system", "user", "assistant", "user"]
    assert "sk-proj" not in _all_text(prompt)
    assert "call tools" in (prompt.messages[0].content or "")
    assert _user(prompt) == "(The user is editing `main.go`.)\n\nand now?"
    assert prompt.temperature == 0.4
    no_tools = chat_prompt("hi", history=(), code=None, language="", file_path=None)
    assert "tools" not in (no_tools.messages[0].content or "") and _user(no_tools) == "hi"


def test_custom_template_fills_placeholders_without_reading_braces_in_code() -> None:
    code = "const o = { a: 1 };\nconst s = `${o.a} {file} {language}`;\n"
    diagnostics = [DiagnosticInfo("no-unused-vars", 0, "eslint", None, "warning")]
    prompt = custom_prompt(
        "In {file} ({language}), translate comments in {selection} to English. "
        "{diagnostics} {unknown} {0}",
        selection=code,
        file="a.js",
        language="javascript",
        diagnostics=diagnostics,
        wants_edit=True,
    )
    user = _user(prompt)
    assert user.startswith("In a.js (JavaScript), translate comments in\n```javascript\n")
    assert code.rstrip() + "\n```\nto English." in user  # the code's own {file} is untouched
    assert "- line 1: warning [eslint]: no-unused-vars" in user
    assert "{unknown} {0}" in user
    assert user.endswith("in one ```javascript block.")
    assert prompt.temperature == TASK_TEMPERATURE["custom"]


def test_custom_template_inside_a_fence_and_without_selection() -> None:
    fenced = custom_prompt("Check:\n```\n{selection}\n```", selection="a{b}", wants_edit=False)
    assert _user(fenced) == "Check:\n```\na{b}\n```"
    appended = custom_prompt("Add type hints", selection="x = 1", language="python")
    assert _user(appended) == "Add type hints\n\nCode:\n```python\nx = 1\n```"
    assert "ONLY" not in (appended.messages[0].content or "")
    assert appended.temperature == TASK_TEMPERATURE["explain"]  # an answer to read, not code


def test_language_name_from_id_or_path() -> None:
    assert language_name("typescriptreact") == ("TypeScript", "typescript")
    assert language_name("", "lib/x.rs") == ("Rust", "rust")
    assert language_name("plaintext", None) == ("code", "")


# --- fitting the context -------------------------------------------------------------------


def _lines(prefix: str, count: int) -> str:
    return "".join(f"{prefix} {i}\n" for i in range(count))


def test_fit_messages_leaves_a_small_prompt_alone() -> None:
    prompt = edit_prompt("x = 1", "y", language="python", before="a = 0\n")
    assert fit_messages(prompt.messages, context_tokens=4096, reserve_tokens=512) == (
        prompt.messages
    )


def test_fit_messages_trims_the_bulkiest_context_first_keeping_the_near_lines() -> None:
    prompt = edit_prompt(
        "SELECTED = 1\n",
        "rename",
        language="python",
        before=_lines("above", 200),
        after=_lines("below", 40),
    )
    full = estimate_tokens(prompt.messages)
    fitted = fit_messages(prompt.messages, context_tokens=full - 200 + 300, reserve_tokens=300)
    user = fitted[-1].content or ""
    assert estimate_tokens(fitted) <= full - 200
    assert "above 199\n" in user and "above 0\n" not in user  # the top of "before" went
    assert "below 39\n" in user  # "after" was smaller: untouched
    assert "SELECTED = 1" in user and "Instruction: rename" in user


def test_fit_messages_order_context_then_tests_then_history() -> None:
    tests = build_tests_prompt(
        "def f(): ...", language="python", file_path="f.py", existing_tests=_lines("# t", 100)
    )
    edit = edit_prompt("x", "y", language="python", before="import os\n" * 20)
    context = (edit.messages[-1].content or "").split("\n\nSelected code")[0]
    task = ChatMessage("user", f"{context}\n\n{tests.messages[-1].content}")
    history = [
        ChatMessage("user", _lines("old question", 50)),
        ChatMessage("assistant", "old answer"),
        ChatMessage("user", "recent question"),
        ChatMessage("assistant", "recent answer"),
    ]
    messages = (tests.messages[0], *history, task)
    full = estimate_tokens(messages)

    # A little too long: the context goes first, then the tests lose their tail.
    fitted = fit_messages(messages, context_tokens=full - 90, reserve_tokens=0)
    text = fitted[-1].content or ""
    assert "import os" not in text
    assert "# t 0\n" in text and "# t 99" not in text
    assert fitted[1:5] == tuple(history) and estimate_tokens(fitted) <= full - 90

    # Much too long: the tests section is gone, then the oldest turn, and the system says so.
    fitted = fit_messages(messages, context_tokens=full - 400, reserve_tokens=0)
    contents = [message.content or "" for message in fitted]
    assert "Existing tests" not in contents[-1] and "def f(): ..." in contents[-1]
    assert contents[1:3] == ["recent question", "recent answer"]
    assert contents[0].endswith(HISTORY_OMITTED_NOTE)
    assert estimate_tokens(fitted) <= full - 400


def test_fit_messages_never_cuts_the_system_message_or_the_selected_code() -> None:
    code = _lines("code", 300)
    prompt = explain_prompt(code, language="python", surrounding=_lines("around", 300))
    fitted = fit_messages(prompt.messages, context_tokens=100, reserve_tokens=50)
    assert fitted[0] == prompt.messages[0]
    assert code.rstrip() in (fitted[-1].content or "")
    assert "Surrounding code" not in (fitted[-1].content or "")  # dropped whole


def test_surrounding_code_keeps_its_middle() -> None:
    prompt = explain_prompt("x", language="python", surrounding=_lines("around", 100))
    full = estimate_tokens(prompt.messages)
    fitted = fit_messages(prompt.messages, context_tokens=full - 100, reserve_tokens=0)
    user = fitted[-1].content or ""
    assert "around 50\n" in user and "around 0\n" not in user and "around 99\n" not in user


def _tool_turn(question: str, size: int) -> list[ChatMessage]:
    call = ToolCall("c1", "read_file", '{"path": "a.py"}')
    return [
        ChatMessage("user", question),
        ChatMessage("assistant", None, tool_calls=(call,)),
        ChatMessage("tool", "x" * size, tool_call_id="c1"),
        ChatMessage("assistant", "answer"),
    ]


def test_trim_history_drops_whole_turns_keeping_tool_calls_with_results() -> None:
    history = [*_tool_turn("first", 2000), *_tool_turn("second", 200), *_tool_turn("third", 10)]
    kept, dropped = trim_history(history, max_tokens=120, chars_per_token=3.2)
    assert dropped
    assert kept == history[8:]  # only the last turn fits; never a tool message without its call
    kept, dropped = trim_history(history, max_tokens=10_000, chars_per_token=3.2)
    assert kept == history and not dropped


def test_trim_history_never_starts_with_a_tool_result() -> None:
    history = _tool_turn("first", 300) + _tool_turn("second", 300)
    for budget in range(0, 400, 10):
        kept, _ = trim_history(history, max_tokens=budget, chars_per_token=3.2)
        assert not kept or kept[0].role == "user"
        for index, message in enumerate(kept):
            if message.role == "tool":
                assert kept[index - 1].tool_calls


def test_trim_history_keeps_system_messages() -> None:
    history = [
        ChatMessage("system", "s"),
        ChatMessage("user", "u" * 500),
        ChatMessage("assistant", "a"),
    ]
    kept, dropped = trim_history(history, max_tokens=10)
    assert kept == [history[0]] and dropped
