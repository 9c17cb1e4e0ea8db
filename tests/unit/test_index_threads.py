"""The index across threads: a vector scan in a search thread blocks nobody, and `close()`
stops a scan running in its worker thread. Interleavings are forced with events."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aigents_lsp.index import vectors
from aigents_lsp.index.indexer import SemanticIndex
from aigents_lsp.index.memory import IndexOptions
from aigents_lsp.index.store import IndexStore
from aigents_lsp.workspace.ignore import IgnoreRules
from tests.unit.test_index_search import FILES, FakeEmbedder, make_index, write


class GatedRules(IgnoreRules):
    """The workspace walk waits before each file after the first until `step()`."""

    def __init__(self, roots: list[Path]) -> None:
        super().__init__(roots)
        self.paused = threading.Event()
        self._resume = threading.Semaphore(0)

    def walk(
        self, root: Path | str | None = None, *, max_files: int | None = None
    ) -> Iterator[Path]:
        for number, path in enumerate(super().walk(root, max_files=max_files)):
            if number:
                self.paused.set()
                self._resume.acquire()
            yield path

    def step(self) -> None:
        self.paused.clear()
        self._resume.release()


async def test_close_stops_a_scan_running_in_its_thread(tmp_path: Path) -> None:
    root = write(
        tmp_path / "ws", {f"m{i:02}.py": f"def f{i}():\n    return {i}\n" for i in range(20)}
    )
    rules = GatedRules([root])
    index = SemanticIndex([root], rules, IndexStore(tmp_path / "i.sqlite3"), IndexOptions())
    build = asyncio.ensure_future(index.build(None))
    await asyncio.to_thread(rules.paused.wait, 10)  # the worker is inside the scan
    closing = asyncio.ensure_future(asyncio.to_thread(index.close))
    while not build.done():  # one file at a time, until the scan sees it was closed
        rules.step()
        await asyncio.wait(
            [build, asyncio.ensure_future(asyncio.to_thread(rules.paused.wait, 1))],
            return_when=asyncio.FIRST_COMPLETED,
        )
    report = build.result()  # not an error from a store closed under the scan
    await closing
    assert report.stopped and report.files < 20


async def test_a_vector_scan_in_a_search_thread_blocks_no_update(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write(tmp_path / "ws", FILES)
    embedder = FakeEmbedder()
    index = make_index(root)
    await index.build(embedder.source)
    scanning, release = threading.Event(), threading.Event()
    unit = vectors.normalized

    def slow_scan(query: Any) -> Any:  # the scan of a search, held until `release`
        if threading.current_thread() is not threading.main_thread():
            scanning.set()
            release.wait(30)
        return unit(query)

    monkeypatch.setattr(vectors, "normalized", slow_scan)
    search = asyncio.ensure_future(index.search("invoice total", 3, embedder.source))
    try:
        await asyncio.to_thread(scanning.wait, 10)
        billing = root / "src/billing.py"
        billing.write_text(FILES["src/billing.py"] + "\n\ndef refund(total):\n    return -total\n")
        report = await asyncio.wait_for(index.update([billing], embedder.source), 10)
        assert report.changed == 1 and report.embedded == 2
        assert not search.done()  # the update went through while the scan went on
    finally:
        release.set()
    await search  # answered (the file it raced with may be missing from it: it was changing)
    hits = await index.search("invoice total", 3, embedder.source)
    assert index.relative(hits[0].path) == "src/billing.py"
    assert (await index.search("refund", 1))[0].symbol == "refund"
