"""Fast-scan searches of a batch on the thread runner: per query, or grouped by list for large batches.

One entry point, :func:`run_fastscan`, for the flat codec (:func:`vecsearch.codecs.pq4.fastscan_search`)
and the IVF fast-scan index. Small batches, and L2 by residual (a table per probed list), run query
by query (:func:`vecsearch.kernels.fastscan.fastscan_search_serial`) on slices that threads take in
turn. Batches of ``GROUPED_MIN_QUERIES`` or more are scanned list by list over the whole batch
(:mod:`vecsearch.kernels.fastscan_batch`): tables, pairs sorted by list, units of pairs that threads
take in turn, then each query's heaps merged and re-ranked.
"""

from __future__ import annotations

import numpy as np

from ..kernels.candidates import EMPTY
from ..kernels.distances import METRIC_L2
from ..kernels.fastscan import fastscan_search_serial
from ..kernels.fastscan_batch import (
    batch_tables,
    merge_and_finish,
    pair_units,
    scan_pairs,
    sort_pairs,
)
from ..parallel import run_shared, workers_for

# Batches from this many queries use the grouped scan (queries probing the same list share its
# code loads), in parts of at most GROUPED_CHUNK queries (their tables are built up front).
GROUPED_MIN_QUERIES = 64
GROUPED_CHUNK = 4096
# The threads' candidate heaps of a grouped part stay under this many bytes (fewer queries per part).
GROUPED_HEAP_BYTES = 64 << 20
# Work units per thread: a thread that loses its core on a busy machine takes fewer of them instead
# of holding the batch up at the end.
UNITS_PER_THREAD = 8
# Per-query scans: slices of queries, about this many per thread.
SLICES_PER_THREAD = 4
# Queries per slice of the tables / merge steps of the grouped scan.
QUERY_SLICE = 64


def run_fastscan(metric: int, by_residual: bool, queries: np.ndarray, probe_lists: np.ndarray,
                 probe_scores: np.ndarray, codebooks_t: np.ndarray, cb_sq_norms: np.ndarray, centroids: np.ndarray,
                 l2_terms: np.ndarray, packed: np.ndarray, slots: np.ndarray, block_offsets: np.ndarray,
                 slot_offsets: np.ndarray, sizes: np.ndarray, n_cand: int, vectors: np.ndarray,
                 out_scores: np.ndarray, out_slots: np.ndarray, *, grouped: bool | None = None,
                 workers: int | None = None) -> None:
    """Best ``k`` of each query into ``out_scores`` f32 / ``out_slots`` int64 ``(nq, k)`` (pre-filled
    +inf / -1); arguments as :func:`vecsearch.kernels.fastscan.fastscan_search_serial`.

    ``grouped``: the list-by-list batch scan (default from ``GROUPED_MIN_QUERIES`` queries; never
    for L2 by residual); both give the same results up to the order of ties. ``workers``: threads
    (default: :func:`vecsearch.parallel.workers_for`).
    """
    nq = queries.shape[0]
    workers = workers_for(nq) if workers is None else max(1, int(workers))
    per_list_tables = metric == METRIC_L2 and by_residual
    if grouped is None:
        grouped = nq >= GROUPED_MIN_QUERIES
    codec_lists = (codebooks_t, cb_sq_norms, centroids, l2_terms, packed, slots, block_offsets, slot_offsets, sizes)
    if not grouped or per_list_tables or nq == 0:
        def scan(lo: int, hi: int, _worker: int) -> None:
            fastscan_search_serial(metric, by_residual, queries[lo:hi], probe_lists[lo:hi], probe_scores[lo:hi],
                                   *codec_lists, n_cand, vectors, out_scores[lo:hi], out_slots[lo:hi])

        run_shared(scan, nq, workers, grain=max(1, -(-nq // (SLICES_PER_THREAD * workers))))
        return
    part = max(GROUPED_MIN_QUERIES, min(GROUPED_CHUNK, GROUPED_HEAP_BYTES // (8 * workers * n_cand)))
    for lo in range(0, nq, part):
        hi = min(nq, lo + part)
        _grouped_part(metric, by_residual, queries[lo:hi], probe_lists[lo:hi], probe_scores[lo:hi], codec_lists,
                      n_cand, vectors, out_scores[lo:hi], out_slots[lo:hi], workers)


def _grouped_part(metric: int, by_residual: bool, queries: np.ndarray, probe_lists: np.ndarray,
                  probe_scores: np.ndarray, codec_lists: tuple, n_cand: int, vectors: np.ndarray,
                  out_scores: np.ndarray, out_slots: np.ndarray, workers: int) -> None:
    """The grouped scan of one part of a batch (:mod:`vecsearch.kernels.fastscan_batch`)."""
    codebooks_t, cb_sq_norms, centroids, l2_terms, packed, slots, block_offsets, slot_offsets, sizes = codec_lists
    nq, nprobe = probe_lists.shape
    lut_all = np.empty((nq, packed.shape[1], packed.shape[2]), np.uint8)
    bias_all = np.empty((nq, nprobe), np.float32)
    scales = np.empty(nq, np.float32)
    offsets = np.empty(nq, np.float64)

    def tables(lo: int, hi: int, _worker: int) -> None:
        batch_tables(metric, by_residual, queries, lo, hi, probe_lists, probe_scores, codebooks_t, cb_sq_norms,
                     centroids, l2_terms, lut_all, bias_all, scales, offsets)

    run_shared(tables, nq, workers, grain=QUERY_SLICE)
    pair_q = np.empty(nq * nprobe, np.int64)
    pair_list = np.empty(nq * nprobe, np.int64)
    pair_bias = np.empty(nq * nprobe, np.float32)
    n_pairs, n_first = sort_pairs(probe_lists, bias_all, sizes.shape[0], pair_q, pair_list, pair_bias)
    n_units = UNITS_PER_THREAD * workers
    bounds = np.empty(4 * n_units + 3, np.int64)
    n_units = pair_units(pair_list, n_pairs, n_first, sizes, n_units, bounds)
    heaps = np.full((workers, nq, n_cand), EMPTY, np.int64)  # candidate heaps, one set per thread
    tops = np.full(nq, np.inf, np.float32)

    def scan(u0: int, u1: int, worker: int) -> None:
        for u in range(u0, u1):
            scan_pairs(bounds[u], bounds[u + 1], pair_q, pair_list, pair_bias, lut_all, packed, slots, block_offsets,
                       slot_offsets, sizes, heaps[worker], tops)

    run_shared(scan, n_units, workers, grain=1)

    def finish(lo: int, hi: int, _worker: int) -> None:
        merge_and_finish(metric, queries, lo, hi, heaps, scales, offsets, vectors, out_scores, out_slots)

    run_shared(finish, nq, workers, grain=QUERY_SLICE)
