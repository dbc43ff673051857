"""`vecsearch bench` end to end: JSON lines, PNG, table, skipped peers, index specs."""

from __future__ import annotations

import json
import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest

from vecsearch import cli
from vecsearch.benchmark import algorithms, datasets, read_results
from vecsearch.benchmark.report import PLOT_DPI, PLOT_SIZE_IN
from vecsearch.benchmark.runner import RESULTS_FILE, parse_index_spec

ROW_FIELDS = {
    "algorithm",
    "library",
    "index",
    "build_params",
    "search_params",
    "recall",
    "qps",
    "p50_ms",
    "p99_ms",
    "build_s",
    "index_bytes",
    "dataset",
    "metric",
    "k",
    "threads",
    "n_queries",
}


@pytest.fixture(autouse=True)
def _restore_omp_env(monkeypatch):
    """``vecsearch bench`` sets OMP_WAIT_POLICY when unset; keep that out of the other tests."""
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)


@pytest.fixture
def embedded_cut(tmp_path, monkeypatch):
    """A 1000-row cut of the embedded data as an ann-benchmarks file without ground truth."""
    monkeypatch.setenv("VECSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    ds = datasets.load_embedded()
    cut = datasets.Dataset("cut", ds.train[:1000], ds.test[:40], "cosine")
    path = tmp_path / "cut-angular.hdf5"
    datasets.write_hdf5(cut, path)
    return path


def _bench(*args: str) -> int:
    return cli.main(["bench", "--runs", "1", "--latency-queries", "5", *args])


def test_bench_writes_json_lines_png_and_table(tmp_path, embedded_cut, capsys):
    out = tmp_path / "out"
    assert (
        _bench(
            "--dataset", str(embedded_cut), "--index", "flat", "--peers", "faiss", "--out", str(out)
        )
        == 0
    )
    rows = read_results(out / RESULTS_FILE)
    assert [r["algorithm"] for r in rows] == ["vecsearch-flat", "faiss-flat"]
    for line in (out / RESULTS_FILE).read_text().splitlines():
        row = json.loads(line)
        assert ROW_FIELDS <= set(row)
        assert row["recall"] == 1.0 and row["qps"] > 0 and row["index_bytes"] > 1000 * 384 * 4 * 0.9
        assert row["metric"] == "cosine" and row["n_queries"] == 40 and row["k"] == 10
        assert row["omp_wait_policy"] == "PASSIVE"
    png = out / "recall_qps.png"
    assert png.stat().st_size > 0
    img = matplotlib.image.imread(png)
    assert img.shape[:2] == (round(PLOT_SIZE_IN[1] * PLOT_DPI), round(PLOT_SIZE_IN[0] * PLOT_DPI))
    printed = capsys.readouterr().out
    assert "vecsearch-flat" in printed and "faiss-flat" in printed and "QPS@0.90" in printed
    assert (out / "table.txt").read_text().strip() == printed.strip()


def test_bench_on_npy_with_k_and_queries_flags(tmp_path, monkeypatch):
    monkeypatch.setenv("VECSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    data = datasets.synthetic(1500, 10, 16, metric="l2", seed=1, ground_truth_k=None)
    np.save(tmp_path / "x.npy", data.train)
    out = tmp_path / "out"
    assert (
        _bench(
            "--dataset",
            str(tmp_path / "x.npy"),
            "--index",
            "flat",
            "--peers",
            "none",
            "--k",
            "5",
            "--queries",
            "20",
            "--no-plot",
            "--out",
            str(out),
        )
        == 0
    )
    (row,) = read_results(out / RESULTS_FILE)
    assert (
        row["k"] == 5 and row["n_queries"] == 20 and row["metric"] == "l2" and row["recall"] == 1.0
    )
    assert not (out / "recall_qps.png").exists()


def test_missing_peer_library_is_skipped_with_a_message(
    tmp_path, embedded_cut, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss -> ImportError
    out = tmp_path / "out"
    assert (
        _bench("--dataset", str(embedded_cut), "--index", "flat", "--out", str(out), "--no-plot")
        == 0
    )
    assert [r["algorithm"] for r in read_results(out / RESULTS_FILE)] == ["vecsearch-flat"]
    captured = capsys.readouterr()
    assert "skipping faiss-flat: faiss is not installed (pip install faiss-cpu)" in captured.err


def test_index_spec_sweeps_search_keys_and_builds_each_build_value():
    algos = parse_index_spec("hnsw:M=8,16:ef=10,20", 10_000, 384)
    assert [a.build_params["M"] for a in algos] == [8, 16]
    assert all(a.search_grid == {"ef": [10, 20]} for a in algos)
    (ivf,) = parse_index_spec("ivfpq:nprobe=1,4:rerank=none,10", 10_000, 384)
    assert ivf.build_params["m"] == 48 and ivf.search_grid == {
        "nprobe": [1, 4],
        "rerank": [None, 10],
    }


@pytest.mark.parametrize(
    "spec, message",
    [("annoy", "expected one of"), ("hnsw:M", "key=value"), ("flat:x=1", "flat takes no")],
)
def test_bad_index_spec_is_rejected(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_index_spec(spec, 1000, 8)


def test_bad_dataset_exits_with_an_error_message(tmp_path, capsys):
    assert _bench("--dataset", str(tmp_path / "missing.hdf5"), "--out", str(tmp_path)) == 2
    assert "missing.hdf5" in capsys.readouterr().err


def test_python_dash_m_vecsearch_bench_help_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "vecsearch", "bench", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and "--peers" in proc.stdout and "ann-benchmarks" in proc.stdout


@pytest.fixture
def numba_threads_restored():
    """The adapter's fit pins numba to one thread (as ann-benchmarks' hnswlib wrapper does): undo it."""
    import numba

    threads = numba.get_num_threads()
    yield
    numba.set_num_threads(threads)


def test_ann_benchmarks_adapter_runs_every_registered_vector_type(wordnet_train, wordnet_queries_id,
                                                                  numba_threads_restored):
    from conftest import exact_knn

    from vecsearch import registry
    from vecsearch.benchmark.evaluation import recall_at_k
    from vecsearch.integrations.ann_benchmarks import Vecsearch

    train, q = wordnet_train[:1500], wordnet_queries_id[:30]
    truth = exact_knn(train, q, 10, "cosine")
    flat = Vecsearch("angular", {"index": "flat"})
    assert flat.get_memory_usage() == 0  # ann-benchmarks reports the increase over fit
    flat.fit(train)
    flat.set_query_arguments()
    np.testing.assert_array_equal(flat.query(q[0], 10), truth[0])
    flat.batch_query(q, 10)
    np.testing.assert_array_equal(np.stack(flat.get_batch_results()), truth)
    assert flat.get_memory_usage() * 1024 == flat._index.memory_bytes() >= train.nbytes
    assert str(flat).startswith("vecsearch-flat")
    for record in registry.all_types():
        if not record.vector_input or record.name == "flat":
            continue
        algo = Vecsearch("angular", {"index": record.name})
        algo.fit(train)  # build parameters from the type's suggestions for 1500 x 384
        grid = record.cls.search_grid()
        algo.set_query_arguments(*[grid.get(knob, [None])[-1] for knob in record.search_knobs])
        algo.batch_query(q, 10)
        found = np.stack([np.pad(r, (0, 10 - r.size), constant_values=-1) for r in algo.get_batch_results()])
        assert recall_at_k(found, truth, 10) >= 0.85, record.name
    hnsw = Vecsearch("angular", {"index": "hnsw", "M": 8, "ef_construction": 64})
    hnsw.fit(train)
    hnsw.set_query_arguments(64)
    assert "ef=64" in str(hnsw)
    with pytest.raises(ValueError, match="query_args"):
        hnsw.set_query_arguments(64, 2)
    with pytest.raises(ValueError, match="distance"):
        Vecsearch("hamming", {"index": "flat"})
    with pytest.raises(ValueError, match="index"):
        Vecsearch("angular", {"M": 16})


def test_a_failing_algorithm_is_reported_and_the_others_still_run(
    tmp_path, embedded_cut, monkeypatch, capsys
):
    def boom(self, train, metric, progress=None):
        raise RuntimeError("boom")

    monkeypatch.setattr(algorithms.FaissAlgorithm, "build", boom)
    out = tmp_path / "out"
    assert (
        _bench("--dataset", str(embedded_cut), "--index", "flat", "--out", str(out), "--no-plot")
        == 0
    )
    assert [r["algorithm"] for r in read_results(out / RESULTS_FILE)] == ["vecsearch-flat"]
    captured = capsys.readouterr()
    assert (
        "FAILED faiss-flat: RuntimeError: boom" in captured.err
        and "FAILED faiss-flat" in captured.out
    )


def test_graph_and_ivfpq_sweeps_run_beside_their_peers(tmp_path, embedded_cut):
    out = tmp_path / "out"
    specs = ["hnsw:M=8:ef_construction=40:ef=10,64", "ivfpq:nlist=8:m=16:nprobe=2,8:rerank=none,4"]
    assert (
        _bench("--dataset", str(embedded_cut), "--index", *specs, "--out", str(out), "--no-plot")
        == 0
    )
    rows = read_results(out / RESULTS_FILE)
    by = {}
    for r in rows:
        by.setdefault(r["algorithm"], []).append(r)
    assert sorted(by) == [
        "faiss-hnsw",
        "faiss-ivfpq",
        "hnswlib-hnsw",
        "vecsearch-hnsw",
        "vecsearch-ivfpq",
    ]
    assert [len(by[a]) for a in sorted(by)] == [2, 4, 2, 2, 4]
    # Same parameters, same data: the graphs all reach high recall at ef=64 ...
    for name in ("vecsearch-hnsw", "hnswlib-hnsw", "faiss-hnsw"):
        assert max(r["recall"] for r in by[name]) >= 0.95, name
    # ... and IVF-PQ tracks faiss at every (nprobe, rerank) point.
    ours = {json.dumps(r["search_params"]): r["recall"] for r in by["vecsearch-ivfpq"]}
    theirs = {json.dumps(r["search_params"]): r["recall"] for r in by["faiss-ivfpq"]}
    assert ours.keys() == theirs.keys()
    for key, recall in ours.items():
        assert abs(recall - theirs[key]) <= 0.08, (key, recall, theirs[key])
    assert by["vecsearch-ivfpq"][0]["build_params"]["nlist"] == 8


def test_bench_retimes_every_point_in_interleaved_rounds_and_keeps_the_best(tmp_path, embedded_cut, monkeypatch):
    """After the sweep each point is timed ``--rounds`` more times, the algorithms taken in turn;
    a row keeps its best QPS, and ``--rounds 0`` skips the re-timing."""
    from vecsearch.benchmark import runner
    from vecsearch.benchmark.evaluation import Timing

    seen = []

    def instant(calls, rounds, *, warmup="once"):
        seen.append((len(calls), rounds, warmup))
        for call in calls.values():
            call()  # every point is searched
        return {key: Timing([1e-9] * rounds, [1e-9] * rounds) for key in calls}

    monkeypatch.setattr(runner, "time_interleaved", instant)
    out = tmp_path / "out"
    args = ("--dataset", str(embedded_cut), "--index", "flat", "--peers", "faiss", "--out", str(out))
    assert _bench(*args, "--rounds", "2") == 0
    rows = read_results(out / RESULTS_FILE)
    assert seen == [(len(rows), 2, "each")] and len(rows) == 2
    assert all(r["qps"] == pytest.approx(40 / 1e-9) and r["qps_rounds"] == 3 for r in rows)
    seen.clear()
    assert _bench(*args, "--rounds", "0") == 0
    rows = read_results(out / RESULTS_FILE)
    assert seen == [] and all(r["qps"] < 1e9 and "qps_rounds" not in r for r in rows)


def test_bench_keeps_the_sweep_results_when_a_retiming_round_fails(tmp_path, embedded_cut, monkeypatch, capsys):
    from vecsearch.benchmark import evaluation, runner

    def lost():
        raise RuntimeError("lost the index")

    def broken(calls, rounds, **kwargs):
        return evaluation.time_interleaved(dict.fromkeys(calls, lost), rounds, **kwargs)

    monkeypatch.setattr(runner, "time_interleaved", broken)
    out = tmp_path / "out"
    args = ("--dataset", str(embedded_cut), "--index", "flat", "--peers", "faiss", "--out", str(out))
    assert _bench(*args, "--rounds", "2") == 0
    rows = read_results(out / RESULTS_FILE)
    assert len(rows) == 2 and all(0 < r["qps"] < 1e9 for r in rows)
    assert "re-timing vecsearch-flat stopped: RuntimeError: lost the index" in capsys.readouterr().err
