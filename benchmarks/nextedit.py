"""Next-edit benchmark: scenarios of edit history + the expected next edit (or none), scored.

    python benchmarks/nextedit.py                       # the fake backend, every format
    python benchmarks/nextedit.py --api-base http://localhost:1234/v1 \\
        --model sweep-next-edit-1.5b                    # your LM Studio and next-edit model

Each scenario opens a small file, makes the user's edits as an editor would (incremental
`didChange`s: the server's edit history sees them), then asks `textDocument/copilotInlineEdit`
at the cursor. Scored:
- exact edit: the edit shown, applied to the document, gives exactly the expected document;
- show rate: scenarios expecting an edit where one was shown;
- quiet rate: scenarios expecting none where none was shown.

Against the fake (the default) the "model" is an oracle that answers each scenario's expected
rewrite in the format's own wire shape, with noise the server must remove (trailing spaces on
another line, a re-typed line), and for the no-edit scenarios the region unchanged, `NO_EDITS`,
whitespace-only changes, a re-typed line or rambling garbage: it measures the plumbing (history,
prompt, reading the answer, minimal edit, positions), not a model. With `--api-base` and
`--model` the same scenarios go to your backend and the figures are the model's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.lmstudio_server import FakeLMStudio, default_models  # noqa: E402

METHOD = "textDocument/copilotInlineEdit"
FORMAT_MODELS = {
    "sweep": "sweep-next-edit-1.5b",
    "zeta2": "zeta-2",
    "zeta": "zeta",
    "instinct": "instinct",
    "generic": "llama-3.2-3b-instruct",
}


@dataclass(frozen=True)
class Scenario:
    name: str  # also the file name: the oracle finds its scenario by it
    text: str
    edits: tuple[tuple[str, str], ...]  # the user's edits: (old, new), first occurrence
    expect: tuple[int, str, str] | None  # (line, old, new) on that line; None: no edit
    noise: str = ""  # oracle noise: "ws" (spaces on another line), "retype", "garbage", ...


SCENARIOS = (
    Scenario(
        "rename_param.py",
        "import math\n\n\ndef area(radius):\n    return math.pi * radius ** 2\n",
        (("area(radius)", "area(r)"),),
        (4, "radius", "r"),
    ),
    Scenario(
        "rename_var.py",
        "def count_words(text):\n    count = 0\n    for word in text.split():\n"
        "        count += 1\n    return count\n",
        (("    count = 0", "    total = 0"),),
        (3, "count", "total"),
        noise="ws",
    ),
    Scenario(
        "new_param.py",
        'def greet(name):\n    print("Hello", name)\n\n\ngreet("Ada")\n',
        (("greet(name)", "greet(name, greeting)"),),
        (1, '"Hello"', "greeting"),
    ),
    Scenario(
        "quotes.py",
        "A = 'alpha'\nB = 'beta'\nC = 'gamma'\n",
        (("A = 'alpha'", 'A = "alpha"'),),
        (1, "'beta'", '"beta"'),
        noise="retype",
    ),
    Scenario(
        "new_field.py",
        "class User:\n    def __init__(self, name):\n        self.name = name\n\n\n"
        'u = User("ada")\n',
        (("self, name)", "self, name, email)"),),
        (2, "self.name = name", "self.name = name\n        self.email = email"),
    ),
    Scenario(
        "json_import.py",
        "import json\n\n\ndef load(text):\n    return eval(text)\n",
        (("import json\n", "import json\n\n"),),
        (5, "eval(text)", "json.loads(text)"),  # line 5 once the blank line is typed
    ),
    Scenario(
        "rename.ts",
        "const user = getUser();\nconsole.log(user.name);\nexport default user;\n",
        (("const user =", "const currentUser ="),),
        (1, "user.name", "currentUser.name"),
        noise="ws",
    ),
    Scenario(
        "hint.py",
        "def add(a, b):\n    return a + b\n",
        (("(a, b)", "(a: int, b)"),),
        (0, "b)", "b: int)"),
    ),
    # --- the right answer is no edit ---
    Scenario(
        "comment.py",
        "def f(x):\n    return x * 2\n",
        (("def f(x):\n", "# Doubles x.\ndef f(x):\n"),),
        None,
        noise="same",
    ),
    Scenario(
        "done.py",
        "def g(values):\n    return sorted(values)\n",
        (("sorted(values)", "sorted(values, reverse=True)"),),
        None,
        noise="no_edits",
    ),
    Scenario(
        "spaces.py",
        "x = 1\ny = 2\n",
        (("y = 2", "y = 3"),),
        None,
        noise="ws",
    ),
    Scenario(
        "retyped.py",
        "items = []\nitems.append(1)\n",
        (("append(1)", "append(2)"),),
        None,
        noise="retype",
    ),
    Scenario(
        "ramble.py",
        "def h():\n    pass\n",
        (("pass", "return 0"),),
        None,
        noise="garbage",
    ),
)


def _apply_first(text: str, old: str, new: str) -> tuple[str, int, int, int, int]:
    at = text.index(old)
    head = text[:at]
    line = head.count("\n")
    column = len(head) - (head.rfind("\n") + 1)
    end_text = text[: at + len(old)]
    end_line = end_text.count("\n")
    end_column = len(end_text) - (end_text.rfind("\n") + 1)
    return text[:at] + new + text[at + len(old) :], line, column, end_line, end_column


def expected_document(scenario: Scenario, current: str) -> str:
    if scenario.expect is None:
        return current
    line, old, new = scenario.expect
    lines = current.split("\n")
    lines[line] = lines[line].replace(old, new, 1)
    return "\n".join(lines)


def oracle_region(scenario: Scenario, current: str) -> str:
    """What the oracle "model" rewrites the region (here: the whole small file) to."""
    text = expected_document(scenario, current)
    lines = text.split("\n")
    if scenario.noise == "ws":
        target = 0 if scenario.expect is None or scenario.expect[0] != 0 else len(lines) - 2
        lines[target] += "   "
    elif scenario.noise == "retype":
        lines.insert(1, lines[0])
    elif scenario.noise == "garbage":
        return "lorem ipsum dolor sit amet " * 200
    return "\n".join(lines)


def wrap(fmt: str, region: str, no_edit: bool, path: str) -> str:
    if fmt == "sweep":
        return region + "<|file_sep|>"
    if fmt == "zeta2":
        return "NO_EDITS\n>>>>>>> UPDATED\n" if no_edit else region + ">>>>>>> UPDATED\n"
    if fmt == "zeta":
        return f"```{path}\n<|editable_region_start|>\n{region}<|editable_region_end|>\n```"
    if fmt == "generic":
        return "NO_EDITS" if no_edit else f"```\n{region}```"
    return region  # instinct


@dataclass
class Outcome:
    scenario: Scenario
    shown: bool
    exact: bool
    ms: float
    after_backend_ms: float | None = None  # from the backend's last byte to the answer


async def run_scenario(
    client: LanguageClient, root: Path, scenario: Scenario, fake: FakeLMStudio | None
) -> Outcome:
    uri = (root / scenario.name).as_uri()
    language = "typescript" if scenario.name.endswith(".ts") else "python"
    text = scenario.text
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id=language, version=1, text=text
            )
        )
    )
    version = 1
    cursor = types.Position(line=0, character=0)
    for old, new in scenario.edits:
        text, line, column, end_line, end_column = _apply_first(text, old, new)
        version += 1
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(
                            start=types.Position(line=line, character=column),
                            end=types.Position(line=end_line, character=end_column),
                        ),
                        text=new,
                    )
                ],
            )
        )
        # The cursor ends after the text typed.
        typed_lines = new.split("\n")
        cursor = types.Position(
            line=line + len(typed_lines) - 1,
            character=(column if len(typed_lines) == 1 else 0) + len(typed_lines[-1]),
        )
    started = time.perf_counter()
    result: Any = await client.protocol.send_request_async(
        METHOD,
        {
            "textDocument": {"uri": uri, "version": version},
            "position": {"line": cursor.line, "character": cursor.character},
        },
    )
    answered = time.perf_counter()
    ms = (answered - started) * 1000
    after = None
    if fake is not None and fake.generations:  # same process, same monotonic clock
        after = (answered - fake.generations[-1].ended) * 1000
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    edits = list(getattr(result, "edits", None) or [])
    if not edits:
        return Outcome(scenario, False, scenario.expect is None, ms, after)
    edit = edits[0]
    applied = _apply_range(text, edit.range, edit.text)
    exact = scenario.expect is not None and applied == expected_document(scenario, text)
    return Outcome(scenario, True, exact, ms, after)


def _apply_range(text: str, span: Any, new: str) -> str:
    lines = text.split("\n")

    def offset(position: Any) -> int:
        return sum(len(row) + 1 for row in lines[: position.line]) + position.character

    return text[: offset(span.start)] + new + text[offset(span.end) :]


async def run_format(fmt: str, model: str, api_base: str | None) -> list[Outcome]:
    fake: FakeLMStudio | None = None
    if api_base is None:
        current: dict[str, str] = {}

        def answer(request: dict[str, Any]) -> str:
            prompt = str(request.get("prompt") or request.get("messages"))
            for scenario in SCENARIOS:
                if scenario.name in prompt:
                    text = current[scenario.name]
                    no_edit = scenario.expect is None and scenario.noise == "no_edits"
                    return wrap(fmt, oracle_region(scenario, text), no_edit, scenario.name)
            return "NO_EDITS"

        models = [*default_models()]
        models += [
            {**models[0], "id": name} for name in FORMAT_MODELS.values() if name != models[1]["id"]
        ]
        fake = FakeLMStudio(reply=answer, completion_reply=answer, models=models).start()
        api_base = fake.base_url
        for scenario in SCENARIOS:
            text = scenario.text
            for old, new in scenario.edits:
                text = _apply_first(text, old, new)[0]
            current[scenario.name] = text
    home = Path(tempfile.mkdtemp(prefix="aigents-nextedit-"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIGENTS_")},
        "AIGENTS_PROVIDER": "lmstudio",
        "AIGENTS_API_BASE": api_base,
        "AIGENTS_NEXT_EDIT_MODEL": model,
        "AIGENTS_NEXT_EDIT_FORMAT": fmt,
        "AIGENTS_NEXT_EDIT_DEBOUNCE_MS": "0",
        "AIGENTS_LOG_LEVEL": "warning",
        "XDG_CONFIG_HOME": str(home),
        "XDG_STATE_HOME": str(home),
    }
    client = LanguageClient("nextedit-bench", "1")
    client.feature("aigents/status")(lambda ls, params: None)
    await client.start_io(sys.executable, "-m", "aigents_lsp", env=env)
    server = getattr(client, "_server", None)
    drain = None
    if server is not None and server.stderr is not None:
        drain = asyncio.create_task(server.stderr.read())
    root = home / "ws"
    root.mkdir()
    await client.initialize_async(
        types.InitializeParams(capabilities=types.ClientCapabilities(), root_uri=root.as_uri())
    )
    client.initialized(types.InitializedParams())
    outcomes = [await run_scenario(client, root, s, fake) for s in SCENARIOS]
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    if drain is not None:
        drain.cancel()
    if fake is not None:
        fake.stop()
    return outcomes


def report(fmt: str, outcomes: list[Outcome]) -> dict[str, float]:
    wanted = [o for o in outcomes if o.scenario.expect is not None]
    quiet = [o for o in outcomes if o.scenario.expect is None]
    figures = {
        "exact": sum(o.exact for o in wanted) / len(wanted),
        "show": sum(o.shown for o in wanted) / len(wanted),
        "quiet": sum(not o.shown for o in quiet) / len(quiet),
        "p50_ms": statistics.median(o.ms for o in outcomes),
    }
    overhead = sorted(o.after_backend_ms for o in outcomes if o.after_backend_ms is not None)
    misses = [o.scenario.name for o in outcomes if (o.scenario.expect is None) == o.shown]
    misses += [o.scenario.name + " (inexact)" for o in wanted if o.shown and not o.exact]
    print(
        f"{fmt:9} exact edit {figures['exact']:6.1%}  show rate {figures['show']:6.1%}  "
        f"quiet rate {figures['quiet']:6.1%}  request p50 {figures['p50_ms']:5.1f} ms"
        + (f"  after backend p50 {statistics.median(overhead):4.1f} ms" if overhead else "")
        + (f"  missed: {', '.join(misses)}" if misses else "")
    )
    return figures


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api-base", help="a real backend (LM Studio: http://localhost:1234/v1)")
    parser.add_argument("--model", help="the next-edit model id at that backend")
    parser.add_argument("--format", choices=list(FORMAT_MODELS), help="only this format")
    args = parser.parse_args()
    if args.api_base and not args.model:
        parser.error("--api-base needs --model (the next-edit model to measure)")
    formats = [args.format] if args.format else list(FORMAT_MODELS)
    if args.api_base:
        from aigents_lsp.nextedit.formats import pick_format

        formats = [args.format or pick_format(args.model).name]
    where = args.api_base or "the fake backend (oracle answers with noise)"
    wanted = sum(s.expect is not None for s in SCENARIOS)
    print(
        f"next-edit benchmark: {wanted} edit + {len(SCENARIOS) - wanted} no-edit scenarios, {where}"
    )
    totals: list[dict[str, float]] = []
    for fmt in formats:
        model = args.model or FORMAT_MODELS[fmt]
        totals.append(report(fmt, await run_format(fmt, model, args.api_base)))
    if len(totals) > 1:
        mean = {k: statistics.mean(t[k] for t in totals) for k in totals[0]}
        print(
            f"{'all':9} exact edit {mean['exact']:6.1%}  show rate {mean['show']:6.1%}  "
            f"quiet rate {mean['quiet']:6.1%}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
