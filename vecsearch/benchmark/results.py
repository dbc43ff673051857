"""The one results file of the ``bench/`` scripts: a small JSON document per run.

    {"date": ISO time the run started, "script": name,
     "machine": {"cpu_count", "platform", "loadavg_start", "loadavg_end", "peak_rss_mb"},
     "settings": the script's arguments, "rows": [flat records], "summary": {...} (optional)}

Rows are the measured records (one per method and setting); the summary holds what is derived
from them (ratios, QPS at a target recall). Files stay small: a list longer than
:data:`MAX_LIST_ITEMS` anywhere in a row (per-query ids, per-query latencies) is refused.
``write`` may be called repeatedly (a checkpoint of a long run); each call rewrites the file
atomically with the current load average as ``loadavg_end``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .report import format_value

MAX_LIST_ITEMS = 1000


def loadavg() -> list[float] | None:
    """``os.getloadavg()`` (1, 5, 15 minutes) rounded, or None where the OS has none."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def rss_mb() -> float:
    """Resident memory of this process now, in MB (Linux ``/proc``; NaN elsewhere)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (``ru_maxrss``, KB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _plain(value: Any, where: str, *, for_json: bool = False) -> Any:
    """``value`` as plain Python (numpy scalars and small arrays converted, Paths as str); with
    ``for_json`` non-finite floats become None (JSON has no NaN: "not measured / not reached")."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    elif isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{where}.{k}", for_json=for_json) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if len(value) > MAX_LIST_ITEMS:
            raise ValueError(
                f"{where}: a list of {len(value)} items; results files keep summaries, not "
                f"per-query arrays (at most {MAX_LIST_ITEMS} items per list)"
            )
        return [_plain(v, f"{where}[{i}]", for_json=for_json) for i, v in enumerate(value)]
    if for_json and isinstance(value, float) and not np.isfinite(value):
        return None
    return value


class ResultsFile:
    """Create at the start of a run (records the date and the load), ``add`` rows, ``write`` at the end.

    ``settings``: the script's arguments (an ``argparse.Namespace`` or a mapping).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        settings: argparse.Namespace | Mapping[str, Any],
        *,
        script: str | None = None,
    ):
        self.path = Path(path)
        if isinstance(settings, argparse.Namespace):
            settings = vars(settings)
        self.settings = _plain(dict(settings), "settings")
        self.script = script
        self.date = (
            datetime.datetime.now(datetime.timezone.utc).astimezone().isoformat(timespec="seconds")
        )
        self.loadavg_start = loadavg()
        self.rows: list[dict[str, Any]] = []
        self.summary: dict[str, Any] = {}

    def add(self, row: Mapping[str, Any], *, show: Sequence[str] = ()) -> dict[str, Any]:
        """Append one measured record (checked and converted to plain Python now, NaN kept until
        written); returns it as stored. ``show``: keys printed as one progress line."""
        plain = _plain(dict(row), f"rows[{len(self.rows)}]")
        self.rows.append(plain)
        if show:
            print("  ".join(f"{key}={format_value(plain.get(key))}" for key in show), flush=True)
        return plain

    def select(self, **match: Any) -> list[dict[str, Any]]:
        """The rows whose values equal every ``key=value`` given (e.g. ``section="search"``)."""
        return [row for row in self.rows if all(row.get(k) == v for k, v in match.items())]

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"date": self.date}
        if self.script:
            doc["script"] = self.script
        doc["machine"] = {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "loadavg_start": self.loadavg_start,
            "loadavg_end": loadavg(),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }
        doc["settings"] = self.settings
        doc["rows"] = self.rows
        if self.summary:
            doc["summary"] = self.summary
        return _plain(doc, "results", for_json=True)

    def write(self) -> Path:
        """Write (or rewrite) the file atomically; returns its path."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.document(), indent=1, allow_nan=False) + "\n")
        os.replace(tmp, self.path)
        return self.path


def read_results_file(path: str | os.PathLike) -> dict[str, Any]:
    """A file written by :class:`ResultsFile`, as a dict."""
    return json.loads(Path(path).read_text())


__all__ = ["MAX_LIST_ITEMS", "ResultsFile", "loadavg", "peak_rss_mb", "read_results_file", "rss_mb"]
