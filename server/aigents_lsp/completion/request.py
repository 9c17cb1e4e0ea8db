"""The completion engine's plain-data types: what is asked, who answers, what is shown.

A module of its own so that the engine, the prompt builder and the LSP layer share them
without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from aigents_lsp.providers.base import Provider


@dataclass(frozen=True)
class CompletionRequest:
    """Where the user is and what surrounds the cursor (text already sliced from the document)."""

    uri: str
    version: int
    prefix: str  # a window of the text before the cursor (not necessarily all of it)
    suffix: str  # a window of the text after the cursor
    line: int = 0  # the cursor, in code points
    column: int = 0
    language_id: str = ""
    invoked: bool = False
    file_path: str | None = None
    # Snippets of other files (path, text); never ignored/secret files. Given as a function:
    # only a request that reaches the backend gathers them, not every keystroke.
    related: Callable[[], tuple[tuple[str, str], ...]] | None = None


@dataclass(frozen=True)
class Target:
    """Who answers: the provider, the model and what is known of it."""

    provider: Provider
    model: str | None
    arch: str | None = None
    context_length: int | None = None
    chat_only: bool = False
    native_fim: bool = False  # the backend renders FIM itself (`Provider.stream_infill`)

    @property
    def key(self) -> str:
        """What the prompt speed and the tokenizer ratio are measured for."""
        return f"{self.provider.name}:{self.model}"


@dataclass(frozen=True)
class Suggestion:
    text: str
    model: str | None
    latency_ms: float
    multiline: bool
    source: Literal["backend", "cache", "stream"] = "backend"
