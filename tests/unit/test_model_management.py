"""The pure parts of model management: download targets and statuses, load configurations,
the thrash detector, what to suggest for the memory, draft-model candidates, the CLI bar."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aigents_lsp.cli import progress_bar
from aigents_lsp.providers.base import BadResponse, InvalidRequest, ModelInfo
from aigents_lsp.providers.jit_thrash import ThrashDetector
from aigents_lsp.providers.lmstudio_download import (
    DownloadRequest,
    DownloadStatus,
    downloaded_id,
    duration,
    parse_status,
    parse_target,
)
from aigents_lsp.providers.load_config import LoadConfig, _instances, parse_load_config
from aigents_lsp.providers.speculative import draft_candidates, draft_sample, family, parameters
from aigents_lsp.providers.suggestions import Memory, suggest_for, suggestions, suits

# --- downloads -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "quant", "expected"),
    [
        ("ibm/granite-4-micro", None, DownloadRequest("ibm/granite-4-micro")),
        ("qwen/qwen3-4b@Q8_0", None, DownloadRequest("qwen/qwen3-4b", "Q8_0")),
        (
            "https://huggingface.co/a/b-GGUF",
            "Q4_K_M",
            DownloadRequest("https://huggingface.co/a/b-GGUF", "Q4_K_M"),
        ),
        (
            "https://huggingface.co/a/b@Q6_K",
            "Q6_K",
            DownloadRequest("https://huggingface.co/a/b", "Q6_K"),
        ),
        ("user@host/model", None, DownloadRequest("user@host/model")),  # not a quantization
    ],
)
def test_download_targets(spec: str, quant: str | None, expected: DownloadRequest) -> None:
    assert parse_target(spec, quant) == expected


@pytest.mark.parametrize(
    ("spec", "quant", "error"),
    [
        ("", None, "no model to download"),
        ("a/b@Q8_0", "Q4_K_M", "two quantizations"),
        ("a/b", "four bits", "is not a quantization"),
        ("a b", None, "is not a model id"),
    ],
)
def test_bad_download_targets(spec: str, quant: str | None, error: str) -> None:
    with pytest.raises(InvalidRequest, match=error):
        parse_target(spec, quant)


def test_download_status_in_lmstudios_shape() -> None:
    now = datetime(2025, 10, 3, 15, 40, tzinfo=UTC)
    status = parse_status(
        {
            "job_id": "job_493c7c9ded",
            "status": "downloading",
            "total_size_bytes": 2_279_145_003,
            "downloaded_bytes": 1_200_000_000,
            "bytes_per_second": 12_500_000,
            "estimated_completion": "2025-10-03T15:41:31.000Z",
        }
    )
    assert status.percent == 52 and status.seconds_left(now) == 91
    assert status.describe(now) == "52 % of 2.3 GB, 12.5 MB/s, 1 min 31 s left"
    started = parse_status({"job_id": "j", "status": "downloading", "total_size_bytes": 5_000_000})
    assert started.percent is None and started.describe() == "5 MB"
    assert parse_status({"status": "already_downloaded"}).describe() == "already downloaded"
    assert parse_status({"status": "completed"}).percent == 100
    with pytest.raises(BadResponse, match=r"is this LM Studio 0\.4"):
        parse_status({"error": "Unexpected endpoint or method. (POST /api/v1/chat)"})


def test_time_left_without_an_estimate_comes_from_the_speed() -> None:
    status = DownloadStatus("downloading", "j", 0, 3_000_000_000, 10_000_000.0)
    assert status.seconds_left() == 300 and "5 min left" in status.describe()
    assert duration(59) == "59 s" and duration(3720) == "1 h 2 min"
    later = datetime.now(UTC) + timedelta(seconds=30)
    assert DownloadStatus("downloading", estimated_completion=later).seconds_left() <= 30


def test_downloaded_ids() -> None:
    assert downloaded_id("ibm/granite-4-micro") == "ibm/granite-4-micro"
    url = "https://huggingface.co/Qwen/Qwen2.5-Coder-7B-Instruct-GGUF"
    assert downloaded_id(url) == "qwen2.5-coder-7b-instruct"


def test_progress_bar() -> None:
    assert progress_bar(50, "x", width=10) == "[#####-----] x"
    assert progress_bar(None, "x", width=4) == "[????] x"


# --- load configuration ------------------------------------------------------------------------


def test_load_configuration_arguments() -> None:
    config = parse_load_config(
        {"model": "m", "contextLength": 16384, "flashAttention": True, "gpuOffload": False}
    )
    assert config.body() == {
        "context_length": 16384,
        "flash_attention": True,
        "offload_kv_cache_to_gpu": False,
    }
    assert parse_load_config({"context_length": 4096}).context_length == 4096  # the CLI's
    assert parse_load_config({"ttl": 60}).body() == {} and not parse_load_config({"ttl": 60}).empty
    assert LoadConfig(context_length=8192).over(LoadConfig(8192 * 2, True)) == LoadConfig(
        8192, True
    )
    assert LoadConfig(context_length=8192).differs_from({"context_length": 4096})
    assert not LoadConfig().differs_from({"context_length": 4096})


@pytest.mark.parametrize(
    ("arg", "error"),
    [
        ({"contextLength": "big"}, "is a whole number"),
        ({"contextLength": 100}, "at least 256"),
        ({"flashAttention": "yes"}, "true or false"),
        ({"ttl": True}, "whole number"),
        ({"ttl": 60, "contextLength": 4096}, "TTL only when it loads a model just in time"),
    ],
)
def test_bad_load_configurations(arg: dict[str, object], error: str) -> None:
    with pytest.raises(InvalidRequest, match=error):
        parse_load_config(arg)


def test_loaded_configs_read_from_the_v1_fixture() -> None:
    import json
    from pathlib import Path

    fixture = Path(__file__).parents[1] / "fixtures" / "lmstudio" / "api_v1_models.json"
    body = json.loads(fixture.read_text())["response"]["body"]
    configs = _instances(body)
    assert configs["google/gemma-4-26b-a4b"]["context_length"] == 4096
    assert configs["google/gemma-4-26b-a4b"]["flash_attention"] is True
    assert "deepseek-r1" not in configs  # not loaded


# --- JIT auto-evict thrash ---------------------------------------------------------------------


def test_thrash_is_seen_at_the_second_swap_and_told_once() -> None:
    detector = ThrashDetector()
    assert detector.loaded("coder") is None
    assert detector.loaded("coder") is None  # the same model again (its TTL ran out): no swap
    assert detector.loaded("chat") is None and detector.swaps == 1
    message = detector.loaded("coder")
    assert message is not None and detector.swaps == 2
    assert "`coder` was loaded just in time again (3 times now) after `chat`" in message
    assert detector.thrashing == ("coder", "chat")
    assert detector.loaded("chat") is None  # told once


def test_two_models_each_loaded_once_are_no_thrash() -> None:
    detector = ThrashDetector()
    assert detector.loaded("a") is None and detector.loaded("b") is None
    assert detector.loaded("b") is None and detector.swaps == 1


# --- suggestions ----------------------------------------------------------------------------

GB = 1_000_000_000


@pytest.mark.parametrize(
    ("ram_gb", "name", "quant"),
    [
        (4, "Qwen2.5-Coder 1.5B", "Q8_0"),
        (16, "Qwen2.5-Coder 7B", "Q6_K"),
        (32, "Qwen2.5-Coder 14B", "Q6_K"),
        (64, "Qwen2.5-Coder 14B", "Q8_0"),
    ],
)
def test_completion_suggestion_fits_the_memory(ram_gb: int, name: str, quant: str) -> None:
    memory = Memory(ram_gb * GB)
    chosen = suggest_for("completion", memory)
    assert (chosen.candidate.name, chosen.quantization) == (name, quant)
    assert chosen.fits and chosen.size_bytes * 1.2 <= memory.budget_bytes  # type: ignore[operator]
    assert chosen.spec.endswith(f"@{quant}")


def test_suggestions_when_memory_is_unknown_or_too_small() -> None:
    unknown = suggest_for("chat", Memory(None))
    assert unknown.candidate.params <= 2 and unknown.quantization == "Q4_K_M" and unknown.fits
    tiny = suggest_for("completion", Memory(GB // 2))
    assert not tiny.fits and tiny.candidate.name == "Qwen2.5-Coder 0.5B"
    assert "larger than the memory" in tiny.describe()
    assert suggest_for("chat", Memory(8 * GB, vram_bytes=24 * GB)).candidate.params > 7


def test_a_suggestion_only_for_tasks_no_model_suits() -> None:
    models = [
        ModelInfo("qwen2.5-coder-7b-instruct", "llm", arch="qwen2"),
        ModelInfo("text-embedding-nomic-embed-text-v1.5", "embeddings"),
    ]
    assert [s.task for s in suggestions(models, Memory(16 * GB))] == ["next-edit"]
    assert suits(ModelInfo("llama-3.2-3b-instruct", "llm"), "chat")
    assert not suits(ModelInfo("llama-3.2-3b-instruct", "llm"), "completion")
    assert suits(ModelInfo("sweep-next-edit-1.5b", "llm"), "next-edit")


# --- draft models ---------------------------------------------------------------------------


def test_draft_counts_from_the_speculative_fixture() -> None:
    import json
    from pathlib import Path

    fixture = Path(__file__).parents[1] / "fixtures" / "lmstudio"
    body = json.loads((fixture / "api_v0_chat_completions_speculative.json").read_text())
    sample = draft_sample(body["response"]["body"])
    assert sample is not None
    assert (sample.accepted, sample.rejected, sample.total) == (14, 4, 18)
    assert sample.draft_model == "deepseek-r1-distill-qwen-0.5b"
    assert draft_sample({"stats": {"tokens_per_second": 50}}) is None


def test_draft_candidates_are_smaller_models_of_the_family() -> None:
    assert (
        parameters("google/gemma-4-26b-a4b") == 26
        and family("qwen/qwen2.5-coder-7b") == "qwen2.5-coder"
    )
    models = [
        ModelInfo("qwen2.5-coder-7b-instruct", "llm", arch="qwen2"),
        ModelInfo("qwen2.5-coder-1.5b-instruct", "llm", arch="qwen2"),
        ModelInfo("qwen2.5-coder-3b-instruct", "llm", arch="qwen2"),  # not a third of 7B
        ModelInfo("qwen2.5-coder-0.5b-instruct", "llm", arch="qwen2"),
        ModelInfo("llama-3.2-1b-instruct", "llm", arch="llama"),  # another family
    ]
    found = [m.id for m in draft_candidates(models, "qwen2.5-coder-7b-instruct")]
    assert found == ["qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"]
    assert draft_candidates(models, "qwen2.5-coder-0.5b-instruct") == []
