"""`aigents.downloadModel {model, quantization?}`: download a model in LM Studio (0.4+), with
`$/progress` (percent, MB/s, time left) and cancellable. The work is in
`providers/lmstudio_download.py`; this module adds the LSP around it.

A download outlives `command_timeout` (it takes minutes), so it runs as a tracked job of its
own: cancelled by `$/cancelRequest`, the progress bar's cancel or `aigents.cancel`, never by a
deadline. Cancelling stops following the job; LM Studio has no route to stop it (said so).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from pygls.exceptions import JsonRpcInvalidParams, JsonRpcRequestCancelled

from aigents_lsp.lsp.jobs import Job, LiveProgress
from aigents_lsp.lsp.requests import RequestFailed, command_argument
from aigents_lsp.providers.base import InvalidRequest, ProviderError

if TYPE_CHECKING:
    from aigents_lsp.lsp.server import AigentsServer
    from aigents_lsp.providers.lmstudio_download import DownloadRequest, DownloadStatus

log = logging.getLogger(__name__)

DOWNLOAD_COMMAND = "aigents.downloadModel"
POLL_SECONDS = 0.5  # how often LM Studio is asked how far a download is


def _request(arg: dict[str, Any]) -> DownloadRequest:
    from aigents_lsp.providers.lmstudio_download import parse_target

    model = arg.get("model")
    quantization = arg.get("quantization")
    if not isinstance(model, str) or not model.strip():
        raise JsonRpcInvalidParams(
            message="`model` (a catalog id such as ibm/granite-4-micro, or a Hugging Face URL) "
            "is required"
        )
    if quantization is not None and not isinstance(quantization, str):
        raise JsonRpcInvalidParams(message="`quantization` is a string such as Q4_K_M")
    try:
        return parse_target(model, quantization)
    except InvalidRequest as error:
        raise JsonRpcInvalidParams(message=f"aigents: cannot download {model}: {error}") from None


async def download_command(ls: AigentsServer, arg: dict[str, Any]) -> dict[str, Any]:
    from aigents_lsp.providers.lmstudio import LMStudioProvider
    from aigents_lsp.providers.lmstudio_download import ModelDownloader, downloaded_id

    request = _request(arg)
    provider = await ls.backend.provider("completion")
    if not isinstance(provider, LMStudioProvider):
        raise RequestFailed(
            message=f"aigents: {provider.name} does not download models on request; only LM "
            "Studio (0.4+) does — set aigents.provider to lmstudio, or download with the "
            "backend's own tool"
        )
    downloader = ModelDownloader(provider, poll_seconds=POLL_SECONDS)
    title = f"aigents: downloading {request.model}"
    task = asyncio.current_task()
    assert task is not None
    key = ls.jobs.add(Job(title, ls.protocol.msg_id, task))
    progress = LiveProgress(ls, title, task)

    def report(status: DownloadStatus) -> None:
        progress.report(status.describe(), status.percent)

    try:
        await progress.begin("starting", 0)
        first = await downloader.start(request)
        final = await downloader.follow(request, first, report)
    except asyncio.CancelledError:
        progress.end("no longer followed")
        said = (
            f"{title}: cancelled — LM Studio goes on downloading it (its API has no way to "
            "stop a download: stop it in LM Studio's Downloads panel)"
        )
        ls.notify_user(said, "info")  # the cancelled request's answer carries no text of ours
        raise JsonRpcRequestCancelled(said) from None
    except ProviderError as error:
        progress.end("failed")
        raise RequestFailed(message=f"aigents: cannot download {request.model}: {error}") from None
    finally:
        ls.jobs.remove(key)
    progress.end("already downloaded" if final.status == "already_downloaded" else "done")
    ls.backend.forget_model_info()  # the list has one more model
    log.info("model %s downloaded (%s)", request.model, final.status)
    return {
        "model": request.model,
        "quantization": request.quantization,
        "listedAs": downloaded_id(request.model),
        "followedBy": downloader.followed_by,
        **final.to_wire(),
    }


def register(server: AigentsServer) -> None:
    @server.command(DOWNLOAD_COMMAND)
    async def download_model(*args: Any) -> dict[str, Any]:
        """{model, quantization?}: download a model in LM Studio, with progress."""
        return await download_command(server, command_argument(args))
