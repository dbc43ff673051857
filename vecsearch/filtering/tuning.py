"""Every threshold of filtered search, in one object, with the measurement behind each value.

:class:`FilterTuning` is read by the planner's policy (:func:`vecsearch.filtering.planner.choose_strategy`)
and by the strategies the indexes own (HNSW's beam and walk, IVF-PQ's masked scan). An index
carries its own copy (``index.filter_tuning``, :data:`DEFAULT_TUNING` by default), so a
measurement on that index's data can replace a value without touching any other index.

Unless stated otherwise the figures come from ``bench/bench_filtered.py`` on wordnet-minilm
(116,659 x 384, MiniLM, cosine), HNSW M=16 ef_construction=100 ef=64, one query per call.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FilterTuning:
    # ---- exact scan of the allowed rows (prefilter) vs the approximate strategies ------------------
    # rows     matches   prefilter   filtered_walk     postfilter        (random-shape filter)
    # 30,000    15,000      599       1747 (r .988)    2808 (r .980)     50%
    # 30,000     3,000     3261       1476 (r .980)    1480 (r .978)     10%
    # 30,000       300    15698       2935 (r .86)      347               1%
    # 116,659   58,330      185       1005 (r .983)    1759 (r .981)     50%
    # 116,659   11,666      786       1211 (r .963)    1508 (r .981)     10%
    # 116,659    1,167     2529        514 (r .930)     310 (r .976)      1%
    # (QPS, load average 9-13 at the time.) The exact scan costs ~0.07-0.1 us per matching row,
    # the walk ~0.6-1 ms: the crossover lies between 3,000 and 11,666 matches at both sizes; an
    # absolute count, since the walk grows only ~log n.
    prefilter_max_matches: int = 5_000
    # HNSW scans the allowed rows over LVQ8 shadow codes (~18-25 ns per 384-d row instead of
    # ~55-80 ns float32), re-ranked exactly. Float32 beam vs code scan, repeated random filter:
    #   matches     8,000     12,000     16,000     30,000
    #   code scan   161 us    226 us     287 us     534 us
    #   beam        385 (r .968)  330 (r .976)  277 (r .980)  212 (r .986)
    # and with the code beam at 11,666 matches (10% random / correlated) beam 5,556 / 4,273 QPS,
    # scan 4,975 / 2,264: the scan is chosen up to 8,000 matches.
    code_scan_prefilter_max_matches: int = 8_000
    # Below this many matches the code scan's index scans the float32 rows exactly instead (a few
    # thousand rows of a repeated filter stay in cache and need no codes).
    code_scan_min_matches: int = 2_000
    # IVF-PQ with stored vectors: exact scan (~45 ns per allowed row) vs ivf_masked (re-rank 8,
    # one query per call): 1,167 matches 19,550 vs 9,526 QPS (recall 1.000 vs 0.955); 3,589: 6,413
    # vs 4,822; 11,666: 1,351 vs 10,412. Without stored vectors the masked scan beats the ADC scan of
    # every allowed row at every selectivity (4%: 2,760 vs 13,988; 0.01%: 4,120 vs 6,336).
    ivf_prefilter_max_matches: int = 4_000

    # ---- post-filtering --------------------------------------------------------------------------------
    # From 10% up post-filtering matches or beats the walk at equal or better recall (table above;
    # correlated 10% at 116k: 1976 vs 1813 QPS, recall 0.991 vs 0.982).
    postfilter_min_selectivity: float = 0.1
    # Over-fetch ceil(k / selectivity * overfetch) (+ slack), retried x4 up to max_fetch, then exact.
    postfilter_overfetch: float = 1.5
    postfilter_max_fetch: int = 4_096
    # Rows a graph walk or post-filter could not fill (anti-correlated filters) are answered by the
    # exact scan up to this many matches (anti 10%, 11,666 matches: walk recall 0.78-0.89, exact 573
    # QPS vs 622 post-filter), beyond it by the ACORN walk widened by fallback_walk_ef_scale
    # (anti-correlated 20%: scale 4 -> recall 0.948, 6 -> 0.966, 8 -> 0.973).
    fallback_exact_max_matches: int = 20_000
    # ... and up to this many when the scan reads the LVQ8 shadow codes (HNSW).
    fallback_code_scan_max_matches: int = 60_000
    fallback_walk_ef_scale: float = 6.0

    # ---- ACORN-1 filtered walk ---------------------------------------------------------------------------
    # The walk's beam widens as selectivity s drops, by ef_scale(s) below (the same law as the beam's:
    # the k best passing nodes are about the k / s best of all, so the frontier must hold more of
    # them). Measured with the default LVQ8 walk + float32 re-rank (M16 efC200 ef64, tuning part 93k,
    # test_ood, 100 queries, strategy forced): the old law ef * min(4, 0.1 / s) left random 10% at
    # recall 0.904 and 1% at 0.938, anti-correlated 10% at 0.789; this law: 0.991, 0.970, 0.980.
    walk_full_selectivity: float = 1.0
    walk_ef_exponent: float = 0.6
    walk_ef_boost_max: float = 8.0
    # Below this selectivity the walk is not trusted and the planner scans the allowed rows however
    # many they are: ACORN-1 looks two hops through failing neighbours, about (2M)^2 * s passing nodes
    # (M = 16: ~10 at 1%, ~5 at 0.5%), and the passing subgraph falls apart. Same run as above, random
    # filter: recall 0.970 at 1%, 0.837 at 0.5% (467 matches), 0.31 at 0.1%. At 0.8% a 1M-row
    # corpus has 8,000 matches (a scan of ~1 ms), so this only costs time on far larger ones.
    walk_min_selectivity: float = 0.008
    # Passing slots scored as extra entry points of the level-0 walk (spread over the allowed set).
    walk_seeds: int = 16

    # ---- beam_collect: the unfiltered beam keeping the best passing nodes it scores -----------------------
    # The beam widens as selectivity s drops: ef * min(beam_ef_boost_max, (beam_full_selectivity / s) ** beam_ef_exponent)
    # (ef_scale below). Filtered top-k ~ unfiltered top-(k / s): the widening starts at any filter
    # (s = 1), not at 50%. Re-measured with the default LVQ8 walk + float32 re-rank (M16 efC200
    # ef64, tuning part: first 93k rows, test_ood, random filter, recall@10): the old law (from 50%,
    # at most x4) gave 50% 0.950, 20% 0.949, 10% 0.942, 5% 0.930; from 100%, at most x8: 0.971,
    # 0.968, 0.963, 0.956 (2%: 0.933, below beam_min_selectivity). A larger re-rank pool (5k instead
    # of 2k passing nodes) changed no figure: the width of the beam is what limits it.
    beam_full_selectivity: float = 1.0
    beam_ef_exponent: float = 0.6
    beam_ef_boost_max: float = 8.0
    # Below this selectivity the ACORN-1 walk replaces the beam (too few passing nodes near the query).
    beam_min_selectivity: float = 0.05
    # A row whose walk saw passing nodes at less than this fraction of the global selectivity sits
    # where the filter fails (anti-correlated): it is answered again by the fallback.
    beam_min_local_ratio: float = 0.5
    # The walk judges the local selectivity once it has scored max(probe_nodes, probe_passing / s)
    # nodes (about probe_passing passing ones expected: a random filter trips the 0.5 ratio by
    # chance at ~3 standard deviations) and gives up there when it is too low (anti-correlated 10%:
    # planner 727 QPS before, vs 1,129 for the exact scan it falls back to).
    beam_probe_nodes: int = 256
    beam_probe_passing: int = 32
    # Before scoring, the walk may give up on a free two-hop look at its entry's neighbourhood (mask
    # reads only), only where the fallback scan is cheap (walk_codes, correlated 50%: 6,635 QPS with
    # the look vs 8,853 without; anti-correlated 10%: 3,322 vs 2,791).
    beam_pre_probe_max_matches: int = 15_000
    # Feedback on a cached filter: when the beam re-answered most recent rows under it, later calls
    # go straight to the scan, except one in beam_feedback_recheck (anti-correlated 10%: the doubtful
    # rows cost the walk ~35 us on top of the ~220 us scan). Counts halve past the window.
    beam_feedback_min_rows: int = 8
    beam_feedback_skip_rate: float = 0.75
    beam_feedback_recheck: int = 16
    beam_feedback_window: int = 64

    # ---- IVF-PQ masked list scan ----------------------------------------------------------------------------
    # A query keeps probing past its nprobe lists until it has seen ivf_target_per_k * k allowed rows
    # (and the share nprobe lists hold on average). Seeing as many *allowed* rows as an unfiltered
    # search sees rows cost 2x-10x for +0.01 recall (nlist 512, m 48, 50%, nprobe 16: recall 0.682
    # at 6,235 QPS vs 0.672 at 8,963; faiss IDSelector 0.680 at 10,922).
    ivf_target_per_k: int = 32
    # A query whose first lists pass at under ivf_min_near_ratio of the global selectivity is judged
    # anti-correlated (nlist 512, anti-correlated 10%: recall@10 0.2 with ADC scores only) and its
    # target of allowed rows raised by global / near share (power of two, at most ivf_widen_max),
    # judged only when the first lists should hold ivf_near_min_expected passing rows.
    ivf_min_near_ratio: float = 0.5
    ivf_near_min_expected: int = 32
    ivf_widen_max: float = 64.0
    # Such rows also re-rank this many times more candidates (nprobe 64, re-rank 8: anti-correlated
    # 10% recall 0.865 -> 0.961, 50% 0.920 -> 0.958).
    ivf_doubtful_rerank_factor: int = 4

    # ---- multi-vector ---------------------------------------------------------------------------------------
    # A filter matching at most this many documents is answered by exact Chamfer over all of them
    # (bench_muvera.py, 20k documents, one thread: ~3.4 us per document, so 2,000 cost ~7 ms, about
    # one FDE+HNSW candidate search with re-rank: 5.95 ms at 100 candidates).
    multivector_exact_max_matches: int = 2_000

    def beam_ef_scale(self, selectivity: float) -> float:
        """Factor (>= 1) on ``ef`` for the beam of ``beam_collect`` under a filter passing ``selectivity``."""
        return ef_scale(
            selectivity, self.beam_full_selectivity, self.beam_ef_exponent, self.beam_ef_boost_max
        )

    def walk_ef_scale(self, selectivity: float) -> float:
        """Factor (>= 1) on ``ef`` for the ACORN walk under a filter passing ``selectivity``."""
        return ef_scale(
            selectivity, self.walk_full_selectivity, self.walk_ef_exponent, self.walk_ef_boost_max
        )

    def prefilter_max(self, code_scan: bool) -> int:
        """Most matches for which the planner scans the allowed rows of an approximate index."""
        return self.code_scan_prefilter_max_matches if code_scan else self.prefilter_max_matches

    def fallback_scan_max(self, code_scan: bool) -> int:
        """Most matches for which rows a graph walk doubts are answered by scanning the allowed rows."""
        return self.fallback_code_scan_max_matches if code_scan else self.fallback_exact_max_matches


def ef_scale(
    selectivity: float, full_selectivity: float, exponent: float, boost_max: float
) -> float:
    """``min(boost_max, (full_selectivity / selectivity) ** exponent)``, at least 1: how much wider than
    ``ef`` a filtered beam runs when ``selectivity`` of the rows pass (0 < selectivity <= 1)."""
    ratio = full_selectivity / max(float(selectivity), 1e-9)
    return min(boost_max, max(1.0, ratio**exponent))


DEFAULT_TUNING = FilterTuning()
