"""Next edit, pure parts: edit history, each model's prompt format (golden, written from the
published formats), reading answers, the minimal edit, picking the format."""

from __future__ import annotations

import pytest

from aigents_lsp.nextedit.diffing import minimal_edit
from aigents_lsp.nextedit.engine import NextEditRequest, build_input, region_bounds
from aigents_lsp.nextedit.formats import (
    FORMATS,
    FormatError,
    NextEditInput,
    format_for_model,
    pick_format,
)
from aigents_lsp.nextedit.history import EditEvent, EditHistory
from aigents_lsp.nextedit.instinct import INSTINCT_USER_PREFIX


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


# --- history ------------------------------------------------------------------------------------


def test_a_burst_of_keystrokes_is_one_hunk_and_a_pause_starts_another() -> None:
    clock = Clock()
    history = EditHistory(clock)
    text = "def f(value):\n    return value\n"
    history.open("u", _lines(text))
    typed = "def f(value):\n    return value\n"
    for char in "x, ":  # the user types "x, " before "value" on line 0
        typed = typed.replace("f(", "f(" + char, 1) if char == "x" else typed
    steps = ["def f(x, value):\n", "def f(xy, value):\n"]
    for step in steps:
        clock.now += 0.2
        history.changed("u", [step, "    return value\n"], (0, 0, 0))
    events = history.events(lambda _: True, lambda u: "a.py")
    assert events == (EditEvent("a.py", 0, ("def f(value):",), ("def f(xy, value):",)),)
    clock.now += 5.0  # a pause: the next change is a new hunk
    history.changed("u", ["def f(xy, value):\n", "    return xy\n"], (1, 1, 1))
    events = history.events(lambda _: True, lambda u: "a.py")
    assert [e.new for e in events] == [("def f(xy, value):",), ("    return xy",)]


def test_typing_and_deleting_again_leaves_no_hunk_and_ignored_documents_are_left_out() -> None:
    clock = Clock()
    history = EditHistory(clock)
    history.open("u", ["a = 1\n"])
    history.changed("u", ["a = 12\n"], (0, 0, 0))
    clock.now += 0.1
    history.changed("u", ["a = 1\n"], (0, 0, 0))
    assert history.events(lambda _: True, str) == ()
    history.open("secret", ["k = 1\n"])
    history.changed("secret", ["k = 2\n"], (0, 0, 0))
    assert history.events(lambda uri: uri != "secret", str) == ()


def test_a_change_without_a_hint_is_found_by_comparing_lines_and_history_is_bounded() -> None:
    clock = Clock()
    history = EditHistory(clock)
    lines = [f"line {i}\n" for i in range(50)]
    history.open("u", lines)
    for i in range(20):
        clock.now += 10
        lines = list(lines)
        lines[i * 2] = f"changed {i}\n"
        history.changed("u", lines, None)
    events = history.events(lambda _: True, str, limit=100)
    assert len(events) == 8  # per document
    assert events[-1] == EditEvent("u", 38, ("line 38",), ("changed 19",))


def test_an_accepted_suggestion_marks_the_hunk_that_applied_it() -> None:
    clock = Clock()
    history = EditHistory(clock)
    history.open("u", ["x = 1\n", "y = x\n"])
    history.changed("u", ["x = 1\n", "y = x + 1\n"], (1, 1, 1))
    history.note_accepted("u", " + 1")
    assert history.events(lambda _: True, str)[-1].predicted


# --- formats: golden prompts ---------------------------------------------------------------------

INPUT = NextEditInput(
    path="app/calc.py",
    before="import math\n",
    region="def area(r):\n    return math.pi * radius ** 2\n",
    after="print(area(2))\n",
    cursor=10,
    original_region="def area(radius):\n    return math.pi * radius ** 2\n",
    events=(EditEvent("app/calc.py", 1, ("def area(radius):",), ("def area(r):",)),),
    related=(("app/util.py", "PI = 3.14\n"),),
)


def test_sweep_prompt_is_file_sep_sections_original_current_updated() -> None:
    assert FORMATS["sweep"].prompt(INPUT) == (
        "<|file_sep|>app/util.py\nPI = 3.14\n"
        "<|file_sep|>app/calc.py.diff\noriginal:\ndef area(radius):\nupdated:\ndef area(r):\n"
        "<|file_sep|>original/app/calc.py\n"
        "def area(radius):\n    return math.pi * radius ** 2\n"
        "<|file_sep|>current/app/calc.py\n"
        "def area(r<|cursor|>):\n    return math.pi * radius ** 2\n"
        "<|file_sep|>updated/app/calc.py\n"
    )
    assert FORMATS["sweep"].kind == "completion" and "<|file_sep|>" in FORMATS["sweep"].stop


def test_zeta2_prompt_is_seed_coder_suffix_first_with_merge_markers() -> None:
    assert FORMATS["zeta2"].prompt(INPUT) == (
        "<[fim-suffix]>\nprint(area(2))\n"
        "<[fim-prefix]><filename>app/util.py\nPI = 3.14\n\n"
        "<filename>edit_history\n--- a/app/calc.py\n+++ b/app/calc.py\n"
        "@@ -2,1 +2,1 @@\n-def area(radius):\n+def area(r):\n\n"
        "<filename>app/calc.py\nimport math\n<<<<<<< CURRENT\n"
        "def area(r<|user_cursor|>):\n    return math.pi * radius ** 2\n"
        "=======\n<[fim-middle]>"
    )
    # Upstream's no-context case: nothing between <[fim-prefix]> and the current file.
    bare = NextEditInput("t.rs", "before\n", "middle\n", "after\n", 3)
    assert FORMATS["zeta2"].prompt(bare) == (
        "<[fim-suffix]>\nafter\n<[fim-prefix]><filename>t.rs\nbefore\n<<<<<<< CURRENT\n"
        "mid<|user_cursor|>dle\n=======\n<[fim-middle]>"
    )


def test_zeta_prompt_is_the_instruction_prompt_with_region_markers() -> None:
    assert FORMATS["zeta"].prompt(INPUT) == (
        "### Instruction:\nYou are a code completion assistant and your task is to analyze "
        "user edits and then rewrite an excerpt that the user provides, suggesting the "
        "appropriate edits within the excerpt, taking into account the cursor location.\n\n"
        "### User Edits:\n\nUser edited app/calc.py:\n```diff\n@@ -2,1 +2,1 @@\n"
        "-def area(radius):\n+def area(r):\n```\n\n"
        "### User Excerpt:\n\n```app/calc.py\nimport math\n<|editable_region_start|>\n"
        "def area(r<|user_cursor_is_here|>):\n    return math.pi * radius ** 2\n"
        "<|editable_region_end|>\nprint(area(2))\n```\n\n### Response:\n"
    )


def test_instinct_prompt_follows_continues_chat_template() -> None:
    fmt = FORMATS["instinct"]
    system, user = fmt.messages(INPUT)
    assert system.role == "system" and system.content.startswith("You predict the next edit")
    assert user.content == INSTINCT_USER_PREFIX + (
        "\n\n### Context:\n<|context_file|>: app/util.py\n"
        '<|snippet|>\nPI = 3.14\n\n### User Edits:\n\nUser edited file "app/calc.py"\n\n'
        "```diff\n@@ -2,1 +2,1 @@\n-def area(radius):\n+def area(r):\n```\n\n"
        "### User Excerpt:\napp/calc.py\n\nimport math\n<|editable_region_start|>\n"
        "def area(r<|user_cursor_is_here|>):\n    return math.pi * radius ** 2\n"
        "<|editable_region_end|>\nprint(area(2))\n```\n### Response:"
    )


def test_generic_prompt_names_the_markers_and_the_no_edit_answer() -> None:
    fmt = FORMATS["generic"]
    system, user = fmt.messages(INPUT)
    assert "NO_EDITS" in system.content and "<|editable_region_start|>" in system.content
    assert "-def area(radius):\n+def area(r):" in user.content
    assert "def area(r<|user_cursor_is_here|>):" in user.content


# --- reading answers -----------------------------------------------------------------------------

NEW = "def area(r):\n    return math.pi * r ** 2\n"


@pytest.mark.parametrize(
    ("name", "answer"),
    [
        ("sweep", NEW + "<|file_sep|>"),
        ("zeta2", NEW + ">>>>>>> UPDATED\n"),
        ("zeta", "```app/calc.py\nimport math\n<|editable_region_start|>\n" + NEW),
        ("instinct", NEW),
        ("instinct", "```python\n" + NEW + "```"),
        ("generic", "```python\n" + NEW + "```\n"),
    ],
)
def test_each_format_reads_its_models_rewrite(name: str, answer: str) -> None:
    assert FORMATS[name].read(answer, INPUT) == NEW


@pytest.mark.parametrize(
    ("name", "answer"),
    [
        ("zeta2", "NO_EDITS\n>>>>>>> UPDATED"),
        ("generic", "NO_EDITS"),
        ("generic", "```\nNO_EDITS\n```"),
        ("sweep", ""),
        ("instinct", "   \n"),
        ("sweep", "\x00\x01garbage"),
    ],
)
def test_no_edit_and_garbage_answers_are_none(name: str, answer: str) -> None:
    assert FORMATS[name].read(answer, INPUT) is None


def test_format_is_picked_from_the_model_id_and_a_bad_name_is_a_clear_error() -> None:
    assert format_for_model("sweepai/sweep-next-edit-1.5B@q8_0") is FORMATS["sweep"]
    assert format_for_model("zed-industries/zeta-2-gguf") is FORMATS["zeta2"]
    assert format_for_model("zed-industries/zeta") is FORMATS["zeta"]
    assert format_for_model("continuedev/instinct-GGUF") is FORMATS["instinct"]
    assert format_for_model("qwen2.5-coder-7b-instruct") is None
    assert format_for_model("zetacode-3b") is None
    assert pick_format("qwen2.5-coder-7b-instruct") is FORMATS["generic"]
    assert pick_format("qwen2.5-coder-7b-instruct", "sweep") is FORMATS["sweep"]
    with pytest.raises(FormatError, match="use one of: sweep, zeta2"):
        pick_format(None, "copilot")


# --- the minimal edit ----------------------------------------------------------------------------

REGION = "def area(r):\n    return math.pi * radius ** 2\n\nprint(area)\n"


def test_the_edit_is_the_characters_that_differ_at_their_place() -> None:
    rewritten = REGION.replace("radius", "r")
    edit = minimal_edit(REGION, rewritten, cursor=10)
    assert edit is not None
    assert REGION[edit.start : edit.end] == edit.old == "radius"
    assert edit.text == "r"
    assert REGION[: edit.start] + edit.text + REGION[edit.end :] == rewritten


def test_no_ops_whitespace_and_retyped_lines_give_no_edit() -> None:
    assert minimal_edit(REGION, REGION, 0) is None
    assert minimal_edit(REGION, REGION.replace("** 2\n", "** 2   \n"), 0) is None
    retyped = REGION.replace("\n\n", "\n    return math.pi * radius ** 2\n\n")
    assert minimal_edit(REGION, retyped, 0) is None


def test_a_rewrite_far_larger_than_the_region_is_rejected() -> None:
    assert minimal_edit(REGION, REGION + "x = 1\n" * 40, 0) is None


def test_the_cursor_line_stays_intact_unless_the_edit_is_about_it() -> None:
    cursor = REGION.index("area(r)") + 6  # on line 0, after "r"
    both = REGION.replace("area(r)", "area(rad)").replace("radius", "r")
    edit = minimal_edit(REGION, both, cursor)
    assert edit is not None and edit.old == "radius" and edit.text == "r"
    only_cursor_line = REGION.replace("area(r)", "area(r: float)")
    edit = minimal_edit(REGION, only_cursor_line, cursor)
    assert edit is not None and edit.text == ": float" and edit.old == ""


def test_of_several_hunks_the_one_nearest_the_cursor_is_the_edit() -> None:
    region = "a = 1\nb = 2\nc = 3\nd = 4\ne = 5\n"
    rewritten = "a = 10\nb = 2\nc = 3\nd = 40\ne = 5\n"
    cursor = region.index("c")
    edit = minimal_edit(region, rewritten, cursor)
    assert edit is not None and (edit.old, edit.text) == ("4", "40")
    assert region[: edit.start].endswith("d = ")


# --- the editable region --------------------------------------------------------------------------


def test_the_region_is_centred_on_the_cursor_and_moved_inwards_at_the_ends() -> None:
    assert region_bounds(100, 50, 21) == (40, 61)
    assert region_bounds(100, 2, 21) == (0, 21)
    assert region_bounds(100, 99, 21) == (79, 100)
    assert region_bounds(5, 2, 21) == (0, 5)


def test_a_region_with_a_secret_is_never_sent_and_crlf_is_read_as_lines() -> None:
    secret = NextEditRequest("u", 1, ['API_KEY = "sk-live-0123456789abcdefghijklmn"\n'], 0, 0)
    assert build_input(secret, 21) is None
    crlf = NextEditRequest("u", 1, ["a = 1\r\n", "b = 2\r\n"], 1, 3)
    built = build_input(crlf, 21)
    assert built is not None
    inp, first = built
    assert inp.region == "a = 1\nb = 2\n" and first == 0 and inp.region[inp.cursor :] == " 2\n"


def test_a_line_retyped_next_to_the_change_is_left_out_of_the_edit() -> None:
    region = "A = 'alpha'\nB = 'beta'\n"
    rewritten = "A = 'alpha'\nA = 'alpha'\nB = \"beta\"\n"
    edit = minimal_edit(region, rewritten, 0)
    assert edit is not None and (edit.old, edit.text) == ("'beta'", '"beta"')


def test_a_rewrite_about_something_else_is_garbage() -> None:
    region = "def h():\n    return 0\n"
    assert minimal_edit(region, "lorem ipsum dolor sit amet " * 8 + "\n", 0) is None


async def test_a_request_overtaken_while_its_model_was_chosen_never_reaches_the_backend() -> None:
    """The LSP layer takes the ticket when the editor asks, before the model is chosen (which
    awaits the backend): a newer request for the document meanwhile supersedes it."""
    from aigents_lsp.config import Settings
    from aigents_lsp.nextedit.engine import NextEditEngine, NextEditTarget
    from aigents_lsp.nextedit.formats import format_for_model
    from tests.unit.stub_provider import StubProvider

    class Counting(StubProvider):
        calls = 0

        async def stream_complete(self, params):  # type: ignore[no-untyped-def, override]
            Counting.calls += 1
            yield  # pragma: no cover

    engine = NextEditEngine(lambda: Settings())
    fmt = format_for_model("sweep-next-edit-0.5b")
    assert fmt is not None
    target = NextEditTarget(Counting(), "sweep-next-edit-0.5b", fmt)
    request = NextEditRequest("file:///a.py", 1, _lines("x = 1\ny = 2\n"), 1, 0)
    older = engine.tickets.enter(request.uri)
    engine.tickets.enter(request.uri)  # the newer request, while the older chose its model
    assert await engine.suggest(request, target, ticket=older) is None
    assert Counting.calls == 0 and engine.metrics.superseded == 1
