"""Chat commands and code actions over stdio against a fake LM Studio with deterministic
answers; edits are checked in the editor's copy of the document."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from tests.e2e.conftest import (
    VersionMismatch,
    apply_workspace_edit,
    open_doc,
    server_log,
    type_text,
    until,
)
from tests.fakes.lmstudio_server import FakeLMStudio

SOURCE = """import math


def area(r):
    return 3.14159 * r * r


def perimeter(r):
    x = 2*math.pi*r
    return x
"""


def _range(start: int, end: int) -> dict[str, Any]:
    return {"start": {"line": start, "character": 0}, "end": {"line": end, "character": 0}}


async def _run(client: Any, command: str, argument: dict[str, Any]) -> Any:
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=command, arguments=[argument])
    )
    return result if isinstance(result, dict) else json.loads(json.dumps(result, default=vars))


async def _actions_for_perimeter(client: Any, uri: str, message: str) -> list[Any]:
    """The code actions on `perimeter` with one pycodestyle diagnostic in range."""
    diagnostic = types.Diagnostic(
        range=types.Range(start=types.Position(8, 4), end=types.Position(8, 5)),
        message=message,
        source="pycodestyle",
    )
    actions: list[Any] = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(start=types.Position(7, 0), end=types.Position(10, 0)),
            context=types.CodeActionContext(diagnostics=[diagnostic]),
        )
    )
    return actions


def _chat_requests(fake: FakeLMStudio) -> list[Any]:
    return [r for r in fake.requests if r.path.endswith("/chat/completions")]


def _last_user(request: dict[str, Any]) -> str:
    return next(m["content"] for m in reversed(request["messages"]) if m["role"] == "user")


@pytest.fixture
async def session(start_server: Any, fake_lmstudio: FakeLMStudio, tmp_path: Path) -> Any:
    client = await start_server(provider="lmstudio", api_base=fake_lmstudio.base_url)
    uri = (tmp_path / "ws" / "geometry.py").as_uri()
    (tmp_path / "ws" / "geometry.py").write_text(SOURCE)
    open_doc(client, uri, SOURCE)
    return client, uri


async def test_explain_answers_markdown(session: Any, fake_lmstudio: FakeLMStudio) -> None:
    client, uri = session
    fake_lmstudio.configure(reply="`area` returns the area of a circle of radius `r`.")
    result = await _run(client, "aigents.explain", {"uri": uri, "range": _range(3, 5)})
    assert result["markdown"] == "`area` returns the area of a circle of radius `r`."
    assert result["applied"] is None and result["model"] == "llama-3.2-3b-instruct"
    prompt = _last_user(_chat_requests(fake_lmstudio)[-1].body)
    assert "def area(r):" in prompt
    # a client without our plugin sees the answer: a markdown document outside the workspace
    await until(lambda: client.shown_documents)
    assert client.shown_documents[-1].uri.endswith(".md")
    assert "/ws/" not in client.shown_documents[-1].uri
    # progress was reported while the model answered
    assert client.progress_reports


async def test_edit_applies_a_minimal_edit(session: Any, fake_lmstudio: FakeLMStudio) -> None:
    client, uri = session
    fake_lmstudio.configure(
        reply="Here you go:\n```python\ndef area(r):\n    return math.pi * r * r\n```\n"
    )
    result = await _run(
        client,
        "aigents.edit",
        {"uri": uri, "range": _range(3, 5), "instruction": "use math.pi", "show": False},
    )
    assert result["applied"] is True
    assert client.documents[uri] == SOURCE.replace("3.14159 * r * r", "math.pi * r * r")
    # VS Code supports change annotations: the edit asks for confirmation
    assert result["edit"]["changeAnnotations"]["aigents"]["needsConfirmation"] is True
    [change] = result["edit"]["documentChanges"]
    [edit] = change["edits"]
    assert edit["range"]["start"]["line"] == 4 and edit["range"]["end"]["line"] == 5
    assert "use math.pi" in _last_user(_chat_requests(fake_lmstudio)[-1].body)


async def test_fix_uses_the_diagnostics(session: Any, fake_lmstudio: FakeLMStudio) -> None:
    client, uri = session
    fake_lmstudio.configure(
        reply="```python\ndef perimeter(r):\n    x = 2 * math.pi * r\n    return x\n```"
    )
    diagnostic = {
        "range": {"start": {"line": 8, "character": 5}, "end": {"line": 8, "character": 6}},
        "message": "E226 missing whitespace around arithmetic operator",
        "source": "pycodestyle",
        "severity": 2,
    }
    result = await _run(
        client,
        "aigents.fix",
        {"uri": uri, "range": _range(7, 10), "diagnostics": [diagnostic], "show": False},
    )
    assert result["applied"] is True
    assert "x = 2 * math.pi * r" in client.documents[uri]
    assert "E226" in _last_user(_chat_requests(fake_lmstudio)[-1].body)


async def test_docstring_at_a_cursor_covers_the_function(
    session: Any, fake_lmstudio: FakeLMStudio
) -> None:
    client, uri = session
    fake_lmstudio.configure(
        reply='```python\ndef area(r):\n    """Area of a circle."""\n'
        "    return 3.14159 * r * r\n```"
    )
    cursor = {"start": {"line": 4, "character": 8}, "end": {"line": 4, "character": 8}}
    result = await _run(client, "aigents.docstring", {"uri": uri, "range": cursor})
    assert result["applied"] is True
    assert '    """Area of a circle."""\n    return 3.14159' in client.documents[uri]
    assert client.documents[uri].count("def area") == 1


async def test_tests_create_a_test_file(
    session: Any, fake_lmstudio: FakeLMStudio, tmp_path: Path
) -> None:
    client, uri = session
    fake_lmstudio.configure(
        reply="```python\nfrom geometry import area\n\n\ndef test_area():\n"
        "    assert area(1) > 3\n```"
    )
    result = await _run(client, "aigents.tests", {"uri": uri, "range": _range(3, 5)})
    test_uri = (tmp_path / "ws" / "test_geometry.py").as_uri()
    assert result["applied"] is True
    assert result["file"].endswith("test_geometry.py")
    assert client.documents[test_uri].startswith("from geometry import area")
    kinds = [c["kind"] if "kind" in c else "edit" for c in result["edit"]["documentChanges"]]
    assert kinds == ["create", "edit"]


async def test_chat_keeps_the_conversation(session: Any, fake_lmstudio: FakeLMStudio) -> None:
    client, _ = session
    fake_lmstudio.configure(reply=lambda body: f"answer {len(body['messages'])}")
    first = await _run(client, "aigents.chat", {"question": "What is pi?", "show": False})
    assert [m["role"] for m in first["conversation"]] == ["user", "assistant"]
    second = await _run(
        client,
        "aigents.chat",
        {"question": "And tau?", "conversation": first["conversation"], "show": False},
    )
    assert len(second["conversation"]) == 4
    sent = _chat_requests(fake_lmstudio)[-1].body["messages"]
    contents = [m.get("content") for m in sent]
    assert "What is pi?" in contents and any("And tau?" in (c or "") for c in contents)


async def _streaming(
    client: Any, fake: FakeLMStudio, msg_id: str, command: str, argument: dict[str, Any]
) -> asyncio.Future[Any]:
    """Send the command as request `msg_id`; return its answer to come once the backend
    streams its reply."""
    started = len(fake.generations)
    answer = asyncio.ensure_future(
        client.protocol.send_request_async(
            types.WORKSPACE_EXECUTE_COMMAND,
            types.ExecuteCommandParams(command=command, arguments=[argument]),
            msg_id=msg_id,
        )
    )
    await until(lambda: len(fake.generations) > started and fake.generations[-1].sent > 3)
    return answer


def _cancel_progress(client: Any, token: Any) -> None:
    """The user clicks "cancel" on the progress notification."""
    client.protocol.notify(
        types.WINDOW_WORK_DONE_PROGRESS_CANCEL, types.WorkDoneProgressCancelParams(token=token)
    )


async def test_cancel_stops_the_backend_and_answers(
    session: Any, fake_lmstudio: FakeLMStudio
) -> None:
    client, uri = session
    fake_lmstudio.configure(reply=" ".join(["word"] * 400), token_delay=0.02)
    for how in ("$/cancelRequest", "aigents.cancel", "progress"):
        before = fake_lmstudio.disconnects
        msg_id = f"explain-{how}"
        argument = {"uri": uri, "range": _range(3, 5), "show": False}
        answer = await _streaming(client, fake_lmstudio, msg_id, "aigents.explain", argument)
        if how == "$/cancelRequest":
            client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
        elif how == "aigents.cancel":
            result = await _run(client, "aigents.cancel", {})
            assert result["cancelled"] == 1
        else:
            _cancel_progress(client, list(client.progress_reports)[-1])
        with pytest.raises(Exception, match=r"(?i)cancel"):
            await asyncio.wait_for(answer, 10)
        await until(lambda before=before: fake_lmstudio.disconnects > before)
        assert fake_lmstudio.generations[-1].sent < 400  # the backend stopped generating


async def test_listing_code_actions_never_calls_the_model(
    session: Any, fake_lmstudio: FakeLMStudio
) -> None:
    client, uri = session
    actions = await _actions_for_perimeter(
        client, uri, "E226 missing whitespace around arithmetic operator"
    )
    titles = {a.title: a for a in actions}
    assert set(titles) >= {
        "AI: Fix “E226 missing whitespace around arithmetic operator”",
        "AI: Rewrite…",
        "AI: Simplify",
        "AI: Add docstring",
        "AI: Explain",
        "AI: Generate tests",
    }
    assert titles["AI: Simplify"].kind == types.CodeActionKind.RefactorRewrite
    assert titles["AI: Generate tests"].kind == types.CodeActionKind.Source
    assert titles["AI: Fix “E226 missing whitespace around arithmetic operator”"].kind == (
        types.CodeActionKind.QuickFix
    )
    assert titles["AI: Explain"].command is not None
    assert _chat_requests(fake_lmstudio) == []  # listing is bookkeeping only
    # resolving runs the model and attaches the edit
    fake_lmstudio.configure(reply="```python\ndef perimeter(r):\n    return 2 * math.pi * r\n```")
    fix = titles["AI: Simplify"]
    assert fix.edit is None
    resolved = await client.code_action_resolve_async(fix)
    assert resolved.edit is not None
    assert len(_chat_requests(fake_lmstudio)) == 1


async def test_secret_file_is_refused(session: Any, tmp_path: Path) -> None:
    client, _ = session
    uri = (tmp_path / "ws" / ".env").as_uri()
    open_doc(client, uri, "TOKEN=abc\n", language="dotenv")
    with pytest.raises(Exception, match="never sent to a model"):
        await _run(client, "aigents.explain", {"uri": uri, "range": _range(0, 1)})


async def test_bad_arguments_get_a_clear_error(session: Any) -> None:
    client, _ = session
    with pytest.raises(Exception, match="not open"):
        await _run(client, "aigents.explain", {"uri": "file:///nowhere.py", "range": _range(0, 1)})
    with pytest.raises(Exception, match="question"):
        await _run(client, "aigents.chat", {})


async def test_chat_tools_search_the_workspace_and_refuse_escapes(
    session: Any, fake_lmstudio: FakeLMStudio, tmp_path: Path
) -> None:
    client, _ = session
    (tmp_path / "ws" / ".env").write_text("SECRET=hunter2\n")
    (tmp_path / "outside.txt").write_text("CONTENT OF A FILE OUTSIDE\n")

    def calls(body: dict[str, Any]) -> list[dict[str, Any]]:
        if any(m["role"] == "tool" for m in body["messages"]):
            return []  # tool results are in: answer
        return [
            {"name": "search_codebase", "arguments": {"query": "perimeter"}},
            {"name": "read_file", "arguments": {"path": "../outside.txt"}},
            {"name": "read_file", "arguments": {"path": ".env"}},
        ]

    def reply(body: dict[str, Any]) -> str:
        results = [m["content"] for m in body["messages"] if m["role"] == "tool"]
        return "TOOL RESULTS:\n" + "\n---\n".join(results)

    fake_lmstudio.configure(tool_calls=calls, reply=reply)
    result = await _run(client, "aigents.chat", {"question": "Where is perimeter?", "show": False})
    answer = result["markdown"]
    assert "geometry.py:8" in answer  # found by search_codebase
    assert "CONTENT OF A FILE OUTSIDE" not in answer and "refused" in answer
    assert "hunter2" not in answer
    assert set(result["tools"]) >= {"search_codebase", "read_file"}


@pytest.mark.engine
async def test_explain_and_edit_with_the_embedded_engine(start_server: Any, tmp_path: Path) -> None:
    client = await start_server(provider="embedded")
    uri = (tmp_path / "ws" / "calc.py").as_uri()
    text = "def add(a, b):\n    return a + b\n"
    open_doc(client, uri, text)
    explained = await _run(
        client, "aigents.explain", {"uri": uri, "range": _range(0, 2), "show": False}
    )
    assert explained["markdown"].strip()
    assert explained["model"] == "smollm2-135m-instruct"
    try:
        edited = await _run(
            client,
            "aigents.edit",
            {"uri": uri, "range": _range(0, 2), "instruction": "Rename b to other", "show": False},
        )
    except Exception as error:  # a 135M model may propose no usable change: said clearly
        assert "aigents:" in str(error)
    else:
        assert edited["applied"] is True
        assert client.documents[uri] != text


REWRITTEN = "```python\ndef perimeter(r):\n    return 2 * math.pi * r\n```"


@pytest.mark.parametrize(
    "title",
    [
        "AI: Fix “E226 missing whitespace”",
        "AI: Rewrite…",
        "AI: Simplify",
        "AI: Add docstring",
        "AI: Generate tests",
    ],
)
async def test_every_code_action_resolves_to_an_edit(
    session: Any, fake_lmstudio: FakeLMStudio, title: str
) -> None:
    client, uri = session
    fake_lmstudio.configure(reply=REWRITTEN)
    actions = await _actions_for_perimeter(client, uri, "E226 missing whitespace")
    [action] = [a for a in actions if a.title == title]
    resolved = await client.code_action_resolve_async(action)
    assert resolved.edit is not None
    if title == "AI: Rewrite…":
        assert client.questions  # asked how to rewrite; the first choice was taken
        assert "clearer" in _last_user(_chat_requests(fake_lmstudio)[-1].body)
    apply_workspace_edit(client.documents, resolved.edit)
    if title == "AI: Generate tests":
        assert any(u.endswith("test_geometry.py") for u in client.documents)
    else:
        assert "return 2 * math.pi * r" in client.documents[uri]


async def test_user_defined_action(
    start_server: Any, fake_lmstudio: FakeLMStudio, tmp_path: Path
) -> None:
    actions = [{"title": "AI: Shout", "prompt": "Uppercase the names in {selection}", "edit": True}]
    client = await start_server(
        provider="lmstudio", api_base=fake_lmstudio.base_url, init_options={"actions": actions}
    )
    uri = (tmp_path / "ws" / "g.py").as_uri()
    open_doc(client, uri, SOURCE)
    fake_lmstudio.configure(reply="```python\ndef AREA(R):\n    return 3.14159 * R * R\n```")
    listed = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(start=types.Position(3, 0), end=types.Position(5, 0)),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    [shout] = [a for a in listed if a.title == "AI: Shout"]
    assert shout.kind == types.CodeActionKind.RefactorRewrite
    resolved = await client.code_action_resolve_async(shout)
    assert "Uppercase the names" in _last_user(_chat_requests(fake_lmstudio)[-1].body)
    assert resolved.edit is not None


async def test_tests_extend_an_existing_test_file(
    session: Any, fake_lmstudio: FakeLMStudio, tmp_path: Path
) -> None:
    client, uri = session
    test_file = tmp_path / "ws" / "test_geometry.py"
    existing = "from geometry import area\n\n\ndef test_area():\n    assert area(1) > 3\n"
    test_file.write_text(existing)
    open_doc(client, test_file.as_uri(), existing)
    fake_lmstudio.configure(
        reply="```python\ndef test_perimeter():\n    assert perimeter(1) > 6\n```"
    )
    result = await _run(client, "aigents.tests", {"uri": uri, "range": _range(7, 10)})
    assert result["applied"] is True
    text = client.documents[test_file.as_uri()]
    assert text.startswith(existing) and text.rstrip().endswith("assert perimeter(1) > 6")
    assert "def test_area" in _last_user(_chat_requests(fake_lmstudio)[-1].body)  # it saw them


class HeldReply:
    """A reply the fake LM Studio sends only when the test says so (`release`), so the
    user can type while the model is "writing"."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.asked = threading.Event()
        self._released = threading.Event()

    def __call__(self, body: dict[str, Any]) -> str:
        self.asked.set()
        self._released.wait(30)
        return self.text

    def release(self) -> None:
        self._released.set()


async def _processed(client: Any, uri: str) -> None:
    """A request answered after the notifications sent before it: they were handled."""
    await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(start=types.Position(0, 0), end=types.Position(0, 0)),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )


async def _while_held(
    client: Any, fake: FakeLMStudio, uri: str, reply: str, typing: Callable[[], None], run: Any
) -> Any:
    """Start `run` (a coroutine), type with `typing()` while the model answers, then let the
    answer come; the outcome of `run` (its result or its exception)."""
    held = HeldReply(reply)
    fake.configure(reply=held)
    task = asyncio.ensure_future(run)
    try:
        await until(held.asked.is_set)
        typing()
        await _processed(client, uri)
    finally:
        held.release()
    try:
        return await asyncio.wait_for(task, 20)
    except Exception as error:
        return error


AREA_EDIT = "```python\ndef area(r):\n    return math.pi * r * r\n```\n"
EDIT_AREA = {"uri": "", "range": _range(3, 5), "instruction": "use math.pi", "show": False}


async def test_typing_above_during_a_slow_reply_moves_the_edit(
    session: Any, fake_lmstudio: FakeLMStudio
) -> None:
    client, uri = session
    outcome = await _while_held(
        client,
        fake_lmstudio,
        uri,
        AREA_EDIT,
        lambda: type_text(client, uri, types.Position(0, 0), "# circles\n# in metres\n"),
        _run(client, "aigents.edit", {**EDIT_AREA, "uri": uri}),
    )
    assert not isinstance(outcome, Exception), outcome
    assert outcome["applied"] is True
    expected = "# circles\n# in metres\n" + SOURCE.replace("3.14159 * r * r", "math.pi * r * r")
    assert client.documents[uri] == expected
    [change] = outcome["edit"]["documentChanges"]
    assert change["textDocument"]["version"] == 2  # the version it was moved onto
    assert change["edits"][0]["range"]["start"]["line"] == 6


async def test_typing_below_during_a_slow_reply_keeps_the_lines(
    session: Any, fake_lmstudio: FakeLMStudio
) -> None:
    client, uri = session
    outcome = await _while_held(
        client,
        fake_lmstudio,
        uri,
        AREA_EDIT,
        lambda: type_text(client, uri, types.Position(10, 0), "\nTAU = 6.28318\n"),
        _run(client, "aigents.edit", {**EDIT_AREA, "uri": uri}),
    )
    assert not isinstance(outcome, Exception), outcome
    assert outcome["applied"] is True
    assert client.documents[uri] == (
        SOURCE.replace("3.14159 * r * r", "math.pi * r * r") + "\nTAU = 6.28318\n"
    )


async def test_typing_in_the_selection_during_a_slow_reply_refuses_the_edit(
    session: Any, fake_lmstudio: FakeLMStudio
) -> None:
    client, uri = session
    outcome = await _while_held(
        client,
        fake_lmstudio,
        uri,
        AREA_EDIT,
        lambda: type_text(client, uri, types.Position(4, 10), "  # pi-ish"),
        _run(client, "aigents.edit", {**EDIT_AREA, "uri": uri}),
    )
    assert isinstance(outcome, Exception)
    assert "changed in lines 4–5 while the model was writing" in str(outcome)
    # the user's typing is all that happened to the document
    assert client.documents[uri] == SOURCE.replace("return 3.1", "return  # pi-ish 3.1")


async def test_code_action_resolved_while_typing_is_for_the_document_as_it_is(
    session: Any, fake_lmstudio: FakeLMStudio
) -> None:
    client, uri = session
    actions = await _actions_for_perimeter(client, uri, "E226 missing whitespace")
    [simplify] = [a for a in actions if a.title == "AI: Simplify"]
    outcome = await _while_held(
        client,
        fake_lmstudio,
        uri,
        REWRITTEN,
        lambda: type_text(client, uri, types.Position(1, 0), "import cmath\n"),
        client.code_action_resolve_async(simplify),
    )
    assert not isinstance(outcome, Exception), outcome
    assert outcome.edit is not None
    apply_workspace_edit(client.documents, outcome.edit, client.versions)  # version checked
    assert client.documents[uri] == (
        SOURCE.replace("import math\n", "import math\nimport cmath\n").replace(
            "    x = 2*math.pi*r\n    return x\n", "    return 2 * math.pi * r\n"
        )
    )


async def test_an_ignored_test_file_is_never_shown_to_the_model(
    start_server: Any, fake_lmstudio: FakeLMStudio, tmp_path: Path
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    existing = "HIDDEN_FIXTURE = 'do-not-send'\n"
    (ws / "geometry.py").write_text(SOURCE)
    (ws / "test_geometry.py").write_text(existing)
    (ws / ".aigentsignore").write_text("test_geometry.py\n")
    client = await start_server(provider="lmstudio", api_base=fake_lmstudio.base_url)
    uri, test_uri = (ws / "geometry.py").as_uri(), (ws / "test_geometry.py").as_uri()
    open_doc(client, uri, SOURCE)
    open_doc(client, test_uri, existing)
    fake_lmstudio.configure(reply="```python\ndef test_area():\n    assert area(1) > 3\n```")
    result = await _run(client, "aigents.tests", {"uri": uri, "range": _range(3, 5)})
    assert "do-not-send" not in json.dumps(_chat_requests(fake_lmstudio)[-1].body)
    assert result["applied"] is True  # appended without being read for the model
    assert client.documents[test_uri] == existing + "\ndef test_area():\n    assert area(1) > 3\n"


@pytest.mark.parametrize("editor", ["neovim@v0.11.0", "visual-studio-code", "emacs"])
async def test_tests_are_appended_after_a_non_ascii_last_line_in_any_encoding(
    start_server: Any, fake_lmstudio: FakeLMStudio, tmp_path: Path, editor: str
) -> None:
    client = await start_server(editor, provider="lmstudio", api_base=fake_lmstudio.base_url)
    ws = tmp_path / "ws"
    existing = "def test_greeting():\n    assert greet() == 'héllo 😀 世界'"  # no final newline
    (ws / "geometry.py").write_text(SOURCE)
    (ws / "test_geometry.py").write_text(existing)
    uri, test_uri = (ws / "geometry.py").as_uri(), (ws / "test_geometry.py").as_uri()
    open_doc(client, uri, SOURCE)
    open_doc(client, test_uri, existing)
    fake_lmstudio.configure(reply="```python\ndef test_area():\n    assert area(1) > 3\n```")
    result = await _run(client, "aigents.tests", {"uri": uri, "range": _range(3, 5)})
    assert result["applied"] is True
    assert client.documents[test_uri] == (
        existing + "\n\ndef test_area():\n    assert area(1) > 3\n"
    )


async def test_an_answer_that_cannot_be_saved_is_shown_and_the_failure_told(
    start_server: Any, fake_lmstudio: FakeLMStudio, tmp_path: Path
) -> None:
    (tmp_path / "state").write_text("a file where the state folder should be")
    client = await start_server(provider="lmstudio", api_base=fake_lmstudio.base_url)
    uri = (tmp_path / "ws" / "geometry.py").as_uri()
    open_doc(client, uri, SOURCE)
    fake_lmstudio.configure(reply="`area` is pi r squared.")
    await _run(client, "aigents.explain", {"uri": uri, "range": _range(3, 5)})
    await until(lambda: any("pi r squared" in m.message for m in client.messages))
    assert not client.shown_documents
    await until(lambda: any("could not open the answer" in m.message for m in client.log_messages))


async def test_the_test_editor_refuses_an_edit_for_an_older_version(
    session: Any, fake_lmstudio: FakeLMStudio
) -> None:
    """As VS Code and Neovim do: the resolved action's edit names the version it was made
    for, and typing after it arrived makes the editor refuse it whole."""
    client, uri = session
    fake_lmstudio.configure(reply=REWRITTEN)
    actions = await _actions_for_perimeter(client, uri, "E226 missing whitespace")
    [simplify] = [a for a in actions if a.title == "AI: Simplify"]
    resolved = await client.code_action_resolve_async(simplify)
    assert resolved.edit is not None
    type_text(client, uri, types.Position(0, 0), "# later\n")
    with pytest.raises(VersionMismatch):
        apply_workspace_edit(client.documents, resolved.edit, client.versions)
    assert client.documents[uri] == "# later\n" + SOURCE


@pytest.mark.parametrize("how", ["$/cancelRequest", "progress"])
async def test_a_cancelled_command_leaves_no_unretrieved_exception(
    session: Any, fake_lmstudio: FakeLMStudio, tmp_path: Path, how: str
) -> None:
    client, _ = session
    fake_lmstudio.configure(reply=" ".join(["word"] * 400), token_delay=0.02)
    cancelled: set[Any] = set()

    def jobs() -> list[Any]:  # the progress tokens of the chat jobs, oldest first
        return [
            token
            for token, reports in client.progress_reports.items()
            if getattr(reports[0], "title", None) == "aigents: thinking"
        ]

    for attempt in range(3):  # a few, so the dropped task objects are freed meanwhile
        msg_id = f"chat-{how}-{attempt}"
        argument = {"question": "Count words", "show": False}
        answer = await _streaming(client, fake_lmstudio, msg_id, "aigents.chat", argument)
        if how == "$/cancelRequest":
            client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
        else:
            token = next(t for t in jobs() if t not in cancelled)
            cancelled.add(token)
            _cancel_progress(client, token)
        with pytest.raises(Exception, match=r"(?i)cancel"):
            await asyncio.wait_for(answer, 10)
    fake_lmstudio.configure(reply="Still here.", token_delay=0.0)
    result = await _run(client, "aigents.chat", {"question": "Are you there?", "show": False})
    assert result["markdown"] == "Still here."  # the server keeps serving
    # A dropped task is logged when it is freed, before the answers that follow it.
    told = [m.message for m in client.log_messages] + [server_log(tmp_path)]
    assert not [m for m in told if "never retrieved" in m]
    # A cancelled command is answered "cancelled": not a failure logged with a traceback.
    assert not [m for m in told if "Exception occurred" in m or "Traceback" in m]
