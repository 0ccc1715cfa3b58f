"""docs/architecture.md and the README's "How it is built" match the tree (issue 19): every room of
bot/ is in both, and every path either names exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "docs/architecture.md")
PATH = re.compile(r"\b((?:bot|handlers|store|tests|bench|docs)/[A-Za-z0-9_./-]*[A-Za-z0-9_/])")


def rooms() -> list[str]:
    """bot/'s subpackages and its top-level modules."""
    found = [p.name + "/" for p in sorted((ROOT / "bot").iterdir()) if (p / "__init__.py").exists()]
    return found + [p.name for p in sorted((ROOT / "bot").glob("*.py")) if p.name != "__init__.py"]


def how_it_is_built() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## How it is built", 1)[1].split("\n## ", 1)[0]
    return section.split("```", 2)[1]


@pytest.mark.parametrize("room", rooms())
def test_every_room_of_bot_is_described_in_the_readme_and_the_architecture(room: str) -> None:
    assert re.search(rf"^\s+{re.escape(room)}\s", how_it_is_built(), re.M), f"README's tree lacks {room}"
    table = (ROOT / "docs/architecture.md").read_text().split("## Rooms", 1)[1]
    assert f"bot/{room}" in table, f"docs/architecture.md's rooms table lacks bot/{room}"


@pytest.mark.parametrize("doc", DOCS)
def test_every_path_the_docs_name_exists(doc: str) -> None:
    named = {m.rstrip("/.") for m in PATH.findall((ROOT / doc).read_text())}
    assert named, f"{doc} names no path: the pattern is wrong"
    assert sorted(p for p in named if not (ROOT / p).exists()) == []
