"""Fixtures for tests against the real embedded engine (xllamacpp child processes, real GGUFs).

The model cache is shared by the whole session (the 253 MB Gemma file is assembled once); set
`AIGENTS_TEST_CACHE_DIR` to a directory to keep it between runs. One engine (both children)
serves every test that does not need its own.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from aigents_lsp.providers.embedded_models import MODELS, prepare_model
from aigents_lsp.providers.engine_process import EmbeddedEngine
from tests.engine.engine_support import PreparedModels


@pytest.fixture(scope="session")
def cache_root_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `AIGENTS_CACHE_DIR` points to in these tests; models live in its `models/`."""
    configured = os.environ.get("AIGENTS_TEST_CACHE_DIR")
    if configured:
        return Path(configured)
    return tmp_path_factory.mktemp("aigents-cache")


@pytest.fixture(scope="session")
def model_cache(cache_root_dir: Path) -> Path:
    path = cache_root_dir / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def prepared(model_cache: Path) -> PreparedModels:
    """Both model files, prepared once for the session (timed: the first run is the cold one)."""
    paths: dict[str, Path] = {}
    seconds: dict[str, float] = {}
    for role, spec in MODELS.items():
        started = time.perf_counter()
        paths[role] = prepare_model(spec, model_cache)
        seconds[role] = time.perf_counter() - started
    return PreparedModels(model_cache, paths, seconds)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def engine(prepared: PreparedModels) -> AsyncIterator[EmbeddedEngine]:
    """The session's shared engine; children start on first use, stop at the end."""
    shared = EmbeddedEngine(cache_dir=prepared.cache_dir, context_length=2048)
    yield shared
    await shared.stop()
