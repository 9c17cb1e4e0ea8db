"""Settings: merge order, validation by name, last good value kept, generated docs fresh."""

from __future__ import annotations

from pathlib import Path

import pytest

from aigents_lsp.config import Settings, settings_markdown
from aigents_lsp.settings_sources import SettingsLayer, env_source, load_settings, merge

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_point_at_lmstudio() -> None:
    settings = Settings()
    assert settings.provider == "auto"
    assert settings.base_url == "http://localhost:1234/v1"
    assert settings.model_for("completion") is None


def test_sources_merge_lowest_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = tmp_path / "xdg" / "aigents"
    user.mkdir(parents=True)
    (user / "config.toml").write_text('model = "user-model"\ndebounce_ms = 50\nttl = 100\n')
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / ".aigents.toml").write_text('[aigents]\nmodel = "ws-model"\ndebounce_ms = 60\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    settings, problems = load_settings(
        [workspace],
        environ={"AIGENTS_DEBOUNCE_MS": "70", "AIGENTS_CHAT_MODEL": "env-chat"},
        extra_layers=[SettingsLayer("initializationOptions", {"chatTemperature": 0.5})],
    )
    assert problems == []
    assert settings.model == "ws-model"  # workspace file over user file
    assert settings.ttl == 100  # user file kept where nothing overrides it
    assert settings.debounce_ms == 70  # environment over files
    assert settings.chat_model == "env-chat"
    assert settings.chat_temperature == 0.5  # camelCase from the editor
    assert settings.model_for("chat") == "env-chat"
    assert settings.model_for("completion") == "ws-model"


def test_bad_value_is_named_and_last_good_value_kept() -> None:
    good, _ = merge([SettingsLayer("editor", {"debounceMs": 200})])
    settings, problems = merge(
        [SettingsLayer("didChangeConfiguration", {"debounceMs": -5, "model": "m"})], good
    )
    assert settings.debounce_ms == 200
    assert settings.model == "m"  # the valid part of the same change applies
    assert [p.field for p in problems] == ["debounce_ms"]
    assert "greater than or equal to 0" in str(problems[0])
    assert "didChangeConfiguration" in str(problems[0])


def test_unknown_setting_and_bad_url_are_reported() -> None:
    settings, problems = merge(
        [SettingsLayer("editor", {"apiBase": "localhost:1234", "colour": "red"})]
    )
    assert settings.base_url == "http://localhost:1234/v1"
    assert {p.field for p in problems} == {"colour", "api_base"}


def test_environment_variables() -> None:
    found = env_source({"AIGENTS_PROVIDER": "embedded", "AIGENTS_NOPE": "x", "OTHER": "y"})
    assert found == {"provider": "embedded"}


def test_api_key_never_shown() -> None:
    settings, _ = merge([SettingsLayer("env", {"api_key": "sk-lm-abcdefgh:secretsecretsecret12"})])
    assert "secretsecret" not in repr(settings)
    assert "secretsecret" not in str(settings.public_dict())
    # a later unrelated change keeps the key
    settings, _ = merge([SettingsLayer("editor", {"model": "x"})], settings)
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value().endswith("secretsecret12")


def test_unreadable_toml_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".aigents.toml").write_text("model = [unclosed\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "none"))
    settings, problems = load_settings([tmp_path], environ={})
    assert settings == Settings()
    assert problems and "cannot read" in problems[0].reason


def test_settings_reference_is_up_to_date() -> None:
    """docs/settings.md is generated: `python -m aigents_lsp.config > docs/settings.md`."""
    committed = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    assert committed == settings_markdown(), (
        "docs/settings.md is stale: run `python -m aigents_lsp.config > docs/settings.md`"
    )
