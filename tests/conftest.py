"""Fixtures shared by every test suite: the fake LM Studio server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.lmstudio_server import FakeLMStudio


@pytest.fixture
def fake_lmstudio() -> Iterator[FakeLMStudio]:
    """A fake LM Studio on a free 127.0.0.1 port (`.base_url` ends in /v1, `.root` does not).

    Change what it does with `fake_lmstudio.configure(...)`; read `.requests`,
    `.generations` and `.disconnects`.
    """
    fake = FakeLMStudio().start()
    try:
        yield fake
    finally:
        fake.stop()
