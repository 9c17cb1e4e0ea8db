"""Download jobs of the fake LM Studio: `POST /api/v1/models/download` and
`GET /api/v1/models/download/status/:job_id` in the shapes of LM Studio 0.4's docs
(`tests/fixtures/lmstudio/api_v1_models_download*.json`).

Driven step by step, never by the clock: a job moves one step each time its status is asked
(or, on an older build without the status route, each time the model list is asked), so a
test decides how far a download is by what it requests. `download_hold` keeps every job
where it is (a download the user cancels), `download_failure` fails a job at its first step.
Error bodies take LM Studio 0.4's native shape `{"error": {"type", "code", "message"}}` with
the codes its docs list (`model_not_found`, `job_not_found`); the wording is adapted.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

STARTED_AT = datetime(2025, 10, 3, 15, 33, 23, 496000, tzinfo=UTC)  # the docs' example


def default_catalog() -> dict[str, dict[str, Any]]:
    """What the fake can download: id -> the `/api/v0/models` entry it becomes, with `size`."""

    def entry(kind: str, arch: str, size: int, **extra: Any) -> dict[str, Any]:
        return {"type": kind, "arch": arch, "size": size, **extra}

    # every model the server suggests is downloadable (its Hugging Face URL)
    from aigents_lsp.providers.suggestions import CANDIDATES

    suggested = {
        c.url: entry(
            "embeddings" if c.task == "embedding" else "llm",
            "nomic-bert" if c.task == "embedding" else "qwen2",
            c.size(4.85),
        )
        for c in CANDIDATES
    }
    return suggested | {
        "ibm/granite-4-micro": entry("llm", "granite", 2_279_145_003),
        "qwen/qwen2.5-coder-7b": entry("llm", "qwen2", 4_683_073_536),
        "qwen/qwen2.5-coder-1.5b": entry("llm", "qwen2", 1_117_320_736),
        "qwen/qwen2.5-coder-0.5b": entry("llm", "qwen2", 397_808_192),
        "qwen/qwen3-4b-2507": entry("llm", "qwen3", 2_497_281_024, capabilities=["tool_use"]),
        "https://huggingface.co/sweepai/sweep-next-edit-1.5B": entry("llm", "qwen2", 1_646_572_736),
        "text-embedding-nomic-embed-text-v1.5": entry(
            "embeddings", "nomic-bert", 84_106_624, max_context_length=2048
        ),
    }


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass
class DownloadJob:
    job_id: str
    model: str
    quantization: str | None
    total: int
    steps: int
    step: int = 0
    status: str = "downloading"

    def body(self, *, with_progress: bool) -> dict[str, Any]:
        """The status object (`with_progress`: the status route's extra fields)."""
        downloaded = self.total * self.step // self.steps
        body: dict[str, Any] = {"job_id": self.job_id, "status": self.status}
        body["total_size_bytes"] = self.total
        if with_progress:
            body["downloaded_bytes"] = downloaded
        body["started_at"] = _iso(STARTED_AT)
        if self.status == "downloading" and with_progress:
            per_step = self.total // self.steps
            body["bytes_per_second"] = per_step  # one step a second
            left = self.steps - self.step
            now = datetime.now(UTC)  # LM Studio's estimate is a moment, not a duration
            body["estimated_completion"] = _iso(now + timedelta(seconds=left))
        if self.status == "completed":
            body["completed_at"] = _iso(STARTED_AT + timedelta(seconds=self.steps))
        return body


class Downloads:
    """The fake's download jobs (guarded by the fake's lock)."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self.jobs: dict[str, DownloadJob] = {}
        self.status_requests = 0

    def clear(self) -> None:
        with self._lock:
            self.jobs.clear()
            self.status_requests = 0

    def start(self, b: Any, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        model = request.get("model")
        quantization = request.get("quantization")
        if not isinstance(model, str) or not model.strip():
            return 400, _error("invalid_request", None, "'model' is required")
        if quantization is not None and not isinstance(quantization, str):
            return 400, _error("invalid_request", None, "'quantization' must be a string")
        with self._lock:
            if any(m["id"] == model for m in b.models):
                return 200, {"status": "already_downloaded"}
            known = b.catalog.get(model)
            if known is None:
                message = (
                    f'Could not find model "{model}" in the LM Studio catalog. Use a catalog '
                    "model key (e.g. ibm/granite-4-micro) or a Hugging Face model URL."
                )
                return 404, _error("invalid_request", "model_not_found", message)
            job = DownloadJob(
                f"job_{len(self.jobs) + 1:010x}",
                model,
                quantization,
                int(known["size"]),
                max(1, b.download_steps),
            )
            self.jobs[job.job_id] = job
            return 200, job.body(with_progress=False)

    def status(self, b: Any, job_id: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.status_requests += 1
            job = self.jobs.get(job_id)
            if job is None:
                message = f"No download job with id {job_id}"
                return 404, _error("invalid_request", "job_not_found", message)
            self._advance(b, job)
            return 200, job.body(with_progress=True)

    def advance_all(self, b: Any) -> None:
        """An older build has no status route: its jobs move as the model list is asked."""
        with self._lock:
            for job in list(self.jobs.values()):
                self._advance(b, job)

    def _advance(self, b: Any, job: DownloadJob) -> None:
        if job.status != "downloading" or b.download_hold:
            return
        if b.download_failure is not None:
            job.status = "failed"
            return
        job.step += 1
        if job.step >= job.steps:
            job.status = "completed"
            known = b.catalog[job.model]
            model_id = job.model
            if "://" in model_id:  # a Hugging Face URL becomes its repository's name
                model_id = model_id.rstrip("/").rsplit("/", 1)[-1].lower().removesuffix("-gguf")
            entry = {
                "id": model_id,
                "object": "model",
                "type": known["type"],
                "publisher": "lmstudio-community",
                "arch": known["arch"],
                "compatibility_type": "gguf",
                "quantization": (job.quantization or "Q4_K_M").upper(),
                "state": "not-loaded",
                "max_context_length": known.get("max_context_length", 32768),
            }
            if known.get("capabilities"):
                entry["capabilities"] = list(known["capabilities"])
            b.models.append(entry)


def _error(kind: str, code: str | None, message: str) -> dict[str, Any]:
    error: dict[str, Any] = {"type": kind, "message": message}
    if code is not None:
        error = {"type": kind, "code": code, "message": message}
    return {"error": error}
