"""`:AigentsModel` in a real headless Neovim with the real server and the fake LM Studio: a
suggested model downloaded from the picker with its progress shown, then loaded with a
configuration; and `:AigentsModel download ID@QUANT`."""

from __future__ import annotations

from pathlib import Path

from tests.editors.test_neovim import pytestmark, run_nvim  # noqa: F401 - the same skip
from tests.fakes.lmstudio_server import FakeLMStudio, default_models


def _chat_model_only() -> list[dict[str, object]]:
    return [m for m in default_models() if m["id"] == "llama-3.2-3b-instruct"]


def test_picker_downloads_a_suggestion_and_loads_it_configured(
    tmp_path: Path, fake_lmstudio: FakeLMStudio
) -> None:
    fake_lmstudio.configure(models=_chat_model_only(), download_steps=3)
    scenario = """
        local client = H.client()
        local offered
        vim.ui.select = function(items, opts, on_choice)
          offered = vim.tbl_map(function(m) return opts.format_item(m) end, items)
          for _, item in ipairs(items) do
            if item.suggestion and item.suggestion.task == 'completion' then
              return on_choice(item)
            end
          end
        end
        vim.cmd('AigentsModel completion ctx=8192 flash=on')
        H.record('offered', H.wait(20000, function() return offered end))
        H.record('setting', H.wait(20000, function()
          return client.settings.aigents and client.settings.aigents.completionModel
        end))
        H.record('progress', require('aigents.downloads').seen)
        """
    recorded = run_nvim(tmp_path, fake_lmstudio, scenario)
    assert any(o.startswith("download Qwen2.5-Coder") for o in recorded["offered"])
    setting = recorded["setting"]
    assert setting.startswith("qwen2.5-coder-") and setting.endswith("-instruct")
    progress = recorded["progress"]
    assert any("[33%]" in p for p in progress) and any("MB/s" in p for p in progress)
    assert any(p.endswith("[100%]") for p in progress)
    loads = [r.body for r in fake_lmstudio.requests if r.path == "/api/v1/models/load"]
    assert loads == [
        {
            "model": setting,
            "context_length": 8192,
            "flash_attention": True,
            "echo_load_config": True,
        }
    ]
    messages = [n["message"] for n in recorded["notifications"]]
    assert any(m.startswith("aigents: downloaded https://huggingface.co/Qwen/") for m in messages)
    assert any(f"completion model set to {setting}" in m and "context 8192" in m for m in messages)


def test_download_command_and_bad_configuration(
    tmp_path: Path, fake_lmstudio: FakeLMStudio
) -> None:
    scenario = """
        H.client()
        vim.cmd('AigentsModel download ibm/granite-4-micro@Q8_0')
        H.wait(20000, function()
          for _, n in ipairs(H.results.notifications) do
            if n.message:find('downloaded ibm/granite') then return true end
          end
        end)
        pcall(vim.cmd, 'AigentsModel qwen/qwen3-8b chat ctx=lots')  -- an error, notified
        """
    recorded = run_nvim(tmp_path, fake_lmstudio, scenario)
    body = fake_lmstudio.last_request("/api/v1/models/download").body
    assert body == {"model": "ibm/granite-4-micro", "quantization": "Q8_0"}
    messages = [n["message"] for n in recorded["notifications"]]
    assert "aigents: downloaded ibm/granite-4-micro (listed as ibm/granite-4-micro)" in messages
    assert "aigents: ctx is a whole number" in messages
