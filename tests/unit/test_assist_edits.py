"""Edits from model answers: code extraction, indentation repair, minimal line diffs, refusals."""

from __future__ import annotations

import pytest

from aigents_lsp.assist.answers import extract_code
from aigents_lsp.assist.edits import (
    EditRefused,
    LineEdit,
    apply_line_edits,
    line_edits,
    match_indentation,
    plan_edit,
    split_lines,
    unified_diff,
)

# --- extract_code: realistic answers -> the code -----------------------------------------------

EXTRACT_CASES: dict[str, tuple[str, str, str]] = {
    # name: (answer, language, expected code)
    "fenced with language": (
        "```python\ndef f(x):\n    return x + 1\n```",
        "python",
        "def f(x):\n    return x + 1",
    ),
    "fenced without language": (
        '```\nfn main() {\n    println!("hi");\n}\n```',
        "rust",
        'fn main() {\n    println!("hi");\n}',
    ),
    "prose around a fence": (
        "Here is the updated code:\n\n```ts\nconst x: number = 1;\n```\n\n"
        "This change adds a type annotation.",
        "typescript",
        "const x: number = 1;",
    ),
    "language block preferred over a longer shell block": (
        "```bash\npip install requests && python -m pytest -q --maxfail=1 tests/\n```\n"
        "```python\nimport requests\n```",
        "python",
        "import requests",
    ),
    "alias of the language matches": (
        "```sh\nls\n```\n```py\nx = 1\n```",
        "python",
        "x = 1",
    ),
    "longest of several untagged blocks": (
        "Before:\n```\nx=1\n```\nAfter:\n```\nx = 1\ny = 2\n```",
        "",
        "x = 1\ny = 2",
    ),
    "output block is not code": (
        "```python\nprint(sum([1, 2]))\n```\nOutput:\n```text\n3 3 3 3 3 3 3 3 3 3 3 3 3 3 3\n```",
        "",
        "print(sum([1, 2]))",
    ),
    "think block dropped": (
        "<think>The user wants ```js\nnope\n``` maybe.</think>\n```js\nlet a = 1;\n```",
        "javascript",
        "let a = 1;",
    ),
    "unterminated think dropped with the rest": (
        "```go\nx := 1\n```\n<think>hmm",
        "go",
        "x := 1",
    ),
    "indentation inside the block kept": (
        "```python\n    def m(self):\n        return 1\n```",
        "python",
        "    def m(self):\n        return 1",
    ),
    "unclosed fence (cut off answer)": (
        "```python\ndef f():\n    pass\n",
        "python",
        "def f():\n    pass",
    ),
    "nested fences in a docstring (markdown inside)": (
        '```python\ndef f():\n    """Use it:\n\n```python\nf()\n```\n    """\n```\nDone.',
        "python",
        'def f():\n    """Use it:\n\n```python\nf()\n```\n    """',
    ),
    "longer outer fence around inner backticks": (
        '````python\ns = """\n```\ncode\n```\n"""\n````',
        "python",
        's = """\n```\ncode\n```\n"""',
    ),
    "backticks inside a string are not a fence": (
        '```js\nconst md = "```js\\nx\\n```";\n```',
        "javascript",
        'const md = "```js\\nx\\n```";',
    ),
    "tilde fence": ("~~~python\nx = 1\n~~~", "python", "x = 1"),
    "indented fence (list item)": (
        "1. Replace it with:\n   ```python\n   if x:\n       y()\n   ```",
        "python",
        "if x:\n    y()",
    ),
    "info string with a path": ("```python:src/a.py\nx = 1\n```", "python", "x = 1"),
    "no fence: plain code": (
        "def f(x):\n    return x * 2\n",
        "python",
        "def f(x):\n    return x * 2",
    ),
    "no fence: opener and trailing explanation": (
        "Here's the simplified version:\n\nreturn [x for x in xs if x]\n\n"
        "This uses a list comprehension instead of the loop.",
        "python",
        "return [x for x in xs if x]",
    ),
    "no fence: markdown explanation heading": (
        "let y = x?;\n\n**Explanation:** the ? operator propagates the error.",
        "rust",
        "let y = x?;",
    ),
    "no fence: comments and blank lines stay": (
        "# helper\n\n\ndef g():\n    # This change is fine.\n    return 1",
        "python",
        "# helper\n\n\ndef g():\n    # This change is fine.\n    return 1",
    ),
    "no fence: a column-0 module docstring line is kept": (
        '"""Tools.\n\nThis module reads files.\n"""\nimport os',
        "python",
        '"""Tools.\n\nThis module reads files.\n"""\nimport os',
    ),
    "prose only is not code": (
        "The function already handles None; no change is needed.",
        "python",
        "",
    ),
    "prose with bullets is not code": (
        "The code looks correct.\n- It handles empty lists.\n- It returns early.",
        "python",
        "",
    ),
    "empty fence": ("```python\n```", "python", ""),
    "markdown file: prose is the content": (
        "This project does things.\n\nIt is fast.",
        "markdown",
        "This project does things.\n\nIt is fast.",
    ),
    "a usage example after the code is not the code": (
        "```python\nx=1\n```\n\nUsage:\n```python\nprint(x)\n```",
        "python",
        "x=1",
    ),
    "fence closed on the last code line": (
        "```python\ndef f():\n    return x```\nThis works.",
        "python",
        "def f():\n    return x",
    ),
    "no fence: trailing sentence right after the code": (
        "Okay, here is the fix:\nx = 1\nThis change sets x to one.",
        "python",
        "x = 1",
    ),
    "crlf answer": ("```c\r\nint x = 1;\r\n```\r\n", "c", "int x = 1;"),
}


@pytest.mark.parametrize("name", sorted(EXTRACT_CASES))
def test_extract_code(name: str) -> None:
    answer, language, expected = EXTRACT_CASES[name]
    assert extract_code(answer, language) == expected


# --- match_indentation -----------------------------------------------------------------------


def test_a_dedented_method_gets_its_class_indentation_back() -> None:
    original = "    def area(self):\n        return self.w * self.h\n"
    code = "def area(self) -> float:\n    return self.w * self.h"
    assert match_indentation(code, original) == (
        "    def area(self) -> float:\n        return self.w * self.h"
    )


def test_an_over_indented_answer_is_shifted_left() -> None:
    original = "x = 1\nif x:\n    y = 2"
    code = "        x = 1\n        if x:\n            y = 3"
    assert match_indentation(code, original) == "x = 1\nif x:\n    y = 3"


def test_spaces_become_tabs_in_a_tab_indented_file() -> None:
    original = "\tif err != nil {\n\t\treturn err\n\t}"
    code = 'if err != nil {\n    return fmt.Errorf("open: %w", err)\n}'
    assert match_indentation(code, original) == (
        '\tif err != nil {\n\t\treturn fmt.Errorf("open: %w", err)\n\t}'
    )


def test_tabs_become_spaces_of_the_files_indent_unit() -> None:
    original = "  if (a) {\n    b();\n  }"
    code = "if (a) {\n\tc();\n}"
    assert match_indentation(code, original) == "  if (a) {\n    c();\n  }"


def test_matching_indentation_is_left_alone() -> None:
    code = "    x = 1\n\n    y = 2  "
    assert match_indentation(code, "    a = 0\n") == code


def test_blank_inputs_are_returned_unchanged() -> None:
    assert match_indentation("x = 1", "\n\n") == "x = 1"
    assert match_indentation("", "    x") == ""


# --- line_edits --------------------------------------------------------------------------------

FIFTY = "\n".join(f"line {i}" for i in range(50)) + "\n"


def test_one_changed_line_in_fifty_is_one_edit_of_one_line() -> None:
    rewritten = FIFTY.replace("line 17\n", "line seventeen\n")
    assert line_edits(FIFTY, rewritten, 100) == [LineEdit(117, 118, ("line seventeen",))]


def test_a_pure_insertion_has_start_equal_to_end() -> None:
    rewritten = FIFTY.replace("line 3\n", "line 3\nnew a\nnew b\n")
    assert line_edits(FIFTY, rewritten, 0) == [LineEdit(4, 4, ("new a", "new b"))]


def test_a_deletion_has_no_lines() -> None:
    rewritten = FIFTY.replace("line 10\nline 11\n", "")
    assert line_edits(FIFTY, rewritten, 5) == [LineEdit(15, 17, ())]


def test_separate_changes_are_separate_edits_and_apply_back() -> None:
    rewritten = FIFTY.replace("line 1\n", "ONE\n").replace("line 40\n", "FORTY\nFORTY-B\n")
    edits = line_edits(FIFTY, rewritten, 0)
    assert edits == [LineEdit(1, 2, ("ONE",)), LineEdit(40, 41, ("FORTY", "FORTY-B"))]
    assert apply_line_edits(split_lines(FIFTY), edits) == split_lines(rewritten)


def test_line_endings_are_not_part_of_the_lines() -> None:
    assert line_edits("a\r\nb\r\n", "a\nc\n", 0) == [LineEdit(1, 2, ("c",))]
    assert split_lines("a\n") == split_lines("a") == ["a"]


def test_unified_diff_preview() -> None:
    diff = unified_diff("a\nb\n", "a\nc\n", "src/x.py")
    assert diff.startswith("--- a/src/x.py\n+++ b/src/x.py\n")
    assert "-b\n+c\n" in diff
    assert unified_diff("same", "same", "x") == ""


# --- plan_edit ---------------------------------------------------------------------------------

METHOD = (
    "    def total(self, items):\n"
    "        result = 0\n"
    "        for item in items:\n"
    "            result += item.price\n"
    "        return result\n"
)


def _apply(original: str, edits: list[LineEdit], first_line: int) -> str:
    lines = [""] * first_line + split_lines(original)
    return "\n".join(apply_line_edits(lines, edits)[first_line:])


def test_plan_edit_reindents_and_touches_only_changed_lines() -> None:
    answer = (
        "Sure! Here it is:\n```python\ndef total(self, items):\n"
        "    return sum(item.price for item in items)\n```\nThis is shorter."
    )
    edits = plan_edit(METHOD, answer, first_line=10, language="python")
    assert edits == [LineEdit(11, 15, ("        return sum(item.price for item in items)",))]


def test_plan_edit_keeps_blank_padding_and_the_missing_final_newline() -> None:
    original = "\nx = 1\ny = 2\n\n"
    edits = plan_edit(original, "```python\nx = 1\ny = 3\n\n\n```", first_line=0)
    assert edits == [LineEdit(2, 3, ("y = 3",))]
    assert _apply(original, edits, 0) == "\nx = 1\ny = 3\n"
    no_newline = "x = 1\ny = 2"
    edits = plan_edit(no_newline, "```\nx = 1\ny = 3\n```", first_line=3)
    assert edits == [LineEdit(4, 5, ("y = 3",))]


def test_trailing_whitespace_alone_is_no_change() -> None:
    with pytest.raises(EditRefused, match="no change proposed"):
        plan_edit("x = 1   \ny = 2\n", "```\nx = 1\ny = 2\n```", first_line=0)


def test_edits_stay_inside_the_range() -> None:
    original = "a\nb\nc\n"
    edits = plan_edit(original, "```\nz\na\nb\nc\nd\n```", first_line=7)
    assert all(7 <= edit.start <= edit.end <= 10 for edit in edits)
    assert edits == [LineEdit(7, 7, ("z",)), LineEdit(10, 10, ("d",))]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("", "empty rewrite"),
        ("<think>let me see</think>", "empty rewrite"),
        ("```python\n\n```", "empty rewrite"),
        ("I can't do that without more context.", "answered without code"),
        (f"```python\n{METHOD}```", "no change proposed"),
        (
            "```python\ndef total(self, items):\n    # ... rest of the code unchanged\n```",
            "left part of the code out",
        ),
        (
            "```diff\n@@ -1,2 +1,2 @@\n-    result = 0\n+    result = 1\n```",
            "diff instead of the rewritten code",
        ),
        ("```python\n" + "x = 1\n" * 60 + "```", "60 lines for a 5-line selection"),
    ],
)
def test_plan_edit_refusals(answer: str, message: str) -> None:
    with pytest.raises(EditRefused, match=message) as refused:
        plan_edit(METHOD, answer, first_line=0, language="python")
    assert message in refused.value.message


def test_an_elision_comment_the_original_has_is_fine() -> None:
    original = "// ...\nlet a = 1;\n"
    assert plan_edit(original, "```js\n// ...\nlet a = 2;\n```", first_line=0) == [
        LineEdit(1, 2, ("let a = 2;",))
    ]


def test_growth_is_fine_below_the_line_threshold() -> None:
    answer = "```python\ndef f():\n" + '    """Doc."""\n' + "    x = 1\n" * 8 + "```"
    edits = plan_edit("def f():\n    pass\n", answer, first_line=0, language="python")
    assert edits and edits[0].start == 1


def test_an_empty_original_takes_the_code() -> None:
    assert plan_edit("\n", "```\nx = 1\n```", first_line=4) == [LineEdit(4, 5, ("x = 1",))]


DOC_CASES = {
    "python method, model dedented it": (
        "    def area(self):\n        return self.w * self.h\n",
        'Here is the method:\n\n```python\ndef area(self):\n    """Return the area."""\n'
        "    return self.w * self.h\n```",
        "python",
        [LineEdit(21, 21, ('        """Return the area."""',))],
    ),
    "typescript method in a class": (
        "  add(a, b) {\n    return a + b;\n  }\n",
        "```ts\n/**\n * Adds two numbers.\n */\nadd(a, b) {\n  return a + b;\n}\n```",
        "typescript",
        [LineEdit(20, 20, ("  /**", "   * Adds two numbers.", "   */"))],
    ),
    "go function, model wrote spaces": (
        "func Area(w, h float64) float64 {\n\treturn w * h\n}\n",
        "```go\n// Area returns w times h.\nfunc Area(w, h float64) float64 {\n"
        "    return w * h\n}\n```",
        "go",
        [LineEdit(20, 20, ("// Area returns w times h.",))],
    ),
}


@pytest.mark.parametrize("name", sorted(DOC_CASES))
def test_adding_documentation_is_a_pure_insertion(name: str) -> None:
    original, answer, language, expected = DOC_CASES[name]
    assert plan_edit(original, answer, first_line=20, language=language) == expected


def test_lines_around_the_selection_written_again_are_dropped() -> None:
    # Asked to rewrite one line, the model answered with the whole function.
    before = "import math\n\ndef area(r):"
    after = "\n\nprint(area(2))"
    answer = "```python\ndef area(r):\n    return math.pi * r ** 2\n```"
    edits = plan_edit("    return 3.14 * r * r\n", answer, first_line=3, before=before, after=after)
    assert [(e.start, e.end, e.lines) for e in edits] == [(3, 4, ("    return math.pi * r ** 2",))]


def test_a_selection_that_starts_like_its_context_keeps_its_lines() -> None:
    before = "x = 1"
    edits = plan_edit("x = 1\ny = 2\n", "x = 1\ny = 3\n", first_line=1, before=before)
    assert [(e.start, e.end, e.lines) for e in edits] == [(2, 3, ("y = 3",))]
