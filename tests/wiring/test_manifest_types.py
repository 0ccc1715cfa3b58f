"""The Workflow Builder step as the manifest declares it (read by the step's wiring tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from handlers import ids

MANIFEST = Path(__file__).resolve().parents[2] / "app_manifest.yaml"


def manifest_function() -> dict[str, Any]:
    return yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))["functions"][ids.SEND_FUNCTION]
