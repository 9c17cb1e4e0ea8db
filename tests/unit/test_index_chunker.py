"""Chunking at function and class boundaries: Python by ast, other languages by heuristic."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from aigents_lsp.index.chunker import Chunk, chunk_text, symbol_of

PYTHON = '''"""A module."""
import os
import sys

LIMIT = 3


@cache
def load(path):
    """Load it."""
    return open(path).read()


class Store:
    """Keeps things."""

    size = 0

    def put(self, key, value):
        self.size += 1

    # Removing is rare.
    def drop(self, key):
        self.size -= 1


def broken_later():
    pass
'''


def spans(chunks: list[Chunk]) -> list[tuple[int, int, str]]:
    return [(c.start, c.end, c.symbol) for c in chunks]


def test_python_is_cut_at_top_level_definitions_with_their_decorators() -> None:
    assert spans(chunk_text(PYTHON, "py")) == [
        (0, 4, ""),  # docstring, imports, constant: one chunk
        (7, 10, "load"),  # the decorator belongs to the function
        (13, 23, "Store"),
        (26, 27, "broken_later"),
    ]


def test_a_class_too_long_for_one_chunk_is_cut_into_its_methods() -> None:
    chunks = chunk_text(PYTHON, "py", max_lines=8)
    assert spans(chunks)[2:5] == [
        (13, 16, "Store"),  # the class line, docstring and attributes
        (18, 19, "Store.put"),
        (21, 23, "Store.drop"),  # with the comment above it
    ]
    assert chunks[4].text.startswith("    # Removing is rare.")


def test_broken_python_falls_back_to_the_heuristic() -> None:
    text = "def ok():\n    return 1\n\ndef broken(:\n    pass\n"
    assert spans(chunk_text(text, "py")) == [(0, 1, "ok"), (3, 4, "broken")]


def test_brace_languages_are_cut_at_top_level_blocks() -> None:
    text = (
        'import x from "y";\n'
        'import z from "w";\n'
        "\n"
        "export function parseConfig(path: string) {\n"
        "  const a = 1;\n"
        "\n"
        "  return a;\n"
        "}\n"
        "class Foo {\n"
        "  bar() { return 1; }\n"
        "}\n"
        "const handler = async (req) => {\n"
        "  return req;\n"
        "};\n"
    )
    assert spans(chunk_text(text, "ts")) == [
        (0, 1, ""),
        (3, 7, "parseConfig"),  # a blank line inside a block does not cut it
        (8, 10, "Foo"),
        (11, 13, "handler"),
    ]


def test_go_rust_and_markdown() -> None:
    go = "package main\n\nfunc main() {\n\tfmt.Println(1)\n}\n\nfunc (s *S) Run() error {\n}\n"
    assert [c.symbol for c in chunk_text(go, "go")] == ["main", "main", "Run"]
    rust = "pub fn add(a: i32) -> i32 {\n    a\n}\n\nimpl Foo {\n    fn x() {}\n}\n"
    assert [c.symbol for c in chunk_text(rust, "rs")] == ["add", "Foo"]
    markdown = "# Title\nintro\n\n## Install\npip install x\n```\n# not a heading\n```\n"
    assert spans(chunk_text(markdown, "md")) == [(0, 1, "Title"), (3, 7, "Install")]


def test_long_blocks_are_split_within_the_limits_at_blank_lines() -> None:
    body = "\n".join(f"    x{i} = {i}" + ("\n" if i % 10 == 9 else "") for i in range(100))
    text = f"def big():\n{body}\n"
    chunks = chunk_text(text, "py", max_lines=30, max_chars=100_000)
    assert all(c.end - c.start + 1 <= 30 for c in chunks)
    assert all(c.symbol == "big" for c in chunks)
    lines = text.splitlines()
    assert all(not lines[c.end + 1].strip() for c in chunks[:-1])  # cut at blank lines
    wide = chunk_text("x = '" + "a" * 10_000 + "'\n" + "y = 1\n" * 5, "py", max_chars=500)
    assert all(len(c.text) <= 500 for c in wide)


def test_empty_and_blank_files_have_no_chunks() -> None:
    assert chunk_text("", "py") == [] and chunk_text("\n\n   \n", "ts") == []


def test_symbols_of_declarations() -> None:
    assert symbol_of("export default async function handler(req) {") == "handler"
    assert symbol_of("pub(crate) struct Config {") == "Config"
    assert symbol_of("export const load = async () => {") == "load"
    assert symbol_of("    return x") == ""


@given(
    st.lists(st.sampled_from(["def f():", "    x = 1", "", "}", "class A {", "  y;"]), max_size=60)
)
def test_chunks_are_ordered_disjoint_and_cover_every_code_line(lines: list[str]) -> None:
    text = "\n".join(lines)
    for language in ("py", "js"):
        chunks = chunk_text(text, language, max_lines=7)
        covered = [n for c in chunks for n in range(c.start, c.end + 1)]
        assert covered == sorted(set(covered))
        code = [n for n, line in enumerate(text.splitlines()) if line.strip()]
        assert set(code) <= set(covered)
        assert all(c.text == "\n".join(text.splitlines()[c.start : c.end + 1]) for c in chunks)
