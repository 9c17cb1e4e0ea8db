"""Hybrid ranking: keyword (BM25) and vector (cosine) rankings fused by reciprocal rank.

Reciprocal rank fusion (Cormack et al., 2009) needs no score calibration between the two
rankings: a chunk's fused score is the sum over rankings of `weight / (k + rank)`. A chunk both
rankings like beats one only a single ranking likes, which keeps a weak embedding model (the
embedded engine's) from burying exact name matches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aigents_lsp.index.keyword import tokens

RRF_K = 60


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One result: lines `start`..`end` (0-based, inclusive) of `path` (absolute, POSIX)."""

    path: str
    start: int
    end: int
    symbol: str
    score: float
    snippet: str
    line: int  # the line that matches best (0-based), for "path:line: text" listings
    sources: tuple[str, ...]  # "keyword", "vector"


def fuse(
    rankings: Sequence[tuple[str, float, Sequence[tuple[int, float]]]],
    limit: int,
    k: int = RRF_K,
) -> list[tuple[int, float, tuple[str, ...]]]:
    """`rankings`: (name, weight, [(doc, score), ...] best first) -> [(doc, fused, names)]."""
    fused: dict[int, float] = {}
    found_by: dict[int, list[str]] = {}
    for name, weight, ranking in rankings:
        for rank, (doc, _) in enumerate(ranking, 1):
            fused[doc] = fused.get(doc, 0.0) + weight / (k + rank)
            found_by.setdefault(doc, []).append(name)
    ordered = sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return [(doc, score, tuple(found_by[doc])) for doc, score in ordered]


def best_line(text: str, query: str) -> int:
    """The offset (in lines) of the chunk line sharing most terms with the query; the first
    non-blank line when none does."""
    wanted = set(tokens(query))
    lines = text.split("\n")
    best, best_count = None, 0
    for number, line in enumerate(lines):
        count = len(wanted.intersection(tokens(line))) if wanted else 0
        if count > best_count:
            best, best_count = number, count
    if best is not None:
        return best
    return next((n for n, line in enumerate(lines) if line.strip()), 0)


def snippet(text: str, offset: int, lines: int = 3, width: int = 160) -> str:
    """A few lines of the chunk from `offset`, each cut at `width` characters."""
    chosen = text.split("\n")[offset : offset + lines]
    return "\n".join(line if len(line) <= width else line[: width - 1] + "…" for line in chosen)
