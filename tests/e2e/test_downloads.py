"""`aigents.downloadModel` over stdio against the fake LM Studio: a download followed to the
end with `$/progress`, one that fails, one cancelled, an older LM Studio without the per-job
status route, and LM Studio's refusals. The fake moves a job one step per status request, so
nothing here waits on the clock."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from lsprotocol import types

from tests.e2e.conftest import until
from tests.fakes.lmstudio_server import FakeLMStudio

DOWNLOAD = "aigents.downloadModel"


async def _run(client: Any, argument: dict[str, Any], command: str = DOWNLOAD) -> Any:
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=command, arguments=[argument])
    )
    return result if isinstance(result, dict) else json.loads(json.dumps(result, default=vars))


def _download_events(client: Any, model: str) -> list[Any]:
    for events in client.progress_reports.values():
        begin = next((e for e in events if isinstance(e, types.WorkDoneProgressBegin)), None)
        if begin is not None and begin.title == f"aigents: downloading {model}":
            return list(events)
    raise AssertionError(f"no download progress for {model}")


def _requests(fake: FakeLMStudio, prefix: str) -> list[Any]:
    return [r for r in fake.requests if r.path.startswith(prefix)]


async def test_download_reports_progress_to_completion(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    fake_lmstudio.configure(download_steps=4)
    client = await start_server(provider="lmstudio", api_base=fake_lmstudio.base_url)
    result = await _run(client, {"model": "qwen/qwen2.5-coder-7b", "quantization": "Q4_K_M"})
    assert result["status"] == "completed" and result["percent"] == 100
    assert result["followedBy"] == "status" and result["listedAs"] == "qwen/qwen2.5-coder-7b"
    assert result["totalSizeBytes"] == 4_683_073_536
    started = fake_lmstudio.last_request("/api/v1/models/download").body
    assert started == {"model": "qwen/qwen2.5-coder-7b", "quantization": "Q4_K_M"}
    assert len(_requests(fake_lmstudio, "/api/v1/models/download/status/")) == 4
    events = _download_events(client, "qwen/qwen2.5-coder-7b")
    begin = events[0]
    assert isinstance(begin, types.WorkDoneProgressBegin) and begin.cancellable
    assert begin.percentage == 0
    reports = [e for e in events if isinstance(e, types.WorkDoneProgressReport)]
    assert [r.percentage for r in reports if r.percentage is not None] == [25, 50, 75, 100]
    halfway = next(r for r in reports if r.percentage == 50)
    assert "of 4.7 GB" in halfway.message and "1170.8 MB/s" in halfway.message
    assert halfway.message.endswith(" s left")  # from LM Studio's estimated completion
    assert isinstance(events[-1], types.WorkDoneProgressEnd) and events[-1].message == "done"
    # the new model is listed, not loaded, and can be chosen
    listed = {m["id"]: m for m in (await _run(client, {}, "aigents.listModels"))["models"]}
    assert listed["qwen/qwen2.5-coder-7b"]["state"] == "not-loaded"


async def test_failed_download_is_told_with_the_fix(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    fake_lmstudio.configure(download_failure="disk full")
    client = await start_server(provider="lmstudio", api_base=fake_lmstudio.base_url)
    with pytest.raises(Exception) as failure:
        await _run(client, {"model": "ibm/granite-4-micro"})
    message = str(failure.value)
    assert "LM Studio reports the download of ibm/granite-4-micro failed" in message
    assert "Downloads panel" in message and "Traceback" not in message
    events = _download_events(client, "ibm/granite-4-micro")
    assert isinstance(events[-1], types.WorkDoneProgressEnd) and events[-1].message == "failed"


async def test_unknown_model_in_lmstudios_words(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    client = await start_server(provider="lmstudio", api_base=fake_lmstudio.base_url)
    with pytest.raises(Exception) as failure:
        await _run(client, {"model": "nobody/no-such-model"})
    message = str(failure.value)
    assert 'Could not find model "nobody/no-such-model" in the LM Studio catalog' in message
    assert "Hugging Face URL" in message  # the fix
    assert not _requests(fake_lmstudio, "/api/v1/models/download/status/")


async def test_already_downloaded_and_bad_arguments(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    client = await start_server(provider="lmstudio", api_base=fake_lmstudio.base_url)
    result = await _run(client, {"model": "qwen/qwen3-8b"})
    assert result["status"] == "already_downloaded" and result["jobId"] is None
    assert not _requests(fake_lmstudio, "/api/v1/models/download/status/")
    with pytest.raises(Exception, match="`model`"):
        await _run(client, {})
    with pytest.raises(Exception, match="is not a quantization"):
        await _run(client, {"model": "ibm/granite-4-micro", "quantization": "4 bits please"})
    with pytest.raises(Exception, match="two quantizations"):
        await _run(client, {"model": "ibm/granite-4-micro@Q8_0", "quantization": "Q4_K_M"})


async def test_cancelled_download_says_lmstudio_goes_on(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    fake_lmstudio.configure(download_hold=True)
    client = await start_server(provider="lmstudio", api_base=fake_lmstudio.base_url)
    answer = asyncio.ensure_future(
        client.protocol.send_request_async(
            types.WORKSPACE_EXECUTE_COMMAND,
            types.ExecuteCommandParams(
                command=DOWNLOAD, arguments=[{"model": "ibm/granite-4-micro"}]
            ),
            msg_id="download-1",
        )
    )
    await until(lambda: len(_requests(fake_lmstudio, "/api/v1/models/download/status/")) >= 2)
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="download-1"))
    with pytest.raises(Exception, match=r"(?i)cancel"):
        await asyncio.wait_for(answer, 10)
    await until(
        lambda: any("LM Studio goes on downloading it" in m.message for m in client.messages)
    )
    events = _download_events(client, "ibm/granite-4-micro")
    assert isinstance(events[-1], types.WorkDoneProgressEnd)
    assert events[-1].message == "no longer followed"
    assert (await _run(client, {}, "aigents.stats"))["runtime"]  # the server still answers


async def test_older_lmstudio_without_status_route_polls_the_model_list(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    fake_lmstudio.configure(download_status_route=False, download_steps=2)
    client = await start_server(provider="lmstudio", api_base=fake_lmstudio.base_url)
    url = "https://huggingface.co/sweepai/sweep-next-edit-1.5B"
    result = await _run(client, {"model": f"{url}@Q8_0"})
    assert result["status"] == "completed" and result["followedBy"] == "model list"
    assert result["listedAs"] == "sweep-next-edit-1.5b" and result["quantization"] == "Q8_0"
    # the status route was tried once, answered "Unexpected endpoint", and not asked again
    assert len(_requests(fake_lmstudio, "/api/v1/models/download/status/")) == 1
    events = _download_events(client, url)
    reports = [e for e in events if isinstance(e, types.WorkDoneProgressReport)]
    assert reports[-1].percentage == 100
    assert all(r.percentage is None for r in reports[1:-1])  # no bytes without the status route
    listed = {m["id"] for m in (await _run(client, {}, "aigents.listModels"))["models"]}
    assert "sweep-next-edit-1.5b" in listed
