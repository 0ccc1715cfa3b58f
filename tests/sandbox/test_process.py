"""`imocha-bot sandbox` as a real process: it logs in the bot's format (bot/runtime/logs.py), uvicorn's lines included."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bot.runtime.serving import free_port
from tests.botproc import clean_env

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING) +[\w.]+ \[[^\]]+\] ")


def _serve_one_request(tmp_path: Path, env: dict[str, str]) -> str:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.runtime.cli", "sandbox", "--port", str(port)],
        cwd=tmp_path,
        env=clean_env(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/v3/tests", headers={"X-API-KEY": "sandbox-demo"}, timeout=1)
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert response.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    return err


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_the_sandbox_logs_every_line_in_the_bots_format(tmp_path: Path, log_format: str) -> None:
    err = _serve_one_request(tmp_path, {"LOG_FORMAT": log_format})
    lines = [line for line in err.splitlines() if line.strip()]
    for line in lines:
        assert not line.startswith("INFO:"), line  # uvicorn's own format
        if log_format == "json":
            assert set(json.loads(line)) >= {"ts", "level", "logger", "request_id", "message"}
        else:
            assert LOG_LINE.match(line), line
    messages = [json.loads(line)["message"] for line in lines] if log_format == "json" else lines
    assert any("iMocha sandbox on http://127.0.0.1:" in message for message in messages)
    assert any('"GET /v3/tests HTTP/1.1" 200' in message for message in messages)  # uvicorn's access line


def test_a_sandbox_port_in_use_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "bot.runtime.cli", "sandbox", "--port", str(port)],
            capture_output=True,
            text=True,
            env=clean_env({}),
            cwd=tmp_path,
        )
    assert result.returncode == 2
    assert result.stderr == f"imocha-bot: --port {port} on 127.0.0.1 is already in use; pick another with --port\n"
