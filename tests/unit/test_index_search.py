"""Keyword ranking, vectors, rank fusion and the index's build/update/search with a fake
embedding model (a hashed bag of words), on real files in a temporary workspace."""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from pathlib import Path

import pytest

from aigents_lsp.index.indexer import SemanticIndex
from aigents_lsp.index.keyword import KeywordIndex, term_counts, tokens
from aigents_lsp.index.memory import EmbeddingSource, IndexOptions
from aigents_lsp.index.search import fuse
from aigents_lsp.index.store import IndexStore, store_path
from aigents_lsp.index.vectors import (
    PACKED_FROM,
    PackedVectors,
    VectorIndex,
    from_bytes,
    normalized,
    quantized,
    to_bytes,
)
from aigents_lsp.providers.base import BackendUnavailable, InvalidRequest, NoModelLoaded
from aigents_lsp.workspace.ignore import IgnoreRules
from tests.fakes.lmstudio_server import bag_of_words_vector

FILES = {
    "src/billing.py": (
        "def compute_invoice_total(items, tax_rate):\n"
        '    """Sum the line items and add the tax."""\n'
        "    return sum(items) * (1 + tax_rate)\n"
    ),
    "src/geometry.py": "class Circle:\n    def area(self):\n        return 3.14 * self.r ** 2\n",
    "web/parse.ts": "export function parseQueryString(q) {\n  return new URLSearchParams(q);\n}\n",
    ".env": "API_KEY=secret-invoice-total\n",
    ".gitignore": "build_out/\n",
    "build_out/gen.py": "def compute_invoice_total_generated():\n    pass\n",
    "logo.png": "\x89PNG\x00\x00binary",
}


class FakeEmbedder:
    """Bag-of-words vectors; records what it was given; can be made to fail."""

    def __init__(self, model: str = "fake-embed") -> None:
        self.model = model
        self.calls: list[list[str]] = []
        self.fail: Exception | None = None

    async def __call__(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        if self.fail is not None:
            raise self.fail
        return [bag_of_words_vector(text, 128) for text in texts]

    @property
    def source(self) -> EmbeddingSource:
        return EmbeddingSource(self.model, self)

    def sent(self) -> str:
        return "\n".join(text for call in self.calls for text in call)


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def make_index(root: Path, store: Path | None = None, **options: int) -> SemanticIndex:
    db = IndexStore(store or root.parent / "index.sqlite3")
    return SemanticIndex([root], IgnoreRules([root]), db, IndexOptions(**options))  # type: ignore[arg-type]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return write(tmp_path / "ws", FILES)


# --- pure parts ---------------------------------------------------------------------------------


def test_tokens_split_identifiers_and_keep_whole_names() -> None:
    assert tokens("parseConfigFile(path)") == ["parseconfigfile", "parse", "config", "file", "path"]
    assert tokens("the HTTPServer is_ready") == [
        "httpserver",
        "http",
        "server",
        "is_ready",
        "ready",
    ]


def test_bm25_ranks_rare_terms_and_exact_names_first() -> None:
    index = KeywordIndex()
    index.add(1, term_counts("def load_config(path): return read(path)"))
    index.add(2, term_counts("def save(path): write(path) # config"))
    index.add(3, term_counts("def unrelated(): pass"))
    assert [doc for doc, _ in index.search("load config", 5)] == [1, 2]
    index.remove(1)
    assert [doc for doc, _ in index.search("load config", 5)] == [2]
    assert index.search("", 5) == [] and index.search("nothing matches", 5) == []


def test_vectors_are_unit_float32_and_ranked_by_cosine() -> None:
    vectors = VectorIndex()
    vectors.add(1, normalized([1.0, 0.0, 0.0]))
    vectors.add(2, normalized([1.0, 1.0, 0.0]))
    vectors.add(3, normalized([0.0, 0.0, 5.0]))
    vectors.add(4, normalized([1.0, 2.0]))  # another model's size: never compared
    ranked = vectors.search([2.0, 0.1, 0.0], 2)
    assert [doc for doc, _ in ranked] == [1, 2] and ranked[0][1] == pytest.approx(0.9988, 1e-3)
    assert from_bytes(to_bytes(normalized([3.0, 4.0]))).tolist() == pytest.approx([0.6, 0.8])
    assert vectors.search([1.0, 0.0], 2) == []


def test_the_packed_scan_of_a_large_index_ranks_as_the_exact_scan() -> None:
    rng = random.Random(3)
    vectors = VectorIndex()
    for doc in range(PACKED_FROM + 300):
        vectors.add(doc, normalized([rng.gauss(0.0, 1.0) for _ in range(96)]))
    for doc in range(0, 200, 2):
        vectors.remove(doc)  # removals after a scan must be seen
    queries = [[rng.gauss(0.0, 1.0) for _ in range(96)] for _ in range(20)]
    queries.append(list(vectors._vectors[7]))  # a stored vector finds itself first, at 1.0
    for query in queries:
        packed = vectors.search(query, 10)
        exact = VectorIndex._exact(normalized(query), vectors._vectors, 10)
        assert packed == exact
    assert vectors.search(queries[-1], 1)[0] == (7, pytest.approx(1.0, abs=1e-5))
    vectors.remove(7)
    assert vectors.search(queries[-1], 1)[0][0] != 7


def test_packed_scores_are_close_to_cosine_including_negative_values() -> None:
    rng = random.Random(5)
    stored = [normalized([rng.uniform(-1.0, 1.0) for _ in range(768)]) for _ in range(50)]
    packed = PackedVectors(
        list(range(50)), [quantized(v)[0] for v in stored], [quantized(v)[1] for v in stored], 768
    )
    query = normalized([rng.uniform(-1.0, 1.0) for _ in range(768)])
    for vector, score in zip(stored, packed.scores(query), strict=True):
        assert score == pytest.approx(
            sum(a * b for a, b in zip(vector, query, strict=True)), abs=0.01
        )
    assert packed.scores(stored[3])[3] == pytest.approx(1.0, abs=0.01)


def test_reciprocal_rank_fusion_prefers_what_both_rankings_found() -> None:
    fused = fuse([("keyword", 1.0, [(1, 9.0), (2, 5.0)]), ("vector", 1.0, [(3, 0.9), (2, 0.8)])], 3)
    assert [doc for doc, _, _ in fused] == [2, 1, 3]
    assert fused[0][2] == ("keyword", "vector")


# --- the index ----------------------------------------------------------------------------------


async def test_build_indexes_code_and_skips_ignored_secret_and_binary_files(root: Path) -> None:
    embedder = FakeEmbedder()
    index = make_index(root)
    report = await index.build(embedder.source)
    indexed = {index.relative(path) for path in index._by_path}
    assert indexed == {
        "src/billing.py",
        "src/geometry.py",
        "web/parse.ts",
        ".gitignore",
        "logo.png",
    }
    assert index._by_path[(root / "logo.png").as_posix()] == []  # binary: no chunks
    assert report.embedded == report.chunks == index.vector_count == 4
    assert "secret-invoice" not in embedder.sent() and "generated" not in embedder.sent()

    hits = await index.search("invoice total", 3, embedder.source)
    assert index.relative(hits[0].path) == "src/billing.py"
    assert (hits[0].start, hits[0].end, hits[0].symbol) == (0, 2, "compute_invoice_total")
    assert set(hits[0].sources) == {"keyword", "vector"}  # no name spelled out: no symbol
    assert hits[0].snippet.startswith("def compute_invoice_total")
    assert all(".env" not in hit.path and "build_out" not in hit.path for hit in hits)


async def test_a_rebuild_reads_only_changed_files_and_forgets_deleted_ones(root: Path) -> None:
    embedder = FakeEmbedder()
    index = make_index(root)
    await index.build(embedder.source)
    embedder.calls.clear()
    again = await index.build(embedder.source)
    assert (again.changed, again.embedded, embedder.calls) == (0, 0, [])

    (root / "web/parse.ts").unlink()
    billing = root / "src/billing.py"
    billing.write_text(
        FILES["src/billing.py"] + "\n\ndef refund_invoice(total):\n    return -total\n"
    )
    touched = root / "src/geometry.py"
    os.utime(touched, ns=(1, 1))  # a new mtime, same content: not re-chunked
    report = await index.build(embedder.source)
    assert (report.changed, report.removed, report.embedded) == (1, 1, 2)
    assert [index.relative(h.path) for h in await index.search("parseQueryString", 5)] == []
    assert (await index.search("refund_invoice", 1))[0].start == 5


async def test_the_store_survives_a_restart_without_re_embedding(
    root: Path, tmp_path: Path
) -> None:
    embedder = FakeEmbedder()
    first = make_index(root, tmp_path / "db.sqlite3")
    await first.build(embedder.source)
    first.close()
    embedder.calls.clear()
    second = make_index(root, tmp_path / "db.sqlite3")
    report = await second.build(embedder.source)
    assert (report.changed, report.embedded, second.vector_count) == (0, 0, 4)
    assert embedder.calls == []
    other = FakeEmbedder("another-model")  # a new embedding model: every vector is redone
    assert (await second.build(other.source)).embedded == 4


async def test_update_follows_saves_creations_deletions_and_ignore_rules(root: Path) -> None:
    index = make_index(root)
    await index.build(None)
    new = write(root, {"src/tax.py": "def vat_rate(country):\n    return 0.2\n"}) / "src/tax.py"
    await index.update([new])
    assert (await index.search("vat_rate", 1))[0].path == new.as_posix()
    write(root, {".gitignore": "build_out/\nsrc/tax.py\n"})
    await index.update([new])  # now ignored: it leaves the index
    assert all(hit.symbol != "vat_rate" for hit in await index.search("vat_rate", 10))
    secret = write(root, {"config/.env": "TOKEN=vat_rate"}) / "config/.env"
    await index.update([secret, root / "missing.py"])
    assert all(".env" not in hit.path for hit in await index.search("TOKEN vat_rate", 10))


async def test_without_embeddings_or_when_they_fail_search_is_keyword_only(root: Path) -> None:
    index = make_index(root)
    report = await index.build(None)
    assert report.keyword_only == index.keyword_only == "no embedding model"
    assert (await index.search("compute_invoice_total", 1))[0].sources == ("keyword", "symbol")

    embedder = FakeEmbedder()
    embedder.fail = NoModelLoaded("No embedding model is loaded")
    report = await index.build(embedder.source)
    assert report.keyword_only and "No embedding model" in report.keyword_only
    assert index.vector_count == 0
    assert (await index.search("invoice", 1, embedder.source))[0].sources == ("keyword",)


async def test_one_refused_input_does_not_cost_the_others_their_vectors(root: Path) -> None:
    class Picky(FakeEmbedder):
        async def __call__(self, texts: Sequence[str]) -> list[list[float]]:
            if any("Circle" in text for text in texts):
                self.calls.append(list(texts))
                raise InvalidRequest("input is too large to process")
            return await super().__call__(texts)

    index = make_index(root)
    report = await index.build(Picky().source)
    assert report.keyword_only is None and index.vector_count == 3  # all but the Circle chunk
    embedder = FakeEmbedder()
    embedder.fail = BackendUnavailable("connection refused")
    assert (await index.search("circle area", 3, embedder.source))[0].symbol == "Circle"


async def test_max_files_and_large_files(tmp_path: Path) -> None:
    root = write(tmp_path / "ws", {f"m{i}.py": f"def f{i}():\n    pass\n" for i in range(5)})
    write(root, {"big.py": "x = 1\n" * 50_000})
    index = make_index(root, max_files=3)
    report = await index.build(None)
    assert report.truncated and report.files == 3
    index = make_index(root, tmp_path / "other.sqlite3", max_file_bytes=1000)
    await index.build(None)
    assert index._by_path[(root / "big.py").as_posix()] == []


def test_store_path_is_per_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    one, two = store_path([tmp_path / "a"]), store_path([tmp_path / "b"])
    assert one != two and one.name == "index.sqlite3"
    assert one.is_relative_to(tmp_path / "state")
    assert store_path([tmp_path / "b", tmp_path / "a"]) == store_path(
        [tmp_path / "a", tmp_path / "b"]
    )


async def test_a_weak_embedding_model_counts_less_in_the_fusion(root: Path) -> None:
    embedder = FakeEmbedder()
    index = make_index(root)
    await index.build(embedder.source)
    half = EmbeddingSource(embedder.model, embedder, weight=0.5)
    only_vectors = await index.search("zzqx unheard", 4, half)  # no keyword matches anything
    assert only_vectors and only_vectors[0].sources == ("vector",)
    assert only_vectors[0].score == pytest.approx(0.5 / 61)
