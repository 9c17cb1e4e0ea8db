"""Downloading a model through LM Studio (0.4+): `POST /api/v1/models/download` starts a job,
`GET /api/v1/models/download/status/:job_id` says how far it is. Builds that have the first
route but not the second are followed by polling the model list until the model shows up.

LM Studio's REST API has no route to cancel a job: cancelling here stops following it, and
the download goes on in LM Studio (its Downloads panel can stop it). Said so to the user.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal

from aigents_lsp.providers.base import (
    BadResponse,
    InvalidRequest,
    ProviderError,
    UnknownModel,
    WrongRoute,
)
from aigents_lsp.providers.lmstudio import LMStudioProvider

DownloadState = Literal["downloading", "paused", "completed", "failed", "already_downloaded"]
STATES: tuple[DownloadState, ...] = (
    "downloading",
    "paused",
    "completed",
    "failed",
    "already_downloaded",
)
DONE: frozenset[str] = frozenset({"completed", "already_downloaded"})
POLL_SECONDS = 1.0
# `ID@QUANT`: a quantization is letters, digits, `_` and `.` (Q4_K_M, q8_0, IQ4_XS, MLX 4bit).
_QUANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_MB = 1_000_000


class DownloadFailed(ProviderError):
    """LM Studio reported the job `failed`."""


@dataclass(frozen=True)
class DownloadRequest:
    """What to download: a catalog key (`ibm/granite-4-micro`) or a Hugging Face URL, and for a
    URL optionally which quantization."""

    model: str
    quantization: str | None = None

    def to_wire(self) -> dict[str, str]:
        body = {"model": self.model}
        if self.quantization:
            body["quantization"] = self.quantization
        return body


def parse_target(spec: str, quantization: str | None = None) -> DownloadRequest:
    """`ID[@QUANT]` (as the CLI takes it), or the id and a quantization given apart; raises
    `InvalidRequest` for what LM Studio could not take."""
    model = spec.strip()
    if not model:
        raise InvalidRequest("no model to download", hint="give a catalog id or a Hugging Face URL")
    head, at, tail = model.rpartition("@")
    if at and head and "/" not in tail and _QUANT.fullmatch(tail):
        if quantization and quantization != tail:
            raise InvalidRequest(
                f"two quantizations for {head}: @{tail} and {quantization}",
                hint="give the quantization once",
            )
        model, quantization = head, tail
    if quantization is not None:
        quantization = quantization.strip()
        if not _QUANT.fullmatch(quantization):
            raise InvalidRequest(
                f"{quantization!r} is not a quantization",
                hint="quantizations look like Q4_K_M, Q8_0 or IQ4_XS",
            )
    if any(c.isspace() for c in model):
        raise InvalidRequest(
            f"{model!r} is not a model id", hint="ids look like publisher/model, without spaces"
        )
    return DownloadRequest(model, quantization or None)


@dataclass(frozen=True)
class DownloadStatus:
    """A job as LM Studio reports it (fields it left out are None)."""

    status: DownloadState
    job_id: str | None = None
    downloaded_bytes: int | None = None
    total_size_bytes: int | None = None
    bytes_per_second: float | None = None
    estimated_completion: datetime | None = None
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.status in DONE

    @property
    def percent(self) -> int | None:
        if self.status in DONE:
            return 100
        if not self.total_size_bytes or self.downloaded_bytes is None:
            return None
        return max(0, min(100, int(self.downloaded_bytes * 100 / self.total_size_bytes)))

    def seconds_left(self, now: datetime | None = None) -> float | None:
        """From LM Studio's estimate, else from the bytes left at the current speed."""
        if self.estimated_completion is not None:
            now = now or datetime.now(UTC)
            return max(0.0, (self.estimated_completion - now).total_seconds())
        if self.bytes_per_second and self.total_size_bytes and self.downloaded_bytes is not None:
            return max(0, self.total_size_bytes - self.downloaded_bytes) / self.bytes_per_second
        return None

    def describe(self, now: datetime | None = None) -> str:
        """`42 % of 2.3 GB, 12.5 MB/s, 1 min 20 s left` (what LM Studio said)."""
        if self.status == "already_downloaded":
            return "already downloaded"
        parts: list[str] = []
        if self.percent is not None:
            size = f" of {gigabytes(self.total_size_bytes)}" if self.total_size_bytes else ""
            parts.append(f"{self.percent} %{size}")
        elif self.total_size_bytes:
            parts.append(gigabytes(self.total_size_bytes))
        if self.status == "downloading":
            if self.bytes_per_second:
                parts.append(f"{self.bytes_per_second / _MB:.1f} MB/s")
            left = self.seconds_left(now)
            if left is not None:
                parts.append(f"{duration(left)} left")
        else:
            parts.append(self.status)
        return ", ".join(parts) or self.status

    def to_wire(self) -> dict[str, object]:
        return {
            "status": self.status,
            "jobId": self.job_id,
            "downloadedBytes": self.downloaded_bytes,
            "totalSizeBytes": self.total_size_bytes,
            "bytesPerSecond": self.bytes_per_second,
            "percent": self.percent,
        }


def gigabytes(size: int | None) -> str:
    if size is None:
        return "?"
    return f"{size / 1e9:.1f} GB" if size >= 100 * _MB else f"{size / _MB:.0f} MB"


def duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_status(body: object, base_url: str = "") -> DownloadStatus:
    """A download or status answer; `BadResponse` when it is not one."""
    status = body.get("status") if isinstance(body, dict) else None
    if not isinstance(body, dict) or status not in STATES:
        raise BadResponse(
            f"LM Studio answered a download request with {str(body)[:200]!r}",
            hint="expected a download job ({job_id, status, ...}); is this LM Studio 0.4+?",
            base_url=base_url,
        )
    job = body.get("job_id")
    speed = body.get("bytes_per_second")
    error = body.get("error")
    if isinstance(error, dict):
        error = error.get("message")
    return DownloadStatus(
        status=status,
        job_id=job if isinstance(job, str) else None,
        downloaded_bytes=_int(body.get("downloaded_bytes")),
        total_size_bytes=_int(body.get("total_size_bytes")),
        bytes_per_second=float(speed) if isinstance(speed, int | float) and speed > 0 else None,
        estimated_completion=_time(body.get("estimated_completion")),
        error=error if isinstance(error, str) else None,
    )


OnStatus = Callable[[DownloadStatus], None]


class ModelDownloader:
    """Starts and follows one download. `sleep` waits between polls (a test passes one that
    waits for its own events instead of time)."""

    def __init__(
        self,
        provider: LMStudioProvider,
        *,
        poll_seconds: float = POLL_SECONDS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.provider = provider
        self.poll_seconds = poll_seconds
        self._sleep = sleep
        self.followed_by: Literal["status", "model list"] = "status"

    async def start(self, request: DownloadRequest) -> DownloadStatus:
        """`POST /api/v1/models/download`; LM Studio's refusal as a typed error with a fix."""
        url = f"{self.provider.root}/api/v1/models/download"
        try:
            body = await self.provider._request_json("POST", url, request.to_wire())
        except WrongRoute as error:
            raise WrongRoute(
                error.message,
                hint=f"LM Studio at {self.provider.root} has no download API (it came with 0.4) "
                f"— update LM Studio, or download in its app or with `lms get {request.model}`",
                status=error.status,
                base_url=error.base_url,
            ) from None
        except UnknownModel as error:
            raise UnknownModel(
                error.message,
                hint="give a model key of LM Studio's catalog (lmstudio.ai/models, e.g. "
                "ibm/granite-4-micro) or a Hugging Face URL "
                "(https://huggingface.co/<user>/<repo>) with a quantization",
                status=error.status,
                base_url=error.base_url,
            ) from None
        return parse_status(body, self.provider.root)

    async def follow(
        self, request: DownloadRequest, first: DownloadStatus, on_status: OnStatus
    ) -> DownloadStatus:
        """Poll until the job is done; raises `DownloadFailed` when LM Studio says it failed."""
        status = first
        on_status(status)
        while not status.done:
            self._check(request, status)
            await self._sleep(self.poll_seconds)
            status = await self._poll(request, status)
            on_status(status)
        return status

    def _check(self, request: DownloadRequest, status: DownloadStatus) -> None:
        if status.status != "failed":
            return
        said = f": {status.error}" if status.error else ""
        raise DownloadFailed(
            f"LM Studio reports the download of {request.model} failed{said}",
            hint="check LM Studio's Downloads panel (network, disk space) and try again "
            f"(`aigents-lsp models download {request.model}`); a model LM Studio cannot find "
            "needs a catalog key or a Hugging Face URL",
            base_url=self.provider.root,
        )

    async def _poll(self, request: DownloadRequest, last: DownloadStatus) -> DownloadStatus:
        if self.followed_by == "status" and last.job_id is not None:
            url = f"{self.provider.root}/api/v1/models/download/status/{last.job_id}"
            try:
                return parse_status(
                    await self.provider._request_json("GET", url), self.provider.root
                )
            except WrongRoute:
                self.followed_by = "model list"  # an older build: no per-job route
        return await self._poll_list(request, last)

    async def _poll_list(self, request: DownloadRequest, last: DownloadStatus) -> DownloadStatus:
        """Without the status route all there is to know is whether the model is listed yet."""
        wanted = downloaded_id(request.model)
        listed = await self.provider.list_models()  # fresh: it refreshes the provider's cache
        if any(m.id == wanted or m.id.split("@")[0].endswith(wanted) for m in listed):
            return replace(last, status="completed", downloaded_bytes=last.total_size_bytes)
        return replace(last, status="downloading", bytes_per_second=None, estimated_completion=None)


def downloaded_id(model: str) -> str:
    """The id a downloaded model is listed under: a catalog key stays; a Hugging Face URL
    becomes its repository's name (lower case, without `-GGUF`), as LM Studio lists it."""
    if "://" in model:
        return model.rstrip("/").rsplit("/", 1)[-1].lower().removesuffix("-gguf")
    return model
