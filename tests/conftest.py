"""Fixtures shared by every test suite (the fake LM Studio server), and the CI rule: under
`CI=true`, a test marked `required_in_ci` that is skipped fails the run, so a green CI means
the real-editor, engine and fixture tests ran.

Tests under `REQUIRED_IN_CI` are marked here; any other test can carry
`@pytest.mark.required_in_ci` itself. What CI must install for them is listed in the README
(Development).

A test that cannot run here is skipped with a reason that says why and, after `enable:`, the
command that makes it run (`tests/editors/` need `bash .ci/install-editors`). The last line of a
run names each skipped group (test file), why, and that command, so nothing is skipped silently.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.fakes.lmstudio_server import FakeLMStudio

REQUIRED_IN_CI = (
    "tests/editors/",  # real editors: Neovim, Vim, Emacs, VS Code (build and real)
    "tests/engine/",  # the embedded llama.cpp engine
    "tests/unit/test_lmstudio_fixtures.py",  # recorded LM Studio answers
)
"""Paths (from the repository root) whose tests must run, not skip, in CI."""

_ROOT = Path(__file__).resolve().parent.parent


def in_ci() -> bool:
    """CI sets `CI=true` (GitHub Actions, GitLab, most others)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "required_in_ci: under CI=true, skipping this test fails the run (what it needs must "
        "be installed there)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        try:
            relative = item.path.resolve().relative_to(_ROOT).as_posix()
        except ValueError:
            continue
        if relative.startswith(REQUIRED_IN_CI):
            item.add_marker(pytest.mark.required_in_ci)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not (report.skipped and in_ci() and item.get_closest_marker("required_in_ci")):
        return
    if hasattr(report, "wasxfail"):  # an expected failure is not a skip
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = (
        f"skipped under CI=true, but this test is required in CI: {reason}\n"
        "Install what it needs in CI (README, Development; tests/conftest.py REQUIRED_IN_CI)."
    )


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


def skipped_groups_line(skips: list[tuple[str, str]]) -> str:
    """One line for (nodeid, reason) pairs: each test file skipped, how many, why."""
    if not skips:
        return "[tests] skipped groups: none"
    counts = Counter((nodeid.split("::")[0], reason) for nodeid, reason in skips)
    groups = [
        f"{path} ({count} skipped): {reason}" for (path, reason), count in sorted(counts.items())
    ]
    return f"[tests] skipped groups: {' | '.join(groups)}"


def _reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def pytest_unconfigure(config: pytest.Config) -> None:
    # After pytest's own summary, so that it is the run's last line.
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or not hasattr(reporter, "stats"):
        return
    skipped = [r for r in reporter.stats.get("skipped", []) if isinstance(r, pytest.TestReport)]
    if not reporter.stats or config.option.collectonly:
        return
    reporter.write_line(skipped_groups_line([(r.nodeid, _reason(r)) for r in skipped]))
