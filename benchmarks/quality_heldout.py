"""Completion quality on code the project never tuned on, against a naive client, same run.

    python benchmarks/quality_heldout.py [--package boltons==26.2.0] [--single 120]
                                         [--multi 40] [--seed 11] [--prompt-tokens N]

Code: the pure-Python files of a package fetched from PyPI at benchmark time (`pip download`,
a wheel, cached in ~/.cache/aigents-lsp/bench). Held out: `boltons` (the default) was never
read while tuning; tuning used `--package toolz==1.2.0`, `click==8.1.7` and `jinja2==3.1.4`.
Do not tune on the default (nor print its `--examples`).

Tasks, cut from function bodies (no comments, no docstrings):
- single-line: a statement (or one-line block header) with >= 12 non-space characters, cut at
  a random column; the expected completion is the rest of the line, removed from the file;
- multi-line: the body of a function of 2-5 statement lines (after its docstring, if any); the
  cursor at its first line's indentation; the body removed from the file.

Two clients, one embedded engine (Gemma 3 270M, llama.cpp, all cores), tasks in file order:
- server: this project's `CompletionEngine` (automatic trigger, no debounce, no read-ahead:
  the tasks are not a typing session), with everything it does: budget, anchored window,
  template, token healing, post-processing;
- naive: the last 60 lines before the cursor as a raw prompt (`/v1/completions`), temperature
  0; one line (stop "\\n") or, for multi-line tasks, up to a blank line and cut at the first
  line indented less than the cursor.
Figures: exact match, edit similarity, empty answers, latency p50, per kind; paired: tasks
only one client got right (two-sided sign test), mean difference of edit similarity with a
95 % bootstrap interval.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import io
import math
import random
import statistics
import subprocess
import sys
import time
import tokenize
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.quality import candidate_rows, edit_similarity, percentile  # noqa: E402

from aigents_lsp.completion.engine import CompletionEngine, CompletionRequest, Target  # noqa: E402
from aigents_lsp.config import Settings  # noqa: E402
from aigents_lsp.providers.base import CompletionParams, ProviderError  # noqa: E402
from aigents_lsp.providers.embedded import EmbeddedProvider  # noqa: E402
from aigents_lsp.providers.embedded_models import GEMMA  # noqa: E402

NAIVE_LINES = 60
CACHE = Path.home() / ".cache" / "aigents-lsp" / "bench"


@dataclass(frozen=True)
class Task:
    kind: str  # "single" | "multi"
    module: str
    line: int
    column: int
    prefix: str
    suffix: str
    expected: str


@dataclass
class Result:
    got: str
    latency_ms: float
    error: str | None = None


def fetch_package(spec: str) -> dict[str, str]:
    """{path: source} of the package's .py files (a wheel from PyPI, cached)."""
    target = CACHE / spec.replace("==", "-")
    if not target.is_dir() or not any(target.glob("*.whl")):
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"),
                *("--only-binary", ":all:", "-d", str(target), spec),
            ],
            check=True,
        )
    wheel = sorted(target.glob("*.whl"))[0]
    sources: dict[str, str] = {}
    with zipfile.ZipFile(wheel) as archive:
        for name in sorted(archive.namelist()):
            if name.endswith(".py") and "/tests/" not in name and not name.startswith("test"):
                sources[name] = archive.read(name).decode("utf-8", "replace")
    return sources


def _commented(source: str) -> set[int]:
    try:
        tokens = tokenize.generate_tokens(io.StringIO(source).readline)
        return {tok.start[0] for tok in tokens if tok.type == tokenize.COMMENT}
    except (tokenize.TokenError, SyntaxError):
        return set()


def single_tasks(path: str, source: str, rng: random.Random, count: int) -> list[Task]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    rows = candidate_rows(source, tree)
    lines = source.split("\n")
    tasks = []
    for row in sorted(rng.sample(rows, min(count, len(rows)))):
        line = lines[row - 1]
        indent, end = len(line) - len(line.lstrip()), len(line.rstrip())
        cut = rng.randint(indent + 3, end - 6)
        prefix = "\n".join(lines[: row - 1]) + "\n" + line[:cut]
        suffix = "\n" + "\n".join(lines[row:])
        tasks.append(Task("single", path, row - 1, cut, prefix, suffix, line[cut:end]))
    return tasks


def multi_tasks(path: str, source: str, rng: random.Random, count: int) -> list[Task]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    lines = source.split("\n")
    commented = _commented(source)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # after the docstring
        if not body or body[0].lineno <= node.lineno:
            continue
        first, last = body[0].lineno, body[-1].end_lineno or body[-1].lineno
        span = range(first, last + 1)
        if not 2 <= len(span) <= 5 or any(r in commented for r in span):
            continue
        if any(not lines[r - 1].strip() for r in span):
            continue
        found.append((first, last))
    tasks = []
    for first, last in sorted(rng.sample(found, min(count, len(found)))):
        indent = len(lines[first - 1]) - len(lines[first - 1].lstrip())
        prefix = "\n".join(lines[: first - 1]) + "\n" + lines[first - 1][:indent]
        suffix = "\n" + "\n".join(lines[last:])
        body = "\n".join(lines[first - 1 : last])[indent:]
        tasks.append(Task("multi", path, first - 1, indent, prefix, suffix, body))
    return tasks


def build_tasks(sources: dict[str, str], single: int, multi: int, seed: int) -> list[Task]:
    rng = random.Random(seed)
    paths = [p for p, s in sources.items() if s.count("\n") >= 40]
    rng.shuffle(paths)
    tasks: list[Task] = []
    per_file = 4
    for count, make in ((single, single_tasks), (multi, multi_tasks)):
        made = 0
        for path in paths:
            if made >= count:
                break
            new = make(path, sources[path], rng, min(per_file, count - made))
            tasks += new
            made += len(new)
    return sorted(tasks, key=lambda t: (t.module, t.line, t.kind))


def normalized(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").split("\n")).strip()


def naive_cut(text: str, kind: str, indent: int) -> str:
    if kind == "single":
        return text.split("\n", 1)[0]
    kept = []
    for number, line in enumerate(text.split("\n")):
        if number and line.strip() and len(line) - len(line.lstrip()) < indent:
            break
        kept.append(line)
    return "\n".join(kept)


async def run_server(
    tasks: list[Task], target: Target, engine: CompletionEngine, label: str
) -> list[Result]:
    results = []
    for task in tasks:
        request = CompletionRequest(
            uri=f"file:///{label}/{task.module}",
            version=1,
            prefix=task.prefix,
            suffix=task.suffix,
            line=task.line,
            column=task.column,
            language_id="python",
            file_path=task.module,
        )
        started = time.perf_counter()
        try:
            suggestion = await engine.complete(request, target)
            got, error = (suggestion.text if suggestion else ""), None
        except ProviderError as exc:
            got, error = "", exc.message
        results.append(Result(got, (time.perf_counter() - started) * 1000, error))
        print("x" if error else "." if got else "o", end="", file=sys.stderr, flush=True)
    print(f" {label}", file=sys.stderr)
    return results


async def run_naive(tasks: list[Task], provider: EmbeddedProvider, model: str) -> list[Result]:
    results = []
    for task in tasks:
        prompt = "\n".join(task.prefix.split("\n")[-NAIVE_LINES:])
        multi = task.kind == "multi"
        started = time.perf_counter()
        try:
            answer = await provider.complete(
                CompletionParams(
                    prompt=prompt,
                    model=model,
                    max_tokens=128 if multi else 48,
                    temperature=0.0,
                    stop=["\n\n"] if multi else ["\n"],
                )
            )
            got, error = naive_cut(answer.text, task.kind, task.column), None
        except ProviderError as exc:
            got, error = "", exc.message
        results.append(Result(got, (time.perf_counter() - started) * 1000, error))
        print("x" if error else "." if got.strip() else "o", end="", file=sys.stderr, flush=True)
    print(" naive", file=sys.stderr)
    return results


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact binomial p-value of `wins` vs `losses` (ties dropped)."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def bootstrap(differences: list[float], seed: int, rounds: int = 2000) -> tuple[float, float]:
    rng = random.Random(seed)
    means = sorted(
        statistics.fmean(rng.choices(differences, k=len(differences))) for _ in range(rounds)
    )
    return means[int(0.025 * rounds)], means[int(0.975 * rounds) - 1]


def report(tasks: list[Task], server: list[Result], naive: list[Result], seed: int) -> None:
    for kind in ("single", "multi"):
        index = [i for i, t in enumerate(tasks) if t.kind == kind]
        if not index:
            continue
        print(f"\n{kind}-line: {len(index)} tasks from {len({tasks[i].module for i in index})}")
        rows = {}
        for name, results in (("server", server), ("naive", naive)):
            exact = [normalized(results[i].got) == normalized(tasks[i].expected) for i in index]
            similarity = [edit_similarity(results[i].got, tasks[i].expected) for i in index]
            empty = sum(not results[i].got.strip() for i in index)
            latency = [results[i].latency_ms for i in index]
            rows[name] = (exact, similarity, latency)
            print(
                f"  {name:<6} exact {statistics.fmean(exact):6.1%}  edit-sim "
                f"{statistics.fmean(similarity):.3f}  empty {empty:3d}  p50 "
                f"{percentile(latency, 0.5):6.0f} ms  p90 {percentile(latency, 0.9):6.0f} ms"
            )
        (s_exact, s_sim, s_lat), (n_exact, n_sim, n_lat) = rows["server"], rows["naive"]
        wins = sum(a and not b for a, b in zip(s_exact, n_exact, strict=True))
        losses = sum(b and not a for a, b in zip(s_exact, n_exact, strict=True))
        differences = [a - b for a, b in zip(s_sim, n_sim, strict=True)]
        low, high = bootstrap(differences, seed)
        ratio = statistics.fmean(s_exact) / max(statistics.fmean(n_exact), 1e-9)
        print(
            f"  paired: exact {ratio:.2f}x the naive ({wins} tasks only the server got, "
            f"{losses} only the naive; sign test p = {sign_test(wins, losses):.3f}); edit-sim "
            f"{statistics.fmean(differences):+.3f} (95% CI {low:+.3f} .. {high:+.3f}); "
            f"latency p50 {percentile(s_lat, 0.5) / percentile(n_lat, 0.5):.2f}x"
        )


async def main_async(args: argparse.Namespace, tasks: list[Task]) -> None:
    provider = EmbeddedProvider(context_length=4096)
    try:
        started = time.perf_counter()
        await provider.complete(CompletionParams(prompt="def add(a, b):\n    return", max_tokens=4))
        print(f"engine ready in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        model = await provider.resolve_model("completion") or GEMMA.alias
        length = provider.engine.loaded_context_length("completion")
        target = Target(provider, model, arch=GEMMA.arch, context_length=length)
        options: dict[str, object] = {
            "provider": "embedded",
            "completionTemperature": 0.0,
            "debounceMs": 0,
            "completionPrefillLines": 0,
        }
        if args.prompt_tokens:
            options["completionPromptTokens"] = args.prompt_tokens
        settings = Settings.model_validate(options)
        # The server learns the engine's prompt speed on its first requests: let it, on a
        # file that is not among the tasks, so the tasks see the budget a user would.
        warm = "\n".join(f"value_{i} = compute({i}, limit={i * 3})" for i in range(400))
        engine = CompletionEngine(lambda: settings)
        for lines in (120, 240, 360):
            prefix = "\n".join(warm.split("\n")[:lines]) + "\nvalue_x = "
            request = CompletionRequest("file:///warm.py", 1, prefix, "", line=lines)
            await engine.complete(request, target)
        engine.metrics.empty_reasons.clear()
        server = await run_server(tasks, target, engine, "server")
        naive = await run_naive(tasks, provider, model)
        report(tasks, server, naive, args.seed)
        reasons = engine.metrics.empty_reasons.most_common()
        print(
            "\nserver's empty answers by cause: "
            + (", ".join(f"{r} {n}" for r, n in reasons) or "none")
        )
        if args.examples:
            for i, task in enumerate(tasks):
                if task.kind == args.examples:
                    print(f"\n#{i} {task.module}:{task.line + 1} expected {task.expected!r}")
                    print(f"   server {server[i].got!r}\n   naive  {naive[i].got!r}")
        print(
            f"\nserver prompt budget {engine.prompt_tokens(target, settings)} tokens "
            f"(measured prompt speed {engine.budget.tokens_per_second(target.key) or 0:.0f}"
            f" tokens/s); naive: last {NAIVE_LINES} lines"
        )
    finally:
        await provider.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--package", default="boltons==26.2.0")
    parser.add_argument("--single", type=int, default=120)
    parser.add_argument("--multi", type=int, default=40)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--prompt-tokens", type=int, default=0)
    parser.add_argument("--examples", choices=("single", "multi"), help="print each answer")
    args = parser.parse_args()
    started = time.perf_counter()
    sources = fetch_package(args.package)
    tasks = build_tasks(sources, args.single, args.multi, args.seed)
    print(f"{args.package}: {len(sources)} files, {len(tasks)} tasks", file=sys.stderr)
    asyncio.run(main_async(args, tasks))
    print(f"\n({time.perf_counter() - started:.0f} s in all)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
