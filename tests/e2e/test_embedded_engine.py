"""The real server over stdio, served by the real embedded llama.cpp engine (no LM Studio)."""

from __future__ import annotations

from typing import Any

import pytest
from lsprotocol import types

from tests.e2e.conftest import end_of, free_port, inline, open_doc, until

pytestmark = pytest.mark.engine
# What the engine suggests, not how fast: the first request starts the engine and reads a cold
# prompt, which on a busy 2-core CI machine takes longer than the typing deadline.
UNHURRIED = {"completion_deadline": "60", "completion_timeout": "60"}


async def test_auto_falls_back_to_embedded_engine_and_completes(start_server: Any) -> None:
    # `auto` with nothing at the LM Studio address: the embedded engine serves.
    client = await start_server(api_base=f"http://127.0.0.1:{free_port()}/v1", **UNHURRIED)
    uri = "file:///tmp/engine_demo.py"
    text = 'def add(a, b):\n    """Return the sum of a and b."""\n    return '
    open_doc(client, uri, text)
    position = types.Position(line=2, character=len("    return "))
    suggestions = await inline(client, uri, position)
    assert suggestions, "the embedded engine gave no suggestion"
    assert suggestions[0].strip()
    assert "\n" not in suggestions[0]  # mid-line: one line
    await until(lambda: any(s["provider"] == "embedded" for s in client.statuses))
    ready = [s for s in client.statuses if s["state"] == "ready" and s["provider"] == "embedded"]
    assert ready and ready[-1]["model"] == "gemma-3-270m"
    # told once which model serves and how to switch to LM Studio
    told = [m.message for m in client.messages if "LM Studio" in m.message]
    assert len(told) == 1 and "embedded" in told[0].lower()
    # engine start reported as $/progress
    assert client.progress_reports, "no $/progress while the engine started"


async def test_multiline_body_as_ghost_text(start_server: Any) -> None:
    client = await start_server(provider="embedded", **UNHURRIED)
    uri = "file:///tmp/engine_body.py"
    text = 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n    '
    open_doc(client, uri, text)
    suggestions = await inline(client, uri, types.Position(line=2, character=4))
    assert suggestions and suggestions[0].strip()
    assert "\n" in suggestions[0]  # a block body: several lines


async def test_classic_item_for_editors_without_ghost_text(start_server: Any) -> None:
    client = await start_server(editor="neovim@v0.11.0", provider="embedded", **UNHURRIED)
    uri = "file:///tmp/engine_item.py"
    text = 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n    '
    open_doc(client, uri, text)
    position = types.Position(line=2, character=4)
    result = await client.text_document_completion_async(
        types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=position,
            context=types.CompletionContext(trigger_kind=types.CompletionTriggerKind.Invoked),
        )
    )
    assert isinstance(result, types.CompletionList) and result.is_incomplete
    assert len(result.items) == 1
    item = result.items[0]
    assert item.text_edit is not None and item.text_edit.new_text.strip()
    assert item.label == item.text_edit.new_text.strip().split("\n")[0][:80]


async def test_a_second_request_after_a_small_edit_reuses_the_prompt_cache(
    start_server: Any,
) -> None:
    """llama.cpp's own counts (`timings.cache_n`, read by the server): after typing on the
    line, the backend reads only the edited end of the prompt, not the whole file again."""
    client = await start_server(
        provider="embedded",
        completion_prefill_lines="0",
        completion_prompt_tokens="1024",
        **UNHURRIED,
    )
    uri = "file:///tmp/engine_cache.py"
    body = "".join(
        f"def scale_{i}(value, factor={i}):\n    return value * factor + {i}\n\n" for i in range(12)
    )
    text = body + "def total(values):\n    result = "
    open_doc(client, uri, text)
    first = await inline(client, uri, end_of(text))
    assert first is not None
    edited = text + "sum"
    position = end_of(text)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=position, end=position), text="sum"
                )
            ],
        )
    )
    await inline(client, uri, end_of(edited))
    stats = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="aigents.stats")
    )
    found = stats["completion"] if isinstance(stats, dict) else stats.completion
    completion = found if isinstance(found, dict) else found._asdict()
    assert completion["backend_calls"] == 2
    assert completion["prompt_counts_from_backend"] == 2  # the backend's counts, not guesses
    read, cached = completion["prompt_last_read"], completion["prompt_last_cached"]
    assert cached > 100 and read < 0.2 * (read + cached), completion


async def test_a_window_that_slides_down_reuses_the_moved_prompt(start_server: Any) -> None:
    """llama.cpp's own counts: when the user moves down past what the window holds, it slides
    (its first lines dropped) and the engine moves the cached rest to the front (cache reuse)
    instead of reading it again: it reads about the new lines only."""
    client = await start_server(
        provider="embedded",
        completion_prefill_lines="0",
        completion_prompt_tokens="1024",
        **UNHURRIED,
    )
    uri = "file:///tmp/engine_slide.py"
    rows = [
        f"def scale_{i}(value, factor={i}):\n    return value * factor + {i}\n\n"
        for i in range(400)
    ]
    text = "".join(rows)
    open_doc(client, uri, text)

    async def stats() -> dict[str, Any]:
        found = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="aigents.stats")
        )
        completion = found["completion"] if isinstance(found, dict) else found.completion
        return completion if isinstance(completion, dict) else completion._asdict()

    # A cursor at the end of a `return` line, moving down 30 lines (~1,000 characters) at a
    # time: the 1,024-token window fills up, then slides.
    line = 3 * 200 + 1
    slid_reads: list[tuple[int, int]] = []
    for _ in range(6):
        await inline(client, uri, types.Position(line=line, character=len(text.split("\n")[line])))
        completion = await stats()
        if completion["prompt_window_slides"]:
            slid_reads.append((completion["prompt_last_read"], completion["prompt_last_cached"]))
        line += 30
    assert completion["prompt_counts_from_backend"] == 6
    # Once the window is full each request slides it: its head moved, yet the engine took
    # the lines it kept (three quarters of the window, less the new lines) from its cache
    # and read only the 30 new lines. Without cache reuse it would read them all.
    assert all(cached > read for read, cached in slid_reads[3:]), slid_reads
    assert completion["prompt_cache_reuse"] > 0.5, completion
