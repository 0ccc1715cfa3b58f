"""The sandbox account's API keys and its tests, with their sections, questions and test links."""

from __future__ import annotations

import copy
import secrets
import threading
from collections.abc import Callable
from typing import Any

from bot.sandbox.records import ImochaTest, Section, TestLink, UnknownTest, as_questions, generic_questions


class Catalogue:
    """Keys and tests, under the account's one lock; readers get copies."""

    def __init__(self, lock: threading.Lock, accept_key: Callable[[str], bool]) -> None:
        self._lock = lock
        self._accept_key = accept_key
        self._keys: set[str] = set()
        self._tests: dict[int, ImochaTest] = {}
        self._next_link_id = 201_001
        self._next_section_id = 50_001

    # ---- keys ------------------------------------------------------------------------------------

    def add_key(self, key: str) -> None:
        with self._lock:
            self._keys.add(key)

    def is_valid_key(self, key: str | None) -> bool:
        if not key:
            return False
        with self._lock:
            if key in self._keys:
                return True
        return bool(self._accept_key(key))

    # ---- tests -----------------------------------------------------------------------------------

    def add_test(
        self,
        test_id: int,
        name: str,
        sections: list[tuple[str, float]] | None = None,
        duration: int = 30,
        questions: list[Any] | None = None,
        *,
        labels: list[str] | None = None,
        status: str = "Active",
    ) -> ImochaTest:
        """Add (or replace) a test; questions: `Question`s, dicts or (text, options, answer[, section])."""
        section_specs = sections or [("General", 10.0)]
        with self._lock:
            share = max(1, duration // len(section_specs))
            built = []
            for section_name, points in section_specs:
                built.append(Section(self._next_section_id, section_name, float(points), share))
                self._next_section_id += 1
            test = ImochaTest(
                test_id=test_id,
                name=name,
                sections=built,
                duration=duration,
                questions=[],
                labels=list(labels or []),
                status=status,
            )
            test.questions = as_questions(questions, len(built)) if questions is not None else generic_questions(built)
            test.links.append(self._make_link_locked(test_id, "Default test link", is_api_link=True))
            self._tests[test_id] = test
            return copy.deepcopy(test)

    def add_test_link(self, test_id: int, name: str, *, is_api_link: bool = False) -> TestLink:
        with self._lock:
            test = self.test_locked(test_id)
            link = self._make_link_locked(test_id, name, is_api_link=is_api_link)
            test.links.append(link)
            return copy.deepcopy(link)

    def _make_link_locked(self, test_id: int, name: str, *, is_api_link: bool) -> TestLink:
        link = TestLink(self._next_link_id, test_id, name, secrets.token_hex(4), is_api_link)
        self._next_link_id += 1
        return link

    def tests(self) -> list[ImochaTest]:
        with self._lock:
            return [copy.deepcopy(test) for _, test in sorted(self._tests.items())]

    def test(self, test_id: int) -> ImochaTest:
        with self._lock:
            return copy.deepcopy(self.test_locked(test_id))

    def test_locked(self, test_id: int) -> ImochaTest:
        """The test itself (not a copy), for units holding the lock."""
        try:
            return self._tests[test_id]
        except KeyError:
            raise UnknownTest() from None
