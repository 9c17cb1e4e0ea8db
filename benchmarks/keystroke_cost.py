"""Cost of one keystroke vs file size: `didChange` + completion scheduling, in process.

    python benchmarks/keystroke_cost.py

For 1k, 10k and 100k lines: apply a one-character incremental change in the middle of the
file and build the completion request at the cursor (what the server does for each keystroke
before any debounce), with our `LineDocument` and, for comparison, pygls' `TextDocument`.
Prints the median and p95 per keystroke in milliseconds.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from lsprotocol import types
from pygls.workspace import TextDocument
from pygls.workspace.position_codec import PositionCodec

from aigents_lsp.completion.engine import CompletionEngine
from aigents_lsp.completion.mode import decide_mode
from aigents_lsp.config import Settings
from aigents_lsp.lsp.documents import LineDocument

LINE = "    value = compute(alpha, beta) + offset  # a typical line of code\n"


def _keystrokes(make: Callable[[str], TextDocument], lines: int, count: int) -> list[float]:
    document = make(LINE * lines)
    engine = CompletionEngine(Settings)
    row, column = lines // 2, 4
    costs = []
    for i in range(count):
        started = time.perf_counter()
        position = types.Position(line=row, character=column + i)
        document.apply_change(
            types.TextDocumentContentChangePartial(
                range=types.Range(start=position, end=position), text="x"
            )
        )
        engine.note_keystroke(document.uri)
        if isinstance(document, LineDocument):
            line, col = document.to_server(types.Position(line=row, character=column + i + 1))
            prefix, suffix = document.window(line, col, 24_000, 8_000)
        else:
            offset = document.offset_at_position(types.Position(line=row, character=column + i + 1))
            prefix, suffix = document.source[:offset], document.source[offset:]
        decide_mode(prefix, suffix, invoked=False)
        costs.append((time.perf_counter() - started) * 1000)
    return costs


def main() -> int:
    codec = PositionCodec(encoding=types.PositionEncodingKind.Utf16)
    kinds: dict[str, Callable[[str], TextDocument]] = {
        "LineDocument (ours)": lambda text: LineDocument(
            "file:///b.py", source=text, version=1, position_codec=codec
        ),
        "pygls TextDocument": lambda text: TextDocument(
            "file:///b.py", source=text, version=1, position_codec=codec
        ),
    }
    print(f"{'document':22s} {'lines':>7s} {'median ms':>10s} {'p95 ms':>8s}")
    for name, make in kinds.items():
        for lines in (1_000, 10_000, 100_000):
            count = 200 if lines < 100_000 or name.startswith("Line") else 20
            costs = sorted(_keystrokes(make, lines, count))
            p95 = costs[int(0.95 * (len(costs) - 1))]
            print(f"{name:22s} {lines:7d} {statistics.median(costs):10.3f} {p95:8.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
