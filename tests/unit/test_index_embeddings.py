"""Embeddings for the index: batching against the fake LM Studio, typed errors, and the
model the index picks (a loaded embeddings model, else a downloaded one LM Studio loads)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aigents_lsp.assist.tools import WorkspaceTools
from aigents_lsp.index.search import SearchHit
from aigents_lsp.lsp.search import _downloaded_embedding_model
from aigents_lsp.providers.base import BackendUnavailable, NoModelLoaded
from aigents_lsp.providers.lmstudio import LMStudioProvider
from tests.fakes.lmstudio_server import FakeLMStudio, default_models


async def test_embeddings_are_sent_in_batches_in_order(fake_lmstudio: FakeLMStudio) -> None:
    fake_lmstudio.configure(embedding_kind="words", embedding_dimensions=32)
    provider = LMStudioProvider(fake_lmstudio.base_url, api_key="")
    try:
        texts = [f"text number {i}" for i in range(70)]
        vectors = await provider.embed(texts)
        requests = [r for r in fake_lmstudio.requests if r.path == "/v1/embeddings"]
        assert [len(r.body["input"]) for r in requests] == [32, 32, 6]
        assert len(vectors) == 70 and len(vectors[0]) == 32
        assert vectors[5] == (await provider.embed(["text number 5"]))[0]
    finally:
        await provider.aclose()


async def test_embedding_failures_are_typed(fake_lmstudio: FakeLMStudio) -> None:
    models = [m for m in default_models() if m["type"] != "embeddings"]
    fake_lmstudio.configure(models=models)
    provider = LMStudioProvider(fake_lmstudio.base_url, api_key="")
    try:
        with pytest.raises(NoModelLoaded, match="embedding model"):
            await provider.embed(["x"])
        fake_lmstudio.refuse()
        with pytest.raises(BackendUnavailable):
            await provider.embed(["x"], model="text-embedding-nomic-embed-text-v1.5")
    finally:
        fake_lmstudio.accept()
        await provider.aclose()


async def test_a_downloaded_embedding_model_is_used_when_none_is_loaded(
    fake_lmstudio: FakeLMStudio,
) -> None:
    models = default_models()
    for model in models:
        if model["type"] == "embeddings":
            model["state"] = "not-loaded"
            model.pop("loaded_context_length", None)
    fake_lmstudio.configure(models=models)
    provider = LMStudioProvider(fake_lmstudio.base_url, api_key="")
    try:
        with pytest.raises(NoModelLoaded):
            await provider.resolve_model("embedding")
        chosen = await _downloaded_embedding_model(provider)
        assert chosen == "text-embedding-nomic-embed-text-v1.5"
        assert len((await provider.embed(["x"], chosen))[0]) == 8  # LM Studio loads it (JIT)
    finally:
        await provider.aclose()


class FakeIndex:
    def __init__(self, root: Path, hits: list[SearchHit], ready: bool = True) -> None:
        self.root, self.hits, self._ready = root, hits, ready
        self.queries: list[str] = []

    @property
    def ready(self) -> bool:
        return self._ready

    async def search(self, query: str, limit: int = 10) -> list[SearchHit]:
        self.queries.append(query)
        return self.hits[:limit]


def _hit(root: Path, name: str, line: int, text: str, symbol: str = "") -> SearchHit:
    path = (root / name).as_posix()
    return SearchHit(path, line, line + 3, symbol, 0.03, text, line, ("keyword", "vector"))


async def test_search_codebase_answers_plain_queries_from_the_ready_index(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src/app.py").write_text("def parse_config(path):\n    return path\n")
    (root / ".env").write_text("TOKEN=x\n")
    root = root.resolve()
    hits = [
        _hit(root, "src/app.py", 0, "def parse_config(path):\n    return path", "parse_config"),
        _hit(root, ".env", 0, "TOKEN=x"),  # never shown, even if an index had it
    ]
    index = FakeIndex(root, hits)
    tools = WorkspaceTools([root], index=index)
    out = await tools.search_codebase("where is the configuration read")
    assert out.splitlines() == [
        "1 result for 'where is the configuration read':",
        "src/app.py:1: def parse_config(path): (parse_config)",
    ]
    assert "no matches" in await tools.search_codebase("where", path_glob="*.ts")
    # A regex, an index that is not ready or finds nothing: the plain scan answers.
    assert (await tools.search_codebase("parse_", regex=True)).startswith("1 match for")
    index.hits = []
    assert (await tools.search_codebase("parse_config")).startswith("1 match for")
    not_ready = WorkspaceTools([root], index=FakeIndex(root, hits, ready=False))
    assert (await not_ready.search_codebase("parse_config")).startswith("1 match for")
