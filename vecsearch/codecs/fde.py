"""MUVERA fixed-dimensional encodings (FDE): token sets -> one vector whose inner product tracks Chamfer.

Algorithm (Dhulipala et al., NeurIPS 2024), per repetition ``r`` of ``reps``:

* SimHash partition: ``k_sim`` Gaussian hyperplanes; a token's bucket id has bit ``j`` set when its
  projection on hyperplane ``j`` is positive (plain binary numbering, ``2**k_sim`` buckets).
* Inner projection ``psi``: a random +-1 matrix scaled by ``1/sqrt(d_proj)`` (identity when
  ``d_proj == dim``), drawn independently per repetition.
* Query block of bucket ``b``: SUM of ``psi(q)`` over the query tokens in ``b``; empty buckets stay 0.
* Document block: MEAN of ``psi(p)`` over the document tokens in ``b``; an empty bucket takes
  ``psi(p*)`` of the token ``p*`` whose sign pattern has the smallest Hamming distance to ``b``
  (first token on ties), unless ``fill_empty=False``.
* Option (not in the paper) ``normalize_doc_blocks``: scale every non-zero document block to unit
  norm. A bucket MEAN of dissimilar tokens is short, so the plain MEAN under-scores the max that
  Chamfer takes and favors short documents; normalizing removes that bias.
* Blocks are concatenated bucket-major within a repetition, repetitions one after another:
  ``fde_dim = reps * 2**k_sim * d_proj``; optionally a count-sketch reduces it to ``final_dim``.

``<encode_queries(Q), encode_documents(P)>`` approximates ``reps * Chamfer(Q, P)``.

Random draws (documented so a reference can be rebuilt): ``rng = np.random.default_rng(seed)``;
``hyperplanes = rng.standard_normal((dim, reps * k_sim))`` (column ``r * k_sim + j``); then, when
``d_proj < dim``, ``projection = rng.choice([-1, 1], (dim, reps * d_proj)) / sqrt(d_proj)`` (columns
``r * d_proj ... (r + 1) * d_proj - 1`` serve repetition ``r``); the count-sketch uses
``rng2 = np.random.default_rng([seed, 1])``: ``buckets = rng2.integers(0, final_dim, fde_dim)``,
``signs = rng2.choice([-1, 1], fde_dim)``. All float32.

Token sets are given as a list of ``(n_i, dim)`` arrays or as CSR ``(vectors, offsets)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from ..kernels.fde_encode import (
    count_sketch,
    fde_aggregate,
    project_rows,
    sign_codes,
)
from ..parallel import run_shared, workers_for
from ..params import StrictModel, parse_params

# Tokens per encoding chunk: bounds the temporary psi array (chunk x reps x d_proj float32).
_CHUNK_ELEMENTS = 1 << 23
# At most this many tokens (a query or a few) are encoded on the calling thread, no BLAS or numba
# threads: waking them took ~8 ms per call on a busy 2-core machine, more than the work.
SERIAL_MAX_TOKENS = 256
# Token sets per chunk a thread takes when aggregating FDEs (a set is tens of tokens).
AGGREGATE_GRAIN = 64


class FDEConfig(StrictModel):
    """FDE parameters; the same config (and seed) must encode queries and documents.

    ``reps`` repetitions, ``k_sim`` SimHash bits (``2**k_sim`` buckets), ``d_proj`` inner projection
    size (``d_proj == dim`` means identity), ``final_dim`` optional count-sketch output size,
    ``seed`` for every random draw, ``fill_empty`` fills empty document buckets (paper default),
    ``normalize_doc_blocks`` scales each non-zero document block to unit norm (our option).

    The field defaults are the paper's ``(reps=20, k_sim=5, d_proj=16)``. ``MultiVectorIndex`` does not
    use them by default: its ``fde="auto"`` measures a small grid on the documents being indexed
    (:mod:`vecsearch.codecs.fde_auto`). On MiniLM token vectors fewer buckets (``k_sim=3``), more
    repetitions, ``fill_empty=False`` and ``normalize_doc_blocks=True`` retrieve better than the
    paper's shape at the same size (:data:`MINILM_TUNED`, bench/bench_muvera.py).
    """

    reps: int = Field(20, ge=1, le=4096)
    k_sim: int = Field(5, ge=0, le=12)
    d_proj: int = Field(16, ge=1)
    final_dim: int | None = Field(None, ge=1)
    seed: int = Field(0, ge=0)
    fill_empty: bool = True
    normalize_doc_blocks: bool = False

    @model_validator(mode="after")
    def _check_size(self) -> FDEConfig:
        if self.reps * (1 << self.k_sim) * self.d_proj > 1 << 26:
            raise ValueError(
                f"reps * 2**k_sim * d_proj must be <= 2**26, got {self.reps * (1 << self.k_sim) * self.d_proj}"
            )
        return self

    @property
    def n_buckets(self) -> int:
        return 1 << self.k_sim

    @property
    def raw_dim(self) -> int:
        """Dimension before the optional final projection: ``reps * 2**k_sim * d_proj``."""
        return self.reps * self.n_buckets * self.d_proj

    @property
    def output_dim(self) -> int:
        """Dimension of the encodings: ``final_dim`` if set, else ``raw_dim``."""
        return self.final_dim if self.final_dim is not None else self.raw_dim


# Measured on MiniLM token vectors (20,000 WordNet documents, 200 queries; bench/bench_muvera.py):
# same size as the paper config (10,240 dims), recall@10 after exact Chamfer re-rank 0.92 at 50
# candidates and 0.96 at 100, against 0.75 / 0.83 for the paper config (20, 5, 16) and 0.91 at ~100
# candidates for the token heuristic (top-16 tokens per query token).
MINILM_TUNED = FDEConfig(reps=40, k_sim=3, d_proj=32, fill_empty=False, normalize_doc_blocks=True)


def as_fde_config(fde: Any) -> FDEConfig:
    """Accept an :class:`FDEConfig`, a dict of its fields or None (defaults)."""
    if fde is None:
        return FDEConfig()
    if isinstance(fde, FDEConfig):
        return fde
    if isinstance(fde, dict):
        return parse_params(FDEConfig, fde, "FDEConfig")
    raise TypeError(f"fde: expected an FDEConfig or a dict of its fields, got {type(fde).__name__}")


@dataclass(frozen=True)
class FDERandomState:
    """Random draws of an FDE config for one token dimension (see the module docstring).

    ``hyperplanes`` (dim, reps * k_sim) f32; ``projection`` (dim, reps * d_proj) f32 or None for
    identity; ``sketch_buckets`` (raw_dim,) int64 and ``sketch_signs`` (raw_dim,) f32 or None.
    """

    hyperplanes: np.ndarray
    projection: np.ndarray | None
    sketch_buckets: np.ndarray | None
    sketch_signs: np.ndarray | None


def fde_random_state(config: FDEConfig, dim: int) -> FDERandomState:
    """Draw the hyperplanes, inner projections and count-sketch of ``config`` for ``dim``-d tokens."""
    if config.d_proj > dim:
        raise ValueError(f"fde.d_proj: expected <= token dim {dim}, got {config.d_proj}")
    rng = np.random.default_rng(config.seed)
    hyperplanes = rng.standard_normal((dim, config.reps * config.k_sim)).astype(np.float32)
    projection = None
    if config.d_proj < dim:
        signs = rng.choice(np.array([-1.0, 1.0]), (dim, config.reps * config.d_proj))
        projection = (signs / np.sqrt(config.d_proj)).astype(np.float32)
    buckets = sketch_signs = None
    if config.final_dim is not None:
        rng2 = np.random.default_rng([config.seed, 1])
        buckets = rng2.integers(0, config.final_dim, config.raw_dim).astype(np.int64)
        sketch_signs = rng2.choice(np.array([-1.0, 1.0]), config.raw_dim).astype(np.float32)
    return FDERandomState(np.ascontiguousarray(hyperplanes), projection, buckets, sketch_signs)


def as_token_sets(
    sets: Any, dim: int | None, name: str, offsets: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Validate token sets into CSR: ``(vectors float32 (N, dim) C-contiguous, offsets int64 (n + 1,))``.

    ``sets`` is a sequence of ``(n_i, dim)`` arrays, a CSR pair ``(vectors, offsets)``, or a 2-D
    ``vectors`` array with ``offsets=`` given. ``dim=None`` takes the dimension from the data.
    Raises ``ValueError`` for a set with zero tokens, a wrong dimension, NaN/inf or bad offsets,
    and ``TypeError`` for non-numeric input, naming ``name`` and the set.
    """
    if (
        offsets is None
        and isinstance(sets, tuple)
        and len(sets) == 2
        and np.ndim(sets[1]) == 1
        and np.ndim(sets[0]) == 2
    ):
        sets, offsets = sets
    if offsets is not None:
        vectors = _as_float_matrix(sets, dim, f"{name} vectors")
        offs = np.asarray(offsets)
        if offs.ndim != 1 or offs.size < 1 or not np.issubdtype(offs.dtype, np.integer):
            raise ValueError(
                f"{name} offsets: expected a 1-D integer array (n + 1,), got {offs.dtype} shape {offs.shape}"
            )
        offs = offs.astype(np.int64)
        if offs[0] != 0 or offs[-1] != vectors.shape[0]:
            raise ValueError(
                f"{name} offsets: expected to start at 0 and end at {vectors.shape[0]} (number of token rows), "
                f"got {int(offs[0])} ... {int(offs[-1])}"
            )
        lengths = np.diff(offs)
        if (lengths < 0).any():
            raise ValueError(
                f"{name} offsets: expected non-decreasing offsets, got a decrease at set {int(np.flatnonzero(lengths < 0)[0])}"
            )
        if (lengths == 0).any():
            raise ValueError(
                f"{name}: set {int(np.flatnonzero(lengths == 0)[0])} has zero tokens (every set needs at least one)"
            )
        return vectors, np.ascontiguousarray(offs)
    if isinstance(sets, np.ndarray) and sets.ndim == 2:
        raise TypeError(
            f"{name}: a 2-D array is ambiguous; pass a list of (n_i, dim) arrays or (vectors, offsets)"
        )
    if isinstance(sets, np.ndarray) and sets.ndim == 3:
        sets = list(sets)
    if not isinstance(sets, (Sequence, np.ndarray)) or isinstance(sets, (str, bytes)):
        raise TypeError(
            f"{name}: expected a list of (n_i, dim) arrays or (vectors, offsets), got {type(sets).__name__}"
        )
    mats = []
    for i, s in enumerate(sets):
        arr = np.asarray(s)
        if arr.ndim != 2:
            raise ValueError(
                f"{name}: set {i} expected a 2-D (n_tokens, dim) array, got shape {arr.shape}"
            )
        if arr.shape[0] == 0:
            raise ValueError(f"{name}: set {i} has zero tokens (every set needs at least one)")
        mats.append(_as_float_matrix(arr, dim, f"{name} set {i}"))
        dim = mats[-1].shape[1] if dim is None else dim
    offs = np.zeros(len(mats) + 1, np.int64)
    if mats:
        offs[1:] = np.cumsum([m.shape[0] for m in mats])
        vectors = np.ascontiguousarray(np.concatenate(mats), dtype=np.float32)
    else:
        vectors = np.empty((0, dim or 0), np.float32)
    return vectors, offs


def _as_float_matrix(x: Any, dim: int | None, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if (
        arr.dtype == object
        or not np.issubdtype(arr.dtype, np.number)
        or np.issubdtype(arr.dtype, np.complexfloating)
    ):
        raise TypeError(f"{name}: expected a real numeric array, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D (n_tokens, dim) array, got shape {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name}: expected token dimension {dim}, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if arr.size and not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise ValueError(f"{name}: expected finite values, got NaN or inf in token row {bad}")
    return arr


def encode_token_sets(
    vectors: np.ndarray,
    offsets: np.ndarray,
    config: FDEConfig,
    random_state: FDERandomState,
    *,
    is_query: bool,
) -> np.ndarray:
    """FDEs of validated CSR token sets (see :func:`as_token_sets`): float32 ``(n, config.output_dim)``."""
    n = offsets.shape[0] - 1
    dim = vectors.shape[1]
    R, k, B = config.reps, config.k_sim, config.n_buckets
    dp = config.d_proj
    raw = np.zeros((n, config.raw_dim), np.float32)
    per_token = R * max(dp, k) if random_state.projection is not None else max(dim, R * k)
    chunk_tokens = max(1, _CHUNK_ELEMENTS // per_token)
    i = 0
    while i < n:
        # documents [i, j) whose tokens fit one chunk (at least one document)
        j = int(np.searchsorted(offsets, offsets[i] + chunk_tokens, side="right")) - 1
        j = min(max(j, i + 1), n)
        lo, hi = offsets[i], offsets[j]
        tokens = vectors[lo:hi]
        serial = hi - lo <= SERIAL_MAX_TOKENS
        codes = np.empty((hi - lo, R), np.int32)
        if k > 0:
            sign_codes(_product(tokens, random_state.hyperplanes, serial), R, k, codes)
        else:
            codes[:] = 0
        if random_state.projection is None:
            psi = tokens.reshape(hi - lo, 1, dim)
        else:
            psi = _product(tokens, random_state.projection, serial).reshape(hi - lo, R, dp)
        def aggregate(start: int, stop: int, _worker: int, codes=codes, psi=psi, set_offsets=offsets[i : j + 1] - lo,
                      set_out=raw[i:j]) -> None:
            fde_aggregate(codes, psi, set_offsets, B, is_query, config.fill_empty, config.normalize_doc_blocks,
                          set_out, start, stop)

        run_shared(aggregate, j - i, 1 if serial else workers_for(j - i), grain=AGGREGATE_GRAIN)
        i = j
    if config.final_dim is None:
        return raw
    out = np.zeros((n, config.final_dim), np.float32)
    if n <= 4:  # a query: on the calling thread (see SERIAL_MAX_TOKENS)
        for r in range(n):
            out[r] = np.bincount(
                random_state.sketch_buckets, random_state.sketch_signs * raw[r], config.final_dim
            )
        return out
    count_sketch(raw, random_state.sketch_buckets, random_state.sketch_signs, out)
    return out


def _product(x: np.ndarray, matrix: np.ndarray, serial: bool) -> np.ndarray:
    """``x @ matrix`` float32 C-contiguous: BLAS, or on the calling thread when ``serial``."""
    if not serial:
        return np.ascontiguousarray(x @ matrix, dtype=np.float32)
    out = np.empty((x.shape[0], matrix.shape[1]), np.float32)
    project_rows(x, matrix, out)
    return out


def _encode(
    sets: Any, config: Any, offsets: Any, dim: int | None, is_query: bool, name: str
) -> np.ndarray:
    config = as_fde_config(config)
    vectors, offs = as_token_sets(sets, dim, name, offsets)
    if offs.shape[0] == 1:
        return np.zeros((0, config.output_dim), np.float32)
    state = fde_random_state(config, vectors.shape[1])
    return encode_token_sets(vectors, offs, config, state, is_query=is_query)


def encode_queries(
    queries: Any, config: Any = None, *, offsets: Any = None, dim: int | None = None
) -> np.ndarray:
    """Query FDEs (bucket SUM, no fill): float32 ``(n_queries, config.output_dim)``.

    ``queries``: list of ``(n_i, dim)`` token arrays, or CSR ``(vectors, offsets)``.
    """
    return _encode(queries, config, offsets, dim, True, "queries")


def encode_documents(
    documents: Any, config: Any = None, *, offsets: Any = None, dim: int | None = None
) -> np.ndarray:
    """Document FDEs (bucket MEAN, empty buckets filled): float32 ``(n_docs, config.output_dim)``.

    ``documents``: list of ``(n_i, dim)`` token arrays, or CSR ``(vectors, offsets)``.
    """
    return _encode(documents, config, offsets, dim, False, "documents")
