"""Suggestion cache: exact-context hits and type-through.

An entry remembers the context a suggestion was made for. A later request hits it when
- its context is the same (exact hit), or
- the user has since typed the first characters of the suggestion: the rest is served with no
  backend call (type-through).
Keys use the tail of the prefix and the head of the suffix: nearer text decides the suggestion,
and bounded keys keep lookups independent of the file size.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

PREFIX_KEY_CHARS = 400
SUFFIX_KEY_CHARS = 120


@dataclass(frozen=True)
class CacheKey:
    model: str
    template: str
    prefix_tail: str
    suffix_head: str

    @classmethod
    def of(cls, model: str | None, template: str, prefix: str, suffix: str) -> CacheKey:
        return cls(model or "", template, prefix[-PREFIX_KEY_CHARS:], suffix[:SUFFIX_KEY_CHARS])


@dataclass(frozen=True)
class CacheHit:
    text: str
    typed: str  # what the user typed since the suggestion was made ("" for an exact hit)


class SuggestionCache:
    """An LRU of suggestions, plus a short list of recent ones per document for type-through."""

    def __init__(self, capacity: int = 512, recent_per_document: int = 8) -> None:
        self._entries: OrderedDict[CacheKey, str] = OrderedDict()
        self._recent: dict[str, list[tuple[CacheKey, str]]] = {}
        self._capacity = capacity
        self._recent_per_document = recent_per_document

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, uri: str, key: CacheKey, text: str) -> None:
        self._entries[key] = text
        self._entries.move_to_end(key)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)
        recent = self._recent.setdefault(uri, [])
        recent.insert(0, (key, text))
        del recent[self._recent_per_document :]

    def get(self, uri: str, key: CacheKey) -> CacheHit | None:
        text = self._entries.get(key)
        if text is not None:
            self._entries.move_to_end(key)
            return CacheHit(text, "")
        return self._type_through(uri, key)

    def _type_through(self, uri: str, key: CacheKey) -> CacheHit | None:
        for old, text in self._recent.get(uri, ()):
            if (old.model, old.template, old.suffix_head) != (
                key.model,
                key.template,
                key.suffix_head,
            ):
                continue
            # The current prefix must be the old prefix followed by the start of `text`.
            for typed_len in range(1, len(text)):
                typed = text[:typed_len]
                kept = old.prefix_tail[-(PREFIX_KEY_CHARS - typed_len) :]
                if key.prefix_tail.endswith(typed) and key.prefix_tail.endswith(kept + typed):
                    return CacheHit(text[typed_len:], typed)
        return None

    def forget(self, uri: str) -> None:
        self._recent.pop(uri, None)
