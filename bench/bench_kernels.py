"""Micro-benchmarks of the hot kernels (pytest-benchmark): distances, top-k, PQ ADC, LVQ, FDE.

Not part of the test run (``bench/`` is outside ``testpaths`` and this file does not match
``test_*.py``); run explicitly:

    python -m pytest bench/bench_kernels.py --benchmark-columns=min,median,ops -q
    python -m pytest bench/bench_kernels.py --benchmark-json bench/results/kernels.json

Data: the real 5,000 x 384 WordNet/MiniLM slice in ``tests/data`` (float32, unit norm). Every
kernel is called once before timing so compilation (or the cache load) is not measured.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
NQ = 32
K = 10


@pytest.fixture(scope="module")
def base() -> np.ndarray:
    return np.ascontiguousarray(np.load(DATA / "train.npy").astype(np.float32))


@pytest.fixture(scope="module")
def queries() -> np.ndarray:
    return np.ascontiguousarray(np.load(DATA / "test_id.npy")[:NQ].astype(np.float32))


def _measure(benchmark, fn, *args):
    fn(*args)  # compile / load from cache before timing
    return benchmark(fn, *args)


# ---- distances and top-k ----------------------------------------------------------------------------
@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_score_many_to_many(benchmark, base, queries, metric):
    from vecsearch.kernels.distances import METRIC_IP, METRIC_L2, score_many_to_many

    code = METRIC_L2 if metric == "l2" else METRIC_IP
    out = np.empty((queries.shape[0], base.shape[0]), np.float32)
    _measure(benchmark, score_many_to_many, code, queries, base, out)


def test_score_one_to_many(benchmark, base, queries):
    from vecsearch.kernels.distances import METRIC_IP, score_one_to_many

    out = np.empty(base.shape[0], np.float32)
    _measure(benchmark, score_one_to_many, METRIC_IP, queries[0], base, out)


def test_topk_scan(benchmark, base, queries, monkeypatch):
    """The numba scan path of the one exact top-k (BLAS path switched off), through its entry point."""
    from vecsearch import exact
    from vecsearch.kernels.distances import METRIC_IP

    monkeypatch.setattr(exact, "BLAS_MIN_QUERIES", 1 << 30)
    _measure(benchmark, exact.exact_topk, METRIC_IP, queries, base, K)


def test_topk_merge_block(benchmark, base, queries):
    from vecsearch.kernels.heaps import empty_heaps, sort_heaps, topk_merge_block

    block = -(queries @ base.T)

    def run():
        scores, rows = empty_heaps(queries.shape[0], K)
        topk_merge_block(block, 0, scores, rows)
        sort_heaps(scores, rows)

    _measure(benchmark, run)


# ---- product quantization ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pq(base):
    quantizers = pytest.importorskip("vecsearch.codecs.pq", reason="ProductQuantizer not built yet")
    return quantizers.ProductQuantizer(base.shape[1], 48, 8, seed=0).fit(base)


def test_pq_tables(benchmark, pq, queries):
    _measure(benchmark, pq.compute_distance_tables, queries, "ip")


def test_pq_adc_scan(benchmark, pq, base, queries):
    codes = pq.encode(base)
    tables = pq.compute_distance_tables(queries, "ip")
    _measure(benchmark, pq.adc, tables, codes)


def test_pq_encode(benchmark, pq, base):
    _measure(benchmark, pq.encode, base[:1000])


# ---- LVQ --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("codec_name", ["lvq8", "lvq4", "lvq4x8"])
def test_lvq_scores_on_codes(benchmark, base, queries, codec_name):
    lvq = pytest.importorskip("vecsearch.codecs.lvq", reason="LVQ codecs not built yet")
    codec = lvq.make_codec(codec_name).fit(base)
    rows = codec.encode(base)
    _measure(benchmark, codec.scores, queries, rows, "ip")


def test_lvq8_encode(benchmark, base):
    lvq = pytest.importorskip("vecsearch.codecs.lvq", reason="LVQ codecs not built yet")
    codec = lvq.make_codec("lvq8").fit(base)
    _measure(benchmark, codec.encode, base)


# ---- FDE (MUVERA) -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def token_sets():
    with np.load(DATA / "multivector.npz") as f:
        return {k: (f[k].astype(np.float32) if f[k].dtype == np.float16 else f[k]) for k in f.files}


@pytest.mark.parametrize("side", ["documents", "queries"])
def test_fde_encode(benchmark, token_sets, side):
    fde = pytest.importorskip("vecsearch.codecs.fde", reason="FDE encoder not built yet")
    config = fde.FDEConfig(reps=20, k_sim=5, d_proj=16, seed=0)
    if side == "documents":
        fn, vecs, offs = fde.encode_documents, token_sets["doc_vecs"], token_sets["doc_offsets"]
    else:
        fn, vecs, offs = fde.encode_queries, token_sets["query_vecs"], token_sets["query_offsets"]
    _measure(benchmark, lambda: fn(vecs, config, offsets=offs))
