"""Failures the user would care about are logged at warning (the default level shows them and
the editor's log gets them), saying what happened — not at debug, where nobody sees them."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pytest

from aigents_lsp.providers.base import BackendUnavailable, InvalidRequest
from tests.unit.test_index_search import FILES, FakeEmbedder, make_index, write


async def test_a_chunk_the_embedding_model_refuses_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Picky(FakeEmbedder):
        async def __call__(self, texts: Sequence[str]) -> list[list[float]]:
            if any("Circle" in text for text in texts):
                raise InvalidRequest("input is too large to process")
            return await super().__call__(texts)

    index = make_index(write(tmp_path / "ws", FILES))
    with caplog.at_level(logging.WARNING, logger="aigents_lsp"):
        await index.build(Picky().source)
    [record] = [r for r in caplog.records if "refused" in r.getMessage()]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "fake-embed refused 1 chunk(s)" in message
    assert "src/geometry.py:1" in message and "input is too large" in message


async def test_a_query_not_embedded_is_a_warning_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    embedder = FakeEmbedder()
    index = make_index(write(tmp_path / "ws", FILES))
    await index.build(embedder.source)
    embedder.fail = BackendUnavailable("connection refused")
    with caplog.at_level(logging.INFO, logger="aigents_lsp"):
        await index.search("invoice total", 3, embedder.source)
        await index.search("circle area", 3, embedder.source)
    told = [r for r in caplog.records if "did not embed the query" in r.getMessage()]
    assert [r.levelno for r in told] == [logging.WARNING, logging.INFO]
    assert "connection refused" in told[0].getMessage()
