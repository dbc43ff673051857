"""4-bit product quantizer for fast-scan: 16-codeword sub-quantizers, 32-vector code blocks, uint8 tables.

>>> codec = PQ4Codec(dim=384, m=96, seed=0).fit(x)          # trains a ProductQuantizer(nbits=4)
>>> codes = codec.encode(x)                                 # (n, 96) uint8, values < 16
>>> packed = codec.pack(codes)                              # (ceil(n/32), 96, 16) uint8 blocks
>>> tables = codec.compute_tables(queries, "ip")            # (nq, 96, 16) f32, smaller is better
>>> lut_q, scale, offset = codec.quantize_tables(tables)     # (nq, 96, 16) u8, (nq,) f32, (nq,) f64
>>> sums = codec.scan(lut_q, packed, n)                     # (nq, n) uint16: sums / scale + offset ~ ADC
>>> res = codec.search(queries, packed, n, k=10, metric="ip", n_cand=100, vectors=x)   # flat scan + re-rank

The packed layout and the table quantization are described in :mod:`vecsearch.kernels.fastscan`.
Inverted lists in that layout (:class:`FastScanLists`, built by :func:`pack_lists`) are searched by
:func:`fastscan_search`; a flat code array is the one-list case.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..kernels.distances import METRIC_IP, METRIC_L2
from ..kernels.fastscan import pack_lists as _pack_lists_kernel
from ..kernels.fastscan import (
    packed_sums,
    quantize_tables,
    read_codes,
    write_codes,
)
from ..kernels.fastscan_simd import BLOCK, KSUB, SUBQ_ALIGN
from .fastscan_runner import run_fastscan
from .pq import ProductQuantizer

NBITS = 4
METRIC_CODES = {"l2": METRIC_L2, "ip": METRIC_IP}


class FastScanLists(NamedTuple):
    """Inverted lists in the fast-scan layout (see :mod:`vecsearch.kernels.fastscan`).

    ``packed`` uint8 ``(n_blocks, m_pad, 16)``; ``slots`` int32 ``(slot_offsets[-1],)`` row number of
    every vector; ``block_offsets`` / ``slot_offsets`` int64 ``(nlist + 1,)`` first block / slot of
    each list; ``sizes`` int64 ``(nlist,)`` vectors per list.
    """

    packed: np.ndarray
    slots: np.ndarray
    block_offsets: np.ndarray
    slot_offsets: np.ndarray
    sizes: np.ndarray


class SearchOutput(NamedTuple):
    """``scores`` f32 ``(nq, k)`` smaller is better (+inf padding); ``rows`` int64 ``(nq, k)`` (-1 padding)."""

    scores: np.ndarray
    rows: np.ndarray


def padded_m(m: int) -> int:
    """Sub-quantizers in the packed layout: ``m`` rounded up to a multiple of ``SUBQ_ALIGN``."""
    return -(-m // SUBQ_ALIGN) * SUBQ_ALIGN


def _metric(metric: Any) -> int:
    if metric not in METRIC_CODES:
        raise ValueError(f"metric: expected one of {tuple(METRIC_CODES)}, got {metric!r}")
    return METRIC_CODES[metric]


class PQ4Codec:
    """Product quantizer with ``m`` sub-spaces of 16 codewords, for the fast-scan layout.

    Training is :class:`ProductQuantizer` with ``nbits=4``: at most ``16 * max_points_per_centroid``
    random training rows (4096 by default, as faiss samples for a 4-bit PQ), ``niter`` Lloyd
    iterations per sub-space. When the codes encode IVF residuals, compute the residuals of a
    sample of :attr:`training_sample_size` rows only.
    """

    def __init__(self, dim: int, m: int, *, niter: int = 25, max_points_per_centroid: int = 256, seed: int = 0):
        self.pq = ProductQuantizer(dim, m, NBITS, niter=niter, max_points_per_centroid=max_points_per_centroid,
                                   seed=seed)
        self.dim = self.pq.dim
        self.m = self.pq.m
        self.dsub = self.pq.dsub
        self.m_pad = padded_m(self.m)
        self.codebooks_t: np.ndarray | None = None
        self.cb_sq_norms: np.ndarray | None = None

    @property
    def is_trained(self) -> bool:
        return self.pq.is_trained

    @property
    def code_size(self) -> int:
        """Packed bytes per vector (``m_pad / 2``)."""
        return self.m_pad // 2

    @property
    def training_sample_size(self) -> int:
        """Rows :meth:`fit` uses at most (more are subsampled)."""
        return KSUB * self.pq.max_points_per_centroid

    @property
    def codebooks(self) -> np.ndarray:
        """Codewords, float32 ``(m, 16, dsub)``."""
        return self.pq.codebooks

    def fit(self, x: Any) -> PQ4Codec:
        """Train on ``x`` (n, dim), ``n >= 16``; returns ``self``."""
        self.pq.fit(x)
        return self._derive()

    def set_codebooks(self, codebooks: Any) -> PQ4Codec:
        """Install trained codewords float32 ``(m, 16, dsub)``; returns ``self``."""
        self.pq.set_codebooks(codebooks)
        return self._derive()

    def _derive(self) -> PQ4Codec:
        cb = self.pq.codebooks
        self.codebooks_t = np.ascontiguousarray(cb.transpose(0, 2, 1))
        self.cb_sq_norms = np.einsum("jcd,jcd->jc", cb, cb).astype(np.float32)
        return self

    def _require_trained(self, what: str) -> None:
        if not self.pq.is_trained:
            raise ValueError(f"PQ4Codec.{what}: the codec is not trained; call fit(x) first")

    # ---- codes ------------------------------------------------------------------------------
    def encode(self, x: Any) -> np.ndarray:
        """Codes uint8 ``(n, m)`` (values < 16) of ``x`` (n, dim)."""
        return self.pq.encode(x)

    def decode(self, codes: Any) -> np.ndarray:
        """Reconstructions float32 ``(n, dim)`` of ``codes`` uint8 ``(n, m)``."""
        return self.pq.decode(codes)

    def _codes(self, codes: Any) -> np.ndarray:
        arr = np.asarray(codes)
        if arr.dtype != np.uint8:
            raise TypeError(f"codes: expected dtype uint8, got {arr.dtype}")
        if arr.ndim != 2 or arr.shape[1] != self.m:
            raise ValueError(f"codes: expected shape (n, {self.m}), got {arr.shape}")
        if arr.size and int(arr.max()) >= KSUB:
            raise ValueError(f"codes: expected values < {KSUB}, got {int(arr.max())}")
        return np.ascontiguousarray(arr)

    def _packed(self, packed: Any, n_codes: int) -> np.ndarray:
        arr = np.asarray(packed)
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[1:] != (self.m_pad, KSUB):
            raise ValueError(f"packed: expected uint8 (n_blocks, {self.m_pad}, {KSUB}), got {arr.dtype} {arr.shape}")
        if n_codes < 0 or n_codes > arr.shape[0] * BLOCK:
            raise ValueError(f"n_codes: expected 0 <= n_codes <= {arr.shape[0] * BLOCK}, got {n_codes}")
        return np.ascontiguousarray(arr)

    def pack(self, codes: Any) -> np.ndarray:
        """Packed blocks uint8 ``(ceil(n / 32), m_pad, 16)`` of ``codes`` uint8 ``(n, m)``."""
        codes = self._codes(codes)
        packed = np.zeros((-(-codes.shape[0] // BLOCK), self.m_pad, KSUB), np.uint8)
        if codes.shape[0]:
            write_codes(codes, packed, 0)
        return packed

    def unpack(self, packed: Any, n_codes: int) -> np.ndarray:
        """The first ``n_codes`` codes uint8 ``(n_codes, m)`` of ``packed``."""
        packed = self._packed(packed, n_codes)
        out = np.empty((n_codes, self.m), np.uint8)
        if n_codes:
            read_codes(packed, 0, out)
        return out

    # ---- tables -----------------------------------------------------------------------------
    def compute_tables(self, queries: Any, metric: str = "l2") -> np.ndarray:
        """Float tables f32 ``(nq, m, 16)``: ``||q_j - y||^2`` (``l2``) or ``-<q_j, y>`` (``ip``)."""
        self._require_trained("compute_tables")
        _metric(metric)
        return self.pq.compute_distance_tables(queries, metric=metric)

    def quantize_tables(self, tables: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """uint8 tables ``(nq, m_pad, 16)`` with per-query ``scale`` f32 ``(nq,)`` and ``offset`` f64 ``(nq,)``.

        A sum ``s`` of table entries over the ``m`` codes estimates ``s / scale + offset``.
        """
        tables = np.asarray(tables)
        if tables.ndim != 3 or tables.shape[1:] != (self.m, KSUB):
            raise ValueError(f"tables: expected shape (nq, {self.m}, {KSUB}), got {tables.shape}")
        tables = np.ascontiguousarray(tables, np.float32)
        nq = tables.shape[0]
        lut_q = np.empty((nq, self.m_pad, KSUB), np.uint8)
        scales = np.empty(nq, np.float32)
        offsets = np.empty(nq, np.float64)
        bias = np.zeros(1, np.float32)
        bias_q = np.empty(1, np.float32)
        for qi in range(nq):
            scales[qi], offsets[qi] = quantize_tables(tables[qi:qi + 1], bias, lut_q[qi:qi + 1], bias_q)
        return lut_q, scales, offsets

    def scan(self, lut_q: Any, packed: Any, n_codes: int) -> np.ndarray:
        """Quantized sums uint16 ``(nq, n_codes)`` of the first ``n_codes`` packed codes (exhaustive)."""
        packed = self._packed(packed, n_codes)
        lut_q = np.asarray(lut_q)
        if lut_q.dtype != np.uint8 or lut_q.ndim != 3 or lut_q.shape[1:] != (self.m_pad, KSUB):
            raise ValueError(f"lut_q: expected uint8 (nq, {self.m_pad}, {KSUB}), got {lut_q.dtype} {lut_q.shape}")
        n_blocks = -(-n_codes // BLOCK)
        out = np.empty((lut_q.shape[0], n_blocks * BLOCK), np.uint16)
        for qi in range(lut_q.shape[0]):
            if n_blocks:
                packed_sums(np.ascontiguousarray(lut_q[qi]), packed, n_blocks, out[qi])
        return out[:, :n_codes]

    # ---- search -----------------------------------------------------------------------------
    def search(self, queries: Any, packed: Any, n_codes: int, *, k: int, metric: str, n_cand: int | None = None,
               vectors: Any = None, grouped: bool | None = None) -> SearchOutput:
        """Flat fast-scan of the first ``n_codes`` codes of ``packed``: best ``n_cand`` (default ``k``)
        by quantized ADC, re-scored exactly with ``vectors`` (n_codes, dim) f32 when given."""
        packed = self._packed(packed, n_codes)
        slots = np.arange(n_codes, dtype=np.int32)
        lists = FastScanLists(packed, slots, np.array([0, packed.shape[0]], np.int64), np.array([0, n_codes], np.int64),
                              np.array([n_codes], np.int64))
        q = _queries(queries, self.dim)
        probes = np.zeros((q.shape[0], 1), np.int64)
        return fastscan_search(self, lists, q, probes, np.zeros((q.shape[0], 1), np.float32), k=k, metric=metric,
                               by_residual=False, n_cand=n_cand, vectors=vectors, grouped=grouped)


def _queries(queries: Any, dim: int) -> np.ndarray:
    q = np.asarray(queries)
    if q.ndim == 1:
        q = q.reshape(1, -1)
    if q.ndim != 2 or q.shape[1] != dim:
        raise ValueError(f"queries: expected shape (nq, {dim}), got {np.asarray(queries).shape}")
    return np.ascontiguousarray(q, np.float32)


def pack_lists(codec: PQ4Codec, codes: Any, list_ids: Any, nlist: int) -> FastScanLists:
    """Inverted lists of ``codes`` uint8 ``(n, m)`` by ``list_ids`` int ``(n,)`` in ``[0, nlist)``.

    Rows keep their order inside a list; ``slots`` holds row numbers ``0 .. n - 1``.
    """
    codes = codec._codes(codes)
    list_ids = np.asarray(list_ids)
    if list_ids.shape != (codes.shape[0],) or not np.issubdtype(list_ids.dtype, np.integer):
        raise ValueError(f"list_ids: expected integer shape ({codes.shape[0]},), got {list_ids.dtype} {list_ids.shape}")
    if list_ids.size and (int(list_ids.min()) < 0 or int(list_ids.max()) >= nlist):
        raise ValueError(f"list_ids: expected values in [0, {nlist}), got [{int(list_ids.min())}, {int(list_ids.max())}]")
    sizes = np.bincount(list_ids, minlength=nlist).astype(np.int64)
    block_offsets = np.zeros(nlist + 1, np.int64)
    np.cumsum(-(-sizes // BLOCK), out=block_offsets[1:])
    slot_offsets = np.zeros(nlist + 1, np.int64)
    np.cumsum(sizes, out=slot_offsets[1:])
    order = np.argsort(list_ids, kind="stable").astype(np.int64)
    packed = np.zeros((int(block_offsets[-1]), codec.m_pad, KSUB), np.uint8)
    slots = np.full(int(slot_offsets[-1]), -1, np.int32)
    if codes.shape[0]:
        _pack_lists_kernel(codes, order, block_offsets, slot_offsets, sizes, packed, slots)
    return FastScanLists(packed, slots, block_offsets, slot_offsets, sizes)


def fastscan_search(codec: PQ4Codec, lists: FastScanLists, queries: Any, probe_lists: Any, probe_scores: Any, *,
                    k: int, metric: str, by_residual: bool, n_cand: int | None = None, vectors: Any = None,
                    centroids: Any = None, l2_terms: Any = None, grouped: bool | None = None,
                    workers: int | None = None) -> SearchOutput:
    """Best ``k`` of each query over its probed lists (see :func:`vecsearch.kernels.fastscan.fastscan_search_serial`).

    ``probe_lists`` int64 ``(nq, nprobe)`` (-1 = none) and ``probe_scores`` f32 ``(nq, nprobe)``
    (the coarse scores, used when ``by_residual``); ``n_cand`` (>= k, default k) candidates by
    quantized ADC, re-scored with ``vectors`` f32 ``(n_rows, dim)`` when given. For L2 by
    residual, ``l2_terms`` f32 ``(nlist, m, 16)`` (or None: built per list from ``centroids``).
    ``grouped`` picks the batch kernel (default: the grouped scan from ``GROUPED_MIN_QUERIES``
    queries on); both give the same results. ``workers``: threads (default: as many as numba's);
    see :func:`vecsearch.codecs.fastscan_runner.run_fastscan`.
    """
    codec._require_trained("search")
    code = _metric(metric)
    q = _queries(queries, codec.dim)
    nq = q.shape[0]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k: expected a positive integer, got {k!r}")
    n_cand = k if n_cand is None else n_cand
    if isinstance(n_cand, bool) or not isinstance(n_cand, (int, np.integer)) or n_cand < k:
        raise ValueError(f"n_cand: expected an integer >= k={k}, got {n_cand!r}")
    probe_lists = np.ascontiguousarray(probe_lists, np.int64)
    probe_scores = np.ascontiguousarray(probe_scores, np.float32)
    nlist = lists.sizes.shape[0]
    if probe_lists.ndim != 2 or probe_lists.shape[0] != nq or probe_scores.shape != probe_lists.shape:
        raise ValueError(f"probe_lists/probe_scores: expected equal shapes ({nq}, nprobe), got "
                         f"{probe_lists.shape} and {probe_scores.shape}")
    if probe_lists.size and int(probe_lists.max()) >= nlist:
        raise ValueError(f"probe_lists: expected values < nlist={nlist}, got {int(probe_lists.max())}")
    if lists.packed.shape[1:] != (codec.m_pad, KSUB):
        raise ValueError(f"lists.packed: expected (n_blocks, {codec.m_pad}, {KSUB}), got {lists.packed.shape}")
    per_list_l2 = code == METRIC_L2 and by_residual
    cent = np.zeros((0, codec.dim), np.float32) if centroids is None else np.ascontiguousarray(centroids, np.float32)
    terms = np.zeros((0, codec.m, KSUB), np.float32) if l2_terms is None else np.ascontiguousarray(l2_terms, np.float32)
    if per_list_l2 and terms.shape[0] == 0 and cent.shape != (nlist, codec.dim):
        raise ValueError(f"centroids: expected ({nlist}, {codec.dim}) for L2 by residual without l2_terms, "
                         f"got {cent.shape}")
    if terms.shape[0] and terms.shape != (nlist, codec.m, KSUB):
        raise ValueError(f"l2_terms: expected ({nlist}, {codec.m}, {KSUB}), got {terms.shape}")
    vecs = np.zeros((0, codec.dim), np.float32) if vectors is None else np.ascontiguousarray(vectors, np.float32)
    if vecs.ndim != 2 or vecs.shape[1] != codec.dim:
        raise ValueError(f"vectors: expected shape (n_rows, {codec.dim}), got {vecs.shape}")
    if vecs.shape[0] and lists.slots.size and int(lists.slots.max()) >= vecs.shape[0]:
        raise ValueError(f"vectors: expected at least {int(lists.slots.max()) + 1} rows, got {vecs.shape[0]}")
    out_scores = np.full((nq, k), np.inf, np.float32)
    out_rows = np.full((nq, k), -1, np.int64)
    run_fastscan(code, bool(by_residual), q, probe_lists, probe_scores, codec.codebooks_t, codec.cb_sq_norms, cent,
                 terms, lists.packed, lists.slots, lists.block_offsets, lists.slot_offsets, lists.sizes, int(n_cand),
                 vecs, out_scores, out_rows, grouped=grouped, workers=workers)
    return SearchOutput(out_scores, out_rows)
