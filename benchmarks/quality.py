"""Completion quality: line-completion tasks cut from the standard library, real embedded engine.

    python benchmarks/quality.py [--tasks 60] [--seed 7] [--prompt-tokens 512]
                                 [--related-lines 200] [--temperature 0] [--dump tasks.jsonl]

Tasks: lines inside function bodies of stdlib modules (no tests, idlelib, generated tables),
single-line statements or one-line block headers with >= 12 non-space characters, no comment.
Each is cut at a random column (>= 3 characters of code before the cursor, >= 6 after); the
expected completion is the rest of the line, which is removed from the document: the prefix is
the file up to the cursor, the suffix starts at the line's newline.

Two conditions, each with a fresh `CompletionEngine` (no cache shared), one shared embedded
engine, `invoked=True` (no debounce), one request at a time:
- local: the document only;
- cross-file: plus `related` snippets - the first `--related-lines` lines of up to 3 stdlib
  modules the file imports (same-package siblings when it imports fewer).

Per condition: exact match (stripped), first-token match (a word or one punctuation character),
mean edit similarity (1 - Levenshtein / longer length), empty rate, latency p50/p95, prompt and
generated tokens (the engine's own counts), and what post-processing did to the model's raw
output. Three example tasks are printed at the end. Progress on stderr: `.` a suggestion,
`o` none, `x` a provider error. Tasks depend on the Python version whose stdlib is read.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import io
import json
import os
import random
import re
import statistics
import sys
import sysconfig
import time
import tokenize
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from aigents_lsp.completion.engine import CompletionEngine, CompletionRequest, Target
from aigents_lsp.completion.families import pick_template
from aigents_lsp.config import Settings
from aigents_lsp.providers.base import CompletionParams, ProviderError, StreamDelta, Usage
from aigents_lsp.providers.embedded import EmbeddedProvider
from aigents_lsp.providers.embedded_models import GEMMA

SKIP_DIRS = {
    "test", "tests", "idlelib", "lib2to3", "turtledemo", "site-packages", "dist-packages",
    "__pycache__", "pydoc_data", "encodings", "ensurepip", "__phello__",
}  # fmt: skip
SKIP_NAME = re.compile(r"^(_sysconfigdata|_opcode_metadata|_pydecimal|config-)")
MAX_FILE_BYTES = 200_000  # bigger ones are generated tables or outliers
TASKS_PER_MODULE = 2
MIN_CODE_CHARS, KEEP_BEFORE, KEEP_AFTER = 12, 3, 6
RELATED_MODULES = 3
_FIRST_TOKEN = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True)
class Task:
    module: str  # path relative to the stdlib, e.g. "json/decoder.py"
    line: int  # 0-based
    column: int
    prefix: str
    suffix: str
    expected: str
    related: tuple[tuple[str, str], ...]


@dataclass
class BackendCall:
    """What the engine sent and what the model answered, before post-processing."""

    prompt: str
    raw: str = ""
    usage: Usage | None = None


@dataclass
class Outcome:
    task: int
    got: str  # "" when the engine suggested nothing
    latency_ms: float
    raw: str | None  # None: no backend call
    prompt_chars: int = 0
    prompt_tokens: int | None = None
    generated_tokens: int | None = None
    snippets: int = 0  # snippets of other files in the prompt
    error: str | None = None


class RecordingProvider(EmbeddedProvider):
    """The embedded provider, keeping each prompt and raw answer for the report."""

    def __init__(self, context_length: int) -> None:
        super().__init__(context_length=context_length)
        self.calls: list[BackendCall] = []

    async def stream_complete(self, params: CompletionParams) -> AsyncIterator[StreamDelta]:
        call = BackendCall(params.prompt)
        self.calls.append(call)
        stream = super().stream_complete(params)
        try:
            async for delta in stream:
                call.raw += delta.text
                call.usage = delta.usage or call.usage
                yield delta
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()


# --- tasks -------------------------------------------------------------------------------------


def stdlib_modules(root: Path) -> list[Path]:
    """Hand-written stdlib modules, sorted (deterministic)."""
    found = []
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).parts
        if any(part in SKIP_DIRS or part.startswith("config-") for part in parts[:-1]):
            continue
        if SKIP_NAME.match(path.name) or path.stat().st_size > MAX_FILE_BYTES:
            continue
        found.append(path)
    return sorted(found)


def candidate_rows(source: str, tree: ast.Module) -> list[int]:
    """1-based rows holding one complete statement (or a one-line block header) inside a
    function body: no comment, no docstring, >= MIN_CODE_CHARS non-space characters."""
    lines = source.split("\n")
    try:
        tokens = tokenize.generate_tokens(io.StringIO(source).readline)
        commented = {tok.start[0] for tok in tokens if tok.type == tokenize.COMMENT}
    except (tokenize.TokenError, SyntaxError):
        return []
    rows: set[int] = set()
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(func):
            if node is func or not isinstance(node, ast.stmt) or node.lineno in commented:
                continue
            line = lines[node.lineno - 1]
            code = line.strip()
            starts_line = node.col_offset == len(line) - len(line.lstrip())
            if not starts_line or len("".join(code.split())) < MIN_CODE_CHARS:
                continue
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                continue  # docstrings and stray strings
            body = getattr(node, "body", None)
            if isinstance(body, list) and body:  # a block: only its header, on one line
                if body[0].lineno > node.lineno and code.endswith(":"):
                    rows.add(node.lineno)
            elif node.end_lineno == node.lineno and node.end_col_offset == len(line.rstrip()):
                rows.add(node.lineno)
    return sorted(rows)


def _resolve(root: Path, dotted: str) -> Path | None:
    base = root.joinpath(*dotted.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file() and not (set(path.relative_to(root).parts[:-1]) & SKIP_DIRS):
            return path
    return None


def related_modules(root: Path, path: Path, tree: ast.Module) -> list[Path]:
    """Up to RELATED_MODULES stdlib files `path` imports, then same-package siblings."""
    package = ".".join(path.relative_to(root).parts[:-1])
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(p for p in [*anchor, node.module or ""] if p)
            else:
                base = node.module or ""
            names += [f"{base}.{alias.name}" for alias in node.names] + [base]
    found: list[Path] = []
    for name in names:
        resolved = _resolve(root, name) if name else None
        if resolved is not None and resolved != path and resolved not in found:
            found.append(resolved)
    if package:
        found += [p for p in sorted(path.parent.glob("*.py")) if p != path and p not in found]
    return found[:RELATED_MODULES]


def build_tasks(root: Path, count: int, seed: int, related_lines: int) -> list[Task]:
    rng = random.Random(seed)
    modules = stdlib_modules(root)
    rng.shuffle(modules)
    tasks: list[Task] = []
    for path in modules:
        if len(tasks) >= count:
            break
        source = path.read_text(encoding="utf-8", errors="replace")
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        rows = candidate_rows(source, tree)
        if not rows:
            continue
        related = tuple(
            (
                str(p.relative_to(root)),
                "\n".join(p.read_text("utf-8", "replace").split("\n")[:related_lines]),
            )
            for p in related_modules(root, path, tree)
        )
        lines = source.split("\n")
        for row in sorted(rng.sample(rows, min(TASKS_PER_MODULE, len(rows), count - len(tasks)))):
            line = lines[row - 1]
            indent, end = len(line) - len(line.lstrip()), len(line.rstrip())
            cut = rng.randint(indent + KEEP_BEFORE, end - KEEP_AFTER)
            prefix = "\n".join(lines[: row - 1]) + "\n" + line[:cut]
            suffix = "\n" + "\n".join(lines[row:])
            module = str(path.relative_to(root))
            tasks.append(Task(module, row - 1, cut, prefix, suffix, line[cut:end], related))
    return tasks


# --- metrics -----------------------------------------------------------------------------------


def levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def edit_similarity(got: str, expected: str) -> float:
    got, expected = got.strip(), expected.strip()
    longest = max(len(got), len(expected))
    return 1.0 - levenshtein(got, expected) / longest if longest else 1.0


def first_token(text: str) -> str:
    match = _FIRST_TOKEN.search(text)
    return match.group(0) if match else ""


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


@dataclass(frozen=True)
class Score:
    exact: bool
    first_token: bool
    similarity: float
    empty: bool
    raw_exact: bool  # the model's first line, before post-processing
    raw_similarity: float
    position: str  # "mid-word" (`optio|nlist`), "after space" (`for |x in`) or "other"


def cursor_position(task: Task) -> str:
    if re.search(r"\w$", task.prefix) and re.match(r"\w", task.expected):
        return "mid-word"
    return "after space" if task.prefix.endswith(" ") else "other"


def score(task: Task, outcome: Outcome) -> Score:
    got, expected = outcome.got.strip(), task.expected.strip()
    raw = (outcome.raw or "").split("\n", 1)[0]
    return Score(
        exact=got == expected,
        first_token=bool(got) and first_token(got) == first_token(expected),
        similarity=edit_similarity(got, expected),
        empty=not got,
        raw_exact=raw.strip() == expected,
        raw_similarity=edit_similarity(raw, expected),
        position=cursor_position(task),
    )


# --- running -----------------------------------------------------------------------------------


async def run_condition(
    name: str,
    tasks: list[Task],
    provider: RecordingProvider,
    target: Target,
    settings: Settings,
    with_related: bool,
) -> list[Outcome]:
    engine = CompletionEngine(lambda: settings)  # fresh: nothing cached from another condition
    outcomes: list[Outcome] = []
    for i, task in enumerate(tasks):
        request = CompletionRequest(
            uri=f"file:///stdlib/{name}/{i}/{task.module}",
            version=1,
            prefix=task.prefix,
            suffix=task.suffix,
            line=task.line,
            column=task.column,
            language_id="python",
            invoked=True,
            file_path=task.module,
            related=(lambda related=task.related: related) if with_related else None,
        )
        calls_before = len(provider.calls)
        started = time.perf_counter()
        error = None
        try:
            suggestion = await engine.complete(request, target)
        except ProviderError as exc:
            suggestion, error = None, exc.message
        latency = (time.perf_counter() - started) * 1000
        outcome = Outcome(i, suggestion.text if suggestion else "", latency, None, error=error)
        if len(provider.calls) > calls_before:
            call = provider.calls[-1]
            outcome.raw = call.raw
            outcome.prompt_chars = len(call.prompt)
            outcome.snippets = call.prompt.count("# Path: ")
            if call.usage is not None:
                outcome.prompt_tokens = call.usage.prompt_tokens
                outcome.generated_tokens = call.usage.completion_tokens
        outcomes.append(outcome)
        print("x" if error else "." if outcome.got else "o", end="", file=sys.stderr, flush=True)
    print(f" {name}", file=sys.stderr, flush=True)
    return outcomes


async def run(
    args: argparse.Namespace, tasks: list[Task], settings: Settings
) -> dict[str, list[Outcome]]:
    """Both conditions on one embedded engine, started (and timed) before the first task."""
    provider = RecordingProvider(args.context)
    try:
        started = time.perf_counter()
        await provider.complete(CompletionParams(prompt="def add(a, b):\n    return", max_tokens=4))
        print(f"engine ready in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        model = await provider.resolve_model("completion")
        length = provider.engine.loaded_context_length("completion")
        target = Target(provider, model, arch=GEMMA.arch, context_length=length)
        results: dict[str, list[Outcome]] = {}
        for name, with_related in (("local", False), ("cross-file", True)):
            results[name] = await run_condition(
                name, tasks, provider, target, settings, with_related
            )
        return results
    finally:
        await provider.aclose()


# --- the report --------------------------------------------------------------------------------


def _show(text: str | None, width: int = 56) -> str:
    if text is None:
        return "(no backend call)"
    shown = repr(text)
    return shown if len(shown) <= width else shown[: width - 1] + "…"


def print_table(tasks: list[Task], results: dict[str, list[Outcome]]) -> None:
    header = (
        f"{'condition':<11} {'exact':>6} {'1st-tok':>7} {'edit-sim':>8} {'empty':>6} "
        f"{'p50 ms':>7} {'p95 ms':>7} {'prompt tok':>10} {'gen tok':>7} {'chars/tok':>9} "
        f"{'w/ snippets':>11}"
    )
    print(header)
    print("-" * len(header))
    for name, outcomes in results.items():
        scores = [score(tasks[o.task], o) for o in outcomes]
        latencies = [o.latency_ms for o in outcomes]
        counted = [o for o in outcomes if o.prompt_tokens]
        prompt_tokens = sum(o.prompt_tokens or 0 for o in counted)
        chars_per_token = sum(o.prompt_chars for o in counted) / prompt_tokens if counted else 0.0
        print(
            f"{name:<11} {mean([s.exact for s in scores]):>6.1%} "
            f"{mean([s.first_token for s in scores]):>7.1%} "
            f"{mean([s.similarity for s in scores]):>8.3f} {mean([s.empty for s in scores]):>6.1%} "
            f"{percentile(latencies, 0.5):>7.0f} {percentile(latencies, 0.95):>7.0f} "
            f"{mean([float(o.prompt_tokens or 0) for o in counted]):>10.0f} "
            f"{mean([float(o.generated_tokens or 0) for o in counted]):>7.1f} "
            f"{chars_per_token:>9.2f} {sum(o.snippets > 0 for o in outcomes):>11d}"
        )


def print_breakdown(tasks: list[Task], results: dict[str, list[Outcome]]) -> None:
    """Where the cursor is: prompts ending inside a word or with a space end mid-token."""
    print("\nby cursor position (exact / edit-sim / tasks):")
    for name, outcomes in results.items():
        scores = [score(tasks[o.task], o) for o in outcomes]
        parts = []
        for label in ("mid-word", "after space", "other"):
            group = [s for s in scores if s.position == label]
            parts.append(
                f"{label} {mean([s.exact for s in group]):.1%} / "
                f"{mean([s.similarity for s in group]):.3f} / {len(group)}"
            )
        print(f"  {name:<11} " + "; ".join(parts))


def print_postprocessing(tasks: list[Task], results: dict[str, list[Outcome]]) -> None:
    print("\npost-processing (raw: the model's first line before it):")
    for name, outcomes in results.items():
        scores = [score(tasks[o.task], o) for o in outcomes]
        dropped = [o for o, s in zip(outcomes, scores, strict=True) if s.empty and o.raw]
        lowered = [
            o
            for o, s in zip(outcomes, scores, strict=True)
            if s.similarity < s.raw_similarity - 1e-9 and not s.empty
        ]
        print(
            f"  {name:<11} raw exact {mean([s.raw_exact for s in scores]):.1%}, raw edit-sim "
            f"{mean([s.raw_similarity for s in scores]):.3f}; {len(dropped)} raw answers "
            f"dropped, {len(lowered)} shown with lower similarity than raw"
        )
        for o in (dropped + lowered)[:3]:
            task = tasks[o.task]
            print(
                f"    #{o.task} {_show(task.prefix.rsplit(chr(10), 1)[-1].strip(), 40)} expected "
                f"{_show(task.expected, 40)} raw {_show(o.raw)} -> shown {_show(o.got)}"
            )


def print_examples(tasks: list[Task], results: dict[str, list[Outcome]]) -> None:
    """A hit, a miss and an empty answer of the local condition (more misses when there is no
    hit or no empty answer), each with both conditions."""
    local = [(o.task, score(tasks[o.task], o)) for o in results["local"]]
    hits = [i for i, s in local if s.exact]
    misses = [i for i, s in local if not s.exact and not s.empty]
    empty = [i for i, s in local if s.empty]
    picks = list(dict.fromkeys([*hits[:1], *misses[:1], *empty[:1], *misses, *hits, *empty]))
    print("\nexamples:")
    for index in picks[:3]:
        task = tasks[index]
        print(f"  #{index} {task.module}:{task.line + 1}")
        print(f"    before cursor {task.prefix.rsplit(chr(10), 1)[-1]!r}")
        print(f"    expected      {task.expected!r}")
        for name, outcomes in results.items():
            outcome = outcomes[index]
            print(f"    {name:<13} {outcome.got!r}  (raw {_show(outcome.raw)})")


def report(
    tasks: list[Task],
    results: dict[str, list[Outcome]],
    settings: Settings,
    args: argparse.Namespace,
) -> None:
    print(
        f"\nsettings: model {GEMMA.alias} (embedded llama.cpp), template "
        f"{pick_template(GEMMA.alias, GEMMA.arch).name}, completion_prompt_tokens "
        f"{settings.completion_prompt_tokens}, temperature {settings.completion_temperature}, "
        f"engine context {args.context}, seed {args.seed}, related: {RELATED_MODULES} modules "
        f"x {args.related_lines} lines; load average at end {os.getloadavg()[0]:.2f}"
    )
    modules = len({t.module for t in tasks})
    print(
        f"{len(tasks)} tasks from {modules} modules, {sum(bool(t.related) for t in tasks)} "
        "with related files\n"
    )
    print_table(tasks, results)
    print_breakdown(tasks, results)
    print_postprocessing(tasks, results)
    errors = [o.error for outcomes in results.values() for o in outcomes if o.error]
    if errors:
        print(f"\n{len(errors)} provider errors, the first: {errors[0]}")
    print_examples(tasks, results)


def dump(path: str, tasks: list[Task], results: dict[str, list[Outcome]]) -> None:
    with open(path, "w", encoding="utf-8") as out:
        for name, outcomes in results.items():
            for o in outcomes:
                task = tasks[o.task]
                record = {"condition": name, "module": task.module, "line": task.line}
                record |= {"before": task.prefix[-80:], "expected": task.expected}
                out.write(json.dumps(record | asdict(o)) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tasks", type=int, default=60, help="tasks per condition")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--prompt-tokens", type=int, default=512, help="completion_prompt_tokens")
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--related-lines", type=int, default=200, help="lines per related file")
    parser.add_argument("--context", type=int, default=4096, help="engine context length")
    parser.add_argument("--dump", help="write one JSON line per task and condition here")
    args = parser.parse_args()
    started = time.perf_counter()
    root = Path(sysconfig.get_paths()["stdlib"])
    tasks = build_tasks(root, args.tasks, args.seed, args.related_lines)
    print(f"{len(tasks)} tasks from {root}", file=sys.stderr)
    settings = Settings.model_validate(
        {
            "provider": "embedded",
            "completionPromptTokens": args.prompt_tokens,
            "completionTemperature": args.temperature,
            "debounceMs": 0,
            "embeddedContextLength": args.context,
        }
    )
    results = asyncio.run(run(args, tasks, settings))
    report(tasks, results, settings, args)
    if args.dump:
        dump(args.dump, tasks, results)
    print(f"\ntotal {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
