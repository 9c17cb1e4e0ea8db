"""Moving an AI edit onto a document the user changed while the model wrote."""

from __future__ import annotations

from aigents_lsp.assist.edits import LineEdit, rebase_line_edits

OLD = ["a\n", "def f():\n", "    return 1\n", "\n", "b\n"]
EDIT = [LineEdit(2, 3, ("    return 2",))]


def test_unchanged_region_below_the_change_moves_down() -> None:
    new = ["# new\n", "# lines\n", *OLD]
    assert rebase_line_edits(OLD, new, (1, 3), EDIT) == [LineEdit(4, 5, ("    return 2",))]


def test_change_below_the_region_keeps_the_line_numbers() -> None:
    new = [*OLD, "c\n"]
    assert rebase_line_edits(OLD, new, (1, 3), EDIT) == EDIT


def test_changes_above_and_below_find_the_region() -> None:
    new = ["a changed\n", "and more\n", *OLD[1:4], "typed\n", *OLD[4:]]
    assert rebase_line_edits(OLD, new, (1, 3), EDIT) == [LineEdit(3, 4, ("    return 2",))]


def test_typing_inside_the_region_refuses() -> None:
    new = list(OLD)
    new[2] = "    return 1  # typed\n"
    assert rebase_line_edits(OLD, new, (1, 3), EDIT) is None


def test_a_line_inserted_inside_the_region_refuses() -> None:
    new = [*OLD[:2], "    x = 0\n", *OLD[2:]]
    assert rebase_line_edits(OLD, new, (1, 3), EDIT) is None


def test_a_deleted_region_refuses() -> None:
    assert rebase_line_edits(OLD, ["a\n", "b\n"], (1, 3), EDIT) is None
