"""LineDocument: incremental sync in every position encoding, windows, clamping."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lsprotocol import types
from pygls.workspace.position_codec import PositionCodec

from aigents_lsp.lsp.documents import LineDocument, column_from_units, split_lines, units_of

ENCODINGS = [
    types.PositionEncodingKind.Utf8,
    types.PositionEncodingKind.Utf16,
    types.PositionEncodingKind.Utf32,
]


def _doc(text: str, encoding: str = types.PositionEncodingKind.Utf16) -> LineDocument:
    return LineDocument(
        "file:///t.py", source=text, version=1, position_codec=PositionCodec(encoding=encoding)
    )


def _edit(doc: LineDocument, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
    doc.apply_change(
        types.TextDocumentContentChangePartial(
            range=types.Range(
                start=types.Position(line=start[0], character=start[1]),
                end=types.Position(line=end[0], character=end[1]),
            ),
            text=text,
        )
    )


def test_split_lines_only_on_lsp_line_breaks() -> None:
    assert split_lines("a\nb\r\nc\rd") == ["a\n", "b\r\n", "c\r", "d"]
    assert split_lines("a\x0cb\u2028c\n") == ["a\x0cb\u2028c\n"]
    assert split_lines("") == []


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_emoji_and_cjk_positions(encoding: str) -> None:
    line = "x = '😋漢字' + y"
    doc = _doc(line + "\n", encoding)
    column_of_plus = line.index("+")
    client = units_of(line[:column_of_plus], encoding)
    assert doc.to_server(types.Position(line=0, character=client)) == (0, column_of_plus)
    assert doc.to_client(0, column_of_plus) == types.Position(line=0, character=client)
    _edit(doc, (0, client), (0, client + 1), "-")
    assert doc.source == line.replace("+", "-") + "\n"


def test_position_inside_a_surrogate_pair_rounds_down() -> None:
    assert column_from_units("😋a", 1, types.PositionEncodingKind.Utf16) == 0
    assert column_from_units("😋a", 2, types.PositionEncodingKind.Utf16) == 1
    assert column_from_units("é", 1, types.PositionEncodingKind.Utf8) == 0


def test_absurd_positions_are_clamped() -> None:
    doc = _doc("abc\ndef")
    assert doc.to_server(types.Position(line=99, character=5)) == (1, 3)
    assert doc.to_server(types.Position(line=0, character=99)) == (0, 3)
    assert _doc("abc\n").to_server(types.Position(line=1, character=4)) == (1, 0)
    assert _doc("").to_server(types.Position(line=3, character=3)) == (0, 0)


def test_edits_across_lines_and_at_the_end() -> None:
    doc = _doc("one\ntwo\nthree\n")
    _edit(doc, (0, 1), (2, 2), "X")
    assert doc.source == "oXree\n"
    _edit(doc, (1, 0), (1, 0), "four\n")
    assert doc.source == "oXree\nfour\n"
    _edit(doc, (0, 0), (2, 0), "")
    assert doc.source == ""


def test_full_change_replaces_everything() -> None:
    doc = _doc("old\n")
    doc.apply_change(types.TextDocumentContentChangeWholeDocument(text="new\ntext"))
    assert doc.lines == ["new\n", "text"]


def test_window_reads_around_the_cursor_only() -> None:
    text = "".join(f"line {i}\n" for i in range(1000))
    doc = _doc(text)
    head, tail = doc.window(500, 4, before=30, after=20)
    offset = text.index("line 500") + 4
    assert head == text[offset - 30 : offset]
    assert tail == text[offset : offset + 20]


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from("ab\n😋漢 \r"), max_size=40),
    edits=st.lists(
        st.tuples(
            st.integers(0, 6),
            st.integers(0, 8),
            st.integers(0, 6),
            st.integers(0, 8),
            st.text(alphabet=st.sampled_from("xy\n😋"), max_size=4),
        ),
        max_size=6,
    ),
    encoding=st.sampled_from(ENCODINGS),
)
def test_incremental_sync_matches_a_simple_model(
    text: str, edits: list[tuple[int, int, int, int, str]], encoding: str
) -> None:
    """Apply random edits to a LineDocument and to a plain string model: same text."""
    doc = _doc(text, encoding)
    model = text
    for sl, sc, el, ec, new in edits:
        start = doc.to_server(types.Position(line=sl, character=sc))
        end = doc.to_server(types.Position(line=el, character=ec))
        if end < start:
            start, end = end, start
        lines = split_lines(model)

        def offset(pos: tuple[int, int], lines: list[str] = lines) -> int:
            return sum(len(x) for x in lines[: pos[0]]) + pos[1]

        model = model[: offset(start)] + new + model[offset(end) :]
        _edit(doc, (sl, sc), (el, ec), new)
        assert doc.source == model
