"""Coarse probes of a query batch for the IVF fast-scan index: query-centroid inner products in SIMD tiles.

The centroids are stored once more as *tiles* (:func:`fill_tiles`): ``tiles`` f32
``(ceil(nlist / 16), d, 16)``, tile ``i`` holding centroids ``16 i .. 16 i + 15`` transposed, so
``tiles[i, t]`` is dimension ``t`` of 16 centroids -- one 64-byte vector. :func:`tile_pair_block_dots`
(an intrinsic: LLVM does not keep a block of accumulators in registers by itself) multiplies 12
queries by two tiles with 24 vector accumulators: per dimension two tile loads, 12 broadcasts and
24 fused multiply-adds, so the multiply-adds, not the loads, set the pace (one tile against 16
queries, as before, took 16 broadcasts + 1 load per 16 multiply-adds: 116 against 141 GFLOP/s on
one AVX-512 core, ``bench/results/coarse_kernel.json``). :func:`coarse_probes_tiled` runs it over groups of 48 queries, each chunk of tiles
read once per group while it sits in L2, then picks each query's lists.

Why not BLAS: numpy's OpenBLAS threads spin after every call (for up to ~2^28 cycles) and took the
cores from the list scan that follows; on the shared 2-core box (1M x 384, nlist 4096, 1,000
queries, nprobe 8) the index's search used 114 ms of CPU with the 2-thread BLAS product against
89 ms with a single-threaded one. This kernel runs on the index's own threads, at about the speed of
single-threaded BLAS (``bench/bench_coarse_kernel.py``: GFLOP/s of both register blocks and of
faiss' exact top-1 search on one core, ``bench/results/coarse_kernel.json``).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

from ._jit import jit
from .distances import METRIC_L2
from .ivf import take_best_lists

TILE = 16  # centroids per tile: one 64-byte vector of float32
TILE_QUERIES = 12  # queries per register block (12 x 2 tiles = 24 accumulators of 16 lanes)
GROUP_QUERIES = 48  # queries per group: each chunk of tiles is read once per group
CHUNK_TILES = 16  # tiles per chunk: 16 x 384 dims x 64 bytes = 393 KB, stays in L2 for the group


@jit
def fill_tiles(centroids, tiles):
    """Copy ``centroids`` f32 ``(nlist, d)`` into ``tiles`` f32 ``(ceil(nlist / 16), d, 16)``
    (zeroed by the caller: the padding centroids of the last tile stay 0)."""
    nlist, d = centroids.shape
    for c in range(nlist):
        tile = c // TILE
        lane = c % TILE
        for t in range(d):
            tiles[tile, t, lane] = centroids[c, t]


def _f32_array(ty, ndim, name):
    if not (isinstance(ty, types.Array) and ty.dtype == types.float32 and ty.ndim == ndim and ty.layout == "C"):
        raise TypingError(f"tile_block_dots: {name} must be a C-contiguous float32 array of {ndim} dims, got {ty}")


def _tile_dots_codegen(n_tiles):
    """IR of ``TILE_QUERIES`` rows x ``n_tiles`` consecutive tiles (``TILE_QUERIES * n_tiles`` vector
    accumulators): per dimension ``n_tiles`` tile loads, ``TILE_QUERIES`` broadcasts and
    ``TILE_QUERIES * n_tiles`` fused multiply-adds."""

    def codegen(context, builder, signature, args):
        block_a, row0_v, tiles_a, tile_v, dots_a = args
        b = context.make_array(signature.args[0])(context, builder, block_a)
        ts = context.make_array(signature.args[2])(context, builder, tiles_a)
        out = context.make_array(signature.args[4])(context, builder, dots_a)
        i32, i64 = ir.IntType(32), ir.IntType(64)
        vec = ir.VectorType(ir.FloatType(), TILE)
        row0_v = context.cast(builder, row0_v, signature.args[1], types.int64)
        tile_v = context.cast(builder, tile_v, signature.args[3], types.int64)
        d = builder.extract_value(b.shape, 1)
        width = builder.extract_value(out.shape, 1)
        lanes = ir.Constant(i64, TILE)
        tile_ps = [builder.gep(ts.data, [builder.mul(builder.add(tile_v, ir.Constant(i64, k)), builder.mul(d, lanes))])
                   for k in range(n_tiles)]
        rows = [builder.gep(b.data, [builder.mul(builder.add(row0_v, ir.Constant(i64, j)), d)])
                for j in range(TILE_QUERIES)]
        accs = [[cgutils.alloca_once_value(builder, ir.Constant(vec, None)) for _ in range(n_tiles)]
                for _ in range(TILE_QUERIES)]
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, vec, vec]),
                                             f"llvm.fmuladd.v{TILE}f32")
        undef = ir.Constant(vec, ir.Undefined)
        splat = ir.Constant(ir.VectorType(i32, TILE), [0] * TILE)
        with cgutils.for_range(builder, d) as loop:
            t = loop.index
            centroids = [builder.load(builder.bitcast(builder.gep(tp, [builder.mul(t, lanes)]), vec.as_pointer()),
                                      align=4) for tp in tile_ps]
            for j in range(TILE_QUERIES):
                x = builder.load(builder.gep(rows[j], [t]))
                xv = builder.shuffle_vector(builder.insert_element(undef, x, ir.Constant(i32, 0)), undef, splat)
                for k in range(n_tiles):
                    builder.store(builder.call(fma, [xv, centroids[k], builder.load(accs[j][k])]), accs[j][k])
        for j in range(TILE_QUERIES):
            for k in range(n_tiles):
                col = builder.mul(builder.add(tile_v, ir.Constant(i64, k)), lanes)
                at = builder.add(builder.mul(builder.add(row0_v, ir.Constant(i64, j)), width), col)
                builder.store(builder.load(accs[j][k]),
                              builder.bitcast(builder.gep(out.data, [at]), vec.as_pointer()), align=4)
        return context.get_dummy_value()

    return codegen


def _tile_dots_signature(block, row0, tiles, tile, dots):
    _f32_array(block, 2, "block")
    _f32_array(tiles, 3, "tiles")
    _f32_array(dots, 2, "dots")
    return types.void(block, row0, tiles, tile, dots)


@intrinsic
def tile_block_dots(typingctx, block, row0, tiles, tile, dots):
    """``dots[row0 + j, 16 * tile + l] = <block[row0 + j], tiles[tile, :, l]>`` for ``j < TILE_QUERIES``, ``l < 16``.

    ``block`` f32 ``(n, d)`` with rows ``row0 .. row0 + TILE_QUERIES - 1`` (queries), ``tiles`` f32
    ``(n_tiles, d, 16)``, ``dots`` f32 ``(n, >= 16 * (tile + 1))``; all C-contiguous.
    """
    return _tile_dots_signature(block, row0, tiles, tile, dots), _tile_dots_codegen(1)


@intrinsic
def tile_pair_block_dots(typingctx, block, row0, tiles, tile, dots):
    """:func:`tile_block_dots` of tiles ``tile`` and ``tile + 1`` at once (24 accumulators: each broadcast
    feeds two multiply-adds); ``dots`` ``(n, >= 16 * (tile + 2))``."""
    return _tile_dots_signature(block, row0, tiles, tile, dots), _tile_dots_codegen(2)


@jit(inline="always")
def tiles_dots(block, row0, tiles, first, stop, dots):
    """The register block of rows ``row0 ..`` against tiles ``first .. stop - 1``: two tiles at a time,
    the last one alone when their number is odd."""
    tile = first
    while tile + 1 < stop:
        tile_pair_block_dots(block, row0, tiles, tile, dots)
        tile += 2
    if tile < stop:
        tile_block_dots(block, row0, tiles, tile, dots)


@jit
def fill_block(queries, q0, q1, block):
    """Copy queries ``q0 .. q1 - 1`` of ``queries`` f32 ``(nq, d)`` into the first rows of ``block`` f32
    ``(GROUP_QUERIES, d)`` and zero the rest of their register block; returns the rows used
    (``q1 - q0`` rounded up to a multiple of ``TILE_QUERIES``)."""
    n_here = q1 - q0
    n_rows = (n_here + TILE_QUERIES - 1) // TILE_QUERIES * TILE_QUERIES
    d = queries.shape[1]
    for j in range(n_rows):
        for t in range(d):
            block[j, t] = queries[q0 + j, t] if j < n_here else np.float32(0.0)
    return n_rows


@jit
def block_dots(block, n_rows, tiles, dots):
    """``dots[j, 16 i + l] = <block[j], tiles[i, :, l]>`` for the first ``n_rows`` (a multiple of ``TILE_QUERIES``)
    rows of ``block`` f32 ``(GROUP_QUERIES, d)`` and every tile of ``tiles`` f32 ``(n_tiles, d, 16)``;
    ``dots`` f32 ``(GROUP_QUERIES, >= 16 * n_tiles)``. Chunks of ``CHUNK_TILES`` tiles are read once
    for all the rows (they stay in L2 meanwhile), as in :func:`coarse_probes_tiled` (which keeps its
    own copy of these loops: the exact probe is left exactly as it was measured)."""
    n_tiles = tiles.shape[0]
    for c0 in range(0, n_tiles, CHUNK_TILES):
        for row0 in range(0, n_rows, TILE_QUERIES):
            tiles_dots(block, row0, tiles, c0, min(n_tiles, c0 + CHUNK_TILES), dots)


@jit
def coarse_probes_tiled(queries, q0, q1, tiles, c_sq_norms, metric, block, dots, out_lists, out_scores):
    """The ``nprobe`` nearest centroids of queries ``q0 .. q1 - 1`` (``q1 - q0 <= GROUP_QUERIES``).

    ``queries`` f32 ``(nq, d)``; ``tiles`` f32 ``(n_tiles, d, 16)`` (:func:`fill_tiles`) of
    ``nlist = c_sq_norms.shape[0]`` centroids with squared norms ``c_sq_norms`` f32 ``(nlist,)``.
    Scratch: ``block`` f32 ``(GROUP_QUERIES, d)``, ``dots`` f32 ``(GROUP_QUERIES, 16 * n_tiles)``.
    Writes ``out_lists`` int64 / ``out_scores`` f32 ``(nq, nprobe)`` rows ``q0 .. q1 - 1``
    (``||q - c||^2`` or ``-<q, c>``, best first, -1 / +inf when nlist < nprobe), as
    :func:`vecsearch.kernels.ivf.coarse_probes_serial` does.
    """
    nlist = c_sq_norms.shape[0]
    n_tiles, d, _ = tiles.shape
    n_here = q1 - q0
    n_blocks = (n_here + TILE_QUERIES - 1) // TILE_QUERIES
    for j in range(n_blocks * TILE_QUERIES):
        for t in range(d):
            block[j, t] = queries[q0 + j, t] if j < n_here else np.float32(0.0)
    for c0 in range(0, n_tiles, CHUNK_TILES):
        for bl in range(n_blocks):
            tiles_dots(block, bl * TILE_QUERIES, tiles, c0, min(n_tiles, c0 + CHUNK_TILES), dots)
    for j in range(n_here):
        row = dots[j, :nlist]
        if metric == METRIC_L2:
            q_sq = np.float32(0.0)
            for t in range(d):
                q_sq += block[j, t] * block[j, t]
            for c in range(nlist):
                row[c] = max(q_sq + c_sq_norms[c] - np.float32(2.0) * row[c], np.float32(0.0))
        else:
            for c in range(nlist):
                row[c] = -row[c]
        take_best_lists(row, out_lists[q0 + j], out_scores[q0 + j])
