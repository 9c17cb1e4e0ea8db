"""The next-edit settings (docs/nextedit.md): a base of `config.Settings`, kept apart so that
config.py stays one screenful of the rest."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class NextEditSettings(BaseModel):
    """Next-edit suggestions: on/off per language, the model and its format, the editable
    region, the trigger delay."""

    next_edit: bool = Field(
        True,
        description="Next-edit suggestions (`textDocument/copilotInlineEdit`): the edit you "
        "are likely to make next near the cursor, from your recent edits. Editors ask for "
        "them (after a typing pause and after a suggestion is accepted); off: every request "
        "is answered with no edit. See docs/nextedit.md.",
    )
    next_edit_languages: dict[str, bool] = Field(
        default_factory=dict,
        description="Next-edit suggestions on or off per language id, over `next_edit`, "
        'e.g. `{markdown = false, python = true}` (environment: JSON, `{"markdown": false}`).',
    )
    next_edit_model: str | None = Field(
        None,
        description="Model id for next-edit suggestions, e.g. a Sweep next-edit, Zeta or "
        "Instinct model (it may differ from the completion model). Unset: the completion "
        "model.",
    )
    next_edit_format: Literal["sweep", "zeta2", "zeta", "instinct", "generic"] | None = Field(
        None,
        description="Prompt format of the next-edit model. Unset: picked from the model id "
        "(`sweep`, `zeta2`, `zeta`, `instinct`), `generic` (a chat prompt) for any other model.",
    )
    next_edit_region_lines: int = Field(
        21,
        ge=3,
        le=200,
        description="Lines of the editable region the model may rewrite, centred on the "
        "cursor (Sweep's models were trained on 21). Larger finds edits further away but "
        "answers slower.",
    )
    next_edit_debounce_ms: int = Field(
        300,
        ge=0,
        le=5000,
        description="Milliseconds a next-edit request waits before asking the model (the "
        "trigger delay); a newer request for the document meanwhile supersedes it.",
    )
