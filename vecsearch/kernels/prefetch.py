"""Memory hints for graph walks: ``llvm.prefetch`` of a row of a 2-D array, as numba intrinsics."""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


# ---- memory hints -------------------------------------------------------------------------------
def _prefetch_codegen(context, builder, signature, args):
    """Emit llvm.prefetch (read, locality 3 = keep in all caches, data) of ``arr[row, col]``."""
    arr_t, row_t = signature.args[:2]
    ary = context.make_array(arr_t)(context, builder, args[0])
    idx = context.cast(builder, args[1], row_t, types.intp)
    if len(args) > 2:
        col = context.cast(builder, args[2], signature.args[2], types.intp)
    else:
        col = context.get_constant(types.intp, 0)
    ptr = cgutils.get_item_pointer(context, builder, arr_t, ary, [idx, col])
    i8p = ir.IntType(8).as_pointer()
    i32 = ir.IntType(32)
    fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
    fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
    builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
    return context.get_dummy_value()


@intrinsic
def prefetch_row(typingctx, arr, row):
    """Hint the CPU to load the first cache line of row ``row`` of 2-D ``arr`` (llvm.prefetch, T0)."""
    if not isinstance(arr, types.Array) or arr.ndim != 2 or not isinstance(row, types.Integer):
        return None
    return types.void(arr, row), _prefetch_codegen


@intrinsic
def prefetch_at(typingctx, arr, row, col):
    """Hint the CPU to load the cache line holding ``arr[row, col]`` of 2-D ``arr`` (no bounds check)."""
    if not isinstance(arr, types.Array) or arr.ndim != 2 or not isinstance(row, types.Integer) \
            or not isinstance(col, types.Integer):
        return None
    return types.void(arr, row, col), _prefetch_codegen
