"""The engine's child processes: real llama.cpp servers, spoken to with plain HTTP."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time

import httpx
import pytest

from aigents_lsp.providers.engine_process import EmbeddedEngine, embedded_available
from tests.engine.engine_support import PreparedModels, ProgressLog, process_alive

pytestmark = [
    pytest.mark.engine,
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.skipif(not embedded_available(), reason="the `embedded` extra is not installed"),
]


async def _metrics(base_url: str) -> dict[str, float]:
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(base_url.removesuffix("/v1") + "/metrics")).text
    pairs = (line.split() for line in text.splitlines() if line and not line.startswith("#"))
    return {pair[0].removeprefix("llamacpp:"): float(pair[1]) for pair in pairs}


async def test_gemma_completes_code(engine: EmbeddedEngine) -> None:
    url = await engine.ensure("completion")
    assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
    body = {"prompt": "def add(a, b):\n    return", "max_tokens": 8, "temperature": 0}
    async with httpx.AsyncClient(timeout=60) as client:
        answer = (await client.post(f"{url}/completions", json=body)).json()
        models = (await client.get(f"{url}/models")).json()
    text = answer["choices"][0]["text"]
    assert "a" in text and "b" in text, text
    assert answer["model"] == "gemma-3-270m"
    assert [m["id"] for m in models["data"]] == ["gemma-3-270m"]
    assert models["data"][0]["meta"]["n_ctx"] == 2048


async def test_smollm2_chats_in_english(engine: EmbeddedEngine) -> None:
    url = await engine.ensure("chat")
    body = {
        "messages": [{"role": "user", "content": "What is Python?"}],
        "max_tokens": 24,
        "temperature": 0,
    }
    async with httpx.AsyncClient(timeout=60) as client:
        answer = (await client.post(f"{url}/chat/completions", json=body)).json()
    text = answer["choices"][0]["message"]["content"]
    assert answer["model"] == "smollm2-135m-instruct"
    assert "programming language" in text.lower(), text


async def test_cancelled_stream_stops_generating(engine: EmbeddedEngine) -> None:
    url = await engine.ensure("completion")
    before = await _metrics(url)
    body = {"prompt": "# A long story\n", "max_tokens": 1000, "temperature": 0, "stream": True}
    received = 0
    async with (
        httpx.AsyncClient(timeout=60) as client,
        client.stream("POST", f"{url}/completions", json=body) as response,
    ):
        async for line in response.aiter_lines():
            received += line.startswith("data: ")
            if received >= 3:
                break  # leaving the block closes the connection
    deadline = time.monotonic() + 5
    while (metrics := await _metrics(url))["requests_processing"] > 0:
        assert time.monotonic() < deadline, "the engine kept generating after the disconnect"
        await asyncio.sleep(0.05)
    generated = metrics["tokens_predicted_total"] - before["tokens_predicted_total"]
    assert generated < 200, f"{generated} tokens generated for a stream closed after 3"
    # The engine serves the next request at once.
    async with httpx.AsyncClient(timeout=30) as client:
        again = await client.post(
            f"{url}/completions", json={"prompt": "x = ", "max_tokens": 2, "temperature": 0}
        )
    assert again.status_code == 200


async def test_concurrent_ensure_starts_one_child_and_stop_ends_it(
    prepared: PreparedModels,
) -> None:
    progress = ProgressLog()
    engine = EmbeddedEngine(cache_dir=prepared.cache_dir, on_progress=progress)
    # A caller giving up while the engine starts does not cancel the start for the others.
    quitter = asyncio.create_task(engine.ensure("chat"))
    first, second = asyncio.create_task(engine.ensure("chat")), engine.ensure("chat")
    await asyncio.sleep(0.01)
    quitter.cancel()
    urls = await asyncio.gather(first, second)
    assert urls[0] == urls[1]
    assert progress.count("Starting engine") == 1
    assert progress.events[-1] == ("Engine ready: smollm2-135m-instruct", 100)
    pid = engine.child_pid("chat")
    assert pid is not None and process_alive(pid)
    assert await engine.ensure("chat") == urls[0]  # a running child is reused

    await engine.stop()
    assert not engine.running("chat") and engine.child_pid("chat") is None
    assert not process_alive(pid)


PARENT = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from aigents_lsp.providers.engine_process import EmbeddedEngine

    async def main() -> None:
        engine = EmbeddedEngine(cache_dir=Path(sys.argv[1]), threads=1)
        await engine.ensure("chat")
        print(engine.child_pid("chat"), flush=True)
        if sys.argv[2] == "wait":
            await asyncio.sleep(600)

    asyncio.run(main())  # "exit": returns without stopping the engine
    """
)


@pytest.mark.parametrize("end", ["SIGKILL", "exit"])
async def test_the_engine_never_outlives_its_parent(prepared: PreparedModels, end: str) -> None:
    how = "wait" if end == "SIGKILL" else "exit"
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PARENT, str(prepared.cache_dir), how, stdout=subprocess.PIPE
    )
    try:
        assert parent.stdout is not None
        child = int(await asyncio.wait_for(parent.stdout.readline(), 60))
    finally:
        if end == "SIGKILL":
            parent.kill()  # no atexit, no cleanup of any kind in the parent
        await parent.wait()
    deadline = time.monotonic() + 5
    while process_alive(child):
        if time.monotonic() > deadline:
            os.kill(child, signal.SIGKILL)
            pytest.fail(f"the engine outlived its parent ({end})")
        await asyncio.sleep(0.05)


async def test_a_crashed_child_is_restarted_on_next_use(engine: EmbeddedEngine) -> None:
    await engine.ensure("chat")
    pid = engine.child_pid("chat")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while engine.running("chat"):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    report = engine.exit_report("chat")
    assert report is not None and "exit code -9" in report
    url = await engine.ensure("chat")
    assert engine.child_pid("chat") not in (None, pid)
    async with httpx.AsyncClient(timeout=30) as client:
        assert (await client.get(f"{url}/models")).status_code == 200
