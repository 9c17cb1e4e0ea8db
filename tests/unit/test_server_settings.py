"""Editor settings over files and environment: replaced as a whole section each time."""

from __future__ import annotations

from pathlib import Path

import pytest

from aigents_lsp.lsp.server import AigentsServer


async def test_editor_section_replaces_the_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    (tmp_path / ".aigents.toml").write_text("debounce_ms = 333\nmodel = 'from-file'\n")
    server = AigentsServer()
    server.workspace_roots = [tmp_path]
    server.load_base_settings()
    assert server.settings.debounce_ms == 333
    await server.apply_client_settings({"debounceMs": 50, "model": "edited"}, "editor")
    assert (server.settings.debounce_ms, server.settings.model) == (50, "edited")
    await server.apply_client_settings({"model": "edited"}, "editor")  # debounce removed
    assert server.settings.debounce_ms == 333
    await server.apply_client_settings({"model": "edited", "debounceMs": -1}, "editor")
    assert server.settings.debounce_ms == 333  # the last good value, reported by name
    await server.aclose()
