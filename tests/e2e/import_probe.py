"""Runs `aigents-lsp` (as `python -m aigents_lsp` does) and, when the first response goes out on
stdout (the `initialize` answer), writes the names of every module imported so far as JSON to
the file named by $AIGENTS_IMPORT_PROBE. Used by test_startup_imports.py."""

from __future__ import annotations

import io
import json
import os
import sys

OUT = os.environ["AIGENTS_IMPORT_PROBE"]


class RecordingStdout(io.RawIOBase):
    """stdout that notes `sys.modules` just before the first response is written."""

    def __init__(self) -> None:
        self.raw = io.FileIO(sys.stdout.fileno(), "w", closefd=False)
        self.recorded = False

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        if not self.recorded and b'"result"' in bytes(data):
            self.recorded = True
            with open(OUT, "w", encoding="utf-8") as out:
                json.dump(sorted(sys.modules), out)
        return self.raw.write(data)


sys.stdout = io.TextIOWrapper(io.BufferedWriter(RecordingStdout()), write_through=True)

from aigents_lsp.cli import main  # noqa: E402 - after stdout is replaced, as the server starts

raise SystemExit(main([]))
