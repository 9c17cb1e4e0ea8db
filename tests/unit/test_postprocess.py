"""Post-processing rules: golden cases (raw model output -> what the editor shows) + streaming."""

from __future__ import annotations

import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aigents_lsp.completion.families import TEMPLATES
from aigents_lsp.completion.mode import cursor_indent, should_stop
from aigents_lsp.completion.postprocess import RULES, CursorContext, postprocess

CURSOR = "█"
GOLDEN_FILE = Path(__file__).parent / "golden" / "postprocess.toml"
CASES: list[dict[str, Any]] = tomllib.loads(GOLDEN_FILE.read_text("utf-8"))["case"]
RULES_BY_NAME = {rule.__name__: rule for rule in RULES}


def _apply(case: dict[str, Any]) -> str | None:
    document: str = case["document"]
    assert document.count(CURSOR) == 1, "a golden document has exactly one cursor"
    prefix, _, suffix = document.partition(CURSOR)
    tokens = TEMPLATES[case["tokens"]].tokens if "tokens" in case else ()
    options: dict[str, Any] = {
        "multiline": case.get("multiline", False),
        "indent_unit": case.get("indent_unit", "    "),
        "max_lines": case.get("max_lines", 12),
        "language_id": case.get("language_id", ""),
    }
    if case["rule"] == "postprocess":
        return postprocess(case["suggestion"], prefix, suffix, tokens=tokens, **options)
    context = CursorContext(prefix, suffix, tokens=tokens, **options)
    return RULES_BY_NAME[case["rule"]](case["suggestion"], context)


@pytest.mark.parametrize("case", CASES, ids=[f"{c['rule']}: {c['name']}" for c in CASES])
def test_golden(case: dict[str, Any]) -> None:
    expected = None if case.get("drop") else case["expected"]
    assert _apply(case) == expected


def test_golden_cases_are_well_formed() -> None:
    for case in CASES:
        assert case["rule"] in RULES_BY_NAME or case["rule"] == "postprocess", case["name"]
        assert ("expected" in case) != bool(case.get("drop")), case["name"]


def test_every_rule_has_three_cases_including_one_it_leaves_alone() -> None:
    counts = Counter(case["rule"] for case in CASES)
    untouched = {c["rule"] for c in CASES if c.get("expected") == c["suggestion"]}
    for rule in [*RULES_BY_NAME, "postprocess"]:
        assert counts[rule] >= 3, rule
        assert rule in untouched, rule


def test_rules_are_idempotent_on_their_own_output() -> None:
    for case in CASES:
        first = _apply(case)
        if first is None or case["rule"] == "reindent_relative":
            continue
        assert _apply({**case, "suggestion": first}) == first, case["name"]


def test_pipeline_order_is_documented() -> None:
    assert [rule.__name__ for rule in RULES][:2] == ["strip_special_tokens", "strip_code_fences"]
    assert RULES[-1].__name__ == "reject_junk"
    assert all(rule.__doc__ for rule in RULES)


# --- streaming early stop ----------------------------------------------------------------


def test_single_line_stream_stops_at_the_first_newline() -> None:
    assert not should_stop("foo(1, ", multiline=False, start_indent=4, max_lines=12)
    assert should_stop("foo(1, 2)\n", multiline=False, start_indent=4, max_lines=12)


def test_multiline_stream_stops_at_a_complete_dedented_line() -> None:
    body = "return 1\n"
    assert not should_stop(body, multiline=True, start_indent=4, max_lines=12)
    # The dedented line is read to its end: postprocess may keep a closing line.
    assert not should_stop(body + "}", multiline=True, start_indent=4, max_lines=12)
    assert should_stop(body + "}\n", multiline=True, start_indent=4, max_lines=12)


def test_multiline_stream_stops_at_a_blank_line_after_code() -> None:
    assert not should_stop("\n\n    x = 1\n", multiline=True, start_indent=4, max_lines=12)
    assert should_stop("x = 1\n\n", multiline=True, start_indent=4, max_lines=12)


def test_multiline_stream_keeps_going_inside_the_block() -> None:
    text = "if x:\n        y()\n    z()\n"
    assert not should_stop(text, multiline=True, start_indent=4, max_lines=12)


def test_multiline_stream_stops_at_max_lines() -> None:
    assert not should_stop("a\nb\n", multiline=True, start_indent=0, max_lines=3)
    assert should_stop("a\nb\nc\n", multiline=True, start_indent=0, max_lines=3)


def test_multiline_stream_at_column_0_uses_the_first_lines_indentation() -> None:
    text = "    return 1\ndef g():\n"
    assert should_stop(text, multiline=True, start_indent=0, max_lines=12)


def test_cursor_indent_counts_tabs_as_four_columns() -> None:
    assert cursor_indent("def f():\n    ") == 4
    assert cursor_indent("class A:\n\tdef f(self):\n\t\t") == 8
    assert cursor_indent("    x = foo(") == 4
    assert cursor_indent("") == 0


def test_stream_stop_agrees_with_postprocess_on_the_dedent() -> None:
    prefix, suffix = "def f():\n    ", "\n"
    raw = "a = 1\n    return a\n\nprint(f())\n"
    stopped = ""
    for char in raw:
        stopped += char
        if should_stop(stopped, multiline=True, start_indent=cursor_indent(prefix), max_lines=12):
            break
    shown = postprocess(stopped, prefix, suffix, multiline=True, indent_unit="    ")
    assert shown == postprocess(raw, prefix, suffix, multiline=True, indent_unit="    ")
    assert shown == "a = 1\n    return a"


# --- properties over arbitrary output ----------------------------------------------------

CODE_CHARS = st.sampled_from([*"ab1 \t\n()[]{}\"'`#/:;,=.", "<think>", "```", "<EOT>"])
CODE = st.lists(CODE_CHARS, max_size=40).map("".join)


@given(text=CODE, prefix=CODE, suffix=CODE, multiline=st.booleans(), tabs=st.booleans())
@settings(max_examples=400, deadline=None)
def test_postprocess_never_fails_and_shows_clean_text(
    text: str, prefix: str, suffix: str, multiline: bool, tabs: bool
) -> None:
    shown = postprocess(
        text, prefix, suffix, multiline=multiline, indent_unit="\t" if tabs else "    ",
        max_lines=5, tokens=("<EOT>",),
    )  # fmt: skip
    if shown is None:
        return
    assert shown.strip()
    assert shown == shown.rstrip()
    assert "<EOT>" not in shown
    assert shown.count("\n") < (5 if multiline else 1)


def test_string_prefixes_open_strings() -> None:
    """f'…', r'…', b'…' are strings: their closing quote is kept (found by benchmarks/quality)."""
    for prefix, raw in [
        ("    return f'typing.Opti", "onal[{x}]'"),
        ("    name = r'\\d", "+'"),
        ("    s = f'{a}", " and {b}'"),
    ]:
        shown = postprocess(
            raw, prefix, "\n", multiline=False, indent_unit="    ", language_id="python"
        )
        assert shown == raw
