"""`aigents-lsp models download` and `models load` with a configuration, against the fake
LM Studio (a subprocess each, as a user runs them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import server_env
from tests.fakes.lmstudio_server import FakeLMStudio

CLI = [sys.executable, "-m", "aigents_lsp"]


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(CLI + args, env=env, capture_output=True, text=True, timeout=60)


def test_models_download_draws_a_progress_bar(tmp_path: Path, fake_lmstudio: FakeLMStudio) -> None:
    fake_lmstudio.configure(download_steps=2)
    env = server_env(tmp_path, provider="lmstudio", api_base=fake_lmstudio.base_url)
    result = _run(["models", "download", "qwen/qwen2.5-coder-1.5b@Q8_0"], env)
    assert result.returncode == 0, result.stderr
    assert fake_lmstudio.last_request("/api/v1/models/download").body == {
        "model": "qwen/qwen2.5-coder-1.5b",
        "quantization": "Q8_0",
    }
    bars = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert "[###############---------------] 50 % of 1.1 GB" in bars[-2]
    assert bars[-1].startswith("[" + "#" * 30 + "] 100 %")
    assert "load it with `aigents-lsp models load qwen/qwen2.5-coder-1.5b`" in result.stdout


def test_models_download_failure_exits_1(tmp_path: Path, fake_lmstudio: FakeLMStudio) -> None:
    env = server_env(tmp_path, provider="lmstudio", api_base=fake_lmstudio.base_url)
    result = _run(["models", "download", "nobody/nothing"], env)
    assert result.returncode == 1
    assert 'Could not find model "nobody/nothing"' in result.stderr
    assert "Traceback" not in result.stderr
    result = _run(["models", "download", "ibm/granite-4-micro@not a quant"], env)
    assert result.returncode == 1 and "not a model id" in result.stderr


def test_models_load_with_a_configuration_prints_it_back(
    tmp_path: Path, fake_lmstudio: FakeLMStudio
) -> None:
    env = server_env(tmp_path, provider="lmstudio", api_base=fake_lmstudio.base_url)
    args = ["models", "load", "qwen/qwen3-8b", "--context-length", "16384", "--no-gpu-offload"]
    result = _run(args, env)
    assert result.returncode == 0, result.stderr
    assert fake_lmstudio.last_request("/api/v1/models/load").body == {
        "model": "qwen/qwen3-8b",
        "context_length": 16384,
        "offload_kv_cache_to_gpu": False,
        "echo_load_config": True,
    }
    assert "Loaded qwen/qwen3-8b" in result.stdout
    assert (
        "context_length 16384" in result.stdout and "offload_kv_cache_to_gpu False" in result.stdout
    )
    refused = _run(
        ["models", "load", "qwen/qwen3-8b", "--ttl", "60", "--context-length", "4096"], env
    )
    assert refused.returncode == 1 and "takes a TTL only" in refused.stderr
