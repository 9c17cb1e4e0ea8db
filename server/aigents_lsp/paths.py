"""Where aigents-lsp keeps its files, per platform (no heavy imports: used at start-up)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _home_based(xdg: str, darwin: str, windows_env: str, linux: str) -> Path:
    override = os.environ.get(xdg)
    if override:
        return Path(override)
    if sys.platform == "darwin":
        return Path.home() / darwin
    if sys.platform == "win32":
        return Path(os.environ.get(windows_env) or Path.home())
    return Path.home() / linux


def user_config_dir() -> Path:
    """`~/.config/aigents` (or `$XDG_CONFIG_HOME/aigents`, `%APPDATA%\\aigents`)."""
    return _home_based("XDG_CONFIG_HOME", ".config", "APPDATA", ".config") / "aigents"


def state_dir() -> Path:
    """Logs, local metrics and generated answers: `~/.local/state/aigents-lsp`."""
    return _home_based("XDG_STATE_HOME", "Library/Logs", "LOCALAPPDATA", ".local/state") / (
        "aigents-lsp"
    )


def cache_dir() -> Path:
    """Models and engine logs: `AIGENTS_CACHE_DIR`, else the platform's user cache dir."""
    override = os.environ.get("AIGENTS_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    return _home_based("XDG_CACHE_HOME", "Library/Caches", "LOCALAPPDATA", ".cache") / (
        "aigents-lsp"
    )
