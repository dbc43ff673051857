"""Filtered-search planner: picks a strategy per query batch from the exact match count, and runs it.

Strategies
----------
``prefilter``      scan of the matching slots only (needs the index's float32 vectors). Exact;
                   on HNSW from ``CODE_SCAN_MIN_MATCHES`` matches a scan of LVQ8 shadow codes
                   re-ranked with the float32 vectors (:mod:`vecsearch.shadow_codes`). Cost grows
                   with the match count, not with the index size.
``postfilter``     the index's own unfiltered search with over-fetch ``k / selectivity``, failures
                   dropped; rows still short of ``min(k, matches)`` go to ``filtered_walk`` on graph
                   indexes, else retry with 4x the fetch and, past ``POSTFILTER_MAX_FETCH``, fall
                   back to ``prefilter``.
``beam_collect``   the unfiltered HNSW beam, widened as selectivity drops, keeping the best passing
                   nodes among all it scores (:func:`vecsearch.kernels.filtered.beam_collect_batch`),
                   walking the LVQ8 shadow codes and re-scoring its best passing nodes exactly;
                   rows that look anti-correlated (few passing nodes seen, see
                   ``BEAM_MIN_LOCAL_RATIO``) or end short are answered again by the exact scan or
                   the walk below.
``filtered_walk``  ACORN-1 style walk over the HNSW graph (:func:`vecsearch.kernels.filtered.filtered_walk_batch`).
``ivf_masked``     IVF-PQ list scan that checks the mask, nprobe raised until enough allowed rows
                   were scanned (:func:`vecsearch.kernels.ivf_masked.ivfpq_search_masked`); rows
                   whose nearest lists barely pass (anti-correlated) scan more lists and re-rank
                   more candidates.

Index types add strategies with :func:`register_strategy` (the base ``Index._search_filtered``
dispatches to them); an index may also override ``_search_filtered`` itself.

Thresholds (see :func:`choose_strategy`) were set from ``bench/bench_filtered.py``; the measured
crossovers are recorded next to each constant.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

import numba
import numpy as np

from .kernels.distances import METRIC_L2
from .kernels.exact import topk_scan_rows
from .kernels.filtered import (
    beam_collect_batch,
    beam_collect_serial,
    compact_allowed,
    filtered_walk_batch,
    filtered_walk_serial,
    topk_scan_masked,
    topk_scan_masked_serial,
    topk_scan_rows_serial,
)
from .kernels.heaps import empty_heaps, sort_heaps, topk_merge_block
from .kernels.ivf_masked import ivfpq_search_masked, ivfpq_search_masked_serial
from .kernels.visited import new_visited
from .shadow_codes import code_scan

STRATEGIES = ("prefilter", "beam_collect", "filtered_walk", "postfilter", "ivf_masked")

# -- thresholds (approximate indexes; an exact index such as Flat always uses prefilter) ---------
# Measured with bench/bench_filtered.py on wordnet-minilm (HNSW M=16 efC=100 ef=64, one query per
# call, CPU-time QPS of the process since the 2 cores were shared, load average 9-13; results in
# bench/results/bench_filtered_n30000*.json and bench_filtered_full.json):
#   rows     matches   prefilter   filtered_walk     postfilter        (random-shape filter)
#   30,000    15,000      599       1747 (r .988)    2808 (r .980)     50%
#   30,000     3,000     3261       1476 (r .980)    1480 (r .978)     10%
#   30,000       300    15698       2935 (r .86)      347               1%
#  116,659    58,330      185       1005 (r .983)    1759 (r .981)     50%
#  116,659    11,666      786       1211 (r .963)    1508 (r .981)     10%
#  116,659     1,167     2529        514 (r .930)     310 (r .976)      1%
# The exact scan costs ~0.07-0.1 us per matching row (linear in matches), the walk ~0.6-1 ms: the
# crossover lies between 3,000 and 11,666 matches at both sizes; an absolute count, since the
# walk grows only ~log n.
PREFILTER_MAX_MATCHES = 5_000
# IVF-PQ: the mask-checked list scan beats the ADC scan of every allowed row at every selectivity
# (116k, nlist 512, m 48, no stored vectors; QPS prefilter vs ivf_masked at equal recall +-0.01:
# 4%: 2,760 vs 13,988; 1%: 4,370 vs 8,673; 0.1%: 4,500 vs 5,675; 0.01%: 4,120 vs 6,336). With
# stored vectors the exact scan (~45 ns per allowed row) is kept for few matches, where it is
# exact and at least as fast as the re-ranked masked scan (116k, re-rank 8, one query per call,
# exact scan vs ivf_masked QPS: 1,167 matches 19,550 vs 9,526 (recall 1.000 vs 0.955); 3,589:
# 6,413 vs 4,822; 11,666: 1,351 vs 10,412).
IVF_PREFILTER_MAX_MATCHES = 4_000
# From 10% up post-filtering matches or beats the walk at equal or better recall (rows above;
# correlated 10% at 116k: 1976 vs 1813 QPS, recall 0.991 vs 0.982).
POSTFILTER_MIN_SELECTIVITY = 0.1
# Below 10% the walk's beam widens: ef * min(4, 0.1 / selectivity) (recall fell to 0.86 at 1%
# random with the plain ef=64 beam).
WALK_EF_BOOST_MAX = 4.0
# Post-filter over-fetch: fetch = ceil(k / selectivity * OVERFETCH) (+ slack), retry x4, then exact.
POSTFILTER_OVERFETCH = 1.5
POSTFILTER_MAX_FETCH = 4_096
# Rows still short after the first over-fetch on a graph index (an anti-correlated filter) go to
# the exact scan up to this many matches, else to the walk with ef scaled by POSTFILTER_WALK_EF_SCALE
# (116k, anti-correlated 20%, beam_collect's fallback: scale 4 -> recall 0.948, 6 -> 0.966, 8 -> 0.973).
POSTFILTER_FALLBACK_EXACT_MAX = 4 * PREFILTER_MAX_MATCHES
POSTFILTER_WALK_EF_SCALE = 6.0
# HNSW scans the allowed rows over LVQ8 shadow codes (hnsw_prefilter), ~18-25 ns per 384-d row
# instead of ~55-80 ns for float32, re-ranked exactly, and its beam_collect walks the same codes
# (re-ranked exactly too), whether or not the index's unfiltered search does (walk_codes): the
# codes are kept for the scans anyway, and the code beam ran ~1.7x faster than the float32 one.
# Crossover on 116k WordNet vectors (ef 64, one query per call), float32 beam vs code scan, a
# repeated random filter (recall 1.000 for the scan):
#   matches     8,000     12,000     16,000     30,000
#   code scan   161 us    226 us     287 us     534 us
#   beam        385 (r .968)  330 (r .976)  277 (r .980)  212 (r .986)
# and with the code beam, 11,666 matches (10% random / correlated): beam 5,556 / 4,273 QPS, scan
# 4,975 / 2,264: the scan is chosen up to 8,000 matches.
CODE_SCAN_PREFILTER_MAX_MATCHES = 8_000
# Rows the beam doubts (anti-correlated filters) are answered by the code scan up to this many
# matches, beyond it by the ACORN walk.
CODE_SCAN_FALLBACK_MAX = 60_000

# Exact-scan implementation choices (chosen, not separately benchmarked): the row-list scan is
# used up to 1/8 of the slots passing, the mask scan above (contiguous reads); batches of at least
# 16 queries go through BLAS over gathered blocks (Flat's measured BLAS_MIN_QUERIES).
_ROWS_SCAN_MAX_FRACTION = 0.125
_BLAS_MIN_QUERIES = 16
# Fewer queries than this run on the calling thread (a parallel region costs more than it saves,
# and under load a woken worker thread may wait for a core).
_PARALLEL_MIN_QUERIES = 2
_BLAS_BLOCK_ELEMENTS = 1 << 24

Handler = Callable[[Any, np.ndarray, int, Any, Any], tuple[np.ndarray, np.ndarray]]
_HANDLERS: dict[str, dict[str, Handler]] = {}


def register_strategy(type_name: str, strategy: str, handler: Handler) -> None:
    """Make ``strategy`` available for indexes of ``type_name``: ``handler(index, queries, k, params, allowed)``."""
    global _REGISTRY_VERSION
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy: expected one of {STRATEGIES}, got {strategy!r}")
    _HANDLERS.setdefault(type_name, {})[strategy] = handler
    _REGISTRY_VERSION += 1


_BUILTINS_LOADED = False
_REGISTRY_VERSION = 0
# (registry version, type name, has exact vectors, extra strategies) -> available strategies
_AVAILABLE: dict[tuple, tuple[str, ...]] = {}


def _load_handlers() -> None:
    """Register the built-in graph / IVF strategies (by type name: their modules are not imported)."""
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        register_strategy("hnsw", "filtered_walk", hnsw_filtered_walk)
        register_strategy("hnsw", "beam_collect", hnsw_beam_collect)
        register_strategy("hnsw", "prefilter", hnsw_prefilter)
        register_strategy("leanvec", "filtered_walk", leanvec_filtered_walk)
        register_strategy("ivfpq", "ivf_masked", ivfpq_masked)
        register_strategy("ivfpq", "prefilter", ivfpq_prefilter)


def available_strategies(index: Any) -> tuple[str, ...]:
    """Strategies this index can run, in :data:`STRATEGIES` order (memoized: it runs on every filtered search)."""
    _load_handlers()
    extra = getattr(index, "_filter_strategies", None)
    key = (_REGISTRY_VERSION, index.type_name, index._exact_vectors() is not None,
           tuple(extra()) if callable(extra) else ())
    found = _AVAILABLE.get(key)
    if found is None:
        names = set(_HANDLERS.get(index.type_name, {}))
        names.add("postfilter")
        if key[2]:
            names.add("prefilter")
        names.update(key[3])
        found = _AVAILABLE[key] = tuple(s for s in STRATEGIES if s in names)
    return found


def check_strategy(index: Any, strategy: str | None) -> None:
    """Raise ``ValueError`` unless ``strategy`` is None or available for ``index``."""
    if strategy is None:
        return
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise ValueError(f"strategy: expected one of {STRATEGIES} or None, got {strategy!r}")
    available = available_strategies(index)
    if strategy not in available:
        raise ValueError(f"strategy: {strategy!r} is not available for {type(index).__name__} (available: {available})")


def choose_strategy(index: Any, allowed: Any, k: int, nq: int, requested: str | None = None) -> str:
    """The strategy for one batch: ``requested`` if given, else by match count and selectivity.

    Exact indexes (no approximate strategy) always scan the allowed rows exactly. IVF ->
    ``ivf_masked`` (checking the mask in the list scan costs about nothing, so it dominates
    post-filtering at every selectivity), or ``prefilter`` up to :data:`IVF_PREFILTER_MAX_MATCHES`
    matches when the index keeps its vectors. Otherwise at most :func:`prefilter_max_matches`
    matches (on HNSW :data:`CODE_SCAN_PREFILTER_MAX_MATCHES`, else :data:`PREFILTER_MAX_MATCHES`)
    -> ``prefilter``; HNSW -> ``beam_collect`` from :data:`BEAM_MIN_SELECTIVITY` up (it re-answers the
    rows where the filter is anti-correlated with the query; a cached filter under which it re-answered
    most recent rows goes to ``prefilter`` instead, see :func:`_beam_mostly_doubted`), else
    ``filtered_walk``; other graph
    indexes -> ``postfilter`` from :data:`POSTFILTER_MIN_SELECTIVITY` up, else their walk.
    """
    if requested is not None:
        return requested
    available = available_strategies(index)
    approximate = [s for s in ("beam_collect", "filtered_walk", "ivf_masked") if s in available]
    if "ivf_masked" in available:
        exact = index._exact_vectors() is not None
        return "prefilter" if exact and allowed.count <= IVF_PREFILTER_MAX_MATCHES else "ivf_masked"
    if "prefilter" in available:
        if not approximate:
            return "prefilter"  # exact index: the masked exact scan is the search itself
        if allowed.count <= prefilter_max_matches(index):
            return "prefilter"
    if "beam_collect" in available and allowed.selectivity >= BEAM_MIN_SELECTIVITY:
        return "prefilter" if _beam_mostly_doubted(index, allowed) else "beam_collect"
    if allowed.selectivity >= POSTFILTER_MIN_SELECTIVITY or not approximate:
        return "postfilter"
    return "filtered_walk" if "filtered_walk" in available else approximate[0]


# ---- feedback: a repeated filter under which the beam keeps doubting goes straight to the scan ---
# A compiled filter is cached per index and reused by later calls (a tenant, a language, a date
# range). When the beam had to re-answer most of its recent rows under it (queries land where the
# filter fails: anti-correlated), later calls scan directly instead of walking first, except one
# call in BEAM_FEEDBACK_RECHECK that still runs the beam to keep the estimate current. On 116k
# WordNet vectors the doubtful rows of an anti-correlated 10% filter cost the walk (~35 us) on top
# of the scan they fall back to (~220 us). The counts halve past BEAM_FEEDBACK_WINDOW rows, so
# recent calls weigh most. Counters are updated without a lock: concurrent searches may lose an
# update, which only delays the switch.
BEAM_FEEDBACK_MIN_ROWS = 8
BEAM_FEEDBACK_SKIP_RATE = 0.75
BEAM_FEEDBACK_RECHECK = 16
BEAM_FEEDBACK_WINDOW = 64


def _beam_mostly_doubted(index: Any, allowed: Any) -> bool:
    """True when ``allowed``'s feedback says the beam re-answered most rows and the scan is affordable."""
    feedback = getattr(allowed, "plan_feedback", None)
    if feedback is None:
        return False
    rows, doubtful, skipped = feedback
    if rows < BEAM_FEEDBACK_MIN_ROWS or doubtful < BEAM_FEEDBACK_SKIP_RATE * rows:
        return False
    if "prefilter" not in available_strategies(index) or allowed.count > fallback_scan_max(index):
        return False
    feedback[2] = skipped + 1
    return feedback[2] % BEAM_FEEDBACK_RECHECK != 0


def _record_beam_feedback(allowed: Any, n_rows: int, n_doubtful: int) -> None:
    """Count ``n_rows`` beam rows, ``n_doubtful`` of them re-answered, into ``allowed.plan_feedback``."""
    if not hasattr(allowed, "plan_feedback"):
        return
    feedback = allowed.plan_feedback
    if feedback is None:
        feedback = allowed.plan_feedback = [0, 0, 0]
    feedback[0] += n_rows
    feedback[1] += n_doubtful
    if feedback[0] > BEAM_FEEDBACK_WINDOW:
        feedback[0] //= 2
        feedback[1] //= 2


def _scans_codes(index: Any) -> bool:
    """True when the index's ``prefilter`` is the LVQ8 code scan (:func:`hnsw_prefilter`)."""
    _load_handlers()
    return _HANDLERS.get(index.type_name, {}).get("prefilter") is hnsw_prefilter


def prefilter_max_matches(index: Any) -> int:
    """Most matches for which the planner scans the allowed rows of this approximate index."""
    return CODE_SCAN_PREFILTER_MAX_MATCHES if _scans_codes(index) else PREFILTER_MAX_MATCHES


def fallback_scan_max(index: Any) -> int:
    """Most matches for which rows a graph walk doubts are answered by scanning the allowed rows."""
    return CODE_SCAN_FALLBACK_MAX if _scans_codes(index) else POSTFILTER_FALLBACK_EXACT_MAX


def run_strategy(index: Any, queries: np.ndarray, k: int, params: Any, allowed: Any, strategy: str,
                 **options: Any) -> tuple[np.ndarray, np.ndarray]:
    """Run ``strategy``; returns ``(slots int64 (nq, k), scores float32 (nq, k))`` best first, padded.

    ``options`` go to registered handlers (``ef_scale`` for the graph walks).
    """
    handler = _HANDLERS.get(index.type_name, {}).get(strategy)
    if handler is not None:
        return handler(index, queries, k, params, allowed, **options)
    if strategy == "prefilter":
        return exact_filtered(index, queries, k, allowed)
    if strategy == "postfilter":
        return postfilter(index, queries, k, params, allowed)
    raise ValueError(f"strategy: {strategy!r} is not available for {type(index).__name__}")


# ---- generic strategies ------------------------------------------------------------------------
def exact_filtered(index: Any, queries: np.ndarray, k: int, allowed: Any) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k over the allowed slots of ``index._exact_vectors()`` (prefilter)."""
    vectors = index._exact_vectors()
    if vectors is None:
        raise ValueError(f"strategy: 'prefilter' needs stored vectors, which {type(index).__name__} does not keep")
    return exact_scan(index._metric_code, queries, vectors, allowed, k)


def exact_scan(metric: int, queries: np.ndarray, vectors: np.ndarray, allowed: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact filtered top-k of ``queries`` (nq, d) over ``vectors`` rows in ``allowed``."""
    nq = queries.shape[0]
    n_slots = allowed.mask.shape[0]
    if nq >= _BLAS_MIN_QUERIES:
        return _exact_scan_blas(metric, queries, vectors, allowed.slots, k)
    scores, rows = empty_heaps(nq, k)
    serial = nq < _PARALLEL_MIN_QUERIES
    if allowed.count <= _ROWS_SCAN_MAX_FRACTION * n_slots:
        (topk_scan_rows_serial if serial else topk_scan_rows)(metric, queries, vectors, allowed.slots, k, scores, rows)
    else:
        (topk_scan_masked_serial if serial else topk_scan_masked)(metric, queries, vectors, allowed.mask, k, scores, rows)
    return rows, scores


def _exact_scan_blas(metric: int, queries: np.ndarray, vectors: np.ndarray, slots: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    nq = queries.shape[0]
    heap_scores, heap_pos = empty_heaps(nq, k)
    block = max(1024, _BLAS_BLOCK_ELEMENTS // max(nq, 1))
    is_l2 = metric == METRIC_L2
    for start in range(0, slots.shape[0], block):
        sub = vectors[slots[start : start + block]]
        scores = queries @ sub.T
        if is_l2:
            scores *= np.float32(-2.0)
            scores += np.einsum("ij,ij->i", sub, sub)
        else:
            np.negative(scores, out=scores)
        topk_merge_block(scores, start, heap_scores, heap_pos)
    sort_heaps(heap_scores, heap_pos)
    rows = np.where(heap_pos >= 0, slots[np.maximum(heap_pos, 0)], -1)
    if is_l2:
        heap_scores += np.einsum("ij,ij->i", queries, queries)[:, None]
        np.maximum(heap_scores, 0, out=heap_scores)
    return rows, heap_scores


def postfilter(index: Any, queries: np.ndarray, k: int, params: Any, allowed: Any) -> tuple[np.ndarray, np.ndarray]:
    """Unfiltered ``index._search`` with over-fetch, failures dropped; short rows retry, then ``prefilter``.

    Rows still short of ``min(k, matches)`` when the fetch would pass ``POSTFILTER_MAX_FETCH`` (or
    the whole index) are answered by the index's ``prefilter`` strategy when it has one.
    """
    nq = queries.shape[0]
    out_scores, out_rows = empty_heaps(nq, k)
    need = min(k, allowed.count)
    n_live = index.ntotal
    fetch = min(n_live, max(2 * k, math.ceil(k / max(allowed.selectivity, 1e-9) * POSTFILTER_OVERFETCH) + 8))
    strategies = available_strategies(index)
    has_prefilter = "prefilter" in strategies
    pending = np.arange(nq)
    mask = allowed.mask
    first = True
    while pending.size:
        if not first and "filtered_walk" in strategies:
            # Short after one over-fetch: the filter is anti-correlated with these queries. Up to
            # POSTFILTER_FALLBACK_EXACT_MAX matches the exact scan is affordable and exact (116k bench:
            # anti 10%, 11,666 matches: walk recall 0.78-0.89, exact 573 QPS vs 622 post-filter);
            # beyond it the walk with a wider beam beats re-fetching (anti 50%: 0.964 / 731 QPS).
            if has_prefilter and allowed.count <= fallback_scan_max(index):
                rows, scores = run_strategy(index, queries[pending], k, params, allowed, "prefilter")
            else:
                rows, scores = run_strategy(index, queries[pending], k, params, allowed, "filtered_walk",
                                            ef_scale=POSTFILTER_WALK_EF_SCALE)
            out_rows[pending], out_scores[pending] = rows, scores
            break
        first = False
        if has_prefilter and (fetch > POSTFILTER_MAX_FETCH or fetch >= n_live):
            rows, scores = run_strategy(index, queries[pending], k, params, allowed, "prefilter")
            out_rows[pending], out_scores[pending] = rows, scores
            break
        rows, scores = index._search(queries[pending], fetch, params)
        part_scores, part_rows = empty_heaps(pending.shape[0], k)
        compact_allowed(np.ascontiguousarray(rows, np.int64), np.ascontiguousarray(scores, np.float32), mask, k,
                        part_rows, part_scores)
        done = ((part_rows >= 0).sum(axis=1) >= need) | (fetch >= n_live)
        out_rows[pending[done]] = part_rows[done]
        out_scores[pending[done]] = part_scores[done]
        pending = pending[~done]
        fetch = min(n_live, fetch * 4)
    return out_rows, out_scores


# ---- HNSW: the allowed rows scanned, over LVQ8 shadow codes past CODE_SCAN_MIN_MATCHES ------------
# Below it the float32 rows are scanned exactly (a few thousand rows of a repeated filter stay in
# cache, and the codes need not be built); batches of _BLAS_MIN_QUERIES+ use the BLAS scan.
CODE_SCAN_MIN_MATCHES = 2_000


def hnsw_prefilter(index: Any, queries: np.ndarray, k: int, params: Any, allowed: Any) -> tuple[np.ndarray, np.ndarray]:
    """Scan of the allowed slots of an ``HNSWIndex``: exact, or LVQ8 codes re-ranked exactly
    (:func:`vecsearch.shadow_codes.code_scan`) from ``CODE_SCAN_MIN_MATCHES`` matches."""
    nq = queries.shape[0]
    if allowed.count < CODE_SCAN_MIN_MATCHES or nq >= _BLAS_MIN_QUERIES:
        return exact_filtered(index, queries, k, allowed)
    return code_scan(index._metric_code, queries, index, index._vectors, index._ids.n_slots, allowed.slots, k,
                     serial=nq < _PARALLEL_MIN_QUERIES or numba.get_num_threads() == 1)


# ---- HNSW: ACORN-1 filtered walk ---------------------------------------------------------------
# Passing slots scored as extra entry points of the level-0 walk (spread evenly over the allowed set).
WALK_SEEDS = 16


def _seeds(allowed: Any, n_seeds: int) -> np.ndarray:
    slots = allowed.slots
    if slots.shape[0] <= n_seeds:
        return np.ascontiguousarray(slots, np.int64)
    return np.ascontiguousarray(slots[np.linspace(0, slots.shape[0] - 1, n_seeds).astype(np.int64)], np.int64)


def hnsw_filtered_walk(index: Any, queries: np.ndarray, k: int, params: Any, allowed: Any,
                       ef_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """ACORN-1 walk over an ``HNSWIndex`` graph (reads ``_graph()``, ``_vectors``, ``_entry``, ``_max_level``)."""
    ef = max(params.ef if params.ef is not None else index.ef_search, k)
    boost = max(ef_scale, min(WALK_EF_BOOST_MAX, POSTFILTER_MIN_SELECTIVITY / max(allowed.selectivity, 1e-9)))
    ef = math.ceil(ef * boost)
    nq = queries.shape[0]
    serial = nq < _PARALLEL_MIN_QUERIES or numba.get_num_threads() == 1
    rows = 1 if serial else int(numba.config.NUMBA_NUM_THREADS)
    out_scores, out_slots = empty_heaps(nq, k)
    kernel = filtered_walk_serial if serial else filtered_walk_batch
    scratch = _take_scratch(index, rows, ef)
    try:
        kernel(index._metric_code, queries, k, ef, index._vectors, *index._graph(), index._entry, index._max_level,
               allowed.mask, _seeds(allowed, WALK_SEEDS), *scratch, out_slots, out_scores)
    finally:
        _give_scratch(index, scratch)
    return out_slots, out_scores


# ---- HNSW: unfiltered beam collecting the passing nodes it scores (faiss' IDSelector semantics) ---
# The beam widens as selectivity s drops: ef * min(BEAM_EF_BOOST_MAX, (BEAM_FULL_SELECTIVITY / s) ** BEAM_EF_EXPONENT).
BEAM_FULL_SELECTIVITY = 0.5
BEAM_EF_EXPONENT = 0.6
BEAM_EF_BOOST_MAX = 4.0
# Below this selectivity the ACORN-1 walk replaces the beam (too few passing nodes near the query).
BEAM_MIN_SELECTIVITY = 0.05
# A row whose walk saw passing nodes at less than this fraction of the global selectivity sits in a
# region where the filter fails (anti-correlated with the query): its few passing results are far
# from the true ones, so it is answered again by the robust fallback (exact scan or ACORN walk).
BEAM_MIN_LOCAL_RATIO = 0.5
# The walk judges the local selectivity once it has scored max(BEAM_PROBE_NODES, BEAM_PROBE_PASSING / s)
# nodes (about BEAM_PROBE_PASSING passing ones expected: a random filter trips the 0.5 ratio by
# chance at ~3 standard deviations) and gives up there when it is too low, instead of finishing a
# beam whose answer will be replaced (116k, anti-correlated 10%: planner 727 QPS before, vs 1,129
# for the exact scan it falls back to).
BEAM_PROBE_NODES = 256
BEAM_PROBE_PASSING = 32
# Before scoring, the walk may give up on a free two-hop look at its entry's neighborhood (mask
# reads only). Only where the fallback scan is cheap: the look reaches past the nodes the beam
# scores first and flags a few rows the scored probe keeps (116k, walk_codes, correlated 50%:
# 6,635 QPS with the look vs 8,853 without; anti-correlated 10%: 3,322 vs 2,791).
BEAM_PRE_PROBE_MAX_MATCHES = 15_000


def hnsw_beam_collect(index: Any, queries: np.ndarray, k: int, params: Any, allowed: Any,
                      ef_scale: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Unfiltered HNSW walk keeping the best passing nodes it scores; doubtful rows fall back.

    A row falls back when it ends with fewer than ``min(k, matches)`` results or when its local
    selectivity (passing / scored nodes) is below ``BEAM_MIN_LOCAL_RATIO`` of the global one:
    to the scan of the allowed rows up to :func:`fallback_scan_max` matches, else to the ACORN-1
    walk with a widened beam.
    """
    ef = max(params.ef if params.ef is not None else index.ef_search, k)
    if ef_scale is None:
        ratio = BEAM_FULL_SELECTIVITY / max(allowed.selectivity, 1e-9)
        ef_scale = min(BEAM_EF_BOOST_MAX, max(1.0, ratio**BEAM_EF_EXPONENT))
    ef = math.ceil(ef * ef_scale)
    nq = queries.shape[0]
    serial = nq < _PARALLEL_MIN_QUERIES or numba.get_num_threads() == 1
    rows = 1 if serial else int(numba.config.NUMBA_NUM_THREADS)
    out_scores = np.empty((nq, k), np.float32)  # the kernel fills them
    out_slots = np.empty((nq, k), np.int64)
    local = np.empty(nq, np.float32)
    min_local = BEAM_MIN_LOCAL_RATIO * allowed.selectivity
    kernel = beam_collect_serial if serial else beam_collect_batch
    scratch = _take_scratch(index, rows, ef)
    try:
        n_doubtful = kernel(index._metric_code, queries, k, ef, index._vectors, *index._graph(), index._entry,
                            index._max_level, allowed.mask, *scratch, min(k, allowed.count), min_local,
                            max(BEAM_PROBE_NODES, math.ceil(BEAM_PROBE_PASSING / max(allowed.selectivity, 1e-9))),
                            allowed.count <= BEAM_PRE_PROBE_MAX_MATCHES, *index._code_walk_storage(k),
                            out_slots, out_scores, local)
    finally:
        _give_scratch(index, scratch)
    _record_beam_feedback(allowed, nq, n_doubtful)
    if n_doubtful:
        scan = "prefilter" in available_strategies(index) and allowed.count <= fallback_scan_max(index)
        if scan and nq == 1:  # the latency path: the scan's answer is the answer
            return run_strategy(index, queries, k, params, allowed, "prefilter")
        doubtful = np.flatnonzero(local < min_local)
        if scan:
            rows_, scores_ = run_strategy(index, queries[doubtful], k, params, allowed, "prefilter")
            out_slots[doubtful], out_scores[doubtful] = rows_, scores_
        else:  # the walk is approximate too: keep the better of both answers per result
            rows_, scores_ = hnsw_filtered_walk(index, queries[doubtful], k, params, allowed,
                                                ef_scale=POSTFILTER_WALK_EF_SCALE)
            out_slots[doubtful], out_scores[doubtful] = merge_distinct(
                out_slots[doubtful], out_scores[doubtful], rows_, scores_, k)
    return out_slots, out_scores


def merge_distinct(slots_a: np.ndarray, scores_a: np.ndarray, slots_b: np.ndarray, scores_b: np.ndarray,
                   k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` distinct slots per row of two result sets ``(slots int64, scores f32)`` (nq, *), best first.

    Padding (-1 / +inf) fills rows with fewer than ``k`` distinct slots.
    """
    slots = np.concatenate([slots_a, slots_b], axis=1)
    scores = np.concatenate([scores_a, scores_b], axis=1)
    out_scores, out_slots = empty_heaps(slots.shape[0], k)
    for i in range(slots.shape[0]):
        order = np.argsort(scores[i], kind="stable")
        row = slots[i, order]
        _, first = np.unique(row, return_index=True)
        keep = np.sort(first)  # first occurrence (best score) of each slot, in score order
        keep = keep[row[keep] >= 0][:k]
        out_slots[i, : keep.shape[0]] = row[keep]
        out_scores[i, : keep.shape[0]] = scores[i, order][keep]
    return out_slots, out_scores


# ---- LeanVec: ACORN-1 walk on the primary codes, re-ranked with the secondary vectors -----------
def leanvec_filtered_walk(index: Any, queries: np.ndarray, k: int, params: Any, allowed: Any,
                          ef_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """ACORN-1 walk over a ``LeanVecIndex`` graph (:func:`vecsearch.kernels.lvq_filtered.filtered_walk_codes`).

    The beam widens like the HNSW walk's (``WALK_EF_BOOST_MAX`` below 10% selectivity, or
    ``ef_scale``); the passing candidates it ends with are re-ranked by the index's secondary
    vectors (``LeanVecIndex._walk_filtered`` / ``_rerank``).
    """
    ef = max(params.ef or index.params.ef_search, k)
    boost = max(ef_scale, min(WALK_EF_BOOST_MAX, POSTFILTER_MIN_SELECTIVITY / max(allowed.selectivity, 1e-9)))
    ef = math.ceil(ef * boost)
    cand, count = index._walk_filtered(queries, ef, allowed.mask, _seeds(allowed, WALK_SEEDS))
    n_rerank = ef if params.rerank is None else max(params.rerank, k)
    return index._rerank(queries, cand, count, n_rerank, k)


_SCRATCH_LOCK = threading.Lock()


def _take_scratch(index: Any, rows: int, ef: int) -> tuple[np.ndarray, ...]:
    """Per-index walk scratch (visited + epochs, frontier, result heap) for ``rows`` threads and width ``ef``.

    Taken out of the index's cache (``index.__dict__["_filter_scratch"]``) so a concurrent search
    on the same index allocates private arrays instead of waiting; give it back with
    :func:`_give_scratch`.
    """
    n_cap = max(index._vectors.shape[0], 1)
    with _SCRATCH_LOCK:
        cached = index.__dict__.setdefault("_filter_scratch", {}).pop(rows, None)
    if cached is None or cached[0].shape[1] != n_cap or cached[4].shape[1] < ef:
        cached = (*new_visited(rows, n_cap), np.empty((rows, n_cap), np.float32),
                  np.empty((rows, n_cap), np.int32), np.empty((rows, ef), np.float32), np.empty((rows, ef), np.int32))
    return cached


def _give_scratch(index: Any, scratch: tuple[np.ndarray, ...]) -> None:
    with _SCRATCH_LOCK:
        index.__dict__.setdefault("_filter_scratch", {})[scratch[0].shape[0]] = scratch


# ---- IVF-PQ: mask-checked list scan, nprobe raised until enough allowed rows were scanned -------
# A query scans its nprobe lists, and keeps probing beyond them until it has seen at least
# IVF_TARGET_PER_K * k allowed rows (and the share of allowed rows nprobe lists hold on average).
# Raising nprobe to see as many *allowed* rows as an unfiltered search sees rows (nprobe / s lists)
# cost 2x-10x the scan for +0.01 recall at 50% / 10% (116k, nlist 512, m 48, PQ-only scores:
# 50%, nprobe 16: recall 0.682 at 6,235 QPS vs 0.672 at 8,963; faiss IDSelector 0.680 at 10,922).
IVF_TARGET_PER_K = 32


# A query whose first nprobe lists pass at under IVF_MIN_NEAR_RATIO of the global selectivity sits
# where the filter fails (anti-correlated): the allowed rows nearest to it lie in lists far down the
# probe order, and the adaptive scan stops on nearer, worse ones (116k, nlist 512, anti-correlated
# 10%: recall@10 0.2 with ADC scores only). The kernel judges each query from its first lists before
# scoring any code and raises such a query's target of allowed rows by global / near share (rounded
# up to a power of two, at most IVF_WIDEN_MAX times), so more lists are probed.
# Judged only when the first lists should hold at least IVF_NEAR_MIN_EXPECTED passing rows (fewer:
# the share is noise).
IVF_MIN_NEAR_RATIO = 0.5
IVF_NEAR_MIN_EXPECTED = 32
IVF_WIDEN_MAX = 64.0
# Doubtful rows also re-rank IVF_DOUBTFUL_RERANK_FACTOR times more candidates: their allowed
# neighbours lie far from the query, where many rows score within the PQ error of the k-th
# (116k, nlist 512, m 48, nprobe 64, re-rank 8: anti-correlated 10% recall 0.865 -> 0.961,
# 50% 0.920 -> 0.958; an ADC scan of every allowed row with re-rank 8 reaches only 0.879 at 10%).
IVF_DOUBTFUL_RERANK_FACTOR = 4


def _ivf_run(index: Any, queries: np.ndarray, k: int, params: Any, allowed: Any, min_probe: int,
             target: int, widen_max: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masked IVF-PQ scan; returns ``(slots, scores, factors)``: ``factors`` f32 (nq,) is each
    query's widening factor (1.0: not doubtful; ``widen_max`` 1.0 judges no query), see
    :func:`vecsearch.kernels.ivf_masked.ivfpq_search_masked`."""
    nlist = index.params.nlist
    per_list = max(allowed.count / nlist, 1e-9)
    n_probe_max = int(min(nlist, max(4 * min_probe, math.ceil(4 * target / per_list))))
    q = index._rotate(queries)
    rerank = params.rerank
    n_cand = k * rerank if rerank else k
    n_slots = index._ids.n_slots
    vectors = index._vectors[:n_slots] if rerank else np.empty((0, index.dim), np.float32)
    out_scores, out_slots = empty_heaps(q.shape[0], k)
    pq = index._pq
    kernel = ivfpq_search_masked_serial if q.shape[0] < _PARALLEL_MIN_QUERIES else ivfpq_search_masked
    factors = np.empty(q.shape[0], np.float32)
    kernel(q, index._centroids_t, index._c_sq_norms, n_probe_max, min_probe, target, float(allowed.selectivity),
           float(IVF_MIN_NEAR_RATIO), float(IVF_NEAR_MIN_EXPECTED), float(widen_max), int(IVF_DOUBTFUL_RERANK_FACTOR),
           index._centroids, pq._codebooks_t, pq._cb_sq_norms,
           index._l2_table, index._codes, index._slots, index._offsets, index._sizes,
           index._metric_code, allowed.mask, n_cand, vectors, out_scores, out_slots, factors)
    if index._metric_code == METRIC_L2:
        np.maximum(out_scores, np.float32(0.0), out=out_scores)
    return out_slots, out_scores, factors


def ivfpq_masked(index: Any, queries: np.ndarray, k: int, params: Any, allowed: Any) -> tuple[np.ndarray, np.ndarray]:
    """Filtered IVF-PQ search (reads ``_rotate``, ``_centroids_t``, ``_c_sq_norms``, ``_pq`` and the
    list arrays of ``IVFPQIndex``).

    Rows whose nearest lists pass far less than the filter does overall (``IVF_MIN_NEAR_RATIO``)
    probe a proportionally larger target of allowed rows (more lists) and re-rank more candidates.
    """
    nlist = index.params.nlist
    nprobe = min(params.nprobe or index.params.nprobe, nlist)
    target = max(IVF_TARGET_PER_K * k, math.ceil(nprobe * allowed.count / nlist))
    widen_max = IVF_WIDEN_MAX if nprobe < nlist else 1.0
    return _ivf_run(index, queries, k, params, allowed, nprobe, min(target, allowed.count), widen_max)[:2]


def ivfpq_prefilter(index: Any, queries: np.ndarray, k: int, params: Any, allowed: Any) -> tuple[np.ndarray, np.ndarray]:
    """Exact scan of the allowed rows when the index keeps raw vectors, else ADC over every allowed row."""
    if index.params.keep_vectors:
        return exact_scan(index._metric_code, index._rotate(queries), index._vectors, allowed, k)
    return _ivf_run(index, queries, k, params, allowed, index.params.nlist, allowed.count)[:2]
