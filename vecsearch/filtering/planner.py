"""Filtered-search planner: the policy only. An index says what it can do; the planner picks.

Strategies (each index implements the ones it declares in :class:`FilterCapabilities`):

``prefilter``      scan of the matching slots only: exact over float32 vectors, or (``code_scan``)
                   over compact codes re-ranked exactly. Cost grows with the match count.
``postfilter``     the index's unfiltered search with over-fetch ``k / selectivity``, failures
                   dropped, short rows retried and then answered by the scan or the walk.
``beam_collect``   the unfiltered graph beam, widened as selectivity drops, keeping the best passing
                   nodes it scores (faiss' ``IDSelector`` semantics); rows whose walk saw far fewer
                   passing nodes than the filter passes overall are answered again by a fallback.
``filtered_walk``  ACORN-1 style walk: only passing nodes are scored, failing ones expanded two hops.
``ivf_masked``     IVF list scan that checks the mask, more lists until enough allowed rows were seen.

:func:`choose_strategy` is a pure function of the capabilities, the compiled filter's statistics
(match count, selectivity, and the feedback its earlier searches left) and a
:class:`~vecsearch.filtering.tuning.FilterTuning`; it is unit-tested with fakes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .tuning import FilterTuning

STRATEGIES = ("prefilter", "beam_collect", "filtered_walk", "postfilter", "ivf_masked")


@dataclass(frozen=True)
class FilterCapabilities:
    """What one index can do for a filtered search.

    * ``exact_search``: the index's own search is exact, so scanning the allowed rows is the answer.
    * ``exact_scan``: float32 vectors by slot are kept: the allowed rows can be scanned exactly.
    * ``code_scan``: its scan of allowed rows reads compact codes (re-ranked exactly when vectors
      are kept; cheaper per row, so the planner scans more matches).
    * ``beam_collect`` / ``graph_walk``: the graph strategies.
    * ``list_scan``: the IVF masked list scan.
    Post-filtering is always possible.
    """

    exact_search: bool = False
    exact_scan: bool = False
    code_scan: bool = False
    beam_collect: bool = False
    graph_walk: bool = False
    list_scan: bool = False

    @property
    def prefilter(self) -> bool:
        """The allowed rows can be scanned (exactly, or on codes re-ranked exactly)."""
        return self.exact_scan or self.code_scan

    @property
    def approximate(self) -> bool:
        """The index has an approximate filtered strategy of its own."""
        return self.beam_collect or self.graph_walk or self.list_scan


def available_strategies(caps: FilterCapabilities) -> tuple[str, ...]:
    """The strategies ``caps`` allow, in :data:`STRATEGIES` order."""
    on = {
        "prefilter": caps.prefilter,
        "beam_collect": caps.beam_collect,
        "filtered_walk": caps.graph_walk,
        "postfilter": True,
        "ivf_masked": caps.list_scan,
    }
    return tuple(s for s in STRATEGIES if on[s])


def choose_strategy(caps: FilterCapabilities, allowed: Any, tuning: FilterTuning) -> str:
    """The strategy for one batch, from what the index can do and what the filter passes.

    ``allowed``: the compiled filter (``count`` matches, ``selectivity`` among live rows, and
    ``plan_feedback`` left by earlier beam searches under it, see :func:`record_beam_feedback`).

    * exact indexes (no approximate strategy, a scan possible) scan the allowed rows;
    * IVF -> ``prefilter`` up to ``ivf_prefilter_max_matches`` when it keeps vectors, else ``ivf_masked``;
    * few matches (``prefilter_max`` for the index's scan) -> ``prefilter``;
    * graph with a beam, from ``beam_min_selectivity`` up -> ``beam_collect``, or ``prefilter`` when
      the feedback says the beam keeps doubting this filter (anti-correlated) and the scan is affordable;
    * ``postfilter`` from ``postfilter_min_selectivity`` up or when nothing approximate exists;
    * else the ACORN walk, unless fewer than ``walk_min_selectivity`` pass (the walk's passing subgraph
      falls apart) and the rows can be scanned: then ``prefilter``, however many match.
    """
    count, selectivity = allowed.count, allowed.selectivity
    if caps.list_scan:
        return "prefilter" if caps.exact_scan and count <= tuning.ivf_prefilter_max_matches else "ivf_masked"
    if caps.prefilter:
        if caps.exact_search or not caps.approximate:
            return "prefilter"
        if count <= tuning.prefilter_max(caps.code_scan):
            return "prefilter"
    if caps.beam_collect and selectivity >= tuning.beam_min_selectivity:
        return "prefilter" if beam_mostly_doubted(caps, allowed, tuning) else "beam_collect"
    if selectivity >= tuning.postfilter_min_selectivity or not caps.approximate:
        return "postfilter"
    if caps.graph_walk:
        return "prefilter" if caps.prefilter and selectivity < tuning.walk_min_selectivity else "filtered_walk"
    return available_strategies(caps)[0]


def beam_mostly_doubted(caps: FilterCapabilities, allowed: Any, tuning: FilterTuning) -> bool:
    """True when ``allowed``'s feedback says the beam re-answered most recent rows and the scan is
    affordable; counts the skip, so every ``beam_feedback_recheck``-th call still runs the beam."""
    feedback = getattr(allowed, "plan_feedback", None)
    if feedback is None:
        return False
    rows, doubtful, skipped = feedback
    if rows < tuning.beam_feedback_min_rows or doubtful < tuning.beam_feedback_skip_rate * rows:
        return False
    if not caps.prefilter or allowed.count > tuning.fallback_scan_max(caps.code_scan):
        return False
    feedback[2] = skipped + 1
    return feedback[2] % tuning.beam_feedback_recheck != 0


def record_beam_feedback(allowed: Any, n_rows: int, n_doubtful: int, tuning: FilterTuning) -> None:
    """Count ``n_rows`` beam rows, ``n_doubtful`` of them re-answered, into ``allowed.plan_feedback``.

    Updated without a lock: concurrent searches may lose an update, which only delays the switch.
    """
    feedback = allowed.plan_feedback
    if feedback is None:
        feedback = allowed.plan_feedback = [0, 0, 0]
    feedback[0] += n_rows
    feedback[1] += n_doubtful
    if feedback[0] > tuning.beam_feedback_window:
        feedback[0] //= 2
        feedback[1] //= 2
