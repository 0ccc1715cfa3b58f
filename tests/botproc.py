"""Start the real `imocha-bot run` as a subprocess and wait until /healthz answers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bot.runtime.serving import free_port

_OURS = ("SLACK_", "IMOCHA_", "DATABASE_", "ENCRYPTION_", "PUBLIC_", "ATS_", "GREENHOUSE_")


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without the bot's variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
    env.update(extra)
    return env


def spawn_bot(cwd: Path, env: dict[str, str], *, stdout: int | None = subprocess.DEVNULL) -> tuple[subprocess.Popen[str], str]:
    """`imocha-bot run` on a free loopback port; returns the process and its base URL once healthy."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.runtime.cli", "run", "--host", "127.0.0.1", "--port", str(port)],
        cwd=cwd,
        env=clean_env(env),
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"bot exited early: {proc.stderr.read() if proc.stderr else ''}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("bot did not become healthy")
