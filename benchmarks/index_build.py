"""Semantic index: build rate and query latency over the Python standard library.

    python benchmarks/index_build.py [--limit-files N] [--no-embed] [--queries 50] [--seed 7]
                                     [--threads 0]

The corpus: the stdlib's `.py` files (no tests, idlelib, site-packages...), copied into a
temporary workspace (every k-th file, in path order, when `--limit-files` is given). Two
conditions, each on a fresh store:
- keyword: no embedding model (BM25 + symbol matches);
- embedded: vectors from the embedded engine (SmolLM2-135M, mean pooling, the chat child),
  engine start-up excluded from the build time and reported apart;
- synthetic (`--synthetic`): instant pseudo-random 576-d vectors, to time the pure-Python
  vector scan at the corpus's full size without waiting for a model.

Per condition: chunks, build seconds, chunks/s (the embedding phase separately), query latency
p50/p95 over `--queries` queries (half function names, half first lines of docstrings; the
embedded condition embeds each query through the engine), and hit@5: how often a docstring
query finds its own function among the first five results. A second `build` (nothing changed)
is timed too: the cost of a restart.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import hashlib
import random
import shutil
import statistics
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aigents_lsp.index.indexer import SemanticIndex
from aigents_lsp.index.memory import EmbeddingSource, IndexOptions
from aigents_lsp.index.store import IndexStore
from aigents_lsp.lsp.search import EMBEDDED_VECTOR_WEIGHT
from aigents_lsp.providers.embedded import EmbeddedProvider
from aigents_lsp.providers.embedded_models import SMOLLM2
from aigents_lsp.providers.engine_process import embedded_available
from aigents_lsp.workspace.ignore import IgnoreRules

SKIP_DIRS = {
    "test", "tests", "idlelib", "lib2to3", "turtledemo", "site-packages", "dist-packages",
    "__pycache__", "pydoc_data", "ensurepip", "__phello__",
}  # fmt: skip


@dataclass
class Query:
    text: str
    path: str | None = None  # relative path and first line of the function it describes
    line: int | None = None


def stdlib_files(limit: int | None) -> tuple[Path, list[Path]]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(
        p
        for p in root.rglob("*.py")
        if not SKIP_DIRS.intersection(p.relative_to(root).parts) and p.stat().st_size < 512_000
    )
    if limit and limit < len(files):
        step = len(files) / limit
        files = [files[int(i * step)] for i in range(limit)]
    return root, files


def copy_corpus(root: Path, files: list[Path], target: Path) -> None:
    for file in files:
        dest = target / file.relative_to(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, dest)


def make_queries(workspace: Path, count: int, seed: int) -> list[Query]:
    names: list[Query] = []
    docs: list[Query] = []
    for file in sorted(workspace.rglob("*.py")):
        try:
            tree = ast.parse(file.read_text(encoding="utf-8", errors="replace"))
        except SyntaxError:
            continue
        relative = file.relative_to(workspace).as_posix()
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            names.append(Query(node.name))
            doc = ast.get_docstring(node)
            first = doc.strip().split("\n")[0].strip() if doc else ""
            if len(first) >= 20:
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
                docs.append(Query(first, relative, start))
    rng = random.Random(seed)
    half = count // 2
    return rng.sample(names, min(half, len(names))) + rng.sample(docs, min(count - half, len(docs)))


async def synthetic_vectors(texts: Sequence[str]) -> list[list[float]]:
    """576 pseudo-random numbers per text, seeded by the text: no model, no waiting."""
    vectors = []
    for text in texts:
        rng = random.Random(hashlib.sha1(text.encode()).digest())
        vectors.append([rng.gauss(0.0, 1.0) for _ in range(576)])
    return vectors


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run_condition(
    name: str,
    workspace: Path,
    store_dir: Path,
    queries: list[Query],
    embedding: EmbeddingSource | None,
) -> dict[str, float | int | str]:
    store = IndexStore(store_dir / f"{name}.sqlite3")
    index = SemanticIndex([workspace], IgnoreRules([workspace]), store, IndexOptions())
    phases: dict[str, float] = {}

    def progress(message: str, percent: int | None) -> None:
        if message.startswith("Embedding") and "embed_start" not in phases:
            phases["embed_start"] = time.perf_counter()
        if percent is not None and percent > 0:
            print(f"\r  {name}: {message}   ", end="", file=sys.stderr, flush=True)

    started = time.perf_counter()
    report = await index.build(embedding, progress)
    build = time.perf_counter() - started
    print(file=sys.stderr)
    embed_seconds = time.perf_counter() - phases["embed_start"] if "embed_start" in phases else 0
    started = time.perf_counter()
    await index.build(embedding)
    rebuild = time.perf_counter() - started

    latencies: list[float] = []
    hits = found = 0
    for query in queries:
        started = time.perf_counter()
        results = await index.search(query.text, 5, embedding)
        latencies.append((time.perf_counter() - started) * 1000)
        if query.path is not None:
            hits += 1
            found += any(
                index.relative(r.path) == query.path and r.start <= (query.line or 0) <= r.end
                for r in results
            )
    index.close()
    return {
        "condition": name,
        "files": report.files,
        "chunks": report.chunks,
        "vectors": report.embedded,
        "build_s": round(build, 2),
        "chunks_per_s": round(report.chunks / build, 1) if build else 0,
        "embed_chunks_per_s": round(report.embedded / embed_seconds, 2) if embed_seconds else 0,
        "rebuild_s": round(rebuild, 3),
        "query_p50_ms": round(statistics.median(latencies), 2),
        "query_p95_ms": round(percentile(latencies, 0.95), 2),
        "hit_at_5": f"{found}/{hits}",
        "keyword_only": report.keyword_only or "",
    }


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--limit-files", type=int, default=None)
    parser.add_argument("--no-embed", action="store_true", help="the keyword condition only")
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0, help="engine threads (0: all cores)")
    parser.add_argument("--synthetic", action="store_true", help="add the synthetic condition")
    parser.add_argument(
        "--vector-weight",
        type=float,
        default=EMBEDDED_VECTOR_WEIGHT,
        help="weight of the embedded engine's vector ranking in the fusion (the server's)",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="keep the corpus and stores here: a second run re-embeds nothing (its build "
        "figures are then those of an up-to-date index)",
    )
    args = parser.parse_args()

    root, files = stdlib_files(args.limit_files)
    results = []
    with tempfile.TemporaryDirectory(prefix="aigents-index-bench-") as tmp:
        base = args.keep or Path(tmp)
        workspace, stores = base / "stdlib", base / "stores"
        stores.mkdir(parents=True, exist_ok=True)
        if not workspace.exists():
            copy_corpus(root, files, workspace)
        queries = make_queries(workspace, args.queries, args.seed)
        print(f"corpus: {len(files)} files from {root}; {len(queries)} queries", file=sys.stderr)
        results.append(await run_condition("keyword", workspace, stores, queries, None))
        if args.synthetic:
            source = EmbeddingSource("synthetic", synthetic_vectors)
            results.append(await run_condition("synthetic", workspace, stores, queries, source))
        if not args.no_embed:
            if not embedded_available():
                print("the embedded engine is not installed: keyword only", file=sys.stderr)
            else:
                provider = EmbeddedProvider(threads=args.threads)
                try:
                    started = time.perf_counter()
                    await provider.embed(["warm up"])
                    print(f"engine start: {time.perf_counter() - started:.1f} s", file=sys.stderr)
                    model = f"embedded:{SMOLLM2.alias}"
                    source = EmbeddingSource(model, provider.embed, args.vector_weight)
                    results.append(
                        await run_condition("embedded", workspace, stores, queries, source)
                    )
                finally:
                    await provider.aclose()
    keys = list(results[0])
    print(" | ".join(keys))
    for row in results:
        print(" | ".join(str(row[key]) for key in keys))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
