"""Completion over stdio against a fake LM Studio: debounce, supersede, type-through, stale
versions, both LSP methods, and positions in every encoding on lines with emoji and CJK."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from tests.e2e.conftest import end_of, inline, items, open_doc, server_env, shown_text, until
from tests.fakes.lmstudio_server import FakeLMStudio

MODEL = "qwen2.5-coder-1.5b-instruct"


def _settings(fake: FakeLMStudio, **extra: str) -> dict[str, str]:
    return {"provider": "lmstudio", "api_base": fake.base_url, **extra}


def _change(client: Any, uri: str, version: int, line: int, column: int, text: str) -> None:
    position = types.Position(line=line, character=column)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=position, end=position), text=text
                )
            ],
        )
    )


def _automatic(client: Any, uri: str, position: types.Position) -> asyncio.Future[Any]:
    return asyncio.ensure_future(
        client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=position,
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Automatic
                ),
            )
        )
    )


def _texts(result: Any) -> list[str]:
    found = result.items if isinstance(result, types.InlineCompletionList) else result or []
    return [shown_text(i) for i in found]


def _completions(fake: FakeLMStudio) -> list[Any]:
    return [r for r in fake.requests if r.path.endswith("/completions")]


async def test_ghost_text_is_fim_for_a_coder_model(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    fake_lmstudio.configure(completion_reply="a + b")
    client = await start_server(**_settings(fake_lmstudio))
    uri = "file:///tmp/fim.py"
    text = "def add(a, b):\n    return "
    open_doc(client, uri, text + "\n\nprint(add(1, 2))\n")
    assert await inline(client, uri, end_of(text)) == ["a + b"]
    body = _completions(fake_lmstudio)[-1].body
    assert body["model"] == MODEL  # picked: the loaded code model
    assert body["prompt"].startswith("<|fim_prefix|>") and "<|fim_suffix|>" in body["prompt"]
    assert body["stream"] is True and "\n" in body["stop"]


async def test_typing_burst_makes_one_backend_request_and_older_requests_end_empty(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    fake_lmstudio.configure(completion_reply="l_price(items)")
    # Keys 30 ms apart and a debounce of 1 s (learned: never under 0.5 s): only a client stalled
    # for half a second between two keys makes a pause, so a busy machine cannot fake one.
    client = await start_server(**_settings(fake_lmstudio, debounce_ms="1000"))
    uri = "file:///tmp/burst.py"
    open_doc(client, uri, "x = \n")
    pending = []
    for i, char in enumerate("tota"):
        _change(client, uri, i + 2, 0, 4 + i, char)
        pending.append(_automatic(client, uri, types.Position(line=0, character=5 + i)))
        await asyncio.sleep(0.03)
    results = [await asyncio.wait_for(p, 10) for p in pending]
    assert all(_texts(r) == [] for r in results[:-1]), [_texts(r) for r in results]
    assert _texts(results[-1]) == ["l_price(items)"]
    assert len(_completions(fake_lmstudio)) == 1


async def test_type_through_needs_no_backend_call(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    fake_lmstudio.configure(completion_reply="compute_total(items)")
    client = await start_server(**_settings(fake_lmstudio))
    uri = "file:///tmp/through.py"
    open_doc(client, uri, "value = \n")
    assert await inline(client, uri, types.Position(line=0, character=8)) == [
        "compute_total(items)"
    ]
    for i, char in enumerate("comp"):
        _change(client, uri, i + 2, 0, 8 + i, char)
        shown = _texts(await _automatic(client, uri, types.Position(line=0, character=9 + i)))
        assert shown == ["compute_total(items)"[i + 1 :]]
    assert len(_completions(fake_lmstudio)) == 1


async def test_result_for_an_old_version_is_never_shown(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    fake_lmstudio.configure(completion_reply="slow answer here", ttft=0.4)
    client = await start_server(**_settings(fake_lmstudio))
    uri = "file:///tmp/stale.py"
    open_doc(client, uri, "first = \nsecond = 2\n")
    answer = asyncio.ensure_future(inline(client, uri, types.Position(line=0, character=8)))
    await until(lambda: _completions(fake_lmstudio))
    _change(client, uri, 2, 1, 10, "0")  # the user edits elsewhere meanwhile
    assert await answer == []


async def test_items_for_editors_without_ghost_text(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    fake_lmstudio.configure(completion_reply="sum(values) / len(values)")
    client = await start_server(editor="neovim@v0.11.0", **_settings(fake_lmstudio))
    uri = "file:///tmp/items.py"
    open_doc(client, uri, "mean = \n")
    result = await client.text_document_completion_async(
        types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=0, character=7),
        )
    )
    assert isinstance(result, types.CompletionList) and result.is_incomplete
    [item] = result.items
    assert item.label == "sum(values) / len(values)"
    assert item.text_edit is not None and item.text_edit.new_text == "sum(values) / len(values)"
    assert "```python" in item.documentation.value  # type: ignore[union-attr]
    assert item.command is not None and item.command.command == "aigents.completionAccepted"


async def test_an_item_covers_the_word_being_typed(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    # Clients filter items by the word before the cursor: the edit replaces that word with
    # word + continuation, so the item survives the filter and inserts the same text.
    fake_lmstudio.configure(completion_reply="ues) / len(values)")
    client = await start_server(editor="neovim@v0.11.0", **_settings(fake_lmstudio))
    uri = "file:///tmp/items_word.py"
    open_doc(client, uri, "mean = sum(val\n")
    result = await client.text_document_completion_async(
        types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=0, character=14),
        )
    )
    [item] = result.items  # type: ignore[union-attr]
    assert item.text_edit is not None
    assert item.text_edit.new_text == "values) / len(values)"
    assert item.text_edit.range.start == types.Position(line=0, character=11)  # type: ignore[union-attr]
    assert item.filter_text == "values) / len(values)"


async def test_accepted_suggestions_are_counted(
    start_server: Any, fake_lmstudio: FakeLMStudio, tmp_path: Path
) -> None:
    fake_lmstudio.configure(completion_reply="x + 1")
    client = await start_server(**_settings(fake_lmstudio))
    uri = "file:///tmp/accept.py"
    open_doc(client, uri, "y = \n")
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=0, character=4),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Invoked
            ),
        )
    )
    command = result.items[0].command
    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=command.command, arguments=command.arguments)
    )
    stats = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="aigents.stats")
    )
    completion = stats["completion"] if isinstance(stats, dict) else stats.completion
    values = completion if isinstance(completion, dict) else completion._asdict()
    assert values["shown"] == 1 and values["accepted"] == 1 and values["backend_calls"] == 1
    # ... and `doctor` shows them (local metrics kept in the state directory)
    doctor = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "aigents_lsp", "doctor"],
        env=server_env(tmp_path, api_base=fake_lmstudio.base_url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Completion metrics of the last session" in doctor.stdout
    assert "accepted 1" in doctor.stdout


LINE = 's = "😋漢字" + na'


@pytest.mark.parametrize(
    ("editor", "column"),
    [
        ("visual-studio-code", len(LINE.encode("utf-16-le")) // 2),
        ("neovim@v0.11.0", len(LINE.encode("utf-8"))),
        ("emacs", len(LINE)),
    ],
)
async def test_positions_with_emoji_and_cjk(
    start_server: Any, fake_lmstudio: FakeLMStudio, editor: str, column: int
) -> None:
    fake_lmstudio.configure(completion_reply="me")
    client = await start_server(editor=editor, **_settings(fake_lmstudio))
    uri = "file:///tmp/unicode.py"
    open_doc(client, uri, f"# 漢字 😋\n{LINE}\nprint(s)\n")
    position = types.Position(line=1, character=column)
    if editor == "visual-studio-code":
        assert await inline(client, uri, position) == ["me"]
    else:  # the item's edit covers the word being typed ("na")
        assert await items(client, uri, position) == ["name"]
    prompt = _completions(fake_lmstudio)[-1].body["prompt"]
    assert f"{LINE}<|fim_suffix|>" in prompt  # sliced exactly at the cursor


async def test_secret_files_are_never_sent(
    start_server: Any, fake_lmstudio: FakeLMStudio, tmp_path: Any
) -> None:
    fake_lmstudio.configure(completion_reply="value")
    client = await start_server(**_settings(fake_lmstudio))
    workspace = tmp_path / "ws"
    uri = (workspace / ".env").as_uri()
    open_doc(client, uri, "API_KEY=", language="dotenv")
    assert await inline(client, uri, types.Position(line=0, character=8)) == []
    assert _completions(fake_lmstudio) == []


async def test_other_open_files_are_context_but_never_secret_ones(
    start_server: Any, fake_lmstudio: FakeLMStudio, tmp_path: Path
) -> None:
    fake_lmstudio.configure(completion_reply="compute_invoice_total(order)")
    client = await start_server(**_settings(fake_lmstudio))
    ws = tmp_path / "ws"
    helper = "def compute_invoice_total(order):\n    return sum(line.price for line in order)\n"
    open_doc(client, (ws / "billing.py").as_uri(), helper)
    open_doc(client, (ws / ".env").as_uri(), "INVOICE_API_TOKEN=compute_invoice_total\n")
    uri = (ws / "main.py").as_uri()
    open_doc(client, uri, "def report(order):\n    total = \n")
    await inline(client, uri, types.Position(line=1, character=12))
    prompt = _completions(fake_lmstudio)[-1].body["prompt"]
    assert "<|file_sep|>billing.py" in prompt and "sum(line.price" in prompt
    assert "INVOICE_API_TOKEN" not in prompt
