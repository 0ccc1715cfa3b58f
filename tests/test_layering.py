"""The layering stays true: handlers → services (bot/) → store, and nothing points back.

- store/ imports neither bot/ nor handlers/: the store maps the domain's vocabulary, it does not own it.
- handlers/ never reaches into store/: the Slack layer talks to services only.
- bot/ never imports handlers/, except the composition root that registers the listeners.
- bot/ builds no Block Kit and writes no Slack mrkdwn mentions: services return facts, handlers word them.

Read from the source (ast), so a lazy import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMPOSITION_ROOTS = {"bot/runtime/app.py"}  # builds the runtime: the one place that knows both sides
BLOCK_KIT_TYPES = {"section", "actions", "context", "header", "divider", "button", "mrkdwn", "plain_text", "modal", "home", "input"}


def sources(package: str) -> Iterator[tuple[str, ast.Module]]:
    for path in sorted((ROOT / package).rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if "/migrations/" in rel:
            continue  # Alembic's scripts (store/migrations) are the store's own history
        yield rel, ast.parse(path.read_text(), rel)


def imported(tree: ast.Module) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def crossings(package: str, forbidden: tuple[str, ...], allowed_files: set[str]) -> list[str]:
    found = []
    for rel, tree in sources(package):
        if rel in allowed_files:
            continue
        for line, module in imported(tree):
            if module.split(".")[0] in forbidden:
                found.append(f"{rel}:{line} imports {module}")
    return found


@pytest.mark.parametrize(
    ("package", "forbidden", "allowed"),
    [
        ("store", ("bot", "handlers"), set()),
        ("handlers", ("store",), set()),
        ("bot", ("handlers",), COMPOSITION_ROOTS),
    ],
    ids=["store-imports-no-service-or-handler", "handlers-never-reach-the-store", "services-never-import-handlers"],
)
def test_no_module_imports_across_a_forbidden_boundary(package: str, forbidden: tuple[str, ...], allowed: set[str]) -> None:
    assert crossings(package, forbidden, allowed) == []


VENDOR_CLIENTS = ("bot.imocha", "bot.vendors", "bot.ats.gem", "bot.ats.greenhouse")


def test_handlers_never_import_a_vendor_client() -> None:
    """Vendor errors and types are the services' to translate into domain results and errors."""
    found = [
        f"{rel}:{line} imports {module}"
        for rel, tree in sources("handlers")
        for line, module in imported_names(tree)
        if any(module == v or module.startswith(v + ".") for v in VENDOR_CLIENTS)
    ]
    assert found == []


def imported_names(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """As `imported`, and each `from package import name` as package.name too (`from bot.ats import gem`)."""
    yield from imported(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


# Rooms at the bottom of bot/: what they may import from bot/ (docs/architecture.md, "Rooms").
ROOM_IMPORTS = {
    "bot/domain.py": ("bot.domain",),
    "bot/vendors/": ("bot.vendors", "bot.runtime.clock"),
    "bot/imocha/": ("bot.imocha", "bot.vendors", "bot.runtime.clock"),
}


@pytest.mark.parametrize("room", list(ROOM_IMPORTS))
def test_the_domain_and_the_vendor_clients_depend_on_no_service(room: str) -> None:
    allowed = ROOM_IMPORTS[room]
    found = [
        f"{rel}:{line} imports {module}"
        for rel, tree in sources("bot")
        if rel == room or (room.endswith("/") and rel.startswith(room))
        for line, module in imported(tree)
        if module.split(".")[0] == "bot" and not any(module == a or module.startswith(a + ".") for a in allowed)
    ]
    assert found == []


def test_services_build_no_block_kit_and_write_no_mentions() -> None:
    found = []
    for rel, tree in sources("bot"):
        if rel.startswith("bot/sandbox/"):
            continue  # the fake iMocha's own pages
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if (
                        isinstance(key, ast.Constant)
                        and key.value == "type"
                        and isinstance(value, ast.Constant)
                        and value.value in BLOCK_KIT_TYPES
                    ):
                        found.append(f"{rel}:{node.lineno} builds a Block Kit {value.value!r}")
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and ("<@" in node.value or "<#" in node.value):
                found.append(f"{rel}:{node.lineno} writes a Slack mention")
        for line, module in imported(tree):
            if module.startswith("slack_sdk.models"):
                found.append(f"{rel}:{line} imports {module}")
    assert found == []


def test_handlers_decide_no_permission() -> None:
    """Who may act is the services' decision: a handler never asks `Access` itself (it would be skipped
    by the Workflow Builder step, an events replay or any other caller of the service)."""
    found = [
        f"{rel}:{node.lineno} uses .{node.attr}"
        for rel, tree in sources("handlers")
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and (node.attr == "access" or node.attr.startswith("require_"))
    ]
    assert found == []


def test_the_scan_sees_top_level_and_lazy_imports() -> None:
    """The scan itself works (guards against rules that pass because they read nothing)."""
    tree = ast.parse("from bot.domain import AppStatus\n\ndef f():\n    import handlers.blocks\n")
    assert [module for _line, module in imported(tree)] == ["bot.domain", "handlers.blocks"]
    assert len(list(sources("bot"))) > 30 and len(list(sources("store"))) >= 3
