"""Assist results as LSP workspace edits: minimal line edits (versioned, annotated for
confirmation where the client supports it) and new or extended test files.

The model writes for seconds while the user may type. An edit's line numbers are those of the
document as the request saw it (`EditTarget`); at delivery they are moved onto the document as
it is now, or refused with `DocumentChanged` when the lines they touch changed. The edit carries
the version its ranges were computed on, so an editor that changed the document since rejects
it instead of applying it to shifted lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lsprotocol import types

from aigents_lsp.lsp.documents import LineDocument, units_of

if TYPE_CHECKING:
    from aigents_lsp.assist.edits import LineEdit
    from aigents_lsp.assist.tasks import AssistRequest
    from aigents_lsp.lsp.server import AigentsServer


class DocumentChanged(Exception):
    """The lines an edit was computed from changed while the model wrote: nothing applied."""


@dataclass(frozen=True)
class EditTarget:
    """The document as a request saw it: its version, its lines (endings kept) and the
    selected lines [first, last] the model was given."""

    document: LineDocument
    version: int | None
    lines: tuple[str, ...]
    first: int
    last: int

    @classmethod
    def of(cls, document: LineDocument, first: int, last: int) -> EditTarget:
        return cls(document, document.version, tuple(document.lines), first, last)

    def current_edits(self, edits: list[LineEdit]) -> list[LineEdit]:
        """`edits` in the line numbers of the document as it is now (moved when the user
        typed elsewhere); `DocumentChanged` when the selection itself changed."""
        from aigents_lsp.assist.edits import rebase_line_edits

        document = self.document
        if document.version == self.version:
            return edits
        start = min([self.first, *(e.start for e in edits)])
        end = max([self.last + 1, *(e.end for e in edits)])
        moved = rebase_line_edits(
            self.lines, document.lines, (start, min(end, len(self.lines))), edits
        )
        if moved is None:
            raise DocumentChanged(
                f"{Path(document.path).name} changed in lines {start + 1}–{end} while the model "
                "was writing: nothing was applied (run the command again)"
            )
        return moved


def line_edits_to_workspace_edit(
    ls: AigentsServer, target: EditTarget, edits: list[LineEdit], model: str | None
) -> types.WorkspaceEdit:
    """Minimal line edits as a `WorkspaceEdit` on the document as it is now (moved there, or
    `DocumentChanged`), versioned, with a change annotation asking for confirmation where the
    client supports it."""
    document = target.document
    edits = target.current_edits(edits)
    workspace = ls.client_capabilities.workspace
    caps = workspace.workspace_edit if workspace else None
    annotate = bool(caps and caps.change_annotation_support)
    text_edits: list[types.TextEdit | types.AnnotatedTextEdit] = []
    for edit in edits:
        rng, new_text = _line_edit_range(document, edit)
        if annotate:
            text_edits.append(
                types.AnnotatedTextEdit(range=rng, new_text=new_text, annotation_id="aigents")
            )
        else:
            text_edits.append(types.TextEdit(range=rng, new_text=new_text))
    if not (caps and caps.document_changes):
        plain = [types.TextEdit(range=e.range, new_text=e.new_text) for e in text_edits]
        return types.WorkspaceEdit(changes={document.uri: plain})
    annotations = None
    if annotate:
        annotations = {
            "aigents": types.ChangeAnnotation(
                label=f"AI edit ({model or 'model'})",
                needs_confirmation=True,
                description="Proposed by aigents-lsp",
            )
        }
    identifier = types.OptionalVersionedTextDocumentIdentifier(
        uri=document.uri, version=document.version
    )
    return types.WorkspaceEdit(
        document_changes=[types.TextDocumentEdit(text_document=identifier, edits=text_edits)],
        change_annotations=annotations,
    )


def _line_edit_range(document: LineDocument, edit: LineEdit) -> tuple[types.Range, str]:
    """Document lines [start, end) replaced by `edit.lines`, as a range and a text, in the
    document's line ending; the last line may lack a newline."""
    lines = document.lines
    ending = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    start = types.Position(line=edit.start, character=0)
    if edit.end < len(lines) or not lines or lines[-1].endswith(("\n", "\r")):
        end = types.Position(line=edit.end, character=0)
        return types.Range(start=start, end=end), "".join(x + ending for x in edit.lines)
    # The edit reaches the last line, which has no newline: keep it that way.
    last = len(lines) - 1
    end = document.to_client(last, len(lines[last]))
    text = ending.join(edit.lines)
    if edit.start > last:  # appending after the last line
        start = end
        text = ending + text
    return types.Range(start=start, end=end), text


def tests_edit(
    ls: AigentsServer, request: AssistRequest, code: str
) -> tuple[types.WorkspaceEdit, str]:
    """Create the test file with the tests, or append them to the existing one: at its end as
    it is now (open in the editor: that version; else on disk), in the client's position units."""
    root = ls.workspace_roots[0] if ls.workspace_roots else Path.cwd()
    target = root / (request.test_path or "test_generated.py")
    uri = target.as_uri()
    text = code.rstrip("\n") + "\n"
    existing: str | None = None
    version: int | None = None
    open_doc = ls.workspace.text_documents.get(uri)
    if open_doc is not None:
        existing, version = open_doc.source, open_doc.version
    elif target.is_file():
        # Read for the end position only: this text is not sent anywhere.
        existing = target.read_text(encoding="utf-8", errors="replace")
    if existing is not None:
        line = existing.count("\n")
        last_line = existing.rsplit("\n", 1)[-1]
        column = units_of(last_line, ls.workspace.position_encoding)
        at = types.Position(line=line, character=column)
        prefix = "" if existing.endswith("\n") or not existing else "\n"
        insert = types.TextEdit(range=types.Range(start=at, end=at), new_text=prefix + "\n" + text)
        return types.WorkspaceEdit(
            document_changes=[
                types.TextDocumentEdit(
                    text_document=types.OptionalVersionedTextDocumentIdentifier(
                        uri=uri, version=version
                    ),
                    edits=[insert],
                )
            ]
        ), str(target)
    start = types.Position(line=0, character=0)
    return types.WorkspaceEdit(
        document_changes=[
            types.CreateFile(uri=uri, options=types.CreateFileOptions(ignore_if_exists=True)),
            types.TextDocumentEdit(
                text_document=types.OptionalVersionedTextDocumentIdentifier(uri=uri),
                edits=[types.TextEdit(range=types.Range(start=start, end=start), new_text=text)],
            ),
        ]
    ), str(target)
