"""The VS Code extension installs, lints, compiles and packages offline, and its settings match
the server's schema (package.json is generated from it by `scripts/sync-settings.mjs`)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

EXTENSION = Path(__file__).resolve().parents[2] / "editors" / "vscode"
SYNC = EXTENSION / "scripts" / "sync-settings.mjs"

pytestmark = pytest.mark.skipif(
    shutil.which("npm") is None, reason="npm is not on PATH; enable: install Node.js and npm"
)


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """A command in editors/vscode; its output is part of the failure message."""
    done = subprocess.run(
        args, cwd=EXTENSION, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, (
        f"{' '.join(args)} exited {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    )
    return done


@pytest.fixture(scope="module")
def installed() -> Path:
    """`npm ci` from package-lock.json (the npm cache makes later runs offline)."""
    run("npm", "ci", "--prefer-offline", "--no-audit", "--no-fund", timeout=900)
    return EXTENSION


@pytest.fixture(scope="module")
def vsix(installed: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged extension, written outside the source tree."""
    out = tmp_path_factory.mktemp("vsix") / "aigents.vsix"
    run(
        "npx",
        "--no-install",
        "vsce",
        "package",
        "--allow-missing-repository",
        "--out",
        str(out),
        timeout=600,
    )
    return out


def test_lint_is_clean(installed: Path) -> None:
    run("npm", "run", "lint")


def test_compiles(installed: Path) -> None:
    run("npm", "run", "compile")
    assert (installed / "out" / "extension.js").is_file()


def test_package_holds_the_extension_and_its_client(vsix: Path) -> None:
    with zipfile.ZipFile(vsix) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("extension/package.json"))
        client = json.loads(
            archive.read("extension/node_modules/vscode-languageclient/package.json")
        )
    assert {"extension/out/extension.js", "extension/package.json"} <= names
    assert not any(name.startswith("extension/src/") for name in names)
    assert manifest["main"] == "./out/extension.js"
    assert manifest["engines"]["vscode"] == "^1.91.0"
    # Inline completion without proposed API needs vscode-languageclient >= 10.0.1.
    assert tuple(int(p) for p in client["version"].split(".")[:3]) >= (10, 0, 1)
    commands = {c["command"] for c in manifest["contributes"]["commands"]}
    assert {
        "aigents.editWithInstruction",
        "aigents.openChat",
        "aigents.fixDiagnostics",
        "aigents.addDocstring",
        "aigents.generateTests",
        "aigents.explainSelection",
        "aigents.pickModel",
        "aigents.restart",
        "aigents.showOutput",
    } <= commands
    # The server registers its own `aigents.<name>` commands through the language client:
    # contributing the same ids would make VS Code refuse one of them.
    server_commands = {
        "aigents.explain",
        "aigents.edit",
        "aigents.fix",
        "aigents.docstring",
        "aigents.tests",
        "aigents.chat",
        "aigents.action",
        "aigents.cancel",
        "aigents.listModels",
        "aigents.selectModel",
        "aigents.search",
    }
    assert not commands & server_commands


def test_settings_match_the_server_schema() -> None:
    done = subprocess.run(
        ["node", str(SYNC), "--check", "--python", sys.executable],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    properties = json.loads((EXTENSION / "package.json").read_text())["contributes"][
        "configuration"
    ]["properties"]
    from aigents_lsp.config import settings_json_schema

    server = settings_json_schema()["properties"]
    assert {f"aigents.{name}" for name in server} <= set(properties)
    assert properties["aigents.provider"]["enum"] == server["provider"]["enum"]
    assert properties["aigents.model"]["type"] == ["string", "null"]
    assert properties["aigents.server.command"]["type"] == "array"


def test_settings_check_fails_when_package_json_is_stale(tmp_path: Path) -> None:
    package = json.loads((EXTENSION / "package.json").read_text())
    package["contributes"]["configuration"]["properties"]["aigents.debounceMs"]["default"] = 1
    stale = tmp_path / "package.json"
    stale.write_text(json.dumps(package))
    done = subprocess.run(
        ["node", str(SYNC), "--check", "--python", sys.executable, "--package", str(stale)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "aigents.debounceMs" in done.stderr
    assert "npm run sync-settings" in done.stderr
