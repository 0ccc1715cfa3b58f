"""Log lines carry a request or job id, also from work handed to the background pool."""

from __future__ import annotations

import json
import logging

from bot.runtime.logs import ContextExecutor, JsonFormatter, new_request_id, request_id


def test_background_work_keeps_the_request_id_of_the_request_that_queued_it() -> None:
    rid = new_request_id("slack")
    with ContextExecutor(max_workers=2) as pool:
        assert pool.submit(request_id.get).result() == rid
    assert rid.startswith("slack-")


def test_json_lines_are_one_object_with_the_request_id() -> None:
    new_request_id("ats")
    record = logging.LogRecord("bot.ats.intake", logging.INFO, __file__, 1, "card queued for %s", ("C1",), None)
    record.request_id = request_id.get()
    line = JsonFormatter().format(record)
    data = json.loads(line)
    assert data["message"] == "card queued for C1" and data["request_id"].startswith("ats-") and "\n" not in line
