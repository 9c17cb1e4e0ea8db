"""Backend bookkeeping that needs no network: warnings about where code goes."""

from __future__ import annotations

from aigents_lsp.config import Settings
from aigents_lsp.providers.backend import Backend


def _notices(base: str) -> list[str]:
    told: list[str] = []
    backend = Backend(Settings(), on_notice=lambda message, level: told.append(message))
    backend._warn_if_exposed(base)
    backend._warn_if_exposed(base)  # once per host
    return told


def test_plain_http_to_another_machine_is_warned_once() -> None:
    [warning] = _notices("http://192.0.2.1:1234/v1")  # no connection is made here
    assert "plain http" in warning and "192.0.2.1" in warning


def test_loopback_and_https_are_not_warned() -> None:
    for base in (
        "http://localhost:1234/v1",
        "http://127.0.0.1:1234/v1",
        "http://127.9.9.9:8080/v1",
        "http://[::1]:1234/v1",
        "https://api.example.com/v1",
    ):
        assert _notices(base) == [], base
