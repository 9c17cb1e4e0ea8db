"""The workspace tools as the model sees them: their specs (name, description, JSON schema of the
arguments) and a call's arguments read back, with a sentence the model can act on when they are
unusable. What the tools do is `WorkspaceTools` in assist/tools.py.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from aigents_lsp.providers.base import ToolSpec


class ToolArgumentError(ValueError):
    """The model called a tool with unusable arguments."""


def _spec(name: str, description: str, *required: str, **properties: str) -> ToolSpec:
    """A function tool; `properties` are "type: description" strings."""
    schema = {
        key: {"type": text.split(": ", 1)[0], "description": text.split(": ", 1)[1]}
        for key, text in properties.items()
    }
    return ToolSpec(
        name, description, {"type": "object", "properties": schema, "required": list(required)}
    )


TOOL_SPECS: tuple[ToolSpec, ...] = (
    _spec(
        "search_codebase",
        "Search the workspace files for text (case-insensitive) or a regular expression. "
        "Returns matching lines as `path:line: text`. When the workspace is indexed, a plain "
        "query also finds code by meaning: describe what you look for, or name it.",
        "query",
        query="string: The text (or regex) to find, or a description of the code.",
        regex="boolean: Treat query as a Python regular expression.",
        path_glob="string: Only search files matching this glob, e.g. '*.py' or 'src/**'.",
    ),
    _spec(
        "read_file",
        "Read a workspace file with line numbers; start_line/end_line (1-based, inclusive) "
        "read part of a long file.",
        "path",
        path="string: Path relative to the workspace.",
        start_line="integer: First line to read.",
        end_line="integer: Last line to read.",
    ),
    _spec(
        "list_files",
        "List the files under a workspace directory, recursively.",
        path="string: The directory; '.' is the whole workspace.",
        pattern="string: Only files matching this glob, e.g. '*.ts'.",
    ),
)


def parse_arguments(raw: str) -> dict[str, Any]:
    """A tool call's arguments as a dict; raises `ToolArgumentError`."""
    try:
        value: object = json.loads(raw or "{}")
        if isinstance(value, str):  # some models encode the arguments twice
            value = json.loads(value)
    except ValueError as exc:
        raise ToolArgumentError(f"the arguments are not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ToolArgumentError("the arguments must be a JSON object")
    return value


def text_argument(args: Mapping[str, Any], name: str) -> str | None:
    """A string argument; None when absent or empty."""
    value = args.get(name)
    if isinstance(value, dict | list):
        raise ToolArgumentError(f"`{name}` must be a string")
    return None if value is None or value == "" else str(value)


def int_argument(args: Mapping[str, Any], name: str) -> int | None:
    """An integer argument (12, 12.0 and "12" alike); None when absent or empty."""
    value = args.get(name)
    if value is None or value == "":
        return None
    with contextlib.suppress(TypeError, ValueError):  # "12" and 12.0 are fine
        if not isinstance(value, bool) and float(value).is_integer():
            return int(float(value))
    raise ToolArgumentError(f"`{name}` must be an integer")
