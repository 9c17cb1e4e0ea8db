"""Real typing replay: the real server over stdio, a VS Code-like client, the REAL embedded engine.

    python benchmarks/real_typing.py [--bursts 16] [--file PATH] [--prompt-tokens N]
                                     [--latency-ms N] [--server-path DIR]

The backend is the embedded engine's completion model (Gemma 3 270M, llama.cpp, all cores),
served as an LM Studio-style OpenAI-compatible backend (`provider = "openai-compatible"`)
through a recording proxy (`engine_proxy.py`). The document is a real Python file (default:
the standard library's `argparse.py`, ~2,600 lines). Scenario: bursts of 8 keystrokes 70 ms
apart (Enter, then the first 7 characters of the next line's code), each burst 25 lines below
the last; per keystroke `didChange`, `textDocument/inlineCompletion` (automatic) and
`$/cancelRequest` for the previous unanswered request. After a burst, the client waits for
the answer to its last request, then 0.4 s.

Figures (targets from issue 11, this machine):
- final latency p50 / p90: last keystroke's request -> its answer (p50 <= 1.0 s);
- the warm floor: the burst's last completion request sent again straight to the engine,
  whose prompt cache now holds it (final p50 <= 2x the floor's p50);
- prompt tokens processed per burst (llama.cpp `/metrics` `prompt_tokens_total`, every request
  of the burst, cancelled ones included) against the size of the burst's last prompt
  (<= 25 %), and what llama.cpp reported reusing (`timings.cache_n`).
`--server-path` runs the server from another checkout's `server/` (e.g. a worktree of an
older commit) for before/after figures in one command line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.engine_proxy import EngineProxy  # noqa: E402
from benchmarks.typing_replay import Editor  # noqa: E402

KEY_GAP, KEYS, LINES_APART, SETTLE = 0.070, 8, 25, 0.4


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


async def start_engine(threads: int) -> tuple[Any, str]:
    from aigents_lsp.providers.engine_process import EmbeddedEngine

    engine = EmbeddedEngine(threads=threads, context_length=4096)
    url = await engine.ensure("completion")
    return engine, url.removesuffix("/v1")


async def run(args: argparse.Namespace, source: str, uri: str) -> int:
    engine, upstream = await start_engine(args.threads)
    proxy = EngineProxy(upstream)
    base = await proxy.start()
    home = tempfile.mkdtemp(prefix="aigents-real-typing-")
    env = {
        **os.environ,
        "AIGENTS_PROVIDER": "openai-compatible",
        "AIGENTS_API_BASE": f"{base}/v1",
        "AIGENTS_COMPLETION_MODEL": "gemma-3-270m",
        "XDG_CONFIG_HOME": home,
        "XDG_STATE_HOME": home,
        "AIGENTS_LOG_LEVEL": "warning",
    }
    if args.prompt_tokens:
        env["AIGENTS_COMPLETION_PROMPT_TOKENS"] = str(args.prompt_tokens)
    if args.latency_ms:
        env["AIGENTS_COMPLETION_LATENCY_MS"] = str(args.latency_ms)
    if args.server_path:
        env["PYTHONPATH"] = os.pathsep.join([args.server_path, env.get("PYTHONPATH", "")])
    client = LanguageClient("real-typing", "1")
    client.feature("aigents/status")(lambda ls, params: None)
    client.feature(types.WINDOW_SHOW_MESSAGE)(lambda ls, params: None)
    await client.start_io(sys.executable, "-m", "aigents_lsp", env=env, cwd=home)
    server = getattr(client, "_server", None)
    drain = None
    if server is not None and server.stderr is not None:
        drain = asyncio.create_task(server.stderr.read())
    caps = types.ClientCapabilities(
        text_document=types.TextDocumentClientCapabilities(
            inline_completion=types.InlineCompletionClientCapabilities()
        ),
        general=types.GeneralClientCapabilities(
            position_encodings=[types.PositionEncodingKind.Utf16]
        ),
    )
    await client.initialize_async(types.InitializeParams(capabilities=caps))
    client.initialized(types.InitializedParams())
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="python", version=1, text=source
            )
        )
    )
    editor = Editor(client, uri, source)
    await asyncio.sleep(0.5)
    finals: list[float] = []
    bursts: list[dict[str, Any]] = []
    empty = 0
    row = args.start_line
    for _ in range(args.bursts):
        # The end of a line of code with a line of code below it.
        while not (
            editor.lines[row].strip()
            and editor.lines[row].startswith("    ")
            and len(editor.lines[row + 1].strip()) >= KEYS
        ):
            row += 1
        below = editor.lines[row + 1]
        indent = len(below) - len(below.lstrip())
        keys = ["\n" + " " * indent, *below.strip()[: KEYS - 1]]
        line, column = row, len(editor.lines[row])
        started = await proxy.metrics()
        first_exchange = len(proxy.exchanges)
        final = None
        typed_at = []
        for key in keys:
            typed_at.append(time.perf_counter())
            line, column = editor.type(line, column, key)
            final = asyncio.ensure_future(editor.request(line, column))
            await asyncio.sleep(KEY_GAP)
        assert final is not None
        suggestion, sent, answered = await asyncio.wait_for(final, 60)
        empty += suggestion is None
        finals.append((answered - sent) * 1000)
        # The burst's completion requests (not the read-ahead that may follow the answer).
        bursts.append(
            {
                "line": row + 1,
                "final_ms": finals[-1],
                "first": first_exchange,
                "started": started["prompt_tokens_total"],
                "empty": suggestion is None,
                "typed": typed_at,
                "answered": answered,
            }
        )
        await asyncio.sleep(SETTLE)
        row = line + LINES_APART
    # Wait for the last read-ahead, then the totals per burst (read-ahead included).
    for _ in range(100):
        if (await proxy.metrics()).get("requests_processing", 0) == 0:
            break
        await asyncio.sleep(0.1)
    ended = (await proxy.metrics())["prompt_tokens_total"]
    total_read = ended - bursts[0]["started"]
    firsts = [b["first"] for b in bursts] + [len(proxy.exchanges)]
    starts = [b["started"] for b in bursts] + [ended]
    unknown = 0
    for number, (burst, first, end) in enumerate(zip(bursts, firsts, firsts[1:], strict=False)):
        # Everything llama.cpp read from this burst's start to the next one's (`/metrics`):
        # the burst's requests and the read-ahead after its answer, stopped or not.
        burst["read_all"] = starts[number + 1] - starts[number]
        # The burst's exchanges: its completion requests, then the read-ahead after the
        # answer (max_tokens 1). Tokens read: llama.cpp's `timings.prompt_n` of each.
        exchanges = proxy.exchanges[first:end]
        requests = [e for e in exchanges if e.body.get("max_tokens") != 1]
        ahead = [e for e in exchanges if e.body.get("max_tokens") == 1]
        unknown += sum(1 for e in exchanges if e.timings is None)
        burst["requests"] = len(requests)
        burst["last"] = requests[-1] if requests else None
        burst["read_by_requests"] = sum((e.timings or {}).get("prompt_n", 0) for e in requests)
        burst["read_ahead"] = sum((e.timings or {}).get("prompt_n", 0) for e in ahead)
    rows: list[str] = []
    floors: list[float] = []
    share_requests: list[float] = []
    share_all: list[float] = []
    # The warm floor, after the run (replaying during it would change what the engine holds):
    # each burst's last request once to cache its prompt, then again, timed.
    for number, burst in enumerate(bursts, start=1):
        last = burst["last"]
        if last is None:
            rows.append(f"  burst {number:2d}: final {burst['final_ms']:.0f} ms, no request")
            continue
        size = await proxy.tokens(str(last.body.get("prompt", "")))
        await proxy.replay(last.body)
        floor_s, _ = await proxy.replay(last.body)
        floors.append(floor_s * 1000)
        read_all = burst["read_all"]
        share_requests.append(burst["read_by_requests"] / size)
        share_all.append(read_all / size)
        if args.timeline:
            rows.extend(timeline(burst, bursts[number - 2] if number > 1 else None, proxy))
        rows.append(
            f"  burst {number:2d} line {burst['line']:4d}: final {burst['final_ms']:6.0f} ms, "
            f"floor {floor_s * 1000:5.0f} ms, {burst['requests']} request(s) read "
            f"{burst['read_by_requests']:5.0f} tokens, {read_all:5.0f} read in all until the "
            f"next burst, of a {size}-token prompt" + (" [empty]" if burst["empty"] else "")
        )
    stats = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="aigents.stats")
    )
    await client.shutdown_async(None)
    client.exit(None)
    await asyncio.sleep(0.2)
    if drain is not None:
        drain.cancel()
    await proxy.stop()
    await engine.stop()

    print(f"file: {args.file} ({len(source.splitlines())} lines), {args.bursts} bursts of {KEYS}")
    print(
        f"server: {args.server_path or 'this checkout'}; prompt tokens "
        f"{args.prompt_tokens or 'auto'}; latency target {args.latency_ms or 'default'}"
    )
    print("\n".join(rows))
    attributed = sum(b["read_by_requests"] + b["read_ahead"] for b in bursts)
    print(
        f"prompt tokens read in all ({{/metrics}}): {total_read:.0f}; attributed to bursts from "
        f"timings: {attributed}; {unknown} exchange(s) closed before their timings"
    )
    p50, p90 = statistics.median(finals), percentile(finals, 0.9)
    floor = statistics.median(floors) if floors else float("nan")
    print(f"final latency p50 {p50:.0f} ms, p90 {p90:.0f} ms  (target p50 <= 1000)")
    print(f"warm floor p50 {floor:.0f} ms: final p50 = {p50 / floor:.2f}x  (target <= 2x)")
    for label, shares in (
        ("by the burst's requests", share_requests),
        ("in all (/metrics, read-ahead included)", share_all),
    ):
        print(
            f"prompt tokens read per burst {label}: median {statistics.median(shares):.0%} "
            f"of the prompt, mean {statistics.fmean(shares):.0%}  (target <= 25%)"
        )
    print(f"empty answers: {empty}/{args.bursts}")
    completion = stats.get("completion", {}) if isinstance(stats, dict) else {}
    keys_shown = (
        "backend_calls",
        "prompt_tokens_read",
        "prompt_tokens_cached",
        "prompt_cache_reuse",
        "prompt_tokens_per_second",
        "prompt_budget_tokens",
    )
    print(
        "aigents.stats: "
        + ", ".join(f"{key} {completion.get(key)}" for key in keys_shown if key in completion)
    )
    return 0


def timeline(burst: dict[str, Any], before: dict[str, Any] | None, proxy: EngineProxy) -> list[str]:
    """Where a burst's time went: the keys, each backend exchange since the previous answer
    (read-ahead included), the answer; milliseconds from the burst's last key."""
    zero = burst["typed"][-1]
    since = before["answered"] if before is not None else burst["typed"][0]
    lines = [f"    keys at {', '.join(f'{(t - zero) * 1000:.0f}' for t in burst['typed'])}"]
    for exchange in proxy.exchanges:
        if exchange.arrived < since or exchange.arrived > burst["answered"]:
            continue
        kind = "read-ahead" if exchange.body.get("max_tokens") == 1 else "request"
        timings = exchange.timings or {}

        def at(moment: float | None) -> str:
            return f"{(moment - zero) * 1000:.0f}" if moment is not None else "-"

        lines.append(
            f"    {kind}: arrived {at(exchange.arrived)}, first byte {at(exchange.first_byte)}, "
            f"ended {at(exchange.ended)}; read {timings.get('prompt_n')} in "
            f"{timings.get('prompt_ms', 0):.0f} ms, reused {timings.get('cache_n')}, "
            f"generated {timings.get('predicted_n')} in {timings.get('predicted_ms', 0):.0f} ms"
        )
    lines.append(f"    answered {(burst['answered'] - zero) * 1000:.0f}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--bursts", type=int, default=16)
    parser.add_argument("--file", default=argparse.__file__)
    parser.add_argument("--start-line", type=int, default=120)
    parser.add_argument("--prompt-tokens", type=int, default=0)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--server-path", default="", help="another checkout's server/ dir")
    parser.add_argument(
        "--timeline", action="store_true", help="print where each burst's time went"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    source = Path(args.file).read_text(encoding="utf-8")
    code = asyncio.run(run(args, source, Path(args.file).resolve().as_uri()))
    print(f"({time.perf_counter() - started:.0f} s in all)")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
