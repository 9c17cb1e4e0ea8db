"""Bad LSP input: the server answers with proper errors and keeps serving. Each test checks
the answers it got (error codes, the document the server ended up with), not just that the
server is still alive."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from tests.e2e.conftest import end_of, inline, open_doc, until
from tests.fakes.lmstudio_server import FakeLMStudio


def _raw(client: Any, body: bytes) -> None:
    """Bytes straight onto the server's stdin, framed or not (malformed input on purpose)."""
    stdin = client._server.stdin
    stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)


def _record_answers(client: Any) -> list[tuple[Any, int | None]]:
    """Every response the client gets, as (id, error code or None): also those to the raw
    requests it did not send itself and those with a null id."""
    answers: list[tuple[Any, int | None]] = []
    protocol = client.protocol
    original = protocol._handle_response

    def handle(msg_id: Any, result: Any = None, error: Any = None) -> None:
        answers.append((msg_id, getattr(error, "code", None) if error is not None else None))
        if msg_id in protocol._request_futures:
            original(msg_id, result, error)

    protocol._handle_response = handle
    return answers


async def _answered(answers: list[tuple[Any, int | None]], count: int) -> None:
    await until(lambda: len(answers) >= count)


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
    answers = _record_answers(client)
    _raw(client, b"{not json at all")
    _raw(client, b'{"jsonrpc": "2.0", "id": 99, "method": "textDocument/inlineCompletion"}')
    _raw(client, b"\xff\xfe\x00 invalid utf-8")
    _raw(client, json.dumps({"jsonrpc": "2.0", "method": 42}).encode())  # no id: no answer
    _raw(client, json.dumps({"jsonrpc": "2.0", "id": "v1", "method": "shutdown"}).encode()[:-1])
    _raw(client, json.dumps({"jsonrpc": "1.0", "id": "old", "method": "shutdown"}).encode())
    await _answered(answers, 5)
    await _still_serving(client, fake_lmstudio)
    assert answers[:5] == [
        (None, -32700),  # parse error
        (99, -32602),  # a request without its params
        (None, -32700),  # not UTF-8
        (None, -32700),  # cut short
        ("old", -32600),  # not JSON-RPC 2.0
    ]


async def test_unknown_method_is_an_error_not_a_crash(
    client: Any, fake_lmstudio: FakeLMStudio
) -> None:
    with pytest.raises(JsonRpcException, match=r"(?i)not found|unknown") as raised:
        await client.protocol.send_request_async("aigents/noSuchMethod", {})
    assert raised.value.code == -32601
    await _still_serving(client, fake_lmstudio)


async def test_absurd_positions(client: Any, fake_lmstudio: FakeLMStudio) -> None:
    uri = "file:///tmp/positions.py"
    answers = _record_answers(client)
    open_doc(client, uri, "s = '😋'\n")
    fake_lmstudio.configure(completion_reply="  # ok")
    for line, character in ((0, 10_000), (10_000, 0), (0, 6)):  # (0, 6): inside the emoji
        # clamped to the text: answered like any position (no error)
        await inline(client, uri, types.Position(line=line, character=character))
    assert [code for _, code in answers] == [None, None, None]
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
    await _answered(answers, 4)
    assert answers[3] == ("negative", -32602)
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
    fake_lmstudio.configure(completion_reply="= 1")
    assert await inline(client, uri, types.Position(line=0, character=3)) == ["= 1"]
    prompt = fake_lmstudio.last_request("/v1/completions").body["prompt"]
    assert "xxa" in prompt  # both changes were applied, in the order they came
    assert await inline(client, "file:///nope.py", position) == []  # never opened
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
    fake_lmstudio.configure(completion_reply="+ 1")
    last = "file:///tmp/many/9999.py"
    assert await inline(client, last, types.Position(line=0, character=17)) == ["+ 1"]
    assert "value_9999 = 9999" in fake_lmstudio.last_request("/v1/completions").body["prompt"]
    await _still_serving(client, fake_lmstudio)
