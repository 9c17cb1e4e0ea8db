"""Next-edit prompt formats: each model family's published prompt, picked from the model id.

Every format renders the same `NextEditInput` (the editable region around the cursor, the
code around it, recent edits, snippets of other files) into the prompt its model was trained
on, and reads the model's answer back as the rewritten region — or None for "no edit" (an
answer that says so, or one that cannot be read: garbage is silent, never shown).

- `sweep`: Sweep next-edit 0.5B/1.5B (blog.sweep.dev "oss-next-edit"; Qwen2.5-Coder's
  `<|file_sep|>` pretraining layout): raw `/v1/completions`, sections `{path}.diff`
  (original:/updated:), `original/{path}`, `current/{path}` with `<|cursor|>`, then
  `updated/{path}` for the model to write; stop at `<|file_sep|>`.
- `zeta2`: Zed's Zeta-2 on Seed-Coder (crates/zeta_prompt, `V0211SeedCoder`): suffix first
  (`<[fim-suffix]>`), then `<[fim-prefix]>` with `<filename>` sections for related files, the
  edit history and the current file, the region between `<<<<<<< CURRENT` and `=======` with
  `<|user_cursor|>`, then `<[fim-middle]>`; the answer ends with `>>>>>>> UPDATED`, and
  `NO_EDITS` means no edit.
- `zeta`: Zed's Zeta (v1, Qwen2.5-Coder-7B): the "### Instruction / ### User Edits /
  ### User Excerpt / ### Response" prompt, the region between `<|editable_region_start|>`
  and `<|editable_region_end|>`, the cursor as `<|user_cursor_is_here|>`.
- `instinct`: Continue's Instinct (core/nextEdit): chat, its system prompt, the same region
  markers, `<|context_file|>`/`<|snippet|>` context; the answer is the region's new code.
- `generic`: ours, for any chat model: the same facts in plain words, `NO_EDITS` for none.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from aigents_lsp.nextedit.history import EditEvent
from aigents_lsp.nextedit.instinct import INSTINCT_SYSTEM, INSTINCT_USER_PREFIX
from aigents_lsp.providers.base import ChatMessage

FormatKind = Literal["completion", "chat"]
Snippet = tuple[str, str]
NO_EDITS = "NO_EDITS"


@dataclass(frozen=True)
class NextEditInput:
    """The file around the cursor, split at the editable region (texts end with "\\n")."""

    path: str
    before: str  # context above the region
    region: str  # the editable region, whole lines
    after: str  # context below the region
    cursor: int  # offset of the cursor in `region`
    original_region: str | None = None  # the region before the latest edit (Sweep)
    events: tuple[EditEvent, ...] = ()
    related: tuple[Snippet, ...] = ()
    language: str = ""


@dataclass(frozen=True)
class NextEditFormat:
    """How one model family wants a next-edit prompt, and how its answer is read."""

    name: str
    kind: FormatKind
    render_prompt: Callable[[NextEditInput], str] = field(repr=False)
    read_answer: Callable[[str, NextEditInput], str | None] = field(repr=False)
    stop: tuple[str, ...] = ()
    special_tokens: tuple[str, ...] = ()  # should each be one token (checked by `doctor`)
    system: str = ""  # chat formats: the system prompt
    source: str = ""

    def prompt(self, inp: NextEditInput) -> str:
        """The raw prompt (chat formats: the user message)."""
        return self.render_prompt(inp)

    def messages(self, inp: NextEditInput) -> tuple[ChatMessage, ...]:
        return (ChatMessage("system", self.system), ChatMessage("user", self.render_prompt(inp)))

    def read(self, answer: str, inp: NextEditInput) -> str | None:
        """The rewritten region, or None: no edit (said so, or nothing readable)."""
        return self.read_answer(answer.replace("\r\n", "\n"), inp)


def _with_cursor(inp: NextEditInput, marker: str) -> str:
    return inp.region[: inp.cursor] + marker + inp.region[inp.cursor :]


def _lines_block(lines: Sequence[str]) -> str:
    return "".join(f"{line}\n" for line in lines)


def _nl(text: str) -> str:
    return text if not text or text.endswith("\n") else text + "\n"


# --- Sweep next-edit ---------------------------------------------------------------------------

SWEEP_FILE_SEP = "<|file_sep|>"
SWEEP_CURSOR = "<|cursor|>"


def _render_sweep(inp: NextEditInput) -> str:
    parts: list[str] = []
    for path, text in inp.related:
        parts.append(f"{SWEEP_FILE_SEP}{path}\n{_nl(text)}")
    for event in inp.events:
        parts.append(
            f"{SWEEP_FILE_SEP}{event.path}.diff\noriginal:\n{_lines_block(event.old)}"
            f"updated:\n{_lines_block(event.new)}"
        )
    original = inp.original_region if inp.original_region is not None else inp.region
    parts.append(f"{SWEEP_FILE_SEP}original/{inp.path}\n{_nl(original)}")
    parts.append(f"{SWEEP_FILE_SEP}current/{inp.path}\n{_nl(_with_cursor(inp, SWEEP_CURSOR))}")
    parts.append(f"{SWEEP_FILE_SEP}updated/{inp.path}\n")
    return "".join(parts)


def _read_sweep(answer: str, inp: NextEditInput) -> str | None:
    text = _cut(answer, (SWEEP_FILE_SEP, "<|endoftext|>", "<|im_end|>"))
    return _region_text(text.replace(SWEEP_CURSOR, ""), inp)


# --- Zeta-2 (Seed-Coder) -----------------------------------------------------------------------

ZETA2_SUFFIX, ZETA2_PREFIX, ZETA2_MIDDLE = "<[fim-suffix]>", "<[fim-prefix]>", "<[fim-middle]>"
ZETA2_CURSOR = "<|user_cursor|>"
ZETA2_START, ZETA2_SEPARATOR, ZETA2_END = "<<<<<<< CURRENT", "=======", ">>>>>>> UPDATED"


def _render_zeta2(inp: NextEditInput) -> str:
    parts = [f"{ZETA2_SUFFIX}\n{_nl(inp.after)}{ZETA2_PREFIX}"]
    if inp.related:
        parts.extend(f"<filename>{path}\n{_nl(text)}" for path, text in inp.related)
        parts.append("\n")
    if inp.events:
        parts.append("<filename>edit_history\n")
        for event in inp.events:
            if event.predicted:
                parts.append("// User accepted prediction:\n")
            parts.append(f"--- a/{event.path}\n+++ b/{event.path}\n{event.unified()}")
        parts.append("\n")
    parts.append(f"<filename>{inp.path}\n{_nl(inp.before)}{ZETA2_START}\n")
    parts.append(f"{_nl(_with_cursor(inp, ZETA2_CURSOR))}{ZETA2_SEPARATOR}\n{ZETA2_MIDDLE}")
    return "".join(parts)


def _read_zeta2(answer: str, inp: NextEditInput) -> str | None:
    text = _cut(answer, (ZETA2_END, "<[end_of_sentence]>", ZETA2_SUFFIX, ZETA2_PREFIX))
    if text.strip() == NO_EDITS or text.strip().startswith(NO_EDITS + "\n"):
        return None
    return _region_text(text.replace(ZETA2_CURSOR, ""), inp)


# --- Zeta (v1) and Instinct: editable-region markers ------------------------------------------

REGION_START, REGION_END = "<|editable_region_start|>", "<|editable_region_end|>"
ZETA_CURSOR = "<|user_cursor_is_here|>"
ZETA_INSTRUCTION = (
    "You are a code completion assistant and your task is to analyze user edits and then "
    "rewrite an excerpt that the user provides, suggesting the appropriate edits within the "
    "excerpt, taking into account the cursor location."
)


def _marked_excerpt(inp: NextEditInput) -> str:
    return (
        f"{inp.before}{REGION_START}\n{_nl(_with_cursor(inp, ZETA_CURSOR))}"
        f"{REGION_END}\n{inp.after}"
    )


def _render_zeta(inp: NextEditInput) -> str:
    edits = "\n".join(f"User edited {e.path}:\n```diff\n{e.unified()}```\n" for e in inp.events)
    return (
        f"### Instruction:\n{ZETA_INSTRUCTION}\n\n### User Edits:\n\n{edits}\n"
        f"### User Excerpt:\n\n```{inp.path}\n{_nl(_marked_excerpt(inp))}```\n\n"
        "### Response:\n"
    )


def _read_marked(answer: str, inp: NextEditInput) -> str | None:
    """The text between the region markers; an answer without the start marker is read as the
    region itself (Instinct answers without the tags)."""
    text = answer
    if REGION_START in text:
        text = text.split(REGION_START, 1)[1].removeprefix("\n")
    elif answer.lstrip().startswith("```"):
        text = _unfence(answer)
    text = text.split(REGION_END, 1)[0]
    if "```" in text:
        text = text.split("```", 1)[0]
    return _region_text(text.replace(ZETA_CURSOR, ""), inp)


def _render_instinct(inp: NextEditInput) -> str:
    context = "\n".join(
        f"<|context_file|>: {path}\n<|snippet|>\n{text.rstrip()}" for path, text in inp.related
    )
    # Newest first, as Instinct was trained.
    edits = "\n".join(
        f'User edited file "{e.path}"\n\n```diff\n{e.unified()}```' for e in reversed(inp.events)
    )
    excerpt = _marked_excerpt(inp).rstrip("\n")
    return "\n".join(
        [
            INSTINCT_USER_PREFIX,
            "",
            "### Context:",
            context,
            "",
            "### User Edits:",
            "",
            edits,
            "",
            "### User Excerpt:",
            inp.path,
            "",
            excerpt,
            "```",  # Continue's template ends the excerpt with a lone fence
            "### Response:",
        ]
    )


# --- generic instruct ---------------------------------------------------------------------------

GENERIC_SYSTEM = (
    "You predict a programmer's next code edit. You see their recent edits as diffs and the "
    "code around their cursor, with an editable region between <|editable_region_start|> and "
    "<|editable_region_end|> and the cursor marked <|user_cursor_is_here|>. Rewrite the "
    "editable region with the edit they will make next: continue a change they started (a "
    "rename, a new parameter, a new field and its uses), keep their style and indentation, "
    "never undo what they just did. Reply with the whole rewritten region in one fenced code "
    f"block and nothing else, without the markers. If no edit is needed, reply {NO_EDITS}."
)


def _render_generic(inp: NextEditInput) -> str:
    parts = [f'<file path="{path}">\n{text.rstrip()}\n</file>' for path, text in inp.related]
    if inp.events:
        diffs = "".join(f"--- a/{e.path}\n+++ b/{e.path}\n{e.unified()}" for e in inp.events)
        parts.append(f"Recent edits, oldest first:\n```diff\n{diffs}```")
    parts.append(f"File {inp.path}:\n```{inp.language}\n{_nl(_marked_excerpt(inp))}```")
    parts.append(f"Rewrite the editable region, or reply {NO_EDITS}.")
    return "\n\n".join(parts)


def _read_generic(answer: str, inp: NextEditInput) -> str | None:
    if answer.strip().strip("`").strip() == NO_EDITS:
        return None
    return _read_marked(_unfence(answer) if "```" in answer else answer, inp)


# --- reading answers ----------------------------------------------------------------------------


def _cut(text: str, stops: Sequence[str]) -> str:
    cuts = [i for i in (text.find(stop) for stop in stops) if i >= 0]
    return text[: min(cuts)] if cuts else text


_FENCE = re.compile(r"```[^\n`]*\n(.*?)(?:\n?```|\Z)", re.DOTALL)


def _unfence(text: str) -> str:
    found = _FENCE.search(text)
    return found.group(1) if found else text


def _region_text(text: str, inp: NextEditInput) -> str | None:
    """The answer as the region's new text, whole lines; None when it is empty or not text
    (an empty answer for a non-empty region is garbage more often than "delete it all")."""
    if not text.strip() and inp.region.strip():
        return None
    if "\x00" in text:
        return None
    if inp.region.endswith("\n") and not text.endswith("\n"):
        text += "\n"
    return text


# --- the registry -------------------------------------------------------------------------------

_ALL: tuple[NextEditFormat, ...] = (
    NextEditFormat(
        "sweep", "completion", _render_sweep, _read_sweep,
        stop=(SWEEP_FILE_SEP, "<|endoftext|>"),
        special_tokens=(SWEEP_FILE_SEP, SWEEP_CURSOR),
        source="blog.sweep.dev/posts/oss-next-edit; sweepai/vscode-nes buildLocalPrompt",
    ),
    NextEditFormat(
        "zeta2", "completion", _render_zeta2, _read_zeta2,
        stop=(ZETA2_END, ZETA2_SUFFIX),
        special_tokens=(ZETA2_SUFFIX, ZETA2_PREFIX, ZETA2_MIDDLE),
        source="zed-industries/zed crates/zeta_prompt, ZetaFormat::V0211SeedCoder",
    ),
    NextEditFormat(
        "zeta", "completion", _render_zeta, _read_marked,
        stop=(REGION_END,),
        special_tokens=(REGION_START, REGION_END, ZETA_CURSOR),
        source="zed-industries/zeta (v1) prompt: ### Instruction / User Edits / User Excerpt",
    ),
    NextEditFormat(
        "instinct", "chat", _render_instinct, _read_marked,
        special_tokens=(REGION_START, REGION_END, ZETA_CURSOR),
        system=INSTINCT_SYSTEM,
        source="continuedev/continue core/nextEdit (InstinctProvider, templating/instinct.ts)",
    ),
    NextEditFormat(
        "generic", "chat", _render_generic, _read_generic, system=GENERIC_SYSTEM,
        source="ours: a plain next-edit instruction for any chat model",
    ),
)  # fmt: skip

FORMATS: Mapping[str, NextEditFormat] = MappingProxyType({f.name: f for f in _ALL})
"""Every next-edit format by name."""

_ID_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("sweep", r"sweep[\w.-]*next[\w.-]*edit|sweep-?nes"),
        ("zeta2", r"zeta-?2|zeta[\w.-]*seed|seed[\w.-]*zeta"),
        ("zeta", r"(?:^|[-_.])zeta(?:$|[-_.])"),
        ("instinct", r"instinct"),
    )
)


class FormatError(ValueError):
    """An unknown next-edit format name; the message lists the known ones."""


def _normalize(model_id: str) -> str:
    name = model_id.strip().lower().replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"[\s_]+", "-", name.split("@", 1)[0].removesuffix(".gguf"))


def format_for_model(model_id: str | None) -> NextEditFormat | None:
    """The next-edit model family of `model_id`, or None for any other model."""
    name = _normalize(model_id or "")
    for format_name, pattern in _ID_RULES:
        if pattern.search(name):
            return FORMATS[format_name]
    return None


def pick_format(model_id: str | None, user_format: str | None = None) -> NextEditFormat:
    """The user's format when set, else the model's own, else `generic` (any chat model)."""
    if user_format and user_format.strip():
        found = FORMATS.get(user_format.strip().lower())
        if found is None:
            known = ", ".join(FORMATS)
            raise FormatError(f"unknown next-edit format {user_format!r}; use one of: {known}")
        return found
    return format_for_model(model_id) or FORMATS["generic"]
