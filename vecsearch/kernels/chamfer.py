"""Exact Chamfer (MaxSim) scoring over CSR token sets, and ball carving of query tokens.

Chamfer(Q, P) = sum over query tokens q of max over document tokens p of <q, p>. Larger is better
(these kernels return similarities; the index negates them into its smaller-is-better scores).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import jit, jit_parallel
from .distances import dot


@jit(inline="always")
def chamfer_pair(q_vecs, q_start, q_stop, doc_vecs, d_start, d_stop):
    """Chamfer similarity of query rows ``q_vecs[q_start:q_stop]`` and doc rows ``doc_vecs[d_start:d_stop]``.

    Both float32 ``(*, d)``; returns float32 (``-inf`` when the document has no tokens).
    """
    total = np.float32(0.0)
    for a in range(q_start, q_stop):
        best = np.float32(-np.inf)
        qa = q_vecs[a]
        for t in range(d_start, d_stop):
            s = dot(qa, doc_vecs[t])
            best = max(best, s)
        total += best
    return total


@jit_parallel
def chamfer_candidates(q_vecs, q_offsets, doc_vecs, doc_offsets, candidates, out):
    """Exact Chamfer of each query against its candidate documents, parallel over (query, candidate).

    ``q_vecs`` (Nq, d) float32 with CSR ``q_offsets`` (nq + 1,) int64; ``doc_vecs`` (Nd, d) float32
    with ``doc_offsets`` (n_docs + 1,) int64; ``candidates`` (nq, C) int64 document slots, -1 for
    none; writes ``out`` (nq, C) float32 Chamfer similarities, ``-inf`` where the slot is -1.
    """
    n_cand = candidates.shape[1]
    for p in prange(candidates.shape[0] * n_cand):
        qi = p // n_cand
        c = p - qi * n_cand
        slot = candidates[qi, c]
        if slot < 0:
            out[qi, c] = -np.inf
        else:
            out[qi, c] = chamfer_pair(
                q_vecs,
                q_offsets[qi],
                q_offsets[qi + 1],
                doc_vecs,
                doc_offsets[slot],
                doc_offsets[slot + 1],
            )


@jit
def ball_carve(q_vecs, q_offsets, threshold):
    """Greedy ball carving of each query's tokens: returns ``(vecs (M, d) float32, offsets (nq + 1,) int64)``.

    Tokens are visited in order; an unassigned token opens a ball, and every later unassigned
    token with ``<center, q'> >= threshold`` joins it. A ball's vector is the SUM of its members,
    so Chamfer over carved tokens approximates (and, with distinct maximizers, lower-bounds) the
    exact Chamfer with fewer query rows.
    """
    nq = q_offsets.shape[0] - 1
    d = q_vecs.shape[1]
    out = np.zeros((q_vecs.shape[0], d), np.float32)
    offsets = np.zeros(nq + 1, np.int64)
    assigned = np.zeros(q_vecs.shape[0], np.bool_)
    m = 0
    for qi in range(nq):
        for a in range(q_offsets[qi], q_offsets[qi + 1]):
            if assigned[a]:
                continue
            assigned[a] = True
            out[m] = q_vecs[a]
            for b in range(a + 1, q_offsets[qi + 1]):
                if not assigned[b] and dot(q_vecs[a], q_vecs[b]) >= threshold:
                    assigned[b] = True
                    for j in range(d):
                        out[m, j] += q_vecs[b, j]
            m += 1
        offsets[qi + 1] = m
    return out[:m].copy(), offsets
