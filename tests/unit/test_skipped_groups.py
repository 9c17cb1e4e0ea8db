"""The run's last line names each skipped group, why, and the command that enables it."""

from __future__ import annotations

from tests.conftest import skipped_groups_line

EMACS = "emacs is not installed; enable: bash .ci/install-editors"
VSCODE = "no Node 24 in /x; enable: bash .ci/install-editors"


def test_nothing_skipped_says_none() -> None:
    assert skipped_groups_line([]) == "[tests] skipped groups: none"


def test_each_file_is_one_group_with_its_count_and_reason() -> None:
    skips = [
        ("tests/editors/test_vscode_real.py::test_ghost_text", VSCODE),
        ("tests/editors/test_emacs.py::test_eglot", EMACS),
        ("tests/editors/test_vscode_real.py::test_docstring", VSCODE),
    ]
    assert skipped_groups_line(skips) == (
        f"[tests] skipped groups: tests/editors/test_emacs.py (1 skipped): {EMACS}"
        f" | tests/editors/test_vscode_real.py (2 skipped): {VSCODE}"
    )
