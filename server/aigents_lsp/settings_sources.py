"""Where settings come from, merged over the `Settings` model (config.py), lowest first:
defaults, the user file (`~/.config/aigents/config.toml`), the workspace file (`.aigents.toml`),
the environment (`AIGENTS_*`), LSP `initializationOptions`, then `workspace/configuration`
(section `aigents`) and `workspace/didChangeConfiguration`. Both spellings of a key (snake_case,
camelCase) are accepted everywhere. A bad value never replaces the last good settings: `merge`
reports it by name.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from aigents_lsp.config import ENV_PREFIX, USER_CONFIG_NAME, WORKSPACE_CONFIG_NAME, Settings
from aigents_lsp.paths import user_config_dir


def _field_lookup() -> dict[str, str]:
    """Every accepted spelling (snake, camel, lower) -> the field name."""
    lookup: dict[str, str] = {}
    for name in Settings.model_fields:
        for spelling in (name, to_camel(name), name.replace("_", "")):
            lookup[spelling.lower()] = name
    return lookup


_FIELDS = _field_lookup()


def normalize_keys(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Map user-supplied keys to field names; unknown keys are dropped (reported separately)."""
    return {_FIELDS[k.lower()]: v for k, v in raw.items() if k.lower() in _FIELDS}


def unknown_keys(raw: Mapping[str, Any]) -> list[str]:
    return [k for k in raw if k.lower() not in _FIELDS]


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML settings file; the `[aigents]` table is used when present."""
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    section = data.get("aigents")
    return dict(section) if isinstance(section, dict) else data


def env_source(environ: Mapping[str, str]) -> dict[str, Any]:
    """`AIGENTS_API_BASE=...` -> {"api_base": "..."}; empty values are ignored."""
    found: dict[str, Any] = {}
    for key, value in environ.items():
        if key.startswith(ENV_PREFIX) and value != "":
            name = key[len(ENV_PREFIX) :].lower()
            if name in Settings.model_fields:
                found[name] = _env_value(value)
    return found


def _env_value(value: str) -> Any:
    """Lists and tables (e.g. `AIGENTS_ACTIONS`) are given as JSON."""
    if value.lstrip().startswith(("[", "{")):
        try:
            return json.loads(value)
        except ValueError:
            return value  # reported by validation, with the field's name
    return value


@dataclass(frozen=True)
class SettingsProblem:
    """One invalid value, said so the user can fix it."""

    source: str
    field: str
    reason: str

    def __str__(self) -> str:
        return f"aigents: invalid setting `{self.field}` ({self.source}): {self.reason}"


@dataclass(frozen=True)
class SettingsLayer:
    source: str  # "user file ~/.config/aigents/config.toml", "environment", ...
    values: dict[str, Any]


def file_layers(workspace_roots: list[Path]) -> tuple[list[SettingsLayer], list[SettingsProblem]]:
    layers: list[SettingsLayer] = []
    problems: list[SettingsProblem] = []
    candidates = [user_config_dir() / USER_CONFIG_NAME]
    candidates += [root / WORKSPACE_CONFIG_NAME for root in workspace_roots]
    for path in candidates:
        if not path.is_file():
            continue
        try:
            layers.append(SettingsLayer(str(path), read_toml(path)))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            problems.append(SettingsProblem(str(path), "(file)", f"cannot read: {exc}"))
    return layers, problems


def merge(
    layers: list[SettingsLayer], base: Settings | None = None
) -> tuple[Settings, list[SettingsProblem]]:
    """Apply layers in order over `base`. A layer value that fails validation is dropped and
    reported; the rest of the layer still applies, so one typo never costs other settings."""
    current = base or Settings()
    problems: list[SettingsProblem] = []
    for layer in layers:
        for key in unknown_keys(layer.values):
            problems.append(SettingsProblem(layer.source, key, "unknown setting"))
        values = normalize_keys(layer.values)
        for name, value in values.items():
            candidate = {**current.model_dump(), name: value}
            if current.api_key is not None and name != "api_key":
                candidate["api_key"] = current.api_key.get_secret_value()
            try:
                current = Settings.model_validate(candidate)
            except ValidationError as exc:
                reason = "; ".join(err["msg"] for err in exc.errors())
                problems.append(SettingsProblem(layer.source, name, reason))
    return current, problems


def load_settings(
    workspace_roots: list[Path] | None = None,
    environ: Mapping[str, str] | None = None,
    extra_layers: list[SettingsLayer] | None = None,
) -> tuple[Settings, list[SettingsProblem]]:
    """Defaults <- user file <- workspace files <- environment <- `extra_layers` (LSP)."""
    layers, problems = file_layers(workspace_roots or [])
    layers.append(SettingsLayer("environment", env_source(environ or os.environ)))
    layers.extend(extra_layers or [])
    settings, merge_problems = merge(layers)
    return settings, problems + merge_problems
