"""Open documents kept as lists of lines, so a keystroke costs the same in any file size.

pygls' `TextDocument` rebuilds the whole text on every change and re-splits it on every access
(23 ms per keystroke at 100k lines). `LineDocument` keeps the lines and changes only those an
edit touches; the full text is joined only when something asks for all of it.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote

from lsprotocol import types
from pygls.workspace import TextDocument, Workspace

log = logging.getLogger(__name__)


def split_lines(text: str) -> list[str]:
    """Lines with their endings kept (like `str.splitlines(True)` but only on \\n, \\r\\n, \\r)."""
    if not text:
        return []
    lines = text.splitlines(True)
    # splitlines also breaks on \v, \f, \x1c-\x1e, \x85, \u2028, \u2029: LSP does not.
    if any(line[-1:] not in ("\n", "\r") for line in lines[:-1]):
        merged: list[str] = []
        buffer = ""
        for line in lines:
            buffer += line
            if line.endswith(("\n", "\r")):
                merged.append(buffer)
                buffer = ""
        if buffer:
            merged.append(buffer)
        return merged
    return lines


def units_of(text: str, encoding: str | None) -> int:
    """Length of `text` in the client's position units."""
    if encoding == types.PositionEncodingKind.Utf32:
        return len(text)
    if encoding == types.PositionEncodingKind.Utf8:
        return len(text.encode("utf-8", "surrogatepass"))
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def column_from_units(text: str, units: int, encoding: str | None) -> int:
    """The code point column at `units` client units into `text`, clamped to the line; a
    position inside a character (a surrogate pair, a UTF-8 sequence) rounds down."""
    if units <= 0:
        return 0
    if encoding == types.PositionEncodingKind.Utf32 or text.isascii():
        return min(units, len(text))
    wide = 0 if encoding == types.PositionEncodingKind.Utf8 else 1
    used = 0
    for column, char in enumerate(text):
        code = ord(char)
        if wide:
            size = 2 if code > 0xFFFF else 1
        else:
            size = 1 if code < 0x80 else 2 if code < 0x800 else 3 if code < 0x10000 else 4
        if used + size > units:
            return column
        used += size
    return len(text)


class LineDocument(TextDocument):
    """A `TextDocument` whose truth is a list of lines (endings included)."""

    def __init__(self, uri: str, source: str | None = None, **kwargs: Any) -> None:
        super().__init__(uri, source=None, **kwargs)
        self._lines: list[str] = split_lines(source or "")
        self._joined: str | None = source or ""
        self.chars_changed = 0  # for the typing-speed heuristics of the completion engine

    # --- reading -----------------------------------------------------------------------------

    @property
    def lines(self) -> list[str]:
        return self._lines

    @property
    def source(self) -> str:
        if self._joined is None:
            self._joined = "".join(self._lines)
        return self._joined

    def line_count(self) -> int:
        return len(self._lines)

    def line_text(self, line: int) -> str:
        """The line without its ending ("" past the end)."""
        if 0 <= line < len(self._lines):
            return self._lines[line].rstrip("\r\n")
        return ""

    def to_server(self, position: types.Position) -> tuple[int, int]:
        """A client position (any encoding) as (line, code point column), clamped to the text."""
        if not self._lines:
            return 0, 0
        line = min(max(position.line, 0), len(self._lines))
        if line == len(self._lines):
            # Past the last line: the end of the document (or the empty line after a newline).
            last = self._lines[-1]
            if last.endswith(("\n", "\r")):
                return line, 0
            return line - 1, len(last)
        text = self.line_text(line)
        return line, column_from_units(text, position.character, self.position_codec.encoding)

    def to_client(self, line: int, column: int) -> types.Position:
        text = self.line_text(line)
        units = units_of(text[:column], self.position_codec.encoding)
        return types.Position(line=line, character=units)

    def window(self, line: int, column: int, before: int, after: int) -> tuple[str, str]:
        """Up to `before` characters before (line, column) and `after` characters after it,
        read from the lines around the cursor only."""
        current = self._lines[line] if line < len(self._lines) else ""
        head_parts = [current[:column]]
        size = column
        row = line - 1
        while row >= 0 and size < before:
            head_parts.append(self._lines[row])
            size += len(self._lines[row])
            row -= 1
        head = "".join(reversed(head_parts))[-before:]
        tail_parts = [current[column:]]
        size = len(current) - column
        row = line + 1
        while row < len(self._lines) and size < after:
            tail_parts.append(self._lines[row])
            size += len(self._lines[row])
            row += 1
        tail = "".join(tail_parts)[:after]
        return head, tail

    # --- changing ----------------------------------------------------------------------------

    def apply_change(self, change: types.TextDocumentContentChangeEvent) -> None:
        self._joined = None
        if isinstance(change, types.TextDocumentContentChangePartial):
            self._apply_partial(change)
        else:
            self._lines = split_lines(change.text)
            self._joined = change.text
        self.chars_changed += len(change.text)

    def _apply_partial(self, change: types.TextDocumentContentChangePartial) -> None:
        start_line, start_col = self.to_server(change.range.start)
        end_line, end_col = self.to_server(change.range.end)
        if (end_line, end_col) < (start_line, start_col):
            start_line, start_col, end_line, end_col = end_line, end_col, start_line, start_col
        lines = self._lines
        first = lines[start_line] if start_line < len(lines) else ""
        last = lines[end_line] if end_line < len(lines) else ""
        first_body = first.rstrip("\r\n")
        last_body = last.rstrip("\r\n")
        ending = last[len(last_body) :]
        replaced = first_body[:start_col] + change.text + last_body[end_col:] + ending
        # A lone \r next to a \n makes one line break: re-split across the seams.
        if start_line > 0 and replaced.startswith("\n") and lines[start_line - 1].endswith("\r"):
            start_line -= 1
            replaced = lines[start_line] + replaced
        after = end_line + 1
        if replaced.endswith("\r") and after < len(lines) and lines[after].startswith("\n"):
            replaced += lines[after]
            end_line = after
        lines[start_line : end_line + 1] = split_lines(replaced)


class LineWorkspace(Workspace):
    """pygls' workspace with `LineDocument`s, tolerant of confused clients."""

    @classmethod
    def replacing(cls, old: Workspace) -> LineWorkspace:
        workspace = cls(
            old.root_uri,
            old._sync_kind,
            list(old.folders.values()),
            old.position_encoding,
        )
        return workspace

    def _create_text_document(
        self,
        doc_uri: str,
        source: str | None = None,
        version: int | None = None,
        language_id: str | None = None,
    ) -> TextDocument:
        return LineDocument(
            doc_uri,
            source=source,
            version=version,
            language_id=language_id,
            sync_kind=self._sync_kind,
            position_codec=self.position_codec,
        )

    def update_text_document(
        self,
        text_doc: types.VersionedTextDocumentIdentifier,
        change: types.TextDocumentContentChangeEvent,
    ) -> None:
        document = self._text_documents.get(unquote(text_doc.uri))
        if document is None:
            log.warning("didChange for a document that is not open: %s (ignored)", text_doc.uri)
            return
        if document.version is not None and text_doc.version < document.version:
            log.warning(
                "didChange for %s goes back from version %s to %s: applied anyway",
                text_doc.uri,
                document.version,
                text_doc.version,
            )
        document.apply_change(change)
        document.version = text_doc.version
