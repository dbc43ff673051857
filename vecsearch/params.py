"""Pydantic models for the build parameters and per-call search parameters of every index.

Defaults live here, in one place. Models forbid unknown fields so a misspelled knob
(``efsearch=``) raises a clear error instead of being ignored, and are strict: ``M="16"``,
``ef=True`` or ``walk_codes="yes"`` raise ``TypeError`` instead of being coerced (numpy scalars
are accepted as the Python numbers they hold).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal, Optional, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

# Upper bound of every count-like parameter: node and slot numbers are int32 inside the kernels.
# (Per-call widths are further capped at the index's size by clamp_search_params.)
MAX_WIDTH = 2**31 - 1
# pydantic error types that mean "wrong type" (TypeError) rather than "wrong value" (ValueError).
_TYPE_ERRORS = ("_type", "is_instance_of", "dict_type", "list_type", "none_required")


class StrictModel(BaseModel):
    """Base of every parameter model: unknown fields rejected, no coercion, immutable.

    ``width_fields``: per-call knobs that count candidates (``ef``): :func:`clamp_search_params`
    caps them at the index's size. ``factor_fields``: knobs multiplied by ``k`` (IVF-PQ ``rerank``):
    capped so that the product does not pass the index's size.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    width_fields: ClassVar[tuple[str, ...]] = ()
    factor_fields: ClassVar[tuple[str, ...]] = ()


def _plain(value: Any) -> Any:
    """numpy scalars as the Python values they hold (strict models reject ``np.int64(16)`` otherwise)."""
    if isinstance(value, np.generic) and not isinstance(value, (np.str_, np.bytes_, np.void)):
        return value.item()
    return value


def parse_params(model: type[StrictModel], values: dict[str, Any], where: str) -> Any:
    """Validate ``values`` against ``model``; raise ``TypeError`` (wrong type or unknown parameter)
    or ``ValueError`` (value out of range) naming the argument."""
    try:
        return model(**{key: _plain(value) for key, value in values.items()})
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err.get("loc", ())) or "?"
        kind = str(err.get("type"))
        if kind == "extra_forbidden":
            allowed = sorted(model.model_fields)
            raise TypeError(f"{where}: unexpected parameter {field!r} (allowed: {allowed})") from None
        cls = TypeError if kind.endswith(_TYPE_ERRORS) else ValueError
        raise cls(f"{where}: {field}: {err.get('msg')}, got {type(err.get('input')).__name__} {err.get('input')!r}") from None


def clamp_search_params(params: Any, k: int, n_slots: int) -> Any:
    """``params`` (a search-parameter model, or None) with its width knobs capped at ``n_slots`` and
    its factor knobs at ``ceil(n_slots / k)``: a beam or a re-rank wider than the index finds
    nothing more, and ``ef=10**9`` would allocate gigabytes of scratch. The same object when nothing
    needs capping (the common case costs a few attribute reads)."""
    if params is None:
        return params
    limit = max(int(n_slots), 1)
    update = {}
    for name in params.width_fields:
        value = getattr(params, name, None)
        if value is not None and value > limit:
            update[name] = limit
    for name in params.factor_fields:
        value = getattr(params, name, None)
        if value is not None and value * k > limit:
            update[name] = max(1, math.ceil(limit / k))
    return params.model_copy(update=update) if update else params


# ---- HNSW -------------------------------------------------------------------------------------
class HNSWBuildParams(StrictModel):
    M: int = Field(16, ge=2, le=256)
    ef_construction: int = Field(200, ge=1, le=MAX_WIDTH)
    ef_search: int = Field(64, ge=1, le=MAX_WIDTH)
    seed: int = Field(0, ge=0)
    allow_replace_deleted: bool = False
    storage: Literal["lvq8", "float32"] = "lvq8"


class HNSWSearchParams(StrictModel):
    width_fields = ("ef",)
    ef: Optional[int] = Field(None, ge=1)


# ---- IVF-PQ -----------------------------------------------------------------------------------
class IVFPQBuildParams(StrictModel):
    nlist: int = Field(ge=1)
    m: int = Field(ge=1)
    nbits: int = Field(8, ge=1, le=8)
    opq: bool = False
    keep_vectors: bool = False
    nprobe: int = Field(8, ge=1, le=MAX_WIDTH)
    seed: int = Field(0, ge=0)
    max_train_points_per_centroid: int = Field(256, ge=1)
    kmeans_iters: int = Field(10, ge=1)  # coarse k-means Lloyd iterations (faiss IVF uses 10)
    pq_iters: int = Field(25, ge=1)  # per-sub-space k-means iterations (faiss PQ uses 25)


class IVFPQSearchParams(StrictModel):
    factor_fields = ("rerank",)
    nprobe: Optional[int] = Field(None, ge=1)
    rerank: Optional[int] = Field(None, ge=1)


# ---- LeanVec / LVQ ----------------------------------------------------------------------------
# LeanVec's graph degree: a walk over reduced codes pays less per link than one over float32, so a denser
# graph that reaches the recall with a narrower beam wins. bench/bench_leanvec_degree.py (WordNet 384-d,
# one-word queries, reduced to 256, QPS at recall@10 0.95 over hnswlib M=16, thread CPU time, 5
# interleaved rounds; bench/results/leanvec_degree_*.json): held-out part M=16 1.99x, 20 2.18x,
# 24 2.16x, 32 2.13x; tuning part M=16 2.43x, 24 2.96x.
LEANVEC_DEFAULT_M = 24


class LeanVecBuildParams(StrictModel):
    reduced_dim: Union[Literal["auto"], int, None] = "auto"
    primary: Literal["lvq8", "lvq4", "lvq4x8", "float32"] = "lvq8"
    secondary: Literal["float32", "float16", "lvq8"] = "float32"
    M: int = Field(LEANVEC_DEFAULT_M, ge=2, le=256)
    ef_construction: int = Field(200, ge=1, le=MAX_WIDTH)
    ef_search: int = Field(64, ge=1, le=MAX_WIDTH)
    seed: int = Field(0, ge=0)


class LeanVecSearchParams(StrictModel):
    width_fields = ("ef", "rerank")
    ef: Optional[int] = Field(None, ge=1)
    rerank: Optional[int] = Field(None, ge=1)
