"""The fake LM Studio's download routes answer in the shapes of LM Studio's docs
(tests/fixtures/lmstudio/api_v1_models_download*.json), job by job, step by step."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.fakes.lmstudio_server import FakeLMStudio

FIXTURES = Path(__file__).parents[1] / "fixtures" / "lmstudio"


def _fixture(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((FIXTURES / name).read_text())["response"]["body"]
    return body


def _call(fake: FakeLMStudio, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{fake.root}{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_download_and_status_take_the_docs_shapes(fake_lmstudio: FakeLMStudio) -> None:
    fake_lmstudio.configure(download_steps=2)
    status, started = _call(
        fake_lmstudio, "POST", "/api/v1/models/download", {"model": "ibm/granite-4-micro"}
    )
    assert status == 200
    assert started.keys() == _fixture("api_v1_models_download.json").keys()
    assert started["status"] == "downloading" and started["total_size_bytes"] == 2_279_145_003
    path = f"/api/v1/models/download/status/{started['job_id']}"
    _, halfway = _call(fake_lmstudio, "GET", path)
    assert halfway["downloaded_bytes"] == 2_279_145_003 // 2
    assert {"bytes_per_second", "estimated_completion"} <= halfway.keys()
    _, done = _call(fake_lmstudio, "GET", path)
    assert done.keys() == _fixture("api_v1_models_download_status.json").keys()
    assert done["status"] == "completed" and done["downloaded_bytes"] == done["total_size_bytes"]
    _, listed = _call(fake_lmstudio, "GET", "/api/v0/models")
    assert "ibm/granite-4-micro" in {m["id"] for m in listed["data"]}
    _, again = _call(
        fake_lmstudio, "POST", "/api/v1/models/download", {"model": "ibm/granite-4-micro"}
    )
    assert again == {"status": "already_downloaded"}


def test_errors_and_the_older_build(fake_lmstudio: FakeLMStudio) -> None:
    status, unknown = _call(fake_lmstudio, "POST", "/api/v1/models/download", {"model": "x/y"})
    assert status == 404 and unknown["error"]["code"] == "model_not_found"
    status, job = _call(fake_lmstudio, "GET", "/api/v1/models/download/status/job_nope")
    assert status == 404 and job["error"]["code"] == "job_not_found"
    fake_lmstudio.configure(download_status_route=False)
    _, started = _call(
        fake_lmstudio, "POST", "/api/v1/models/download", {"model": "qwen/qwen2.5-coder-7b"}
    )
    status, missing = _call(
        fake_lmstudio, "GET", f"/api/v1/models/download/status/{started['job_id']}"
    )
    assert status == 200 and missing["error"].startswith("Unexpected endpoint or method.")
