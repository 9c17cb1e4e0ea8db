"""Loading with a configuration over stdio against the fake LM Studio: `aigents.selectModel`
with contextLength / flashAttention / gpuOffload / ttl, the per-task settings, the
configuration read back from `/api/v1/models` (`loaded_instances[].config`), and the errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from lsprotocol import types

from tests.fakes.lmstudio_server import FakeLMStudio


async def _run(client: Any, command: str, argument: dict[str, Any]) -> Any:
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=command, arguments=[argument])
    )
    return result if isinstance(result, dict) else json.loads(json.dumps(result, default=vars))


def _loads(fake: FakeLMStudio) -> list[Any]:
    return [r.body for r in fake.requests if r.path == "/api/v1/models/load"]


async def test_select_loads_with_a_configuration_read_back(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    client = await start_server(provider="lmstudio", api_base=fake_lmstudio.base_url)
    result = await _run(
        client,
        "aigents.selectModel",
        {
            "model": "qwen/qwen3-8b",
            "task": "chat",
            "contextLength": 16384,
            "flashAttention": True,
            "gpuOffload": False,
        },
    )
    assert _loads(fake_lmstudio) == [
        {
            "model": "qwen/qwen3-8b",
            "context_length": 16384,
            "flash_attention": True,
            "offload_kv_cache_to_gpu": False,
            "echo_load_config": True,
        }
    ]
    assert result["state"] == "loaded" and result["load"]["how"] == "loaded"
    # read back from GET /api/v1/models loaded_instances[].config
    config = result["loadConfig"]
    assert config["context_length"] == 16384 and config["flash_attention"] is True
    assert config["offload_kv_cache_to_gpu"] is False and config["eval_batch_size"] == 512
    assert fake_lmstudio.last_request("/api/v1/models").method == "GET"
    # the same configuration again: it runs with it already, nothing is loaded
    again = await _run(
        client,
        "aigents.selectModel",
        {"model": "qwen/qwen3-8b", "task": "chat", "contextLength": 16384},
    )
    assert again["load"] is None and len(_loads(fake_lmstudio)) == 1
    # another context length: unloaded, then loaded with it (no second instance)
    other = await _run(
        client,
        "aigents.selectModel",
        {"model": "qwen/qwen3-8b", "task": "chat", "contextLength": 8192},
    )
    unload = fake_lmstudio.last_request("/api/v1/models/unload").body
    assert unload == {"instance_id": "qwen/qwen3-8b"}
    assert other["loadConfig"]["context_length"] == 8192
    listed = await _run(client, "aigents.listModels", {})
    shown = {m["id"]: m for m in listed["models"]}["qwen/qwen3-8b"]
    assert shown["loadConfig"]["context_length"] == 8192


async def test_settings_name_the_load_configuration_per_task(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    client = await start_server(
        provider="lmstudio",
        api_base=fake_lmstudio.base_url,
        completion_context_length="8192",
        completion_flash_attention="true",
        chat_context_length="32768",
    )
    await _run(client, "aigents.selectModel", {"model": "qwen/qwen3-8b", "task": "completion"})
    assert _loads(fake_lmstudio)[-1] == {
        "model": "qwen/qwen3-8b",
        "context_length": 8192,
        "flash_attention": True,
        "echo_load_config": True,
    }


async def test_ttl_is_a_just_in_time_load_and_bad_configurations_are_refused(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    client = await start_server(provider="lmstudio", api_base=fake_lmstudio.base_url)
    result = await _run(
        client, "aigents.selectModel", {"model": "qwen/qwen3-8b", "task": "chat", "ttl": 600}
    )
    assert result["load"]["how"] == "just-in-time" and not _loads(fake_lmstudio)
    warm = fake_lmstudio.last_request("/v1/chat/completions").body
    assert warm["ttl"] == 600 and warm["model"] == "qwen/qwen3-8b"
    with pytest.raises(Exception, match="takes a TTL only when it loads a model just in time"):
        await _run(
            client,
            "aigents.selectModel",
            {"model": "llama-3.2-3b-instruct", "ttl": 60, "contextLength": 4096, "task": "chat"},
        )
    with pytest.raises(Exception, match="`contextLength` is a whole number"):
        await _run(
            client, "aigents.selectModel", {"model": "qwen/qwen3-8b", "contextLength": "big"}
        )
    with pytest.raises(Exception, match="`flashAttention` is true or false"):
        await _run(client, "aigents.selectModel", {"model": "qwen/qwen3-8b", "flashAttention": 1})


async def test_older_lmstudio_cannot_apply_a_configuration(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    fake_lmstudio.configure(api_v1=False)
    client = await start_server(provider="lmstudio", api_base=fake_lmstudio.base_url)
    with pytest.raises(Exception, match="has no load API") as failure:
        await _run(
            client,
            "aigents.selectModel",
            {"model": "qwen/qwen3-8b", "task": "chat", "contextLength": 16384},
        )
    assert "lms load qwen/qwen3-8b --context-length" in str(failure.value)
