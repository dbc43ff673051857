"""4-bit PQ fast-scan: packing, block sums, table quantization, list scans, re-rank; faiss as the recall oracle.

References: plain numpy integer ADC over the same quantized tables (the scan must rank exactly
as it does), float ADC (dequantized distances within the rounding error of the tables), exact
search (re-rank of every code), and faiss ``IndexPQFastScan`` (+ ``IndexRefineFlat``) at the same m.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import faiss
import numpy as np
import pytest
from conftest import exact_knn

from vecsearch.benchmark.evaluation import recall_at_k
from vecsearch.codecs.pq4 import PQ4Codec, fastscan_search, pack_lists, padded_m
from vecsearch.kernels import fastscan as fs
from vecsearch.kernels import fastscan_simd as simd
from vecsearch.kernels.candidates import EMPTY
from vecsearch.kernels.distances import METRIC_IP, METRIC_L2


@pytest.fixture(autouse=True)
def _faiss_single_thread():
    faiss.omp_set_num_threads(1)  # shared 2-core box: OpenMP spinning under load is very slow


def integer_adc(lut_q: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Exact int64 sums ``sum_j lut_q[j, codes[:, j]]`` of one (m_pad, 16) table over (n, m) codes."""
    m = codes.shape[1]
    return lut_q[np.arange(m)[None, :], codes].astype(np.int64).sum(1)


def keys_of(scores: np.ndarray, scale: float, offset: float) -> np.ndarray:
    """Quantized keys back from dequantized scores (``key / scale + offset``)."""
    return (scores.astype(np.float64) - offset) * scale


def assert_same_topk(ref_keys: np.ndarray, got_rows: np.ndarray, got_keys: np.ndarray, k: int, atol: float) -> None:
    """``got`` is a valid top-k of ``ref_keys`` (n,): same sorted keys, every row's key matches, ties free."""
    n_found = min(k, ref_keys.shape[0])
    assert (got_rows[:n_found] >= 0).all() and (got_rows[n_found:] == -1).all()
    assert len(set(got_rows[:n_found].tolist())) == n_found
    np.testing.assert_allclose(got_keys[:n_found], np.sort(ref_keys)[:n_found], atol=atol, rtol=0)
    np.testing.assert_allclose(got_keys[:n_found], ref_keys[got_rows[:n_found]], atol=atol, rtol=0)


@pytest.fixture(scope="module")
def pq96(wordnet_train) -> tuple[PQ4Codec, np.ndarray]:
    codec = PQ4Codec(384, 96, seed=0).fit(wordnet_train)
    return codec, codec.encode(wordnet_train)


# ---- packing ----------------------------------------------------------------------------------
@pytest.mark.parametrize("n, m", [(1, 1), (31, 3), (32, 4), (33, 5), (100, 8), (65, 97)])
def test_pack_unpack_round_trip_at_odd_sizes(n, m):
    rng = np.random.default_rng(n * 1000 + m)
    codes = rng.integers(0, 16, (n, m)).astype(np.uint8)
    m_pad = padded_m(m)
    packed = np.zeros((-(-n // 32), m_pad, 16), np.uint8)
    fs.write_codes(codes, packed, 0)
    back = np.empty_like(codes)
    fs.read_codes(packed, 0, back)
    np.testing.assert_array_equal(back, codes)
    assert not packed[:, m:].any(), "padding sub-quantizers must stay code 0"
    tail = np.empty((packed.shape[0] * 32 - n, m), np.uint8)
    fs.read_codes(packed, n, tail)
    assert not tail.any(), "padding vectors must stay code 0"
    # the documented layout: low nibble = vector t, high nibble = vector t + 16 of the block
    b, t = divmod(n - 1, 32)
    byte = packed[b, :m, t % 16]
    np.testing.assert_array_equal(byte >> 4 if t >= 16 else byte & 15, codes[n - 1])


def test_appends_into_a_partly_filled_block_keep_earlier_codes():
    rng = np.random.default_rng(7)
    codes = rng.integers(0, 16, (70, 6)).astype(np.uint8)
    whole = np.zeros((3, 8, 16), np.uint8)
    fs.write_codes(codes, whole, 0)
    parts = np.zeros((3, 8, 16), np.uint8)
    for start, stop in [(0, 5), (5, 17), (17, 40), (40, 70)]:
        fs.write_codes(codes[start:stop], parts, start)
    np.testing.assert_array_equal(parts, whole)


def test_codec_pack_rejects_wide_codes_and_unpack_checks_n(pq96):
    codec, codes = pq96
    bad = codes[:3].copy()
    bad[0, 0] = 16
    with pytest.raises(ValueError, match="codes"):
        codec.pack(bad)
    packed = codec.pack(codes[:40])
    np.testing.assert_array_equal(codec.unpack(packed, 40), codes[:40])
    with pytest.raises(ValueError, match="n_codes"):
        codec.unpack(packed, 65)


def test_pack_lists_groups_rows_by_list_in_order():
    rng = np.random.default_rng(3)
    codec = PQ4Codec(8, 4, seed=0).fit(rng.standard_normal((64, 8)).astype(np.float32))
    codes = rng.integers(0, 16, (90, 4)).astype(np.uint8)
    list_ids = rng.integers(0, 5, 90)
    list_ids[list_ids == 3] = 4  # list 3 stays empty
    lists = pack_lists(codec, codes, list_ids, 5)
    assert lists.sizes.tolist() == np.bincount(list_ids, minlength=5).tolist()
    assert lists.slots.shape == (90,)  # slots are not padded to blocks: one per vector
    for lst in range(5):
        first = int(lists.block_offsets[lst]) * 32
        size = int(lists.sizes[lst])
        assert int(lists.block_offsets[lst + 1] - lists.block_offsets[lst]) == -(-size // 32)
        assert int(lists.slot_offsets[lst + 1] - lists.slot_offsets[lst]) == size
        rows = lists.slots[int(lists.slot_offsets[lst]):int(lists.slot_offsets[lst]) + size]
        np.testing.assert_array_equal(rows, np.flatnonzero(list_ids == lst))
        got = np.empty((size, 4), np.uint8)
        fs.read_codes(lists.packed, first, got)
        np.testing.assert_array_equal(got, codes[rows])


# ---- block sums -------------------------------------------------------------------------------
@pytest.mark.parametrize("n, m", [(1, 1), (45, 3), (64, 4), (100, 7), (77, 96), (40, 256)])
def test_block_sums_equal_integer_adc(n, m):
    rng = np.random.default_rng(n + m)
    codes = rng.integers(0, 16, (n, m)).astype(np.uint8)
    m_pad = padded_m(m)
    packed = np.zeros((-(-n // 32), m_pad, 16), np.uint8)
    fs.write_codes(codes, packed, 0)
    lut_q = np.zeros((m_pad, 16), np.uint8)
    lut_q[:m] = rng.integers(0, 256, (m, 16))
    lut_q[:, 15] = 255  # m = 256: sums up to 65280 must not wrap in the 16-bit accumulators
    codes[-1] = 15
    fs.write_codes(codes[-1:], packed, n - 1)
    out = np.empty(packed.shape[0] * 32, np.uint16)
    fs.packed_sums(lut_q, packed, packed.shape[0], out)
    np.testing.assert_array_equal(out[:n], integer_adc(lut_q, codes))
    assert (out[n:] == int(lut_q[:, 0].astype(np.int64).sum())).all()  # padding vectors are code 0


def _sums_in_subprocess(env_extra: dict[str, str]) -> str:
    code = textwrap.dedent(
        """
        import numpy as np
        from vecsearch.kernels import fastscan_simd as simd
        from vecsearch.kernels import fastscan as fs
        rng = np.random.default_rng(0)
        n, m = 77, 13
        codes = rng.integers(0, 16, (n, m)).astype(np.uint8)
        packed = np.zeros((3, 16, 16), np.uint8)
        fs.write_codes(codes, packed, 0)
        lut = np.zeros((16, 16), np.uint8)
        lut[:m] = rng.integers(0, 256, (m, 16))
        out = np.empty(96, np.uint16)
        fs.packed_sums(lut, packed, 3, out)
        ref = lut[np.arange(m)[None, :], codes].astype(np.int64).sum(1)
        assert (out[:n] == ref).all(), "sums differ"
        print(simd.shuffle_plan())
        """
    )
    env = dict(os.environ, VECSEARCH_NUMBA_CACHE="0", **env_extra)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([sys.executable, "-c", code], check=False, env=env, cwd=root, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


def _features_without(prefixes: tuple[str, ...]) -> str:
    import llvmlite.binding as llvm_binding

    feats = llvm_binding.get_host_cpu_features()
    for name in list(feats):
        if name.startswith(prefixes):
            feats[name] = False
    return feats.flatten()


@pytest.mark.slow
def test_portable_shuffle_gives_the_same_sums():
    assert _sums_in_subprocess({simd.SHUFFLE_ENV: "portable"}) == "('portable', 16)"


@pytest.mark.slow
@pytest.mark.skipif(simd.shuffle_plan()[0] != "x86", reason="x86 shuffle widths")
@pytest.mark.parametrize("disabled, width", [(("avx512",), 32), (("avx512", "avx2"), 16)])
def test_narrower_x86_shuffles_give_the_same_sums(disabled, width):
    if width == 32 and simd.shuffle_plan()[1] < 32:
        pytest.skip("host has no AVX2")
    plan = _sums_in_subprocess({"NUMBA_CPU_FEATURES": _features_without(disabled)})
    assert plan == f"('x86', {width})"


def test_sum_threshold_admits_exactly_the_sums_that_can_enter_the_heap():
    """A sum equal to the top may still enter (tie-ordered heaps: by the smaller id), so ``<=``."""
    rng = np.random.default_rng(11)
    # multiples of 1/64: float32 sums and differences of these are exact, like most real keys
    tops = np.concatenate([rng.integers(0, 70000 * 64, 300) / 64, [np.inf, 0.0, 65534.0, 65535.0, 65536.5, 7.0]])
    biases = np.concatenate([rng.integers(0, 3000 * 64, 300) / 64, [0.0, 0.0, 0.0, 0.5, 1.0, 7.5]])
    for top, bias in zip(tops.astype(np.float32), biases.astype(np.float32)):
        thr = fs.sum_threshold(top, bias)
        assert 0 <= thr <= simd.SUM_LIMIT + 1
        sums = np.arange(0, simd.SUM_LIMIT + 1, dtype=np.float32)
        enters = sums + bias <= top
        assert (sums[enters] < thr).all(), (top, bias, thr)  # never drops a candidate
        if 0 < thr <= simd.SUM_LIMIT:
            assert enters[thr - 1], (top, bias, thr)  # and is the tightest such bound


# ---- table quantization -----------------------------------------------------------------------
def test_quantized_tables_use_the_full_byte_range_and_zero_padding():
    rng = np.random.default_rng(1)
    luts = rng.standard_normal((1, 5, 16)).astype(np.float32) * np.array([1, 3, 0.5, 2, 1], np.float32)[None, :, None]
    lut_q = np.full((1, 8, 16), 99, np.uint8)
    bias_q = np.empty(1, np.float32)
    scale, offset = fs.quantize_tables(luts, np.zeros(1, np.float32), lut_q, bias_q)
    assert (lut_q[0, :5].min(1) == 0).all()  # per sub-space minimum subtracted
    assert lut_q[0, 1].max() == 255  # the widest sub-space spans the whole byte
    assert not lut_q[0, 5:].any()
    np.testing.assert_allclose(scale, 255 / np.ptp(luts[0, 1]), rtol=1e-6)
    np.testing.assert_allclose(offset, luts[0].min(1).sum(), rtol=1e-5)
    assert bias_q[0] == 0


def test_quantized_sums_stay_below_the_16_bit_limit_for_many_subquantizers():
    m = 400  # 400 * 255 > 65535: the scale must shrink
    luts = np.tile(np.arange(16, dtype=np.float32), (1, m, 1))
    lut_q = np.empty((1, padded_m(m), 16), np.uint8)
    scale, _ = fs.quantize_tables(luts, np.zeros(1, np.float32), lut_q, np.empty(1, np.float32))
    assert scale < 255 / 15
    assert int(lut_q[0, :, 15].astype(np.int64).sum()) <= simd.SUM_LIMIT


def test_unprobed_lists_are_ignored_by_the_quantization():
    rng = np.random.default_rng(2)
    luts = rng.standard_normal((3, 4, 16)).astype(np.float32)
    luts[1] *= 1000  # the table of an unprobed list must not set the scale
    biases = np.array([0.5, np.inf, -0.25], np.float32)
    lut_q = np.empty((3, 4, 16), np.uint8)
    bias_q = np.empty(3, np.float32)
    scale, offset = fs.quantize_tables(luts, biases, lut_q, bias_q)
    spans = np.ptp(luts[[0, 2]], axis=2)
    np.testing.assert_allclose(scale, 255 / spans.max(), rtol=1e-6)
    bases = luts[[0, 2]].min(2).sum(1) + biases[[0, 2]]
    np.testing.assert_allclose(offset, bases.min(), rtol=1e-5)
    assert bias_q[1] == np.inf and min(bias_q[0], bias_q[2]) == 0
    np.testing.assert_allclose(bias_q[[0, 2]], (bases - bases.min()) * scale, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_dequantized_sums_are_within_the_rounding_error_of_float_adc(metric, pq96, wordnet_queries_id):
    codec, codes = pq96
    q = wordnet_queries_id[:20]
    tables = codec.compute_tables(q, metric)
    lut_q, scale, offset = codec.quantize_tables(tables)
    sums = codec.scan(lut_q, codec.pack(codes), codes.shape[0])
    float_adc = codec.pq.adc(tables, codes)
    for qi in range(q.shape[0]):
        np.testing.assert_array_equal(sums[qi], integer_adc(lut_q[qi], codes))
        err = np.abs(sums[qi] / scale[qi] + offset[qi] - float_adc[qi])
        assert err.max() <= (0.5 * codec.m + 0.01) / scale[qi] + 1e-5 * np.abs(float_adc[qi]).max()
        # the error is rounding, not a bias: it is far below the bound on average
        assert err.mean() < 0.25 * (0.5 * codec.m) / scale[qi]


# ---- flat scan --------------------------------------------------------------------------------
@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_flat_scan_ranks_exactly_as_integer_adc(metric, pq96, wordnet_queries_ood):
    codec, codes = pq96
    q = wordnet_queries_ood[:30]
    packed = codec.pack(codes)
    k = 50  # many candidates: most are admitted by the threshold, many ties
    res = codec.search(q, packed, codes.shape[0], k=k, metric=metric)
    lut_q, scale, offset = codec.quantize_tables(codec.compute_tables(q, metric))
    for qi in range(q.shape[0]):
        got = keys_of(res.scores[qi], scale[qi], offset[qi])
        np.testing.assert_allclose(got, np.round(got), atol=0.02)  # keys are integer sums
        assert_same_topk(integer_adc(lut_q[qi], codes).astype(np.float64), res.rows[qi], np.round(got), k, atol=0)


@pytest.mark.parametrize("dim, m", [(1, 1), (3, 1), (3, 3), (97, 1), (97, 97)])
def test_odd_dims_scan_exactly_and_rerank_of_all_codes_is_exact_search(dim, m, wordnet_train, wordnet_queries_id):
    x = np.ascontiguousarray(wordnet_train[:1000, :dim])
    q = np.ascontiguousarray(wordnet_queries_id[:15, :dim])
    codec = PQ4Codec(dim, m, niter=10, seed=1).fit(x)
    codes = codec.encode(x)
    n = 999  # not a multiple of 32
    packed = codec.pack(codes[:n])
    assert packed.shape == (32, padded_m(m), 16)
    for metric in ("ip", "l2"):
        res = codec.search(q, packed, n, k=10, metric=metric)
        lut_q, scale, offset = codec.quantize_tables(codec.compute_tables(q, metric))
        for qi in range(q.shape[0]):
            got = np.round(keys_of(res.scores[qi], scale[qi], offset[qi]))
            assert_same_topk(integer_adc(lut_q[qi], codes[:n]).astype(np.float64), res.rows[qi], got, 10, atol=0)
        exact = codec.search(q, packed, n, k=10, metric=metric, n_cand=n, vectors=x[:n])
        truth = exact_knn(x[:n], q, 10, metric)
        for qi in range(q.shape[0]):  # compare scores, not ids: low-dimensional data has exact ties
            exact_scores = -x[:n] @ q[qi] if metric == "ip" else ((x[:n] - q[qi]) ** 2).sum(1)
            np.testing.assert_allclose(exact.scores[qi], np.sort(exact_scores)[:10], rtol=1e-5, atol=1e-6)
        if dim > 3:
            assert recall_at_k(exact.rows, truth) == 1.0


def test_k_larger_than_the_number_of_codes_pads(pq96, wordnet_train, wordnet_queries_id):
    codec, codes = pq96
    packed = codec.pack(codes[:20])
    q = wordnet_queries_id[:4]
    for kwargs in ({}, {"n_cand": 60, "vectors": wordnet_train[:20]}):
        res = codec.search(q, packed, 20, k=50, metric="ip", **kwargs)
        assert res.scores.shape == (4, 50) and res.rows.shape == (4, 50)
        assert (np.sort(res.rows[:, :20], axis=1) == np.arange(20)).all()
        assert (res.rows[:, 20:] == -1).all() and np.isinf(res.scores[:, 20:]).all()
        assert (np.diff(res.scores[:, :20], axis=1) >= 0).all()


def test_identical_codes_tie_and_all_distinct_rows_come_back():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((200, 8)).astype(np.float32)
    codec = PQ4Codec(8, 2, seed=0).fit(x)
    codes = np.tile(codec.encode(x[:1]), (150, 1))
    res = codec.search(x[:3], codec.pack(codes), 150, k=40, metric="l2")
    for qi in range(3):
        assert len(set(res.rows[qi].tolist())) == 40
        assert np.ptp(res.scores[qi]) == 0


def test_search_rejects_bad_arguments(pq96, wordnet_queries_id):
    codec, codes = pq96
    packed = codec.pack(codes[:64])
    with pytest.raises(ValueError, match="n_cand"):
        codec.search(wordnet_queries_id[:2], packed, 64, k=10, n_cand=5, metric="ip")
    with pytest.raises(ValueError, match="metric"):
        codec.search(wordnet_queries_id[:2], packed, 64, k=10, metric="cosine")
    with pytest.raises(ValueError, match="queries"):
        codec.search(wordnet_queries_id[:2, :100], packed, 64, k=10, metric="ip")
    with pytest.raises(ValueError, match="vectors"):
        codec.search(wordnet_queries_id[:2], packed, 64, k=10, metric="ip", vectors=np.zeros((10, 384), np.float32))


# ---- inverted lists ---------------------------------------------------------------------------
def _small_ivf(x: np.ndarray, metric: str, nlist: int, by_residual: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    centroids = np.ascontiguousarray(x[rng.choice(x.shape[0], nlist, replace=False)])
    scores = (-x @ centroids.T) if metric == "ip" else ((x[:, None, :] - centroids[None]) ** 2).sum(-1)
    labels = scores.argmin(1)
    target = x - centroids[labels] if by_residual else x
    codec = PQ4Codec(x.shape[1], 48, niter=10, seed=seed).fit(target)
    codes = codec.encode(target)
    return codec, centroids, labels, codes, pack_lists(codec, codes, labels, nlist)


def _probe(q: np.ndarray, centroids: np.ndarray, metric: str, nprobe: int):
    scores = (-q @ centroids.T) if metric == "ip" else ((q[:, None, :] - centroids[None]) ** 2).sum(-1)
    lists = np.argsort(scores, axis=1, kind="stable")[:, :nprobe]
    return lists.astype(np.int64), np.take_along_axis(scores, lists, 1).astype(np.float32)


@pytest.mark.parametrize("metric, by_residual, with_terms", [
    ("ip", True, False), ("ip", False, False), ("l2", True, True), ("l2", True, False), ("l2", False, False),
])
def test_list_scan_ranks_exactly_as_integer_adc_with_list_biases(metric, by_residual, with_terms, wordnet_train,
                                                                  wordnet_queries_id):
    from vecsearch.kernels.ivf import l2_list_tables

    x = wordnet_train[:3000]
    q = wordnet_queries_id[:12]
    nlist, nprobe, k = 40, 6, 30
    codec, centroids, labels, codes, lists = _small_ivf(x, metric, nlist, by_residual)
    probe_lists, probe_scores = _probe(q, centroids, metric, nprobe)
    probe_lists[0, -1] = -1  # a query with a missing probe
    terms = None
    if with_terms:
        terms = np.empty((nlist, codec.m, 16), np.float32)
        l2_list_tables(centroids, codec.codebooks_t, codec.cb_sq_norms, terms)
    res = fastscan_search(codec, lists, q, probe_lists, probe_scores, k=k, metric=metric, by_residual=by_residual,
                          centroids=centroids, l2_terms=terms)
    code = METRIC_IP if metric == "ip" else METRIC_L2
    per_list = metric == "l2" and by_residual
    for qi in range(q.shape[0]):
        lut_q = np.empty((nprobe if per_list else 1, codec.m_pad, 16), np.uint8)
        bias_q = np.empty(nprobe, np.float32)
        term_arr = terms if terms is not None else np.zeros((0, codec.m, 16), np.float32)
        scale, offset = fs.query_luts(code, by_residual, q[qi], probe_lists[qi], probe_scores[qi], codec.codebooks_t,
                                      codec.cb_sq_norms, centroids, term_arr, lut_q, bias_q)
        ref = np.full(x.shape[0], np.inf)
        float_ref = np.full(x.shape[0], np.inf)
        for p, lst in enumerate(probe_lists[qi]):
            if lst < 0:
                continue
            rows = np.flatnonzero(labels == lst)
            sums = integer_adc(lut_q[p if per_list else 0], codes[rows])
            ref[rows] = (sums.astype(np.float32) + bias_q[p]).astype(np.float64)
            recon = codec.decode(codes[rows]) + (centroids[lst] if by_residual else 0)
            float_ref[rows] = -recon @ q[qi] if metric == "ip" else ((recon - q[qi]) ** 2).sum(1)
        got = keys_of(res.scores[qi], scale, offset)
        n_valid = int(np.isfinite(ref).sum())
        assert_same_topk(ref, res.rows[qi], got, min(k, n_valid), atol=0.02)
        # the estimates are ADC distances of the reconstructions, within the tables' rounding
        bound = (0.5 * codec.m + 0.6) / scale + 1e-5 * np.abs(float_ref[res.rows[qi]]).max()
        assert np.abs(res.scores[qi] - float_ref[res.rows[qi]]).max() <= bound


def test_lists_shorter_than_k_pad_and_rerank_returns_exact_scores(wordnet_train, wordnet_queries_id):
    x = wordnet_train[:600]
    q = wordnet_queries_id[:5]
    codec, centroids, labels, _, lists = _small_ivf(x, "ip", 60, True)
    probe_lists, probe_scores = _probe(q, centroids, "ip", 2)
    n_in_probes = np.array([np.isin(labels, pl).sum() for pl in probe_lists])
    k = int(n_in_probes.max()) + 5
    res = fastscan_search(codec, lists, q, probe_lists, probe_scores, k=k, metric="ip", by_residual=True,
                          n_cand=k, vectors=x)
    for qi in range(q.shape[0]):
        rows = np.flatnonzero(np.isin(labels, probe_lists[qi]))
        assert sorted(res.rows[qi, :rows.size].tolist()) == rows.tolist()
        assert (res.rows[qi, rows.size:] == -1).all()
        np.testing.assert_allclose(res.scores[qi, :rows.size], np.sort(-x[rows] @ q[qi]), rtol=1e-5, atol=1e-6)


def test_serial_and_parallel_entry_points_agree(pq96, wordnet_queries_ood):
    codec, codes = pq96
    packed = codec.pack(codes)
    batch = codec.search(wordnet_queries_ood[:8], packed, codes.shape[0], k=10, metric="ip")  # threads, per query
    for qi in range(8):
        one = codec.search(wordnet_queries_ood[qi], packed, codes.shape[0], k=10, metric="ip")  # serial kernel
        # LLVM may contract the float table arithmetic differently in the two callers (last bit)
        np.testing.assert_allclose(one.scores[0], batch.scores[qi], rtol=1e-6)
        np.testing.assert_array_equal(one.rows[0], batch.rows[qi])


def assert_same_results(a, b, rtol=1e-6):
    """Two searches agree: same scores, same rows except where scores tie at the cut."""
    np.testing.assert_allclose(a.scores, b.scores, rtol=rtol)
    for sa, ra, rb in zip(a.scores, a.rows, b.rows):
        finite = np.isfinite(sa)
        below = sa < sa[finite].max() if finite.any() else finite
        assert set(ra[below].tolist()) == set(rb[below].tolist())
        assert (ra[~finite] == -1).all() and (rb[~finite] == -1).all()


@pytest.mark.parametrize("metric, by_residual", [("ip", False), ("ip", True), ("l2", False)])
@pytest.mark.parametrize("workers", [1, 3])
def test_grouped_batch_scan_returns_the_per_query_results(metric, by_residual, workers, wordnet_train,
                                                          wordnet_queries_ood):
    x = wordnet_train[:3000]
    q = wordnet_queries_ood[:45]  # not a multiple of the query group
    codec, centroids, _, _, lists = _small_ivf(x, metric, 24, by_residual)
    probe_lists, probe_scores = _probe(q, centroids, metric, 5)
    probe_lists[3, 1:] = -1

    def search(k, n_cand, vectors, grouped):
        return fastscan_search(codec, lists, q, probe_lists, probe_scores, k=k, metric=metric, n_cand=n_cand,
                               by_residual=by_residual, centroids=centroids, vectors=vectors, grouped=grouped,
                               workers=workers)

    # the candidates: the same, in the same order (ties by row: neither the path nor the threads matter)
    per_query, grouped = search(40, 40, None, False), search(40, 40, None, True)
    np.testing.assert_array_equal(per_query.rows, grouped.rows)
    np.testing.assert_allclose(per_query.scores, grouped.scores, rtol=1e-6)
    # and their exact re-rank
    scores, rows = search(10, 40, x, True)
    exact = -np.einsum("qd,qkd->qk", q, x[rows]) if metric == "ip" else ((x[rows] - q[:, None]) ** 2).sum(-1)
    np.testing.assert_allclose(scores, exact, rtol=1e-5, atol=1e-6)
    assert (np.diff(scores, axis=1) >= 0).all()


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_heaps_of_several_threads_merge_into_the_per_query_results(metric, wordnet_train, wordnet_queries_ood):
    """The grouped kernels with the units dealt round-robin to 3 heaps (as threads would take them),
    under the bound they share: the merged candidates are the per-query scan's."""
    from vecsearch.kernels import fastscan_batch as fb

    x = wordnet_train[:3000]
    q = wordnet_queries_ood[:45]
    codec, centroids, _, _, lists = _small_ivf(x, metric, 24, False)
    probe_lists, probe_scores = _probe(q, centroids, metric, 6)
    code = METRIC_IP if metric == "ip" else METRIC_L2
    nq, nprobe = probe_lists.shape
    no_terms = np.zeros((0, codec.m, 16), np.float32)
    lut_all = np.empty((nq, codec.m_pad, 16), np.uint8)
    bias_all = np.empty((nq, nprobe), np.float32)
    scales, offsets = np.empty(nq, np.float32), np.empty(nq, np.float64)
    fb.batch_tables(code, False, q, 0, nq, probe_lists, probe_scores, codec.codebooks_t, codec.cb_sq_norms,
                    centroids, no_terms, lut_all, bias_all, scales, offsets)
    pair_q, pair_list = np.empty(nq * nprobe, np.int64), np.empty(nq * nprobe, np.int64)
    pair_bias = np.empty(nq * nprobe, np.float32)
    n_pairs, n_first = fb.sort_pairs(probe_lists, bias_all, 24, pair_q, pair_list, pair_bias)
    assert n_pairs == nq * nprobe and n_first == nq
    assert sorted(pair_q[:n_first].tolist()) == list(range(nq))  # probe 0 of every query first
    assert (np.diff(pair_list[:n_first]) >= 0).all() and (np.diff(pair_list[n_first:n_pairs]) >= 0).all()
    bounds = np.empty(4 * 12 + 3, np.int64)
    n_units = fb.pair_units(pair_list, n_pairs, n_first, lists.sizes, 12, bounds)
    assert bounds[0] == 0 and bounds[n_units] == n_pairs and (np.diff(bounds[:n_units + 1]) >= 0).all()
    assert n_first in bounds[:n_units + 1].tolist() and n_units >= 12
    n_cand = 40
    heaps = np.full((3, nq, n_cand), EMPTY, np.int64)
    tops = np.full(nq, np.inf, np.float32)
    for u in range(n_units):
        fb.scan_pairs(bounds[u], bounds[u + 1], pair_q, pair_list, pair_bias, lut_all, lists.packed, lists.slots,
                      lists.block_offsets, lists.slot_offsets, lists.sizes, heaps[u % 3], tops)
    assert (heaps[1] != EMPTY).any() and (heaps[2] != EMPTY).any()  # the merge has work to do
    out = (np.full((nq, n_cand), np.inf, np.float32), np.full((nq, n_cand), -1, np.int64))
    fb.merge_and_finish(code, q, 0, nq, heaps, scales, offsets, np.zeros((0, 384), np.float32), *out)
    per_query = fastscan_search(codec, lists, q, probe_lists, probe_scores, k=n_cand, metric=metric,
                                by_residual=False, grouped=False)
    np.testing.assert_array_equal(per_query.rows, out[1])
    np.testing.assert_allclose(per_query.scores, out[0], rtol=1e-6)


def test_grouped_scan_of_a_list_longer_than_a_chunk_returns_the_per_query_results(wordnet_train,
                                                                                 wordnet_queries_id):
    x = wordnet_train[:3000]
    codec = PQ4Codec(384, 384, niter=5, seed=0).fit(x)  # 6 KB per block: the list spans several chunks
    chunk_vectors = fs.CHUNK_BYTES // (codec.m_pad * 16) * 32
    assert x.shape[0] > 2 * chunk_vectors
    packed = codec.pack(codec.encode(x))
    q = wordnet_queries_id[:9]
    for k in (30, 2999):  # k = n: every code, none skipped at a chunk border
        per_query = codec.search(q, packed, 2999, k=k, metric="l2", grouped=False)
        assert_same_results(per_query, codec.search(q, packed, 2999, k=k, metric="l2", grouped=True))


# ---- recall against faiss ---------------------------------------------------------------------
# Measured spread of recall@10 over 4 seeds on this slice (ours and faiss alike): about +-0.015.
RECALL_TOLERANCE = 0.03


@pytest.mark.parametrize("m", [48, 96])
@pytest.mark.parametrize("queries", ["wordnet_queries_id", "wordnet_queries_ood"])
def test_recall_with_and_without_rerank_matches_faiss_fastscan(m, queries, wordnet_train, request):
    x = wordnet_train
    q = request.getfixturevalue(queries)
    truth = exact_knn(x, q, 10, "ip")
    codec = PQ4Codec(384, m, seed=0).fit(x)
    packed = codec.pack(codec.encode(x))
    ours = recall_at_k(codec.search(q, packed, x.shape[0], k=10, metric="ip").rows, truth)
    ours_rr = recall_at_k(codec.search(q, packed, x.shape[0], k=10, metric="ip", n_cand=20, vectors=x).rows, truth)
    base = faiss.IndexPQFastScan(384, m, 4, faiss.METRIC_INNER_PRODUCT)
    refine = faiss.IndexRefineFlat(base)
    refine.train(x)
    refine.add(x)
    refine.k_factor = 2
    theirs = recall_at_k(base.search(q, 10)[1], truth)
    theirs_rr = recall_at_k(refine.search(q, 10)[1], truth)
    assert ours >= theirs - RECALL_TOLERANCE, (ours, theirs)
    assert ours_rr >= theirs_rr - RECALL_TOLERANCE, (ours_rr, theirs_rr)
    assert ours_rr > ours + 0.1  # the re-rank does recover recall
