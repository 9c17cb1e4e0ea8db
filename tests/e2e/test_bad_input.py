"""Bad LSP input: the server answers with proper errors and keeps serving."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from lsprotocol import types

from tests.e2e.conftest import end_of, inline, open_doc
from tests.fakes.lmstudio_server import FakeLMStudio


def _raw(client: Any, body: bytes) -> None:
    """Bytes straight onto the server's stdin, framed or not (malformed input on purpose)."""
    stdin = client._server.stdin
    stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)


async def _still_serving(client: Any, fake: FakeLMStudio) -> None:
    uri = "file:///tmp/alive.py"
    text = "alive = "
    open_doc(client, uri, text)
    fake.configure(completion_reply="True")
    assert await asyncio.wait_for(inline(client, uri, end_of(text)), 10) == ["True"]


@pytest.fixture
async def client(start_server: Any, fake_lmstudio: FakeLMStudio) -> Any:
    return await start_server(provider="lmstudio", api_base=fake_lmstudio.base_url)


async def test_malformed_messages(client: Any, fake_lmstudio: FakeLMStudio) -> None:
    _raw(client, b"{not json at all")
    _raw(client, b'{"jsonrpc": "2.0", "id": 99, "method": "textDocument/inlineCompletion"}')
    _raw(client, b"\xff\xfe\x00 invalid utf-8")
    _raw(client, json.dumps({"jsonrpc": "2.0", "method": 42}).encode())
    await _still_serving(client, fake_lmstudio)


async def test_unknown_method_is_an_error_not_a_crash(
    client: Any, fake_lmstudio: FakeLMStudio
) -> None:
    with pytest.raises(Exception, match=r"(?i)not found|unknown"):
        await client.protocol.send_request_async("aigents/noSuchMethod", {})
    await _still_serving(client, fake_lmstudio)


async def test_absurd_positions(client: Any, fake_lmstudio: FakeLMStudio) -> None:
    uri = "file:///tmp/positions.py"
    open_doc(client, uri, "s = '😋'\n")
    for line, character in ((0, 10_000), (10_000, 0), (0, 6)):  # (0, 6): inside the emoji
        await inline(client, uri, types.Position(line=line, character=character))
    negative = {
        "jsonrpc": "2.0",
        "id": "negative",
        "method": types.TEXT_DOCUMENT_INLINE_COMPLETION,
        "params": {
            "textDocument": {"uri": uri},
            "position": {"line": -1, "character": -5},
            "context": {"triggerKind": 1},
        },
    }
    _raw(client, json.dumps(negative).encode())  # answered with an error (-32602)
    await _still_serving(client, fake_lmstudio)


async def test_changes_for_unknown_documents_and_old_versions(
    client: Any, fake_lmstudio: FakeLMStudio
) -> None:
    position = types.Position(line=0, character=0)
    change = types.TextDocumentContentChangePartial(
        range=types.Range(start=position, end=position), text="x"
    )
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri="file:///nope.py", version=3),
            content_changes=[change],
        )
    )
    uri = "file:///tmp/versions.py"
    open_doc(client, uri, "a\n")
    for version in (5, 2):  # out of order: applied, logged
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[change],
            )
        )
    await _still_serving(client, fake_lmstudio)


async def test_huge_and_binary_documents(client: Any, fake_lmstudio: FakeLMStudio) -> None:
    fake_lmstudio.configure(completion_reply="1")
    big = "x = 1\n" * 3_500_000  # 21 MB
    uri = "file:///tmp/huge.py"
    open_doc(client, uri, big + "y = ")
    assert await asyncio.wait_for(inline(client, uri, end_of(big + "y = ")), 30) == ["1"]
    prompt = fake_lmstudio.last_request("/v1/completions").body["prompt"]
    assert len(prompt) < 20_000  # only the window around the cursor goes to the model
    long_line = "z = [" + "1, " * 350_000  # a 1 MB line
    uri = "file:///tmp/long_line.py"
    open_doc(client, uri, long_line)
    await asyncio.wait_for(inline(client, uri, end_of(long_line)), 30)
    requests_before = len(fake_lmstudio.requests)
    binary = "PNG\x00\x01\x02\x00" * 1000
    uri = "file:///tmp/blob.bin"
    open_doc(client, uri, binary, language="plaintext")
    assert await inline(client, uri, end_of(binary)) == []
    assert len(fake_lmstudio.requests) == requests_before  # binary never goes to the model
    await _still_serving(client, fake_lmstudio)


async def test_ten_thousand_open_documents(client: Any, fake_lmstudio: FakeLMStudio) -> None:
    for i in range(10_000):
        open_doc(client, f"file:///tmp/many/{i}.py", f"value_{i} = {i}\n")
    await _still_serving(client, fake_lmstudio)
