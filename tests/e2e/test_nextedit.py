"""Next edit over stdio (`textDocument/copilotInlineEdit`) against a fake LM Studio answering
in each model's format: the right minimal edit at the right range with the version echoed,
"no edit" and garbage answers silent, nothing stale, supersede and cancellation closing the
backend's stream, accept/dismiss/shown reports in `aigents.stats`."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from lsprotocol import types

from tests.e2e.conftest import open_doc, server_log, type_text, until
from tests.fakes.lmstudio_server import FakeLMStudio, default_models

METHOD = "textDocument/copilotInlineEdit"
URI = "file:///tmp/ws/calc.py"
BEFORE = "import math\n\n\ndef area(radius):\n    return math.pi * radius ** 2\n"
# The user renamed the parameter; the model is to propose the same rename in the body.
RENAMED = BEFORE.replace("area(radius)", "area(r)")
NEXT = RENAMED.replace("pi * radius", "pi * r")


def _model(model_id: str) -> dict[str, Any]:
    return {
        "id": model_id,
        "object": "model",
        "type": "llm",
        "publisher": "test",
        "arch": "qwen2",
        "compatibility_type": "gguf",
        "quantization": "Q8_0",
        "state": "loaded",
        "max_context_length": 32768,
        "loaded_context_length": 8192,
    }


MODELS = [
    *default_models(),
    _model("sweep-next-edit-1.5b"),
    _model("zeta-2"),
    _model("zeta"),
    _model("instinct"),
]


def _settings(fake: FakeLMStudio, model: str, **extra: str) -> dict[str, str]:
    return {
        "provider": "lmstudio",
        "api_base": fake.base_url,
        "next_edit_model": model,
        "next_edit_debounce_ms": "0",
        **extra,
    }


def plain(value: Any) -> Any:
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _params(version: int | None, line: int, character: int) -> dict[str, Any]:
    document: dict[str, Any] = {"uri": URI}
    if version is not None:
        document["version"] = version
    return {"textDocument": document, "position": {"line": line, "character": character}}


async def _ask(client: Any, version: int | None, line: int = 3, character: int = 10) -> Any:
    result = await client.protocol.send_request_async(METHOD, _params(version, line, character))
    return plain(result)


async def _renamed(start_server: Any, fake: FakeLMStudio, model: str, **extra: str) -> Any:
    """A session where the user just renamed `radius` to `r` in the signature."""
    client = await start_server(**_settings(fake, model, **extra))
    open_doc(client, URI, BEFORE)
    position = types.Position(line=3, character=9)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=position, end=types.Position(line=3, character=15)),
                    text="r",
                )
            ],
        )
    )
    client.documents[URI], client.versions[URI] = RENAMED, 2
    return client


async def _stats(client: Any) -> dict[str, Any]:
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="aigents.stats", arguments=[])
    )
    stats: dict[str, Any] = plain(result)
    return stats["next_edit"]


REPLIES = {
    "sweep-next-edit-1.5b": ("completion", NEXT + "<|file_sep|>current/calc.py\njunk"),
    "zeta-2": ("completion", NEXT + ">>>>>>> UPDATED\n"),
    "zeta": (
        "completion",
        "```calc.py\n<|editable_region_start|>\n" + NEXT + "<|editable_region_end|>\n```",
    ),
    "instinct": ("chat", NEXT),
    "llama-3.2-3b-instruct": ("chat", "```python\n" + NEXT + "```"),
}


@pytest.mark.parametrize("model", list(REPLIES))
async def test_each_format_gives_the_minimal_edit_at_its_range_with_the_version_echoed(
    start_server: Any, fake_lmstudio: FakeLMStudio, model: str
) -> None:
    kind, reply = REPLIES[model]
    fake_lmstudio.configure(models=MODELS, reply=reply, completion_reply=reply)
    client = await _renamed(start_server, fake_lmstudio, model)
    result = await _ask(client, 2)
    assert result["edits"] == [
        {
            "text": "r",
            "textDocument": {"uri": URI, "version": 2},
            "range": {"start": {"line": 4, "character": 21}, "end": {"line": 4, "character": 27}},
            "command": result["edits"][0]["command"],
        }
    ]
    command = result["edits"][0]["command"]
    assert command["command"] == "aigents.nextEditAccepted" and len(command["arguments"]) == 1
    sent = [r for r in fake_lmstudio.requests if r.path.endswith("/completions")][-1]
    assert sent.path.endswith("/chat/completions" if kind == "chat" else "/v1/completions")
    assert sent.body["model"] == model and sent.body["stream"] is True
    prompt = (
        sent.body["prompt"]
        if kind == "completion"
        else "".join(m["content"] for m in sent.body["messages"])
    )
    assert "-def area(radius):" in prompt or "original:\ndef area(radius):" in prompt
    if model.startswith("sweep"):
        assert "<|file_sep|>current/calc.py\n" in prompt and "<|cursor|>" in prompt


async def test_accept_shown_and_dismiss_are_counted_in_stats(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    fake_lmstudio.configure(models=MODELS, completion_reply=REPLIES["zeta-2"][1])
    client = await _renamed(start_server, fake_lmstudio, "zeta-2")
    first = (await _ask(client, 2))["edits"][0]
    client.protocol.notify(
        "textDocument/didShowInlineEdit", {"item": {"command": first["command"]}}
    )
    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(
            command=first["command"]["command"], arguments=first["command"]["arguments"]
        )
    )
    second = (await _ask(client, 2))["edits"][0]
    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(
            command="aigents.nextEditDismissed", arguments=second["command"]["arguments"]
        )
    )
    stats = await _stats(client)
    assert (stats["edits"], stats["shown"], stats["accepted"], stats["dismissed"]) == (2, 1, 1, 1)


@pytest.mark.parametrize(
    ("model", "reply", "counter"),
    [
        ("zeta-2", "NO_EDITS\n>>>>>>> UPDATED\n", "no_edit"),
        ("sweep-next-edit-1.5b", RENAMED + "<|file_sep|>", "no_edit"),  # the same region back
        ("sweep-next-edit-1.5b", "lorem ipsum dolor " * 400, "rejected"),  # rambling garbage
        ("instinct", "", "no_edit"),
    ],
)
async def test_no_edit_and_garbage_answers_are_silent(
    start_server: Any, fake_lmstudio: FakeLMStudio, model: str, reply: str, counter: str
) -> None:
    fake_lmstudio.configure(models=MODELS, reply=reply, completion_reply=reply)
    client = await _renamed(start_server, fake_lmstudio, model)
    assert (await _ask(client, 2))["edits"] == []
    assert not client.messages  # silent: no popup
    stats = await _stats(client)
    assert stats[counter] == 1 and stats["edits"] == 0 and stats["errors"] == 0


async def test_a_broken_backend_answer_gives_no_edit_and_the_server_lives_on(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    fake_lmstudio.configure(models=MODELS, garbage_body=True)
    client = await _renamed(start_server, fake_lmstudio, "zeta-2")
    assert (await _ask(client, 2))["edits"] == []
    fake_lmstudio.configure(garbage_body=False, completion_reply=REPLIES["zeta-2"][1])
    assert len((await _ask(client, 2))["edits"]) == 1


async def test_a_no_edit_answer_closes_the_stream_at_once(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    long_no = "NO_EDITS\n" + "x = 1\n" * 300
    fake_lmstudio.configure(models=MODELS, completion_reply=long_no, token_delay=0.01)
    client = await _renamed(start_server, fake_lmstudio, "zeta-2")
    assert (await _ask(client, 2))["edits"] == []
    await until(lambda: fake_lmstudio.disconnects >= 1)
    generation = fake_lmstudio.generations[-1]
    assert generation.sent < generation.planned  # the backend did not write it all


async def test_nothing_stale_an_old_version_or_typing_meanwhile_gives_no_edit(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    fake_lmstudio.configure(models=MODELS, completion_reply=REPLIES["zeta-2"][1])
    client = await _renamed(start_server, fake_lmstudio, "zeta-2")
    assert (await _ask(client, 1))["edits"] == []  # the editor asked for an older version
    fake_lmstudio.configure(ttft=0.5)
    pending = asyncio.ensure_future(_ask(client, 2))
    await until(lambda: len(fake_lmstudio.generations) >= 1)
    type_text(client, URI, types.Position(line=0, character=0), "#")
    assert (await pending)["edits"] == []
    assert (await _stats(client))["stale"] == 1


async def test_without_a_version_the_current_one_is_echoed(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    fake_lmstudio.configure(models=MODELS, completion_reply=REPLIES["zeta-2"][1])
    client = await _renamed(start_server, fake_lmstudio, "zeta-2")
    result = await _ask(client, None)
    assert result["edits"][0]["textDocument"] == {"uri": URI, "version": 2}


async def test_a_newer_request_supersedes_and_cancel_closes_the_backend_stream(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    slow = NEXT + ">>>>>>> UPDATED\n"
    fake_lmstudio.configure(models=MODELS, completion_reply=slow, token_delay=0.2)
    client = await _renamed(start_server, fake_lmstudio, "zeta-2")
    older = asyncio.ensure_future(_ask(client, 2))
    await until(lambda: len(fake_lmstudio.generations) == 1 and fake_lmstudio.generations[0].sent)
    newer = asyncio.ensure_future(_ask(client, 2, line=4, character=4))
    assert (await older)["edits"] == []  # superseded: answered empty at once
    await until(lambda: fake_lmstudio.disconnects >= 1)
    assert fake_lmstudio.generations[0].disconnected
    await until(lambda: len(fake_lmstudio.generations) == 2 and fake_lmstudio.generations[1].sent)
    # $/cancelRequest on the newer one: the editor gets -32800 and the stream is closed.
    msg_id = "next-edit-cancelled"
    cancelled = asyncio.ensure_future(
        client.protocol.send_request_async(METHOD, _params(2, 4, 4), msg_id=msg_id)
    )
    await until(lambda: len(fake_lmstudio.generations) == 3 and fake_lmstudio.generations[2].sent)
    assert (await newer)["edits"] == []
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
    with pytest.raises(Exception, match=r"(?i)cancel"):
        await asyncio.wait_for(cancelled, 10)
    await until(lambda: fake_lmstudio.disconnects >= 3)
    assert all(g.disconnected for g in fake_lmstudio.generations)
    stats = await _stats(client)
    assert stats["superseded"] == 2 and stats["cancelled"] == 1


async def test_off_for_a_language_asks_nothing_and_bad_params_are_a_clear_error(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    fake_lmstudio.configure(models=MODELS, completion_reply=REPLIES["zeta-2"][1])
    client = await _renamed(
        start_server, fake_lmstudio, "zeta-2", next_edit_languages='{"python": false}'
    )
    assert (await _ask(client, 2))["edits"] == []
    assert not [r for r in fake_lmstudio.requests if r.path.endswith("/completions")]
    with pytest.raises(Exception, match=r"textDocument\.uri"):
        await client.protocol.send_request_async(METHOD, {"position": {"line": 0}})
    with pytest.raises(Exception, match=r"position\.line"):
        await client.protocol.send_request_async(
            METHOD, {"textDocument": {"uri": URI}, "position": {"line": -1, "character": 0}}
        )


# --- the completion path and Neovim 0.12's inline completion -----------------------------------


def _inline_params(line: int, character: int) -> types.InlineCompletionParams:
    """Neovim 0.12's `vim.lsp.inline_completion` request: no version, always triggerKind 2."""
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=URI),
        position=types.Position(line=line, character=character),
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Automatic
        ),
    )


async def test_a_next_edit_model_completes_with_its_edit_on_the_cursor_line(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    fake_lmstudio.configure(models=MODELS, completion_reply=REPLIES["sweep-next-edit-1.5b"][1])
    client = await _renamed(
        start_server, fake_lmstudio, "sweep-next-edit-1.5b",
        completion_model="sweep-next-edit-1.5b", debounce_ms="0",
    )  # fmt: skip
    end_of_body = len("    return math.pi * radius ** 2")
    result = await client.text_document_inline_completion_async(_inline_params(4, end_of_body))
    [item] = result.items
    # The edit ("radius" -> "r") as ghost text from its start to the cursor, typed text kept.
    assert item.insert_text == "r ** 2"
    assert (item.range.start.line, item.range.start.character) == (4, 21)
    assert (item.range.end.line, item.range.end.character) == (4, end_of_body)
    assert item.command is not None and item.command.command == "aigents.nextEditAccepted"
    # On the signature line the edit is elsewhere: no ghost text (copilotInlineEdit shows it).
    result = await client.text_document_inline_completion_async(_inline_params(3, 10))
    assert not result.items
    sent = [r.body for r in fake_lmstudio.requests if r.path.endswith("/completions")]
    assert sent and all("<|file_sep|>current/calc.py" in body["prompt"] for body in sent)


async def test_neovim_012_shapes_no_version_trigger_2_no_cancel_item_from_the_word_start(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    def reply(request: dict[str, Any]) -> str:
        return "(items)" if "return sum<|fim_suffix|>" in request["prompt"] else "m(items)"

    fake_lmstudio.configure(completion_reply=reply)
    client = await start_server(
        editor="neovim@v0.11.0",
        provider="lmstudio",
        api_base=fake_lmstudio.base_url,
        completion_mode="inline",
        debounce_ms="0",
    )
    text = "def total(items):\n    return su"
    open_doc(client, URI, text + "\n")
    # Neovim sends a request and never cancels it; the user types on meanwhile.
    first = asyncio.ensure_future(
        client.text_document_inline_completion_async(_inline_params(1, 13))
    )
    await until(lambda: any(r.path.endswith("/completions") for r in fake_lmstudio.requests))
    type_text(client, URI, types.Position(line=1, character=13), "m")
    second = await client.text_document_inline_completion_async(_inline_params(1, 14))
    older = await first
    assert all(item.insert_text.startswith("su") for item in older.items)
    [item] = second.items
    # The range starts at the word typed, and the text repeats it: shown once, not doubled.
    assert item.insert_text == "sum(items)"
    assert (item.range.start.character, item.range.end.character) == (11, 14)


async def test_stats_polled_with_show_false_is_silent_and_asked_shows_both_summaries(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    fake_lmstudio.configure(models=MODELS, completion_reply=REPLIES["zeta-2"][1])
    client = await _renamed(start_server, fake_lmstudio, "zeta-2")
    await _ask(client, 2)

    def stats_shown() -> list[str]:
        return [m.message for m in client.messages if "stats" in m.message]

    for _ in range(3):  # a status bar polling it
        polled = plain(
            await client.workspace_execute_command_async(
                types.ExecuteCommandParams(command="aigents.stats", arguments=[{"show": False}])
            )
        )
        assert polled["next_edit"]["requests"] == 1 and "completion" in polled
    # a message would have come before the answer it belongs to
    assert stats_shown() == []
    await _stats(client)  # the user runs it from the command palette: no argument
    [summary] = stats_shown()
    completion, next_edit = summary.split("\n")
    assert completion.startswith("aigents completion stats: requests 0")
    assert next_edit.startswith("aigents next-edit stats: requests 1") and "edits 1" in next_edit


async def test_did_focus_is_handled_quietly_and_makes_the_focused_file_context_first(
    start_server: Any, fake_lmstudio: FakeLMStudio, tmp_path: Any
) -> None:
    fake_lmstudio.configure(models=MODELS, completion_reply=REPLIES["zeta-2"][1])
    client = await _renamed(start_server, fake_lmstudio, "zeta-2")
    for name in ("alpha", "beta", "gamma"):
        text = f"def {name}_helper(value):\n    return value\n"
        open_doc(client, f"file:///tmp/ws/{name}.py", text)
    # copilot-lsp on BufEnter: the user looked at alpha.py and came back to calc.py; then
    # shapes a plugin should not send (nothing, a document that is not open)
    for uri in ("file:///tmp/ws/alpha.py", URI, "file:///tmp/ws/closed.py"):
        client.protocol.notify("textDocument/didFocus", {"textDocument": {"uri": uri}})
    client.protocol.notify("textDocument/didFocus", {})
    result = await _ask(client, 2)
    assert result["edits"]  # the server keeps serving
    prompt = fake_lmstudio.last_request("/v1/completions").body["prompt"]
    # two related files go into the prompt, the most recent first: focusing counts as recent
    assert "alpha_helper" in prompt and "gamma_helper" in prompt
    assert "beta_helper" not in prompt
    told = [m.message for m in client.log_messages] + server_log(tmp_path).splitlines()
    assert not [line for line in told if "didFocus" in line or "Traceback" in line]
