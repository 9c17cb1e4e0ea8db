"""Keyword search: BM25 over identifiers and words, split the way code names things.

`parseConfigFile` and `parse_config_file` both give `parse`, `config`, `file` and the whole
lower-cased name, so a query in words finds a name in code and the exact name ranks first.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]+")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_MAX_TOKEN = 64
STOPWORDS = frozenset(
    """a an and are as at be by for from has have how i if in into is it its of on or that the
    their then there these this to was what when where which who why will with""".split()
)
K1 = 1.2
B = 0.75


def tokens(text: str) -> list[str]:
    """Search terms of a text: each identifier lower-cased, plus its snake/camel parts."""
    found: list[str] = []
    for word in _WORD.findall(text):
        if len(word) > _MAX_TOKEN:
            continue
        lower = word.lower()
        parts = [p.lower() for piece in word.split("_") for p in _CAMEL.findall(piece)]
        if lower not in STOPWORDS and len(lower) > 1:
            found.append(lower)
        if len(parts) > 1:
            found.extend(p for p in parts if len(p) > 1 and p not in STOPWORDS and p != lower)
    return found


def term_counts(*texts: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(tokens(text))
    return counts


def encode_terms(counts: Counter[str]) -> str:
    """Term counts as stored: `term:count` separated by spaces."""
    return " ".join(f"{term}:{count}" for term, count in counts.items())


def decode_terms(stored: str) -> dict[str, int]:
    decoded: dict[str, int] = {}
    for item in stored.split():
        term, _, count = item.rpartition(":")
        if term:
            decoded[term] = int(count or 1)
    return decoded


class KeywordIndex:
    """An in-memory inverted index with BM25 ranking; documents are chunk ids."""

    def __init__(self) -> None:
        self._postings: dict[str, dict[int, int]] = {}
        self._lengths: dict[int, int] = {}
        self._total_length = 0

    def __len__(self) -> int:
        return len(self._lengths)

    def add(self, doc: int, counts: dict[str, int]) -> None:
        self.remove(doc)
        for term, count in counts.items():
            self._postings.setdefault(term, {})[doc] = count
        length = sum(counts.values())
        self._lengths[doc] = length
        self._total_length += length

    def remove(self, doc: int, counts: Iterable[str] | None = None) -> None:
        """Forget a document (`counts`: its terms, when known, spares a full scan)."""
        length = self._lengths.pop(doc, None)
        if length is None:
            return
        self._total_length -= length
        for term in list(counts) if counts is not None else list(self._postings):
            posting = self._postings.get(term)
            if posting is not None and posting.pop(doc, None) is not None and not posting:
                del self._postings[term]

    def search(self, query: str, limit: int) -> list[tuple[int, float]]:
        """The best documents for the query's terms, best first, with their BM25 scores."""
        terms = list(dict.fromkeys(tokens(query)))
        count = len(self._lengths)
        if not terms or not count:
            return []
        average = self._total_length / count or 1.0
        scores: dict[int, float] = {}
        for term in terms:
            posting = self._postings.get(term)
            if not posting:
                continue
            idf = math.log(1 + (count - len(posting) + 0.5) / (len(posting) + 0.5))
            for doc, frequency in posting.items():
                norm = K1 * (1 - B + B * self._lengths[doc] / average)
                scores[doc] = scores.get(doc, 0.0) + idf * frequency * (K1 + 1) / (frequency + norm)
        ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
        return ranked[:limit]
