"""The semantic index with vectors from the real embedded engine (SmolLM2, mean pooling)."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from aigents_lsp.index.indexer import SemanticIndex
from aigents_lsp.index.memory import EmbeddingSource
from aigents_lsp.index.store import IndexStore
from aigents_lsp.providers.embedded import EmbeddedProvider
from aigents_lsp.providers.embedded_models import SMOLLM2
from aigents_lsp.providers.engine_process import EmbeddedEngine, embedded_available
from aigents_lsp.workspace.ignore import IgnoreRules

pytestmark = [
    pytest.mark.engine,
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.skipif(not embedded_available(), reason="the `embedded` extra is not installed"),
]

FILES = {
    "shapes.py": "import math\n\n\ndef circle_area(radius):\n    return math.pi * radius**2\n",
    "money.py": "def invoice_total(prices):\n    return round(sum(prices), 2)\n",
    "net.py": "def fetch_page(url):\n    import urllib.request\n    return urllib.request"
    ".urlopen(url).read()\n",
}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def provider(engine: EmbeddedEngine) -> AsyncIterator[EmbeddedProvider]:
    shared = EmbeddedProvider(engine=engine)
    yield shared
    await shared.aclose()


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


async def test_the_engine_embeds_in_batches_deterministically(provider: EmbeddedProvider) -> None:
    texts = ["def add(a, b): return a + b", "the weather is nice today", *FILES.values()]
    vectors = await provider.embed(texts)
    assert len(vectors) == len(texts) and {len(v) for v in vectors} == {576}
    again = await provider.embed([texts[0]])
    assert _cosine(vectors[0], again[0]) > 0.999  # the same text, the same vector
    assert all(math.isfinite(x) for v in vectors for x in v)


async def test_the_index_gets_vectors_from_the_engine(
    provider: EmbeddedProvider, tmp_path: Path
) -> None:
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    source = EmbeddingSource(f"embedded:{SMOLLM2.alias}", provider.embed)
    index = SemanticIndex([tmp_path], IgnoreRules([tmp_path]), IndexStore(":memory:"))
    report = await index.build(source)
    assert report.keyword_only is None
    assert report.embedded == report.chunks == index.vector_count == 4
    hits = await index.search("invoice_total", 2, source)
    assert hits[0].symbol == "invoice_total" and "vector" in hits[0].sources
    # A query sharing no word with any chunk is answered by the vectors alone.
    by_meaning = await index.search("zzqx", 3, source)
    assert by_meaning and all(hit.sources == ("vector",) for hit in by_meaning)
