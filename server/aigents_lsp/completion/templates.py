"""FIM prompt templates: what one is, a user's own, and what is read back from its model.

A `FimTemplate` renders the text around the cursor (plus optional snippets from other files) into
the raw prompt its model family was trained on, and knows the stop sequences that end the middle
and the special tokens to scrub from the output. The built-in templates of the model families, and
`pick_template`, which chooses one from the model id and LM Studio's `arch` field, are in
`completion/families.py`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from aigents_lsp.providers.base import ChatMessage
from aigents_lsp.providers.reasoning import strip_think

Snippet = tuple[str, str]
"""Repository context: (path relative to the workspace, text)."""

TemplateKind = Literal["fim", "prefix", "chat"]

FILL_MARKER = "<FILL_HERE>"
DEFAULT_REPO_NAME = "workspace"
DEFAULT_FILE_PATH = "untitled"


class TemplateError(ValueError):
    """A user template that cannot be used; the message says what to change."""


@dataclass(frozen=True)
class FimInput:
    """Everything a template may put in a prompt."""

    prefix: str
    suffix: str
    context: tuple[Snippet, ...] = ()
    file_path: str | None = None
    repo_name: str | None = None


@dataclass(frozen=True)
class FimTemplate:
    """How one model family wants a fill-in-the-middle prompt."""

    name: str
    kind: TemplateKind
    renderer: Callable[[FimInput], str] = field(repr=False, compare=False)
    stop: tuple[str, ...] = ()
    tokens: tuple[str, ...] = ()  # special tokens scrubbed from the output
    source: str = ""  # where the format is documented

    def render(
        self,
        prefix: str,
        suffix: str,
        *,
        context: Sequence[Snippet] = (),
        file_path: str | None = None,
        repo_name: str | None = None,
    ) -> str:
        """The raw prompt (for `chat` templates: the user message)."""
        return self.renderer(FimInput(prefix, suffix, tuple(context), file_path, repo_name))

    def messages(
        self,
        prefix: str,
        suffix: str,
        *,
        context: Sequence[Snippet] = (),
        file_path: str | None = None,
        repo_name: str | None = None,
    ) -> tuple[ChatMessage, ...]:
        """System and user messages of a `chat` template; ValueError for raw-prompt templates."""
        if self.kind != "chat":
            raise ValueError(f"template {self.name!r} renders a raw prompt, not chat messages")
        user = self.render(
            prefix, suffix, context=context, file_path=file_path, repo_name=repo_name
        )
        return (ChatMessage("system", CHAT_SYSTEM_PROMPT), ChatMessage("user", user))

    def clean(self, text: str) -> str:
        """The model output without think blocks and this template's special tokens."""
        return strip_model_output(text, self.tokens)


CHAT_SYSTEM_PROMPT = (
    "You are a code completion engine. The user sends source files; the file being edited "
    f"contains the marker {FILL_MARKER} at the cursor. Reply with exactly the code to insert in "
    f"place of {FILL_MARKER} and nothing else: no markdown fences, no explanations, no repetition "
    "of the code before or after the marker. Match the surrounding indentation and style. If "
    "nothing should be inserted, reply with an empty message."
)


# --- user templates ----------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{(prefix|suffix|file)\}")
_UNKNOWN_PLACEHOLDER = re.compile(r"\{([A-Za-z_]\w*)\}")
_SPECIAL_TOKEN = re.compile(r"<[|｜]?/?[A-Za-z_▁][\w▁.-]*[|｜]?>|\[[A-Z_]{3,}\]")


def custom_template(template: str, stop: Sequence[str] = ()) -> FimTemplate:
    """A template from the settings: {prefix} (required), {suffix} and {file} are substituted."""
    if "{prefix}" not in template:
        raise TemplateError(
            f"the completion template must contain {{prefix}} (got {template!r}); "
            "write it like '<fim_prefix>{prefix}<fim_suffix>{suffix}<fim_middle>'"
        )
    for match in _UNKNOWN_PLACEHOLDER.finditer(template):
        if match.group(1) not in ("prefix", "suffix", "file"):
            raise TemplateError(
                f"unknown placeholder {match.group(0)} in the completion template; "
                "use {prefix}, {suffix} and {file}"
            )

    def render(inp: FimInput) -> str:
        values = {"prefix": inp.prefix, "suffix": inp.suffix, "file": inp.file_path or ""}
        # One pass with a function: braces in the user's code are never read as placeholders.
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)

    stops = tuple(s for s in stop if s)
    literal = _PLACEHOLDER.sub("\0", template)
    tokens = tuple(dict.fromkeys((*_SPECIAL_TOKEN.findall(literal), *stops)))
    kind: TemplateKind = "fim" if "{suffix}" in template else "prefix"
    return FimTemplate("custom", kind, render, stops, tokens, "the user's completion template")


# --- cleaning model output ---------------------------------------------------------------------

_PREFIX_END = "\ue000"  # private-use characters: never in a real prompt
_SUFFIX_MARK = "\ue001"


def prefill_prompt(
    template: FimTemplate,
    prefix: str,
    context: Sequence[Snippet] = (),
    file_path: str | None = None,
) -> str | None:
    """The start of `template`'s prompt up to the end of `prefix`, for reading ahead: what a
    later prompt with a longer prefix begins with. None for templates that put the suffix
    (or anything else that changes) before the prefix, and for chat templates."""
    if template.kind == "chat":
        return None
    probe = template.render(_PREFIX_END, _SUFFIX_MARK, context=context, file_path=file_path)
    if _SUFFIX_MARK in probe.split(_PREFIX_END, 1)[0]:
        return None  # suffix first (Codestral's SPM order)
    rendered = template.render(prefix + _PREFIX_END, "", context=context, file_path=file_path)
    cut = rendered.find(_PREFIX_END)
    return rendered[:cut] if cut > 0 else None


def strip_model_output(text: str, tokens: Sequence[str] = ()) -> str:
    """Think blocks removed, echoed tokens at the start dropped, and the text cut at the first
    special token left (what follows a stop token is not part of the middle)."""
    text = strip_think(text)
    ordered = sorted((t for t in tokens if t), key=len, reverse=True)
    echoed = True
    while echoed:
        echoed = False
        for token in ordered:
            if text.startswith(token):
                text, echoed = text[len(token) :], True
    cuts = [i for i in (text.find(t) for t in ordered) if i >= 0]
    return text[: min(cuts)] if cuts else text


_FENCED = re.compile(r"```[^\n`]*\n(.*?)(?:\n[ \t]*```|\Z)", re.DOTALL)
_PROSE_OPENER = re.compile(
    r"\A\s*(?:here(?:'s| is| are)|sure\b|certainly\b|okay\b|the (?:code|completion|missing)"
    r"|this (?:code|completes))[^\n]*\n",
    re.IGNORECASE,
)


def extract_fill(text: str, prefix: str = "") -> str:
    """The code of a chat model's answer to the fill-the-hole prompt: the first fenced block if
    any, else the answer without a leading "Here is…" line; the marker and an echo of the cursor
    line's text before the cursor are removed."""
    text = strip_think(text.replace("\r\n", "\n"))
    fenced = _FENCED.search(text)
    text = fenced.group(1) if fenced else _PROSE_OPENER.sub("", text, count=1)
    text = text.replace(FILL_MARKER, "").rstrip()
    line = prefix.rsplit("\n", 1)[-1].strip()
    body = text.lstrip()
    if len(line) >= 3 and body.startswith(line):
        text = body[len(line) :]
    return text
