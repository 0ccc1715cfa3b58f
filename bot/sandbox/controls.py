"""What tests steer the sandbox with: injected faults, and the log of every `/v3` call it received."""

from __future__ import annotations

import copy
import threading
from typing import Any

from bot.sandbox.records import Call, Fault


class Controls:
    """Faults to answer with, and the call log; under the account's one lock."""

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self._faults: list[Fault] = []
        self.calls: list[Call] = []

    # ---- faults ----------------------------------------------------------------------------------

    def fail_next(
        self,
        path_contains: str,
        *,
        status: int = 500,
        count: int = 1,
        retry_after: int | None = None,
        body: dict[str, Any] | None = None,
        delay: float = 0,
    ) -> None:
        """Answer the next `count` API requests whose path contains `path_contains` with `status`."""
        with self._lock:
            self._faults.append(Fault(path_contains, status, count, retry_after, body, delay))

    def drop_connection_next(self, path_contains: str, count: int = 1) -> None:
        """Close the connection mid-response for the next `count` matching API requests."""
        with self._lock:
            self._faults.append(Fault(path_contains, 200, count, drop=True))

    def take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.path_contains in path:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return copy.copy(fault)
        return None

    # ---- call log --------------------------------------------------------------------------------

    def record_call(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def count(self, path_contains: str = "", method: str | None = None) -> int:
        with self._lock:
            return sum(1 for call in self.calls if path_contains in call.path and (method is None or call.method == method.upper()))

    def reset_calls(self) -> None:
        with self._lock:
            self.calls.clear()
