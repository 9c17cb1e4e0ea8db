"""What to download when no model suits a task, over stdio against the fake LM Studio: the
suggestions of `aigents.listModels` (sized for this machine's memory), downloaded as they are
given, after which the task is suited; and the same in `aigents-lsp doctor`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from lsprotocol import types

from tests.e2e.conftest import server_env
from tests.fakes.lmstudio_server import FakeLMStudio, default_models


async def _run(client: Any, command: str, argument: dict[str, Any]) -> Any:
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=command, arguments=[argument])
    )
    return result if isinstance(result, dict) else json.loads(json.dumps(result, default=vars))


def _chat_model_only() -> list[dict[str, Any]]:
    return [m for m in default_models() if m["id"] == "llama-3.2-3b-instruct"]


async def test_list_suggests_what_to_download_and_it_downloads(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    fake_lmstudio.configure(models=_chat_model_only(), download_steps=1)
    client = await start_server(provider="lmstudio", api_base=fake_lmstudio.base_url)
    listed = await _run(client, "aigents.listModels", {})
    by_task = {s["task"]: s for s in listed["suggestions"]}
    assert set(by_task) == {"completion", "embedding", "next-edit"}  # chat is suited
    memory = listed["memory"]
    assert memory["ramBytes"] > 0 and "LM Studio's REST API does not report" in memory["source"]
    for suggestion in by_task.values():
        assert suggestion["quantization"] in ("Q8_0", "Q6_K", "Q4_K_M")
        if suggestion["fits"]:
            assert suggestion["sizeBytes"] * 1.2 <= memory["budgetBytes"]
    code = by_task["completion"]
    assert "Qwen2.5-Coder" in code["model"] and code["why"] == "a FIM code model"
    result = await _run(client, "aigents.downloadModel", code["download"])
    assert result["status"] == "completed"
    again = await _run(client, "aigents.listModels", {})
    assert "completion" not in {s["task"] for s in again["suggestions"]}
    assert result["listedAs"] in {m["id"] for m in again["models"]}


async def test_other_providers_suggest_no_downloads(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    client = await start_server(provider="openai-compatible", api_base=fake_lmstudio.base_url)
    listed = await _run(client, "aigents.listModels", {})
    assert listed["suggestions"] == [] and listed["memory"] is None


def test_doctor_says_what_to_download(tmp_path: Path, fake_lmstudio: FakeLMStudio) -> None:
    fake_lmstudio.configure(models=_chat_model_only())
    result = subprocess.run(
        [sys.executable, "-m", "aigents_lsp", "doctor"],
        env=server_env(tmp_path, api_base=fake_lmstudio.base_url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = next(x for x in result.stdout.splitlines() if "a model for each task" in x)
    assert "[WARN]" in line and "no downloaded model suits completion, embedding, next-edit" in line
    assert "aigents-lsp models download https://huggingface.co/Qwen/Qwen2.5-Coder-" in line
