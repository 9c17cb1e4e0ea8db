"""Speculative decoding over stdio against the fake LM Studio: `draft_model` goes with every
completion and chat request, and `aigents.stats` reports the draft tokens accepted and
rejected and the speed-up (measured with whole `/api/v0` answers, which alone carry them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from lsprotocol import types

from tests.e2e.conftest import inline, open_doc, server_env
from tests.fakes.lmstudio_server import FakeLMStudio, default_models

DRAFT = "qwen2.5-coder-0.5b-instruct"


def _with_draft() -> list[dict[str, Any]]:
    models = default_models()
    small = dict(models[0], id=DRAFT, state="not-loaded")
    small.pop("loaded_context_length", None)
    return [*models, small]


async def _stats(client: Any) -> dict[str, Any]:
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="aigents.stats", arguments=[])
    )
    return result if isinstance(result, dict) else json.loads(json.dumps(result, default=vars))


async def test_draft_model_is_sent_and_its_stats_reported(
    start_server: Any, fake_lmstudio: FakeLMStudio, tmp_path: Path
) -> None:
    fake_lmstudio.configure(models=_with_draft(), tokens_per_second=40.0, completion_reply="a + b")
    client = await start_server(
        provider="lmstudio", api_base=fake_lmstudio.base_url, draft_model=DRAFT
    )
    uri = (tmp_path / "ws" / "add.py").as_uri()
    open_doc(client, uri, "def add(a, b):\n    return ")
    await inline(client, uri, types.Position(line=1, character=11))
    assert fake_lmstudio.last_request("/v1/completions").body["draft_model"] == DRAFT
    first = (await _stats(client))["speculative"]
    assert first["state"] == "measuring" and first["draft_model"] == DRAFT
    measured: dict[str, Any] = {}

    async def done() -> bool:
        measured.update((await _stats(client))["speculative"])
        return measured["state"] == "measured"

    for _ in range(100):
        if await done():
            break
    assert measured["state"] == "measured" and measured["error"] is None
    assert measured["samples"] == 1
    total = measured["total_draft_tokens"]
    assert total > 0 and measured["accepted_draft_tokens"] == round(total * 0.75)
    assert measured["rejected_draft_tokens"] == total - measured["accepted_draft_tokens"]
    assert measured["tokens_per_second"] == 64.0
    assert measured["tokens_per_second_without_draft"] == 40.0
    assert measured["speed_up"] == 1.6
    probes = [r.body for r in fake_lmstudio.requests if r.path == "/api/v0/completions"]
    assert [p.get("draft_model") for p in probes] == [DRAFT, None]  # with it, then without
    assert all(p["stream"] is False for p in probes)


async def test_no_draft_model_no_speculative_stats(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    client = await start_server(provider="lmstudio", api_base=fake_lmstudio.base_url)
    assert (await _stats(client))["speculative"] is None
    assert not [r for r in fake_lmstudio.requests if r.path == "/api/v0/completions"]


def test_doctor_suggests_a_downloaded_draft_model(
    tmp_path: Path, fake_lmstudio: FakeLMStudio
) -> None:
    fake_lmstudio.configure(models=_with_draft())
    env = server_env(tmp_path, api_base=fake_lmstudio.base_url)
    result = subprocess.run(
        [sys.executable, "-m", "aigents_lsp", "doctor"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "draft model: none set; qwen2.5-coder-0.5b-instruct (downloaded)" in result.stdout
    assert "set aigents.draftModel = qwen2.5-coder-0.5b-instruct" in result.stdout
