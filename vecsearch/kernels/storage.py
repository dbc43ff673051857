"""Vector storage of a graph index as one numba bundle: how to score a stored row against a query.

A :class:`Storage` holds the rows in one of several encodings (``kind``) and a score ``mode``; every
kernel that reads vectors (the graph walk, the build, the re-rank, the scan of allowed rows) takes
one and calls :func:`storage_score`. The kind and mode are integers, so one compiled kernel serves
every encoding (numba compiles per argument *type*; all bundles share one type).

Kinds (``d`` the stored dimension, ``n`` rows):

* ``STORE_F32``    ``f32`` float32 (n, d)
* ``STORE_F16``    ``u16`` uint16 (n, d): float16 bits, decoded through the ``f16`` table
* ``STORE_LVQ8``, ``STORE_LVQ4``, ``STORE_LVQ4X8``  ``codes`` uint8 (n, row bytes): LVQ rows of
  ``x - mu`` (:mod:`vecsearch.kernels.lvq_codes`), ``mu`` float32 (d,)
* ``STORE_NONE``   no rows (a graph index that does not re-rank passes this as its re-rank storage)

Modes (scores: smaller is better): ``MODE_L2`` squared L2; ``MODE_IP`` negative inner product;
``MODE_L2_VIA_IP`` ``||x||^2 - 2 <q, x>`` with exact squared norms ``norms`` float32 (n,) (LeanVec-OOD
under ``l2``, where only inner products are approximated by the reduced vectors).

Unused arrays of a bundle are empty with the same dtype and rank, so bundles have two numba types: the
common encodings' (float32, LVQ8, none) and the rare ones' (float16, 4-bit LVQ), told apart by the
dtype of ``u16`` so that kernels compiled for the common bundles leave the rare encodings out.
Kernels receive a bundle as a plain tuple (``tuple(storage)``, see :mod:`vecsearch.kernels.graph_walk`)
and read its fields by unpacking, in the order of :class:`Storage`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import types
from numba.extending import overload

from ._jit import jit
from .distances import METRIC_IP, METRIC_L2, dot, sq_l2
from .lvq_codes import lvq8_decode_row, lvq8_ip, lvq8_l2, lvq_decode_row, lvq_ip, lvq_l2
from .prefetch import prefetch_at

STORE_NONE = -1
STORE_F32 = 0
STORE_F16 = 1
STORE_LVQ8 = 2
STORE_LVQ4 = 3
STORE_LVQ4X8 = 4
RARE_KINDS = (STORE_F16, STORE_LVQ4, STORE_LVQ4X8)  # see _COMMON_U16

# MODE_L2 and MODE_IP equal the kernel metric codes METRIC_L2 / METRIC_IP of
# :mod:`vecsearch.kernels.distances`: an index's metric code is the mode of its exact storages.
MODE_L2 = METRIC_L2
MODE_IP = METRIC_IP
MODE_L2_VIA_IP = 2


class Storage(NamedTuple):
    """Rows of one encoding and how to score them (see the module docstring for the fields)."""

    kind: int
    mode: int
    f32: np.ndarray
    u16: np.ndarray
    codes: np.ndarray
    mu: np.ndarray
    norms: np.ndarray
    f16: np.ndarray


_EMPTY_F32_2D = np.empty((0, 1), np.float32)
# The ``u16`` field also tells numba, by its dtype, whether a bundle may hold a rare encoding (float16
# rows, the 4-bit LVQ kinds): uint16 for those, int16 (always empty) for float32 / LVQ8 / no rows. A
# kernel compiled for the common bundles then leaves out :func:`other_score` (see :func:`rare_score`):
# a first ``HNSWIndex.add`` + ``search`` compiles the rare encodings only when an index uses one.
_EMPTY_U16 = np.empty((0, 1), np.uint16)
_COMMON_U16 = np.empty((0, 1), np.int16)
_EMPTY_U8 = np.empty((0, 1), np.uint8)
_EMPTY_F32 = np.empty(0, np.float32)


def make_storage(kind: int, mode: int, *, f32: np.ndarray | None = None, u16: np.ndarray | None = None,
                 codes: np.ndarray | None = None, mu: np.ndarray | None = None, norms: np.ndarray | None = None,
                 f16: np.ndarray | None = None) -> Storage:
    """A :class:`Storage` with the arrays ``kind`` reads and empty ones elsewhere (one numba type for the
    common encodings, one for the rare ones: see ``_COMMON_U16``)."""
    return Storage(int(kind), int(mode),
                   _EMPTY_F32_2D if f32 is None else f32,
                   (_EMPTY_U16 if int(kind) in RARE_KINDS else _COMMON_U16) if u16 is None else u16,
                   _EMPTY_U8 if codes is None else codes,
                   _EMPTY_F32 if mu is None else mu,
                   _EMPTY_F32 if norms is None else norms,
                   _EMPTY_F32 if f16 is None else f16)


NO_STORAGE = make_storage(STORE_NONE, MODE_L2)


@jit(inline="always")
def lvq_kind(kind):
    """The :mod:`vecsearch.kernels.lvq_codes` kind of an LVQ storage kind."""
    return kind - STORE_LVQ8


@jit(inline="always")
def query_terms(st, q, qm):
    """Per-query terms for scoring ``q`` (d,) f32 against ``st``: ``qm`` (d,) <- ``q - mu`` (LVQ kinds);
    returns ``(sum(q), <q, mu>)`` (zeros for other kinds)."""
    q_sum = np.float32(0.0)
    q_mu = np.float32(0.0)
    if st[0] >= STORE_LVQ8:
        mu = st[5]
        for j in range(q.shape[0]):
            qm[j] = q[j] - mu[j]
            q_sum += q[j]
            q_mu += q[j] * mu[j]
    return q_sum, q_mu


@jit
def score_row(kind, mode, f32, u16, codes, norms, f16, q, qm, q_sum, q_mu, node):
    """Score (smaller is better) of query ``q`` (terms from :func:`query_terms`) against row ``node`` of
    the storage whose fields are passed one by one (unpack a :class:`Storage` once per call of a
    kernel: reading a tuple's arrays inside a loop makes numba count references at every read,
    measured 3x slower per score).

    A called function, not inlined (numba's ``inline="always"``): inlined, every call site re-typed
    every encoding (the walk's compile time x4), and the array arguments some branch leaves unused
    kept numba's reference counting in the caller's loop (3x slower per score). A call costs
    nothing measurable (LVQ8 at 384-d: 26.1 ns called vs 26.5 ns inlined per score).
    """
    if kind == STORE_F32:
        if mode == MODE_L2:
            d = sq_l2(q, f32[node])
        else:
            d = -dot(q, f32[node])
    elif kind == STORE_LVQ8:
        if mode == MODE_L2:
            d = lvq8_l2(qm, codes[node], f16)
        else:
            d = -lvq8_ip(q, q_sum, q_mu, codes[node], f16)
    else:
        d = rare_score(kind, mode, u16, codes, f16, q, qm, q_sum, q_mu, node)
    if mode == MODE_L2_VIA_IP:  # d holds -<q, x> here
        d = norms[node] + np.float32(2.0) * d
    return d


@jit
def other_score(kind, mode, u16, codes, f16, q, qm, q_sum, q_mu, node):
    """:func:`score_row` for float16 rows and the 4-bit LVQ encodings (``-<q, x>`` for both inner-product modes)."""
    if kind == STORE_F16:
        row16 = u16[node]
        acc = np.float32(0.0)
        if mode == MODE_L2:
            for j in range(q.shape[0]):
                t = q[j] - f16[row16[j]]
                acc += t * t
            return acc
        for j in range(q.shape[0]):
            acc += q[j] * f16[row16[j]]
        ip = acc
    else:
        row = codes[node]
        if mode == MODE_L2:
            return lvq_l2(lvq_kind(kind), qm, row, f16)
        ip = lvq_ip(lvq_kind(kind), q, q_sum, q_mu, row, f16)
    return -ip  # MODE_L2_VIA_IP's norm term is added by score_row


def rare_score(kind, mode, u16, codes, f16, q, qm, q_sum, q_mu, node):
    """:func:`other_score` in kernels compiled for bundles that may hold a rare encoding (``u16`` uint16),
    ``+inf`` in those compiled for the common ones (``u16`` int16: :func:`make_storage` never gives them a
    rare kind), so those never compile :func:`other_score` (numba resolves this per argument type)."""
    raise NotImplementedError("rare_score runs only inside numba kernels")


@overload(rare_score)
def _rare_score_for(kind, mode, u16, codes, f16, q, qm, q_sum, q_mu, node):
    if isinstance(u16, types.Array) and u16.dtype == types.uint16:
        def score(kind, mode, u16, codes, f16, q, qm, q_sum, q_mu, node):
            return other_score(kind, mode, u16, codes, f16, q, qm, q_sum, q_mu, node)
    else:
        def score(kind, mode, u16, codes, f16, q, qm, q_sum, q_mu, node):
            return np.float32(np.inf)
    return score


@jit(inline="always")
def storage_score(st, q, qm, q_sum, q_mu, node):
    """:func:`score_row` on a :class:`Storage` bundle: for one-off scores, not inside a loop."""
    kind, mode, f32, u16, codes, _mu, norms, f16 = st
    return score_row(kind, mode, f32, u16, codes, norms, f16, q, qm, q_sum, q_mu, np.int64(node))


@jit(inline="always")
def walk_flags(kind, mode, q, qm):
    """``(fast, l2, lvq8, via_ip, qv)`` for a loop scoring many rows: ``fast`` float32 rows scored by
    :func:`f32_score`, ``lvq8`` LVQ8 rows by :func:`lvq8_score` (with ``qv``, then the norm term when
    ``via_ip``), anything else by :func:`score_row`. The two hot encodings are spelled out in the
    loops: see :func:`score_row` for why they are not simply inlined."""
    l2 = mode == MODE_L2
    fast = kind == STORE_F32 and mode != MODE_L2_VIA_IP
    lvq8 = kind == STORE_LVQ8
    qv = qm if (lvq8 and l2) else q
    return fast, l2, lvq8, mode == MODE_L2_VIA_IP, qv


@jit(inline="always")
def f32_score(l2, q, row):
    """Squared L2 (``l2``) or negative inner product of float32 ``q`` and ``row`` (d,): the hot path
    loops spell out beside :func:`score_row` (inlined; both arrays are used on both branches, so
    numba adds no reference counting to the caller's loop)."""
    if l2:
        return sq_l2(q, row)
    return -dot(q, row)


@jit(inline="always")
def lvq8_score(l2, qv, q_sum, q_mu, row, f16):
    """Squared L2 (``l2``; ``qv = q - mu``) or negative inner product (``qv = q``) of a query and an LVQ8
    ``row``: the other hot path spelled out beside :func:`score_row` (each array is used on both
    branches: inlined without reference counting in the caller's loop). Without the norm term of
    ``MODE_L2_VIA_IP``, which the caller adds."""
    if l2:
        return lvq8_l2(qv, row, f16)
    return -lvq8_ip(qv, q_sum, q_mu, row, f16)


@jit(inline="always")
def prefetch_codes(codes, node):
    """Start loading every cache line of code row ``node`` of ``codes`` (n, B) uint8."""
    for b in range(0, codes.shape[1], 64):
        prefetch_at(codes, node, b)


@jit(inline="always")
def prefetch_f32_row(f32, node):
    """Start loading every cache line of float32 row ``node`` of ``f32`` (n, d)."""
    for j in range(0, f32.shape[1], 16):
        prefetch_at(f32, node, j)


@jit
def prefetch_row_of(kind, f32, u16, codes, node):
    """Start loading row ``node`` (every cache line of a code row; the first of a float row: the
    hardware prefetcher streams the rest). Storage fields passed one by one, as :func:`score_row`."""
    if kind == STORE_F32:
        prefetch_at(f32, node, 0)
    elif kind == STORE_F16:
        prefetch_at(u16, node, 0)
    else:
        for b in range(0, codes.shape[1], 64):
            prefetch_at(codes, node, b)


@jit
def decode_row(st, node, out):
    """Row ``node`` of ``st`` as float32 values into ``out`` (d,) (LVQ: ``x_hat``, mean included)."""
    kind, _mode, f32, u16, codes, mu, _norms, f16 = st
    if kind == STORE_F32:
        row32 = f32[node]
        for j in range(out.shape[0]):  # a loop, not out[:] = ...: a slice assignment compiles numba's
            out[j] = row32[j]  # broadcast-error formatting (~5 s of first-use compile)
    elif kind == STORE_LVQ8:
        lvq8_decode_row(codes[node], mu, f16, out)
    else:
        rare_decode(kind, u16, codes, mu, f16, node, out)


def rare_decode(kind, u16, codes, mu, f16, node, out):
    """:func:`decode_row` of the rare encodings (float16, 4-bit LVQ), compiled only for bundles that may
    hold one (see :func:`rare_score`)."""
    raise NotImplementedError("rare_decode runs only inside numba kernels")


@overload(rare_decode)
def _rare_decode_for(kind, u16, codes, mu, f16, node, out):
    if isinstance(u16, types.Array) and u16.dtype == types.uint16:
        def decode(kind, u16, codes, mu, f16, node, out):
            if kind == STORE_F16:
                row16 = u16[node]
                for j in range(out.shape[0]):
                    out[j] = f16[row16[j]]
            else:
                lvq_decode_row(lvq_kind(kind), codes[node], mu, f16, out)
    else:
        def decode(kind, u16, codes, mu, f16, node, out):
            return None
    return decode


@jit(inline="always")
def row_as_query(st, node, buf, qm):
    """Stored row ``node`` as a query for :func:`storage_score`: ``(q, q_sum, q_mu)``, ``q`` a view of the
    float32 row or the row decoded into ``buf`` (d,) f32 (``qm`` (d,) f32 receives ``q - mu``)."""
    if st[0] == STORE_F32:
        return st[2][node], np.float32(0.0), np.float32(0.0)
    decode_row(st, np.int64(node), buf)
    q_sum, q_mu = query_terms(st, buf, qm)
    return buf, q_sum, q_mu
