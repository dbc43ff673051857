"""The SIMD half of the 4-bit PQ fast scan (:mod:`vecsearch.kernels.fastscan`): numba intrinsics that
emit the 16-entry table look-up as a byte shuffle.

LLVM never turns a 16-entry table look-up into a shuffle by itself, so :func:`block_sums` and
:func:`group_block_sums` generate it: ``pshufb`` over 64 bytes (AVX-512BW), 32 (AVX2) or 16 (SSSE3),
NEON ``tbl`` on ARM, a portable per-byte version anywhere else (:func:`shuffle_plan`). Sums
accumulate in uint16 (faiss' add-as-words trick) and a SIMD compare against a uint16 threshold
returns the bit mask of the codes that can enter the caller's heap. The packed layout and the
table quantization they read are described in :mod:`vecsearch.kernels.fastscan`.
"""

from __future__ import annotations

import os

import llvmlite.binding as llvm_binding
from llvmlite import ir
from numba import types
from numba.core import cgutils, config
from numba.core.codegen import get_host_cpu_features
from numba.extending import intrinsic

from ._jit import CACHE_ENABLED

BLOCK = 32  # vectors per packed block
SUBQ_ALIGN = 4  # m is padded to a multiple of this: one 64-byte shuffle covers 4 sub-quantizers
KSUB = 16  # codewords per 4-bit sub-quantizer
# Every packed sum stays <= SUM_LIMIT (the quantization scale guarantees it), so a threshold of
# SUM_LIMIT + 1 = 65535 lets every code through the unsigned 16-bit compare.
SUM_LIMIT = 65534

# Set to "portable" to force the plain-IR shuffle (used by the tests); honoured only when the
# compile cache is off (VECSEARCH_NUMBA_CACHE=0), because the cache key cannot see it.
SHUFFLE_ENV = "VECSEARCH_FASTSCAN_SHUFFLE"
# Queries sharing each code load in the grouped batch scan (4 x 4 accumulators: 16 of the 32
# AVX-512 registers).
QUERY_GROUP = 4

# ---- code generation of the block scan --------------------------------------------------------
def _target_features() -> set[str]:
    """ISA features numba compiles for (``NUMBA_CPU_FEATURES`` or the host's, as numba's codegen)."""
    flat = config.CPU_FEATURES if config.CPU_FEATURES is not None else get_host_cpu_features()
    return {f[1:] for f in flat.split(",") if f.startswith("+")}


def shuffle_plan() -> tuple[str, int]:
    """``(kind, bytes)`` of the byte shuffle the block scan is compiled with.

    ``x86``: ``pshufb`` over 64 (AVX-512BW), 32 (AVX2) or 16 (SSSE3) bytes; ``neon``: ``tbl`` over
    16 bytes; ``portable``: per-byte ``extractelement`` (any LLVM target; slow, always correct).
    Numba's cache is keyed by the CPU name and features, so a cached scan always matches this.
    """
    if not CACHE_ENABLED and os.environ.get(SHUFFLE_ENV, "").strip().lower() == "portable":
        return "portable", 16
    triple = llvm_binding.get_process_triple()
    feats = _target_features()
    if triple.startswith(("x86_64", "i386", "i686")):
        if "avx512bw" in feats:
            return "x86", 64
        if "avx2" in feats:
            return "x86", 32
        if "ssse3" in feats:
            return "x86", 16
    elif triple.startswith(("aarch64", "arm64")) and "neon" in feats:
        return "neon", 16
    return "portable", 16


_X86_SHUFFLES = {16: "llvm.x86.ssse3.pshuf.b.128", 32: "llvm.x86.avx2.pshuf.b", 64: "llvm.x86.avx512.pshuf.b.512"}


def _emit_shuffle(builder, kind, width, table, idx):
    """``out[i] = table[16 * (i // 16) + idx[i]]`` for ``<width x i8>`` vectors, ``idx[i] < 16``."""
    vec = ir.VectorType(ir.IntType(8), width)
    if kind == "x86":
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, vec]), _X86_SHUFFLES[width])
        return builder.call(fn, [table, idx])
    if kind == "neon":
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, vec]),
                                            "llvm.aarch64.neon.tbl1.v16i8")
        return builder.call(fn, [table, idx])
    i32 = ir.IntType(32)
    out = ir.Constant(vec, None)
    for i in range(width):
        lane = builder.zext(builder.extract_element(idx, ir.Constant(i32, i)), i32)
        lane = builder.add(lane, ir.Constant(i32, 16 * (i // 16)))
        out = builder.insert_element(out, builder.extract_element(table, lane), ir.Constant(i32, i))
    return out


def _lanes(n, values):
    return ir.Constant(ir.VectorType(ir.IntType(32), n), list(values))


def _emit_sums(builder, lut_ptrs, code_p, n_steps):
    """IR of the block scan: one ``<32 x i16>`` vector of sums (vector order) per table pointer.

    ``lut_ptrs``: ``i8*`` to the ``(m_pad, 16)`` table of each query sharing the block;
    ``code_p``: ``i8*`` to the block's ``(m_pad, 16)`` codes; ``n_steps = m_pad * 16 / width``.
    Per step one code load (``width`` bytes: ``width / 16`` sub-quantizers of all 32 vectors)
    feeds two shuffles per query (low nibbles: vectors 0..15, high nibbles: vectors 16..31).
    """
    kind, width = shuffle_plan()
    i8, i16, i64 = ir.IntType(8), ir.IntType(16), ir.IntType(64)
    vbytes = ir.VectorType(i8, width)
    words = width // 2
    vwords = ir.VectorType(i16, words)
    # Four uint16 accumulators per query: (low-nibble vectors 0..15, high-nibble vectors 16..31)
    # x (as words, high bytes). A shuffle result read as uint16 words is ``even + 256 * odd``
    # byte; adding it as is and adding it shifted right by 8 gives, modulo 2**16, ``E + 256 O``
    # and ``O``, so ``E = acc - (O << 8)`` (faiss' trick: no widening shuffles on the hot path).
    accs = [[cgutils.alloca_once_value(builder, ir.Constant(vwords, None)) for _ in range(4)] for _ in lut_ptrs]
    low_mask = ir.Constant(vbytes, [15] * width)
    nibble_shift = ir.Constant(vbytes, [4] * width)
    byte_shift = ir.Constant(vwords, [8] * words)
    with cgutils.for_range(builder, n_steps) as loop:
        off = builder.mul(loop.index, ir.Constant(i64, width))
        codes = builder.load(builder.bitcast(builder.gep(code_p, [off]), vbytes.as_pointer()), align=1)
        indices = (builder.and_(codes, low_mask), builder.lshr(codes, nibble_shift))
        for lut_p, acc in zip(lut_ptrs, accs):
            table = builder.load(builder.bitcast(builder.gep(lut_p, [off]), vbytes.as_pointer()), align=1)
            for half, idx in enumerate(indices):
                looked_up = builder.bitcast(_emit_shuffle(builder, kind, width, table, idx), vwords)
                acc_w, acc_o = acc[2 * half], acc[2 * half + 1]
                builder.store(builder.add(builder.load(acc_w), looked_up), acc_w)
                builder.store(builder.add(builder.load(acc_o), builder.lshr(looked_up, byte_shift)), acc_o)

    def fold(vec):  # sum the width/16 sub-quantizer lanes: (words,) -> (8,)
        n = words
        while n > 8:
            n //= 2
            vec = builder.add(builder.shuffle_vector(vec, vec, _lanes(n, range(n))),
                              builder.shuffle_vector(vec, vec, _lanes(n, range(n, 2 * n))))
        return vec

    out = []
    for acc in accs:
        halves = []
        for half in range(2):
            as_words = fold(builder.load(acc[2 * half]))
            odd = fold(builder.load(acc[2 * half + 1]))
            even = builder.sub(as_words, builder.shl(odd, ir.Constant(ir.VectorType(i16, 8), [8] * 8)))
            halves.append(builder.shuffle_vector(even, odd, _lanes(16, [x for i in range(8) for x in (i, i + 8)])))
        out.append(builder.shuffle_vector(halves[0], halves[1], _lanes(BLOCK, range(BLOCK))))
    return out


def _emit_below(builder, sums_vec, thr16):
    """uint32 mask of ``sums_vec < thr16`` (unsigned, lane ``t`` -> bit ``t``)."""
    vec_t = ir.VectorType(ir.IntType(16), BLOCK)
    splat = builder.insert_element(ir.Constant(vec_t, None), thr16, ir.Constant(ir.IntType(32), 0))
    splat = builder.shuffle_vector(splat, splat, _lanes(BLOCK, [0] * BLOCK))
    return builder.bitcast(builder.icmp_unsigned("<", sums_vec, splat), ir.IntType(32))


def _block_pointer(context, builder, packed_t, packed_v, block_t, block_v):
    """(``i8*`` to block ``block`` of ``packed``, number of shuffle steps per block)."""
    i8, i64 = ir.IntType(8), ir.IntType(64)
    packed = context.make_array(packed_t)(context, builder, packed_v)
    row_bytes = builder.mul(cgutils.unpack_tuple(builder, packed.shape, 3)[1], ir.Constant(i64, KSUB))
    block = context.cast(builder, block_v, block_t, types.intp)
    code_p = builder.gep(builder.bitcast(packed.data, i8.as_pointer()), [builder.mul(block, row_bytes)])
    return code_p, builder.udiv(row_bytes, ir.Constant(i64, shuffle_plan()[1]))


def _block_sums_codegen(context, builder, signature, args):
    lut_t, off_t, packed_t, block_t, thr_t, sums_t = signature.args
    lut = context.make_array(lut_t)(context, builder, args[0])
    lut_p = builder.gep(builder.bitcast(lut.data, ir.IntType(8).as_pointer()),
                        [context.cast(builder, args[1], off_t, types.intp)])
    code_p, n_steps = _block_pointer(context, builder, packed_t, args[2], block_t, args[3])
    (sums_vec,) = _emit_sums(builder, [lut_p], code_p, n_steps)
    sums = context.make_array(sums_t)(context, builder, args[5])
    builder.store(sums_vec, builder.bitcast(sums.data, sums_vec.type.as_pointer()), align=2)
    return _emit_below(builder, sums_vec, context.cast(builder, args[4], thr_t, types.uint16))


def _group_sums_codegen(context, builder, signature, args):
    lut_t, offs_t, packed_t, block_t, thrs_t, sums_t, masks_t = signature.args
    i64 = ir.IntType(64)
    lut = context.make_array(lut_t)(context, builder, args[0])
    offs = context.make_array(offs_t)(context, builder, args[1])
    thrs = context.make_array(thrs_t)(context, builder, args[4])
    sums = context.make_array(sums_t)(context, builder, args[5])
    masks = context.make_array(masks_t)(context, builder, args[6])
    base = builder.bitcast(lut.data, ir.IntType(8).as_pointer())
    lut_ptrs = [builder.gep(base, [builder.load(builder.gep(offs.data, [ir.Constant(i64, g)]))])
                for g in range(QUERY_GROUP)]
    code_p, n_steps = _block_pointer(context, builder, packed_t, args[2], block_t, args[3])
    for g, sums_vec in enumerate(_emit_sums(builder, lut_ptrs, code_p, n_steps)):
        row = builder.gep(sums.data, [ir.Constant(i64, g * BLOCK)])
        builder.store(sums_vec, builder.bitcast(row, sums_vec.type.as_pointer()), align=2)
        thr = builder.load(builder.gep(thrs.data, [ir.Constant(i64, g)]))
        thr16 = context.cast(builder, thr, thrs_t.dtype, types.uint16)
        builder.store(builder.zext(_emit_below(builder, sums_vec, thr16), i64),
                      builder.gep(masks.data, [ir.Constant(i64, g)]))
    return context.get_dummy_value()


def _is_c_array(t, dtype, ndim=None):
    return isinstance(t, types.Array) and t.dtype == dtype and t.layout == "C" and (ndim is None or t.ndim == ndim)


@intrinsic
def block_sums(typingctx, lut_q, lut_offset, packed, block, threshold, sums):
    """Sums of one packed block under one quantized table; returns the mask of sums < ``threshold``.

    ``lut_q`` C-contiguous uint8 array holding an ``(m_pad, 16)`` table at byte ``lut_offset``;
    ``packed`` uint8 ``(n_blocks, m_pad, 16)``; ``block`` the block number; ``threshold`` 0..65535;
    ``sums`` uint16 ``(>= 32,)`` receives the 32 sums (vector order). Bit ``t`` of the uint32
    result is set when ``sums[t] < threshold``. No bounds checks: the caller keeps ``block`` and
    ``lut_offset`` in range. ``m_pad`` must be a multiple of :data:`SUBQ_ALIGN`.
    """
    if not (_is_c_array(lut_q, types.uint8) and _is_c_array(packed, types.uint8, 3)
            and _is_c_array(sums, types.uint16, 1) and isinstance(lut_offset, types.Integer)
            and isinstance(block, types.Integer) and isinstance(threshold, types.Integer)):
        return None
    return types.uint32(lut_q, lut_offset, packed, block, threshold, sums), _block_sums_codegen


@intrinsic
def group_block_sums(typingctx, lut_q, lut_offsets, packed, block, thresholds, sums, masks):
    """:func:`block_sums` for ``QUERY_GROUP`` queries sharing every code load of one block.

    ``lut_offsets`` int64 ``(QUERY_GROUP,)`` byte offsets of the queries' tables in ``lut_q``;
    ``thresholds`` int64 ``(QUERY_GROUP,)``; writes ``sums`` uint16 ``(QUERY_GROUP, 32)`` and
    ``masks`` uint64 ``(QUERY_GROUP,)`` (bit ``t`` set when ``sums[g, t] < thresholds[g]``).
    No bounds checks.
    """
    if not (_is_c_array(lut_q, types.uint8) and _is_c_array(packed, types.uint8, 3)
            and _is_c_array(lut_offsets, types.int64, 1) and _is_c_array(thresholds, types.int64, 1)
            and _is_c_array(sums, types.uint16, 2) and _is_c_array(masks, types.uint64, 1)
            and isinstance(block, types.Integer)):
        return None
    return types.void(lut_q, lut_offsets, packed, block, thresholds, sums, masks), _group_sums_codegen


@intrinsic
def lowest_bit(typingctx, mask):
    """Index of the lowest set bit of a non-zero unsigned ``mask`` (``llvm.cttz``), same type."""
    if not isinstance(mask, types.Integer) or mask.signed:
        return None

    def codegen(context, builder, signature, args):
        width = signature.args[0].bitwidth
        int_t = ir.IntType(width)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(int_t, [int_t, ir.IntType(1)]),
                                            f"llvm.cttz.i{width}")
        return builder.call(fn, [args[0], ir.Constant(ir.IntType(1), 1)])

    return mask(mask), codegen


# ---- packing ----------------------------------------------------------------------------------
