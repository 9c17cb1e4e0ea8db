"""The semantic index over stdio against the fake LM Studio (bag-of-words embeddings): built in
the background with progress, `aigents.search` finds the right place, a saved edit is found,
ignored and secret files never reach the index nor the embedding model."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import ClientServerConfig

from tests.e2e.conftest import SERVER, capabilities_of, make_client, server_env, until
from tests.fakes.lmstudio_server import FakeLMStudio, default_models

BILLING = '''"""Invoices."""


def compute_invoice_total(items, tax_rate):
    """Sum the line items of an invoice and add the tax."""
    subtotal = sum(item.price * item.quantity for item in items)
    return subtotal * (1 + tax_rate)


def format_currency(amount):
    return f"{amount:.2f} EUR"
'''
GEOMETRY = '''import math


class Circle:
    def __init__(self, radius):
        self.radius = radius

    def area(self):
        """The area of the circle."""
        return math.pi * self.radius ** 2
'''
ROUTES = """export function registerRoutes(app) {
  app.get("/health", (req, res) => res.send("ok"));
}

export function parseQueryString(query) {
  return Object.fromEntries(new URLSearchParams(query));
}
"""
SECRET = "SECRET_TOKEN=hunter2-very-secret-invoice-total"


def _workspace(root: Path) -> Path:
    files = {
        "src/billing.py": BILLING,
        "src/geometry.py": GEOMETRY,
        "web/routes.ts": ROUTES,
        ".env": SECRET,
        ".gitignore": "generated/\n",
        "generated/invoice_total_cache.py": "def compute_invoice_total_cached():\n    pass\n",
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


async def _search(client: Any, query: str, limit: int = 5) -> list[dict[str, Any]]:
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(
            command="aigents.search", arguments=[{"query": query, "limit": limit}]
        )
    )
    return json.loads(json.dumps(result, default=vars))  # type: ignore[no-any-return]


def _index_progress(client: Any) -> list[Any] | None:
    for reports in client.progress_reports.values():
        if reports and getattr(reports[0], "title", None) == "aigents: indexing":
            return list(reports)
    return None


def _finished(client: Any) -> bool:
    reports = _index_progress(client)
    return bool(reports) and isinstance(reports[-1], types.WorkDoneProgressEnd)


@pytest.fixture
async def session(start_server: Any, fake_lmstudio: FakeLMStudio, tmp_path: Path) -> Any:
    fake_lmstudio.configure(embedding_kind="words", embedding_dimensions=256)
    root = _workspace(tmp_path / "ws")
    client = await start_server(provider="lmstudio", api_base=fake_lmstudio.base_url, root=root)
    await until(lambda: _finished(client), 60)
    return client, root


async def test_the_index_is_built_with_progress_and_search_finds_the_function(
    session: Any, fake_lmstudio: FakeLMStudio
) -> None:
    client, root = session
    reports = _index_progress(client)
    assert reports is not None and isinstance(reports[0], types.WorkDoneProgressBegin)
    assert "chunks" in (reports[-1].message or "") and "embedded" in reports[-1].message

    hits = await _search(client, "invoice total with tax")
    assert hits[0]["uri"] == (root / "src/billing.py").as_uri()
    assert hits[0]["range"]["start"] == {"line": 3, "character": 0}
    assert hits[0]["symbol"] == "compute_invoice_total"
    assert hits[0]["path"] == "src/billing.py"
    assert "vector" in hits[0]["sources"] and "keyword" in hits[0]["sources"]
    assert hits[0]["score"] > 0 and "def compute_invoice_total" in hits[0]["snippet"]

    # By meaning only (no shared keyword with the code's names): the vector ranking finds it.
    area = await _search(client, "circle area radius", 3)
    assert area[0]["path"] == "src/geometry.py" and area[0]["symbol"] == "Circle"
    assert (await _search(client, "parse query string"))[0]["path"] == "web/routes.ts"

    embedded = [r for r in fake_lmstudio.requests if r.path == "/v1/embeddings"]
    assert embedded and all(
        r.body["model"] == "text-embedding-nomic-embed-text-v1.5" for r in embedded
    )


async def test_a_saved_edit_is_found(session: Any) -> None:
    client, root = session
    path = root / "src/geometry.py"
    path.write_text(GEOMETRY + "\n\ndef hexagon_perimeter(side):\n    return 6 * side\n")
    client.text_document_did_save(
        types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(path.as_uri()))
    )
    found: list[dict[str, Any]] = []
    for _ in range(100):  # the update runs after a short pause
        found = await _search(client, "hexagon_perimeter", 3)
        if found and found[0]["symbol"] == "hexagon_perimeter":
            break
        await asyncio.sleep(0.1)
    assert found[0]["uri"] == path.as_uri()
    assert found[0]["range"]["start"]["line"] == 12


async def test_ignored_and_secret_files_are_never_indexed_nor_embedded(
    session: Any, fake_lmstudio: FakeLMStudio
) -> None:
    client, _ = session
    sent = json.dumps([r.body for r in fake_lmstudio.requests if r.path == "/v1/embeddings"])
    assert "compute_invoice_total(items" in sent  # what the index embedded...
    assert "hunter2" not in sent and "compute_invoice_total_cached" not in sent  # ...not these
    for query in ("SECRET_TOKEN hunter2", "compute_invoice_total_cached", "invoice total"):
        for hit in await _search(client, query, 20):
            assert not hit["path"].startswith(("generated/", ".env")), hit


async def test_search_arguments_are_checked(session: Any) -> None:
    client, _ = session
    for bad in ({}, {"query": ""}, {"query": "x", "limit": 0}, {"query": "x", "limit": "3"}):
        with pytest.raises(Exception, match=r"query|limit"):
            await client.workspace_execute_command_async(
                types.ExecuteCommandParams(command="aigents.search", arguments=[bad])
            )


async def test_without_an_embedding_model_search_is_keyword_only_and_says_so_once(
    start_server: Any, fake_lmstudio: FakeLMStudio, tmp_path: Path
) -> None:
    models = [m for m in default_models() if m["type"] != "embeddings"]
    fake_lmstudio.configure(models=models)
    root = _workspace(tmp_path / "ws")
    client = await start_server(provider="lmstudio", api_base=fake_lmstudio.base_url, root=root)
    await until(lambda: _finished(client), 60)
    reports = _index_progress(client)
    assert reports is not None and "keyword search only" in (reports[-1].message or "")
    hits = await _search(client, "compute_invoice_total")
    assert hits[0]["path"] == "src/billing.py" and "vector" not in hits[0]["sources"]
    told = [m for m in client.log_messages if "keyword search only" in m.message]
    assert len(told) == 1 and "embedding" in told[0].message
    assert not [r for r in fake_lmstudio.requests if r.path == "/v1/embeddings"]


async def test_index_off_means_no_index_and_search_says_why(
    start_server: Any, fake_lmstudio: FakeLMStudio, tmp_path: Path
) -> None:
    root = _workspace(tmp_path / "ws")
    client = await start_server(
        provider="lmstudio", api_base=fake_lmstudio.base_url, root=root, index="off"
    )
    with pytest.raises(Exception, match="index is off"):
        await _search(client, "invoice")
    assert _index_progress(client) is None
    assert not (tmp_path / "state" / "aigents-lsp" / "index").exists()


async def test_a_backend_that_never_answers_leaves_keyword_search_working(
    start_server: Any, fake_lmstudio: FakeLMStudio, tmp_path: Path
) -> None:
    fake_lmstudio.configure(silent=True)  # accepts every request, answers none
    root = _workspace(tmp_path / "ws")
    client = await start_server(provider="lmstudio", api_base=fake_lmstudio.base_url, root=root)
    loop = asyncio.get_running_loop()
    started = loop.time()
    hits = await asyncio.wait_for(_search(client, "compute_invoice_total"), 30)
    assert hits[0]["path"] == "src/billing.py" and hits[0]["sources"] == ["keyword", "symbol"]
    assert loop.time() - started < 20  # the embedding model lookup gives up after 5 s
    await until(lambda: _finished(client), 30)
    reports = _index_progress(client)
    assert reports is not None and "keyword search only" in (reports[-1].message or "")


async def test_embeddings_follow_the_embedding_route(
    start_server: Any, fake_lmstudio: FakeLMStudio, tmp_path: Path
) -> None:
    fake_lmstudio.configure(models=[m for m in default_models() if m["type"] != "embeddings"])
    embedder = FakeLMStudio(embedding_kind="words", embedding_dimensions=256).start()
    try:
        root = _workspace(tmp_path / "ws")
        routes = json.dumps({"embedding": [f"lmstudio@{embedder.base_url}"]})
        client = await start_server(
            provider="lmstudio", api_base=fake_lmstudio.base_url, root=root, routes=routes
        )
        await until(lambda: _finished(client), 60)
        hits = await _search(client, "invoice total with tax")
        assert hits[0]["path"] == "src/billing.py" and "vector" in hits[0]["sources"]
        assert [r for r in embedder.requests if r.path == "/v1/embeddings"]
        assert not [r for r in fake_lmstudio.requests if r.path == "/v1/embeddings"]
    finally:
        embedder.stop()


async def test_shutdown_closes_the_index_store(fake_lmstudio: FakeLMStudio, tmp_path: Path) -> None:
    """`shutdown` closes the index (`SemanticIndex.close()`): SQLite removes its write-ahead
    log when the last connection closes, so the `-wal` file that exists while the server runs
    is gone once `shutdown` has been answered. This client is started by hand, not by
    `start_server`, whose teardown would send a second `shutdown`."""
    fake_lmstudio.configure(embedding_kind="words", embedding_dimensions=256)
    root = _workspace(tmp_path / "ws")
    config = ClientServerConfig(
        server_command=SERVER,
        client_factory=make_client,
        server_env=server_env(tmp_path, provider="lmstudio", api_base=fake_lmstudio.base_url),
    )
    client = await config.start()
    try:
        await client.initialize_session(
            types.InitializeParams(
                capabilities=capabilities_of("visual-studio-code"),
                root_uri=root.as_uri(),
                workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name="ws")],
            )
        )
        await until(lambda: _finished(client), 60)
        index_dir = tmp_path / "state" / "aigents-lsp" / "index"
        assert list(index_dir.rglob("*-wal")), "the open store has a write-ahead log"

        await client.shutdown_async(None)
        left_open = list(index_dir.rglob("*-wal"))
    finally:
        client.exit(None)
        await client.stop()
    assert not left_open, "shutdown left the index store open"
