"""Plain helpers shared by the engine tests."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ProgressLog:
    """What an engine reported through `on_progress`."""

    events: list[tuple[str, int | None]] = field(default_factory=list)

    def __call__(self, message: str, percent: int | None) -> None:
        self.events.append((message, percent))

    def count(self, prefix: str) -> int:
        return sum(1 for message, _ in self.events if message.startswith(prefix))


@dataclass
class PreparedModels:
    """The session's model files and how long preparing them took."""

    cache_dir: Path
    paths: dict[str, Path]
    cold_seconds: dict[str, float]


def process_alive(pid: int) -> bool:
    """Running and not a zombie (an orphan's zombie may wait a while for its reaper)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
