"""Counts for the reliability closing note: ``VECSEARCH_RELIABILITY_REPORT=file.json`` makes the
crafted-file, concurrency-stress and kill -9 tests merge their per-category counts into that file
(``{"crafted/TYPE/VARIANT/CATEGORY": {"tried": n, "passed": n}, "stress/TYPE": {...}, ...}``).
Without the variable nothing is written."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def record(counts: dict[str, dict[str, Any]]) -> None:
    """Merge ``counts`` (key -> small dict of numbers) into the report file, if one is asked for."""
    report = os.environ.get("VECSEARCH_RELIABILITY_REPORT")
    if not report:
        return
    path = Path(report)
    previous = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**previous, **counts}, indent=1, sort_keys=True))
