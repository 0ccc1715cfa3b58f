"""The sandbox is an optional extra (`imocha-slack-bot[sandbox]`): the bot's own code never needs it.

Each check runs in a fresh interpreter, so that what this test process already imported hides nothing.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_no_runtime_module_imports_the_sandbox_or_reportlab() -> None:
    result = run_python(
        """
        import importlib, pkgutil, sys
        import bot.runtime.app, bot.runtime.cli, bot.runtime.web  # the composition root, the run command, the web server

        def import_all(name):
            # The sandbox itself is skipped, and Alembic's migrations (env.py runs one when imported).
            if name.startswith(("bot.sandbox", "store.migrations")):
                return
            module = importlib.import_module(name)
            for sub in pkgutil.iter_modules(getattr(module, "__path__", [])):
                import_all(f"{name}.{sub.name}")

        for package in ("bot", "handlers", "store"):
            import_all(package)
        leaked = sorted(name for name in sys.modules if name.split(".")[0] == "reportlab" or name.startswith("bot.sandbox"))
        print(len([name for name in sys.modules if name.startswith(("bot.", "handlers.", "store."))]), leaked)
        """
    )
    assert result.returncode == 0, result.stderr
    imported, leaked = result.stdout.split(" ", 1)
    assert int(imported) > 40  # the walk found the code
    assert leaked.strip() == "[]"


def test_the_sandbox_command_without_its_extra_exits_with_one_line_naming_the_pip_command() -> None:
    result = run_python(
        """
        import sys
        sys.modules["reportlab"] = None  # as if the extra were not installed
        from bot.runtime.cli import main
        raise SystemExit(main(["sandbox", "--port", "0"]))
        """
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "imocha-bot: the sandbox is an optional extra; install it with: pip install 'imocha-slack-bot[sandbox]'"
    ]
