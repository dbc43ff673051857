"""vecsearch.benchmark.results: the one results file of the bench/ scripts."""

from __future__ import annotations

import argparse
import datetime
import json
import math

import numpy as np
import pytest

from vecsearch.benchmark.results import MAX_LIST_ITEMS, ResultsFile, read_results_file


def test_results_file_records_date_machine_settings_and_rows(tmp_path):
    settings = argparse.Namespace(n=5000, out=tmp_path / "r.json", efs="16,32")
    results = ResultsFile(tmp_path / "sub" / "r.json", settings, script="bench_x")
    results.add({"lib": "vecsearch", "ef": np.int64(16), "recall": np.float32(0.5), "qps": 123.0})
    results.add({"lib": "faiss", "ef": 16, "recall": 1.0, "qps": float("nan"), "curve": {10: 0.9}})
    results.summary["ratio"] = float("inf")
    path = results.write()
    doc = read_results_file(path)
    assert list(doc) == ["date", "script", "machine", "settings", "rows", "summary"]
    assert datetime.datetime.fromisoformat(doc["date"]).tzinfo is not None
    machine = doc["machine"]
    assert (
        machine["cpu_count"] >= 1
        and len(machine["loadavg_start"]) == len(machine["loadavg_end"]) == 3
    )
    assert doc["settings"] == {"n": 5000, "out": str(tmp_path / "r.json"), "efs": "16,32"}
    assert doc["rows"][0] == {"lib": "vecsearch", "ef": 16, "recall": 0.5, "qps": 123.0}
    assert doc["rows"][1]["qps"] is None and doc["rows"][1]["curve"] == {
        "10": 0.9
    }  # JSON has no NaN
    assert doc["summary"] == {"ratio": None}
    assert math.isnan(results.rows[1]["qps"])  # kept in memory for the script's own summary
    json.loads(path.read_text())  # strict JSON


def test_rewriting_a_results_file_keeps_the_start_and_updates_the_end(tmp_path):
    results = ResultsFile(tmp_path / "r.json", {"a": 1})
    results.add({"x": 1})
    first = read_results_file(results.write())
    results.add({"x": 2})
    second = read_results_file(results.write())
    assert first["date"] == second["date"] and [r["x"] for r in second["rows"]] == [1, 2]
    assert not list(tmp_path.glob(".*tmp"))  # written atomically, no temp file left


def test_per_query_arrays_are_refused(tmp_path):
    results = ResultsFile(tmp_path / "r.json", {})
    with pytest.raises(ValueError, match="per-query"):
        results.add({"ids": np.arange(MAX_LIST_ITEMS + 1)})
    assert results.rows == []
