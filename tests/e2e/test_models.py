"""Model management over stdio against the fake LM Studio: `aigents.listModels`,
`aigents.selectModel` (load with progress, JIT on older servers, errors) and the JIT swap
warning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from tests.e2e.conftest import inline, open_doc, until
from tests.fakes.lmstudio_server import FakeLMStudio

SWAP = "swap on every switch"


async def _run(client: Any, command: str, argument: dict[str, Any]) -> Any:
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=command, arguments=[argument])
    )
    return result if isinstance(result, dict) else json.loads(json.dumps(result, default=vars))


def _loads(fake: FakeLMStudio) -> list[Any]:
    return [r for r in fake.requests if r.path == "/api/v1/models/load"]


def _progress(client: Any) -> list[tuple[str, list[Any]]]:
    """(title, events) of every progress the server reported."""
    found = []
    for events in client.progress_reports.values():
        begin = next((e for e in events if isinstance(e, types.WorkDoneProgressBegin)), None)
        if begin is not None:
            found.append((begin.title, events))
    return found


async def test_list_models_shape(start_server: Any, fake_lmstudio: FakeLMStudio) -> None:
    client = await start_server(provider="lmstudio", api_base=fake_lmstudio.base_url)
    result = await _run(client, "aigents.listModels", {})
    assert result["provider"] == "lmstudio"
    assert result["baseUrl"] == fake_lmstudio.base_url
    by_id = {m["id"]: m for m in result["models"]}
    coder = by_id["qwen2.5-coder-1.5b-instruct"]
    assert coder["type"] == "llm" and coder["state"] == "loaded"
    assert coder["quantization"] == "Q4_K_M" and coder["arch"] == "qwen2"
    assert coder["maxContextLength"] == 32768 and coder["loadedContextLength"] == 4096
    assert coder["usedFor"] == ["completion"]
    assert by_id["qwen/qwen3-8b"]["state"] == "not-loaded"
    assert by_id["qwen/qwen3-8b"]["loadedContextLength"] is None
    assert by_id["text-embedding-nomic-embed-text-v1.5"]["type"] == "embeddings"
    tasks = result["tasks"]
    assert tasks["completion"] == {
        "model": "qwen2.5-coder-1.5b-instruct",
        "source": "auto",
        "setting": "completionModel",
    }
    assert tasks["chat"]["model"] == "llama-3.2-3b-instruct"
    assert tasks["embedding"]["model"] == "text-embedding-nomic-embed-text-v1.5"


async def test_configured_model_is_reported_as_configured(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    client = await start_server(
        provider="lmstudio", api_base=fake_lmstudio.base_url, model="llama-3.2-3b-instruct"
    )
    tasks = (await _run(client, "aigents.listModels", {}))["tasks"]
    assert tasks["completion"]["source"] == tasks["chat"]["source"] == "settings"
    assert tasks["completion"]["model"] == "llama-3.2-3b-instruct"


async def test_set_model_loads_with_progress_then_completion_uses_it(
    start_server: Any, fake_lmstudio: FakeLMStudio, tmp_path: Path
) -> None:
    fake_lmstudio.configure(load_delay=2.5, completion_reply="a + b")
    client = await start_server(provider="lmstudio", api_base=fake_lmstudio.base_url)
    result = await _run(
        client, "aigents.selectModel", {"model": "qwen/qwen3-8b", "task": "completion"}
    )
    assert result["model"] == "qwen/qwen3-8b" and result["tasks"] == ["completion"]
    assert result["state"] == "loaded"
    assert result["load"]["how"] == "loaded" and result["load"]["seconds"] >= 2
    assert result["setting"] == "completionModel"
    assert result["settings"] == {"completionModel": "qwen/qwen3-8b"}
    assert [r.body["model"] for r in _loads(fake_lmstudio)] == ["qwen/qwen3-8b"]
    # indeterminate progress with the elapsed time while LM Studio loaded
    (title, events), *_ = [p for p in _progress(client) if "qwen/qwen3-8b" in p[0]]
    assert title == "aigents: loading qwen/qwen3-8b…"
    reports = [e for e in events if isinstance(e, types.WorkDoneProgressReport)]
    assert reports and all(r.percentage is None for r in reports)
    assert reports[0].message.endswith(" s") and int(reports[0].message[:-2]) >= 1
    assert isinstance(events[-1], types.WorkDoneProgressEnd)
    # the next completion uses the selected model; chat keeps its own
    uri = (tmp_path / "ws" / "add.py").as_uri()
    text = "def add(a, b):\n    return "
    open_doc(client, uri, text)
    await inline(client, uri, types.Position(line=1, character=11))
    completions = [r for r in fake_lmstudio.requests if r.path == "/v1/completions"]
    assert completions and completions[-1].body["model"] == "qwen/qwen3-8b"
    tasks = (await _run(client, "aigents.listModels", {}))["tasks"]
    assert tasks["completion"] == {
        "model": "qwen/qwen3-8b",
        "source": "session",
        "setting": "completionModel",
    }
    assert tasks["chat"]["source"] == "auto"
    assert not [m for m in client.messages if SWAP in m.message]  # both are loaded


async def test_set_loaded_model_for_all_tasks_does_not_load(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    client = await start_server(
        provider="lmstudio",
        api_base=fake_lmstudio.base_url,
        completion_model="qwen2.5-coder-1.5b-instruct",
    )
    result = await _run(client, "aigents.selectModel", {"model": "llama-3.2-3b-instruct"})
    assert result["tasks"] == ["completion", "chat"] and result["load"] is None
    # persisting `model` alone would leave completionModel in charge: the editor removes it
    assert result["setting"] == "model"
    assert result["settings"] == {"model": "llama-3.2-3b-instruct", "completionModel": None}
    assert not _loads(fake_lmstudio)
    tasks = (await _run(client, "aigents.listModels", {}))["tasks"]
    assert tasks["completion"]["model"] == tasks["chat"]["model"] == "llama-3.2-3b-instruct"


async def test_old_lmstudio_loads_just_in_time(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    fake_lmstudio.configure(api_v1=False, load_delay=0.5)
    client = await start_server(provider="lmstudio", api_base=fake_lmstudio.base_url, ttl="900")
    result = await _run(client, "aigents.selectModel", {"model": "qwen/qwen3-8b", "task": "chat"})
    assert result["load"]["how"] == "just-in-time" and result["state"] == "loaded"
    assert result["settings"] == {"chatModel": "qwen/qwen3-8b"}
    warm_up = fake_lmstudio.last_request("/v1/chat/completions").body
    assert warm_up["model"] == "qwen/qwen3-8b"
    assert warm_up["max_tokens"] == 1 and warm_up["ttl"] == 900
    assert fake_lmstudio.jit_loaded == ["qwen/qwen3-8b"]


async def test_load_failure_is_a_clear_error(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    fake_lmstudio.configure(load_failure="Engine protocol startup was aborted.")
    client = await start_server(provider="lmstudio", api_base=fake_lmstudio.base_url)
    with pytest.raises(Exception) as failure:
        await _run(client, "aigents.selectModel", {"model": "qwen/qwen3-8b"})
    message = str(failure.value)
    assert 'Failed to load model "qwen/qwen3-8b"' in message
    assert "Engine protocol startup was aborted" in message
    assert "Traceback" not in message
    # nothing changed: the old models still serve
    tasks = (await _run(client, "aigents.listModels", {}))["tasks"]
    assert tasks["completion"] == {
        "model": "qwen2.5-coder-1.5b-instruct",
        "source": "auto",
        "setting": "completionModel",
    }


async def test_unknown_model_and_bad_arguments(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    client = await start_server(provider="lmstudio", api_base=fake_lmstudio.base_url)
    with pytest.raises(Exception, match='No model "o4-mini" here') as failure:
        await _run(client, "aigents.selectModel", {"model": "o4-mini"})
    assert "qwen2.5-coder-1.5b-instruct" in str(failure.value)  # what there is instead
    with pytest.raises(Exception, match="embedding model"):
        await _run(
            client,
            "aigents.selectModel",
            {"model": "text-embedding-nomic-embed-text-v1.5", "task": "chat"},
        )
    with pytest.raises(Exception, match="`task` is one of"):
        await _run(client, "aigents.selectModel", {"model": "qwen/qwen3-8b", "task": "everything"})
    with pytest.raises(Exception, match="`model`"):
        await _run(client, "aigents.selectModel", {})
    assert not _loads(fake_lmstudio)


async def test_jit_swap_warning_is_shown_once(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    client = await start_server(
        provider="lmstudio",
        api_base=fake_lmstudio.base_url,
        completion_model="qwen2.5-coder-1.5b-instruct",
        chat_model="qwen/qwen3-8b",
    )
    await until(lambda: any(SWAP in m.message for m in client.messages), 20)
    warning = next(m for m in client.messages if SWAP in m.message)
    assert warning.type == types.MessageType.Warning
    assert "only `qwen2.5-coder-1.5b-instruct` is loaded" in warning.message
    assert "lms load qwen/qwen3-8b" in warning.message
    assert "Only Keep Last JIT Loaded Model" in warning.message
    await _run(client, "aigents.listModels", {})
    await _run(client, "aigents.selectModel", {"model": "llama-3.2-3b-instruct", "task": "chat"})
    await _run(client, "aigents.selectModel", {"model": "qwen/qwen3-8b", "task": "chat"})
    assert len([m for m in client.messages if SWAP in m.message]) == 1


async def test_other_providers_list_what_they_have(
    start_server: Any, fake_lmstudio: FakeLMStudio
) -> None:
    client = await start_server(provider="openai-compatible", api_base=fake_lmstudio.base_url)
    result = await _run(client, "aigents.listModels", {})
    assert result["provider"] != "lmstudio"
    assert {m["id"] for m in result["models"]} >= {"qwen2.5-coder-1.5b-instruct", "qwen/qwen3-8b"}
    assert {m["state"] for m in result["models"]} == {"unknown"}  # /v1/models: ids only
    chosen = await _run(client, "aigents.selectModel", {"model": "qwen/qwen3-8b", "task": "chat"})
    assert chosen["load"] is None  # only LM Studio loads models on request
    assert not _loads(fake_lmstudio)
    tasks = (await _run(client, "aigents.listModels", {}))["tasks"]
    assert tasks["chat"]["model"] == "qwen/qwen3-8b" and tasks["chat"]["source"] == "session"


async def test_embedded_engine_lists_its_models_without_starting(start_server: Any) -> None:
    client = await start_server(provider="embedded")
    result = await _run(client, "aigents.listModels", {})
    assert result["provider"] == "embedded"
    assert len(result["models"]) == 2
    assert {m["state"] for m in result["models"]} == {"not-loaded"}  # nothing was started
    assert result["tasks"]["completion"]["model"] in {m["id"] for m in result["models"]}
    assert not [title for title, _ in _progress(client) if "engine" in title]  # not started
