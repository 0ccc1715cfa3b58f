"""Logging: plain text or one JSON object per line, each line tagged with a request or job id."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

T = TypeVar("T")

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def new_request_id(prefix: str = "req") -> str:
    value = f"{prefix}-{uuid.uuid4().hex[:10]}"
    request_id.set(value)
    return value


class ContextExecutor(ThreadPoolExecutor):
    """A thread pool whose tasks run in a copy of the submitter's context, so they keep its request id."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        context = contextvars.copy_context()
        return super().submit(context.run, fn, *args, **kwargs)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def configure(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Libraries that log each step at INFO (Alembic a line per plugin and migration, the Socket Mode
    # client each reconnection): the bot says what an operator needs in a few lines of its own.
    for noisy in ("httpx", "httpcore", "apscheduler", "alembic", "slack_sdk.web.base_client", "slack_sdk.socket_mode", "slack_bolt.App"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    # The Socket Mode client warns about each refused handshake in several lines of raw HTTP; the link
    # (bot/slack/socket_mode.py) says once per outage what happened, and `run` says it at start-up.
    logging.getLogger("slack_sdk.socket_mode").setLevel(logging.CRITICAL)
