"""Every shell command in README.md, run as written with the installed package: exit code, no traceback.

The commands are read from the README's ```sh blocks, and each must appear in COMMANDS below (and
each entry there in the README), so neither can drift. Commands that serve (`imocha-bot run`,
`imocha-bot sandbox`) are started, checked for their start-up lines, then stopped with SIGTERM. Fake
Slack stands in for slack.com: the environment (which wins over `.env`, as the README says) gives
the tokens and SLACK_API_URL; the rest of `.env` is the quick start's block as written.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bot.runtime.serving import free_port
from tests.botproc import clean_env
from tests.fakes.slack import FakeSlack
from tests.fakes.socket_mode import FakeSocketMode
from tests.test_webhooks_doc import run_snippet

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
VENV_BIN = str(Path(sys.executable).parent)
INSTALL = "python3 -m venv .venv && . .venv/bin/activate && pip install -c constraints.txt -e '.[dev]'"

# command, as the README writes it → how this test runs it
COMMANDS = {
    f"{INSTALL} && imocha-bot run": "install: the package is installed already (.ci/run installs as written); `imocha-bot run` serves",
    ". .venv/bin/activate && pytest": "shell: `. .venv/bin/activate && pytest --version` (the suite itself is this run)",
    "imocha-bot sandbox": "quick start: serves",
    "imocha-bot run": "quick start: serves",
    "curl -s -H 'X-API-KEY: sandbox-demo' http://127.0.0.1:8900/v3/tests": "quick start: once the sandbox serves",
    "imocha-bot check": "quick start: once the bot has started",
    ". .venv/bin/activate": "shell",
    "ruff check . && ruff format --check bot handlers store && mypy": "shell",
    "pytest": "not run: the suite itself is this run",
    "pytest -k sqlite": "not run: a part of this run (collecting the whole suite to check the selection took 7 s)",
    "pytest -n 0 tests/wiring/test_journey.py": "not run: a part of this run, in one process",
    ".ci/run": "not run: a fresh venv, an install and the whole suite (CI runs it)",
}
SHELL = {
    ". .venv/bin/activate && pytest": ". .venv/bin/activate && pytest --version",
    ". .venv/bin/activate": ". .venv/bin/activate",
    "ruff check . && ruff format --check bot handlers store && mypy": "ruff check . && ruff format --check bot handlers store && mypy",
}
TOKEN, APP_TOKEN = "xoxb-readme", "xapp-readme"


def raw_sh_blocks() -> list[list[str]]:
    """The README's ```sh blocks (indented ones too), each as its lines, comments and all."""
    blocks = re.findall(r"^( *)```sh\n(.*?)^\1```$", README.read_text(), re.DOTALL | re.MULTILINE)
    return [[line.removeprefix(indent) for line in body.splitlines() if line.strip()] for indent, body in blocks]


def sh_blocks() -> list[list[str]]:
    """The same blocks, each line without its trailing comment."""
    return [[re.split(r"\s{2,}#", line)[0].rstrip() for line in block] for block in raw_sh_blocks()]


def is_env_file(block: list[str]) -> bool:
    return all(re.match(r"^[A-Z][A-Z0-9_]*=", line) for line in block)


def readme_commands() -> list[str]:
    return [line for block in sh_blocks() if not is_env_file(block) for line in block]


def quick_start_env() -> str:
    """The quick start's `.env`, as written (its comments too: the .env reader must take them)."""
    [block] = [raw for raw, bare in zip(raw_sh_blocks(), sh_blocks(), strict=True) if is_env_file(bare)]
    return "\n".join(block) + "\n"


def shell(command: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    environment = clean_env(env or {})
    environment["PATH"] = VENV_BIN + os.pathsep + environment.get("PATH", "")
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout)


def test_every_shell_command_in_the_readme_is_one_this_test_knows_how_to_run() -> None:
    found = readme_commands()
    assert sorted(set(found)) == sorted(COMMANDS), "README and COMMANDS disagree: update COMMANDS (and how it is run)"
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    for step in INSTALL.split(" && "):  # CI installs as the README says, one step a line
        assert step.replace("pip install", "pip install -q") in ci or step in ci, step


@pytest.mark.parametrize("command", sorted(SHELL))
def test_a_readme_shell_command_exits_0_without_a_traceback(command: str) -> None:
    if ". .venv/bin/activate" in command and not (ROOT / ".venv" / "bin" / "activate").exists():
        pytest.skip("no .venv in the checkout (the README's install makes one)")
    assert command in COMMANDS
    result = shell(SHELL[command], ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


class Served:
    """A command that serves, started with bash in `cwd`; `stop()` sends SIGTERM and returns its stderr."""

    def __init__(self, command: str, cwd: Path, env: dict[str, str]):
        environment = clean_env(env)
        environment["PATH"] = VENV_BIN + os.pathsep + environment.get("PATH", "")
        # exec: the signal goes to imocha-bot itself, not to a shell waiting for it
        self.proc = subprocess.Popen(
            ["bash", "-c", f"exec {command}"], cwd=cwd, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def wait_for(self, url: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"exited early ({self.proc.returncode}): {self.proc.communicate()[1]}")
            try:
                httpx.get(url, timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError(f"{url} did not answer within {timeout} s")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, err
        assert "Traceback" not in out + err
        return err


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("openssl")), reason="needs curl and openssl")
def test_the_quick_start_runs_as_written(tmp_path: Path) -> None:
    if not _port_free(8900):
        pytest.skip("port 8900 is in use, and the quick start's sandbox and .env need it")
    (tmp_path / ".env").write_text(quick_start_env())
    port = free_port()
    with FakeSlack() as slack, FakeSocketMode() as websocket:
        slack.add_team("T0001", TOKEN)
        slack.add_app_token(APP_TOKEN)
        slack.use_socket_mode(websocket)
        env = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_APP_TOKEN": APP_TOKEN, "SLACK_API_URL": slack.api_url, "PORT": str(port)}

        sandbox = Served("imocha-bot sandbox", tmp_path, env)
        bot = None
        try:
            sandbox.wait_for("http://127.0.0.1:8900/v3/tests")
            bot = Served("imocha-bot run", tmp_path, env)
            bot.wait_for(f"http://127.0.0.1:{port}/healthz")
            assert len(websocket.connections) == 1

            curl = shell("curl -s -H 'X-API-KEY: sandbox-demo' http://127.0.0.1:8900/v3/tests", tmp_path, env)
            assert curl.returncode == 0 and '"testName":"Python Developer – Intermediate"' in curl.stdout, curl
            check = shell("imocha-bot check", tmp_path, env)
            assert check.returncode == 0 and check.stdout.splitlines()[-1] == "all checks passed", check.stdout + check.stderr
            assert "Traceback" not in check.stdout + check.stderr
            # Step 4's "POST an ATS event": docs/webhooks.md's curl works with the quick start's .env.
            assert run_snippet(f"http://127.0.0.1:{port}")["status"] == "ignored"  # no plan yet: signed and answered
        finally:
            bot_err = bot.stop() if bot else ""
            sandbox_err = sandbox.stop()

    assert "iMocha sandbox on http://127.0.0.1:8900" in sandbox_err
    start = bot_err.splitlines()[: next(i for i, line in enumerate(bot_err.splitlines()) if "shutting down" in line)]
    assert len(start) <= 5, bot_err
    assert any("Slack: bot" in line and "Socket Mode" in line for line in start)
    assert any("database sqlite:///imocha-bot.db: schema at revision" in line for line in start)
    assert any(f"listening on http://0.0.0.0:{port} (every interface" in line and "/webhooks/ats," in line for line in start)

    # What the first run left in the working directory is all ignored by git (.gitignore).
    left = sorted(p.name for p in tmp_path.iterdir())
    assert {"imocha-bot.db", "imocha-bot.db.key"} <= set(left)
    if (ROOT / ".git").exists():
        for name in left:
            ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "--no-index", "-q", name])
            assert ignored.returncode == 0, f"{name} would show in git status"
