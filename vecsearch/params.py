"""Pydantic models for the build parameters and per-call search parameters of every index.

Defaults live here, in one place. Models forbid unknown fields so a misspelled knob
(``efsearch=``) raises a clear error instead of being ignored.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_params(model: type[StrictModel], values: dict[str, Any], where: str) -> Any:
    """Validate ``values`` against ``model``; raise ``ValueError``/``TypeError`` naming the argument."""
    try:
        return model(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err.get("loc", ())) or "?"
        if err.get("type") == "extra_forbidden":
            allowed = sorted(model.model_fields)
            raise TypeError(f"{where}: unexpected parameter {field!r} (allowed: {allowed})") from None
        raise ValueError(f"{where}: {field}: {err.get('msg')}, got {err.get('input')!r}") from None


# ---- HNSW -------------------------------------------------------------------------------------
class HNSWBuildParams(StrictModel):
    M: int = Field(16, ge=2, le=256)
    ef_construction: int = Field(200, ge=1)
    ef_search: int = Field(64, ge=1)
    seed: int = 0
    allow_replace_deleted: bool = False
    walk_codes: bool = False


class HNSWSearchParams(StrictModel):
    ef: Optional[int] = Field(None, ge=1)


# ---- IVF-PQ -----------------------------------------------------------------------------------
class IVFPQBuildParams(StrictModel):
    nlist: int = Field(ge=1)
    m: int = Field(ge=1)
    nbits: int = Field(8, ge=1, le=8)
    opq: bool = False
    keep_vectors: bool = False
    nprobe: int = Field(8, ge=1)
    seed: int = 0
    max_train_points_per_centroid: int = Field(256, ge=1)
    kmeans_iters: int = Field(10, ge=1)  # coarse k-means Lloyd iterations (faiss IVF uses 10)
    pq_iters: int = Field(25, ge=1)  # per-sub-space k-means iterations (faiss PQ uses 25)


class IVFPQSearchParams(StrictModel):
    nprobe: Optional[int] = Field(None, ge=1)
    rerank: Optional[int] = Field(None, ge=1)


# ---- LeanVec / LVQ ----------------------------------------------------------------------------
class LeanVecBuildParams(StrictModel):
    reduced_dim: Optional[int] = Field(None, ge=1)
    primary: Literal["lvq8", "lvq4", "lvq4x8", "float32"] = "lvq8"
    secondary: Literal["float32", "float16", "lvq8"] = "float32"
    M: int = Field(32, ge=2, le=256)
    ef_construction: int = Field(200, ge=1)
    ef_search: int = Field(64, ge=1)
    seed: int = 0


class LeanVecSearchParams(StrictModel):
    ef: Optional[int] = Field(None, ge=1)
    rerank: Optional[int] = Field(None, ge=1)
