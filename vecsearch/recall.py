"""Recall@k, defined once for the package: the benchmarks (:mod:`vecsearch.benchmark.evaluation`)
and calibration (:mod:`vecsearch.calibration`) both count with it.

A returned id counts when it is one of the true top-k ids **or** when its exact distance is within
the k-th true distance plus a small tolerance (so an index is not penalized for picking the other
member of a tie: ann-benchmarks and faiss ``contrib/evaluation``). Padding (-1) never counts, an id
returned twice counts once, and the denominator is the number of true neighbors that exist
(``min(k, n)``).
"""

from __future__ import annotations

import numpy as np

# Relative tolerance for ties: threshold = kth + TIE_EPS * max(1, |kth|). Large enough for float32
# rounding and exact duplicates; ann-benchmarks uses an absolute 1e-3 (pass tie_eps=1e-3 to match).
TIE_EPS = 1e-4


def recall_per_query(
    found: np.ndarray,
    truth: np.ndarray,
    k: int | None = None,
    *,
    found_distances: np.ndarray | None = None,
    truth_distances: np.ndarray | None = None,
    tie_eps: float = TIE_EPS,
) -> np.ndarray:
    """Recall@k of each query, float64 (nq,): see the module docstring for the tie and padding rules.

    ``found`` (nq, >=k) ids returned by the index (-1 = padding), ``truth`` (nq, >=k) exact ids
    (-1 pads rows with fewer than k true neighbours, e.g. under a filter matching fewer rows);
    ``k`` defaults to ``truth``'s width. The optional ``*_distances`` (same shapes, vecsearch
    convention) enable the tie rule.
    """
    found = np.asarray(found)
    truth = np.asarray(truth)
    if k is None and truth.ndim == 2:
        k = truth.shape[1]
    if found.ndim != 2 or truth.ndim != 2 or found.shape[0] != truth.shape[0]:
        raise ValueError(
            f"found/truth: expected 2-D arrays with one row per query, got {found.shape} and {truth.shape}"
        )
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k: expected a positive integer, got {k!r}")
    if truth.shape[1] < k:
        raise ValueError(
            f"truth: expected at least k={k} true neighbors per query, got {truth.shape[1]}"
        )
    use_ties = found_distances is not None and truth_distances is not None
    fk = found[:, :k]
    tk = truth[:, :k]
    n_true = (tk >= 0).sum(axis=1)
    hits = np.zeros(found.shape[0], np.int64)
    if use_ties:
        fd = np.asarray(found_distances)[:, :k]
        td = np.asarray(truth_distances)[:, :k]
        last = np.maximum(n_true - 1, 0)
        kth = td[np.arange(td.shape[0]), last].astype(np.float64)
        threshold = kth + tie_eps * np.maximum(1.0, np.abs(kth))
    for i in range(found.shape[0]):
        row = fk[i]
        valid = row >= 0
        ids, first = np.unique(row[valid], return_index=True)
        ok = np.isin(ids, tk[i])
        if use_ties:
            ok |= fd[i][valid][first] <= threshold[i]
        hits[i] = min(int(ok.sum()), int(n_true[i]))
    return np.where(n_true > 0, hits / np.maximum(n_true, 1), 1.0)


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int | None = None, **kwargs) -> float:
    """Mean recall@k over queries (see :func:`recall_per_query`)."""
    return float(recall_per_query(found, truth, k, **kwargs).mean())
