"""Answers shown as markdown files hold the user's code: they are kept bounded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aigents_lsp.lsp.command_results import answers_folder, prune_answers

DAY = 24 * 3600.0
NOW = 1_800_000_000.0


def answer(folder: Path, name: str, age: float) -> Path:
    path = folder / name
    path.write_text("def secret(): ...\n")
    os.utime(path, (NOW - age, NOW - age))
    return path


def test_only_the_newest_answers_are_kept(tmp_path: Path) -> None:
    for i in range(30):
        answer(tmp_path, f"explain-{i:02}.md", age=i * 60.0)
    (tmp_path / "notes.txt").write_text("not an answer")
    assert prune_answers(tmp_path, keep=20, now=NOW) == 10
    assert sorted(p.name for p in tmp_path.glob("*.md")) == [
        f"explain-{i:02}.md" for i in range(20)
    ]
    assert (tmp_path / "notes.txt").exists()


def test_answers_older_than_a_week_are_deleted(tmp_path: Path) -> None:
    fresh = answer(tmp_path, "chat-new.md", age=DAY)
    answer(tmp_path, "chat-old.md", age=8 * DAY)
    assert prune_answers(tmp_path, now=NOW) == 1
    assert list(tmp_path.glob("*.md")) == [fresh]


def test_a_missing_folder_is_nothing_to_clean(tmp_path: Path) -> None:
    assert prune_answers(tmp_path / "absent", now=NOW) == 0


def test_answers_live_in_the_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert answers_folder() == tmp_path / "aigents-lsp" / "answers"
