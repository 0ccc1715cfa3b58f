"""The CLI's bad-input paths: one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import migrations_head

ROOT = Path(__file__).resolve().parents[1]


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "IMOCHA_", "DATABASE_", "ENCRYPTION_", "PUBLIC_", "ATS_", "GREENHOUSE_"))
    }
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot.runtime.cli", *args], capture_output=True, text=True, env=base, cwd=cwd or ROOT, timeout=timeout
    )


def _one_line_error(result: subprocess.CompletedProcess[str], starts: str) -> None:
    assert result.returncode != 0
    lines = [line for line in result.stderr.strip().splitlines() if line]
    assert lines and lines[-1].startswith(f"imocha-bot: {starts}"), result.stderr
    assert "Traceback" not in result.stderr


def test_run_without_slack_credentials_refuses_in_one_line(tmp_path: Path) -> None:
    _one_line_error(run_cli("run", env={"DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}, cwd=tmp_path), "SLACK_BOT_TOKEN")


def test_an_unreadable_database_url_is_one_line(tmp_path: Path) -> None:
    _one_line_error(run_cli("db", "upgrade", env={"DATABASE_URL": "nonsense://"}, cwd=tmp_path), "DATABASE_URL")


def test_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    env = {"DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2", "ENCRYPTION_KEY": "x"}
    _one_line_error(run_cli("db", "upgrade", env=env, cwd=tmp_path), "DATABASE_URL")


def test_a_malformed_encryption_key_stops_run_in_one_line(tmp_path: Path) -> None:
    env = {
        "SLACK_BOT_TOKEN": "xoxb-1",
        "SLACK_SIGNING_SECRET": "s",
        "DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
        "ENCRYPTION_KEY": "short",
        "SLACK_API_URL": "http://127.0.0.1:9/api/",
    }
    _one_line_error(run_cli("run", "--port", "0", env=env, cwd=tmp_path), "ENCRYPTION_KEY")


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
        _one_line_error(run_cli("run", "--host", "127.0.0.1", "--port", str(port), env=env, cwd=tmp_path), "PORT")


def test_db_upgrade_applies_migrations(tmp_path: Path) -> None:
    result = run_cli("db", "upgrade", env={"DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"revision {migrations_head()}" in result.stdout


@pytest.mark.parametrize("args", [["frobnicate"], []])
def test_unknown_commands_print_usage(args: list[str]) -> None:
    result = run_cli(*args)
    assert result.returncode == 2 and "usage: imocha-bot" in result.stderr
