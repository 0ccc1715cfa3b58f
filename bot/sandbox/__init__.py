"""A local iMocha-compatible API with a candidate page: for `imocha-bot sandbox`, tests and benchmarks."""

from __future__ import annotations

import logging

from bot.runtime.serving import ServerThread
from bot.sandbox.state import ImochaState

__all__ = ["ImochaState", "serve", "start_in_thread"]

log = logging.getLogger(__name__)


def _base_url(host: str, port: int) -> str:
    # Links must be openable from a browser even when the server listens on every interface.
    shown = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def serve(host: str = "127.0.0.1", port: int = 8900) -> None:
    """Run the sandbox with the demo tests until interrupted."""
    import uvicorn

    from bot.sandbox.api import create_app

    state = ImochaState(base_url=_base_url(host, port))
    state.seed_demo()
    log.info(
        "iMocha sandbox on %s: set IMOCHA_BASE_URL=%s and use any API key starting with 'sandbox-'; operator page at %s/",
        state.base_url,
        state.base_url,
        state.base_url,
    )
    # log_config=None: uvicorn's lines (start-up, one per request) go through bot/runtime/logs.py's handler in the
    # bot's format, instead of uvicorn's own "INFO:     ..." format beside it.
    uvicorn.run(create_app(state), host=host, port=port, log_level="info", log_config=None, lifespan="off")


def start_in_thread(state: ImochaState | None = None, host: str = "127.0.0.1", port: int | None = None) -> tuple[ImochaState, ServerThread]:
    """Start the sandbox in a daemon thread; the state's `base_url` is set to the server's URL.

    Without a state, a new one with the demo tests is made. Stop it with `server.stop()`.
    """
    from bot.sandbox.api import create_app

    if state is None:
        state = ImochaState()
        state.seed_demo()
    app = create_app(state)
    server = ServerThread(app, host=host, port=port)
    state.base_url = _base_url(host, server.port)
    server.start()
    return state, server
