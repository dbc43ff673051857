"""MultiVectorIndex: multi-vector (late-interaction) retrieval, candidates by FDE or tokens, exact Chamfer re-rank.

Documents and queries are token sets. ``add`` stores every document's tokens (CSR) and indexes one
single vector per document in an inner single-vector index (metric ``ip``):

* ``candidate_source="fde"`` (MUVERA): the document's FDE (:mod:`vecsearch.codecs.fde`); a query fetches
  ``candidates`` documents by ``<FDE(Q), FDE(P)>``. With ``fde="auto"`` (the default) the first ``add``
  measures a few FDE shapes on pseudo-queries made of its documents' own tokens and keeps the cheapest
  reaching the target recall, with the candidate count it needs (:mod:`vecsearch.codecs.fde_auto`).
* ``candidate_source="tokens"`` (the single-vector heuristic): every document token is indexed; each
  query token fetches its ``token_k`` nearest tokens and the owning documents are unioned, ranked by
  an optimistic Chamfer estimate (a query token whose list missed a document counts the
  ``token_k``-th similarity of that list), and the first ``candidates`` are kept.
* ``candidate_source="mean"``: one mean-pooled vector per document (query: sum of its tokens),
  the cheap baseline.

Candidates are re-ranked by exact Chamfer (``sum over query tokens of max <q, p>``). Distances are
negative Chamfer similarities (the ``ip`` convention: smaller is better).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from pydantic import Field

from .. import registry
from ..base import Index, SearchResult
from ..calibration import (
    CalibrationReport,
    CalibrationSample,
    calibrate_on,
    check_arguments,
    sample_rows,
)
from ..codecs.fde import (
    FDEConfig,
    as_fde_config,
    as_token_sets,
    encode_documents,
    encode_queries,
    encode_token_sets,
    fde_random_state,
)
from ..codecs.fde_auto import AUTO_GRID, FDEChoice, choose_fde, fit_to_dim
from ..io import copy_on_write
from ..kernels.chamfer import ball_carve, chamfer_candidates
from ..params import StrictModel, clamp_search_params, parse_params
from ..validation import (
    check_dim,
    check_k,
    check_magnitude,
    check_stored_vectors,
    padded_results,
    result_width,
)

__all__ = ["FDEConfig", "MultiVectorIndex", "chamfer_scores", "encode_documents", "encode_queries"]

CANDIDATE_SOURCES = ("fde", "tokens", "mean")
_SOURCE_NAMES = {"fde": "FDE", "tokens": "Tokens", "mean": "Mean"}
# Array-name prefix of the inner index's state inside a MultiVectorIndex's state.
_INNER = "inner_"
# Candidate counts a recall/speed sweep (and calibration) tries.
CANDIDATES_GRID = (10, 20, 50, 100, 200, 500, 1000)


class MultiVectorSearchParams(StrictModel):
    """Per-call knobs of :meth:`MultiVectorIndex.search`."""

    width_fields = ("candidates",)
    candidates: int = Field(100, ge=1)
    token_k: int = Field(16, ge=1)
    ball_carving: float | None = Field(None, ge=-1.0, le=1.0)
    inner_search: dict[str, Any] = Field(default_factory=dict)


def chamfer_scores(
    q_vecs: np.ndarray,
    q_offsets: np.ndarray,
    doc_vecs: np.ndarray,
    doc_offsets: np.ndarray,
    candidates: np.ndarray,
) -> np.ndarray:
    """Exact Chamfer similarities ``(nq, C)`` float32 of CSR queries against candidate slots ``(nq, C)`` (-1 -> -inf)."""
    out = np.empty(candidates.shape, np.float32)
    chamfer_candidates(
        q_vecs, q_offsets, doc_vecs, doc_offsets, np.ascontiguousarray(candidates, np.int64), out
    )
    return out


def _make_inner(inner: str, dim: int, params: dict[str, Any]) -> Index:
    """The inner single-vector index (metric ``ip``): a registered type name (``"flat"``, ``"hnsw"``,
    ``"ivfpq"``, ...) built with ``params``, or a factory description such as ``"HNSW32"``."""
    if not isinstance(inner, str):
        raise TypeError(f"inner: expected an index type name or factory description, got {type(inner).__name__}")
    names = [r.name for r in registry.all_types() if r.vector_input]
    if inner in names:
        index = registry.get(inner).cls(dim, "ip", **params)
    else:
        try:
            index = registry.build_from_description(dim, "ip", inner, params)
        except ValueError as exc:
            raise ValueError(f"inner: expected one of {names} or a factory description, got {inner!r} ({exc})") from None
    if not index.vector_input:
        raise ValueError(f"inner: expected a single-vector index type, got {inner!r}")
    return index


class MultiVectorIndex(Index, type_name="multivector"):
    """Multi-vector index: token sets in, candidates from an inner single-vector index, exact Chamfer re-rank.

    ``dim`` token dimension; ``fde`` an :class:`FDEConfig` (or dict) for ``candidate_source="fde"``, or
    ``"auto"`` (default): chosen by :func:`~vecsearch.codecs.fde_auto.choose_fde` on the first ``add``
    (which then also sets ``search_defaults["candidates"]``, kept the same fraction of the corpus as
    it grows until someone else sets it; the measurement is :attr:`fde_choice`, not saved);
    ``inner`` the single-vector index kind (``"flat"`` exact, ``"hnsw"``, ``"ivfpq"`` which trains
    on the first ``add`` batch); ``candidate_source`` one of ``"fde"``, ``"tokens"``, ``"mean"``;
    ``inner_params`` go to the inner index constructor (e.g. ``M=16, ef_construction=100``).

    ``search(queries, k, candidates=100, token_k=16, ball_carving=None, inner_search={})``:
    ``candidates`` documents are re-ranked per query; ``token_k`` nearest tokens per query token
    (``"tokens"`` source); ``ball_carving=t`` merges query tokens with ``<q, q'> >= t`` (summed)
    before the re-rank, trading exactness for speed (distances are then the carved Chamfer);
    ``inner_search`` is passed to the inner index's ``search`` (e.g. ``{"ef": 200}``).
    ``search_exact`` is brute-force Chamfer over all live documents.

    ``remove`` drops documents from the inner index; their tokens stay in storage (not compacted).
    """

    vector_input = False
    search_knobs = ("candidates",)
    factory_forms = ((r"MultiVector(?P<source>FDE|Tokens|Mean)?,(?P<inner>.+)", "MultiVectorFDE,Flat"),)

    def __init__(
        self,
        dim: int,
        *,
        fde: Any = "auto",
        inner: str = "flat",
        candidate_source: str = "fde",
        **inner_params: Any,
    ):
        super().__init__(check_dim(dim), "ip")
        if candidate_source not in CANDIDATE_SOURCES:
            raise ValueError(
                f"candidate_source: expected one of {CANDIDATE_SOURCES}, got {candidate_source!r}"
            )
        if isinstance(fde, str) and fde != "auto":
            raise ValueError(f"fde: expected 'auto', an FDEConfig or a dict of its fields, got {fde!r}")
        # "auto" and nothing added yet: the first add chooses (AUTO_GRID[0] until then)
        self._fde_pending = isinstance(fde, str) and candidate_source == "fde"
        self.fde = fit_to_dim(AUTO_GRID[0], self.dim) if isinstance(fde, str) else as_fde_config(fde)
        self.fde_choice: FDEChoice | None = None
        # {"fraction": chosen candidates / documents, "value": last value set}, while it is the auto choice
        self._auto_candidates: dict[str, Any] | None = None
        self.inner_kind = inner
        self.candidate_source = candidate_source
        self.inner_params = dict(inner_params)
        self._fde_state = (
            fde_random_state(self.fde, self.dim) if candidate_source == "fde" else None
        )
        inner_dim = self.fde.output_dim if candidate_source == "fde" else self.dim
        self._inner = _make_inner(inner, inner_dim, self.inner_params)
        self._tok_vecs = np.empty((0, self.dim), np.float32)
        self._tok_offsets = np.zeros(1, np.int64)
        self._n_tok = 0

    # ---- storage ------------------------------------------------------------------------------
    @property
    def inner_index(self) -> Index:
        """The single-vector index holding document FDEs / mean vectors / tokens (ids = slots or token rows)."""
        return self._inner

    @property
    def n_tokens(self) -> int:
        """Stored token rows (including those of removed documents)."""
        return self._n_tok

    def document_tokens(self, doc_id: int) -> np.ndarray:
        """Token vectors ``(n_i, dim)`` float32 of the document with external id ``doc_id``."""
        if not self._ids.contains(doc_id):
            raise KeyError(f"doc_id: {doc_id} is not in the index")
        slot = self._ids.slot_of(doc_id)
        return self._tok_vecs[self._tok_offsets[slot] : self._tok_offsets[slot + 1]].copy()

    def _doc_vectors(self, vectors: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """The inner index's vectors for documents (FDE or mean-pooled)."""
        if self.candidate_source == "fde":
            return encode_token_sets(vectors, offsets, self.fde, self._fde_state, is_query=False)
        sums = np.add.reduceat(vectors, offsets[:-1], axis=0)
        return np.ascontiguousarray(
            sums / np.diff(offsets)[:, None].astype(np.float32), dtype=np.float32
        )

    def _query_vectors(self, vectors: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        if self.candidate_source == "fde":
            return encode_token_sets(vectors, offsets, self.fde, self._fde_state, is_query=True)
        return np.ascontiguousarray(
            np.add.reduceat(vectors, offsets[:-1], axis=0), dtype=np.float32
        )

    # ---- add ----------------------------------------------------------------------------------
    def add(  # type: ignore[override]
        self, docs: Any, ids: Any = None, attributes: Any = None, *, offsets: Any = None
    ) -> np.ndarray:
        """Add documents: a list of ``(n_i, dim)`` token arrays or CSR ``(vectors, offsets)``.

        Returns the int64 ids used. Every document must have at least one finite token of
        dimension ``dim``; a rejected call leaves the index unchanged. ``attributes`` (one
        value per document) are filterable with ``search(..., where=...)``.
        """
        vectors, offs = as_token_sets(docs, self.dim, "docs", offsets)
        check_magnitude(vectors, "docs", "ip")
        n = offs.shape[0] - 1
        new_ids = self._ids.new_ids(ids, n)
        prepared = self._prepare_attributes(attributes, n)
        if n == 0:
            return new_ids
        self._add(vectors, new_ids, offsets=offs)
        self._store_attributes(new_ids, prepared)
        return new_ids

    def _add(
        self, vectors: np.ndarray, ids: np.ndarray, offsets: np.ndarray | None = None, **kwargs: Any
    ) -> None:
        if kwargs or offsets is None:
            raise TypeError("MultiVectorIndex._add: expected CSR offsets and no other parameters")
        n = offsets.shape[0] - 1
        first_slot = self._ids.n_slots
        slots = np.arange(first_slot, first_slot + n, dtype=np.int64)
        if self._fde_pending and first_slot == 0:
            self._choose_fde(vectors, offsets)
        if self.candidate_source == "tokens":
            inner_vectors = vectors
            inner_ids = np.arange(self._n_tok, self._n_tok + vectors.shape[0], dtype=np.int64)
        else:
            inner_vectors = self._doc_vectors(vectors, offsets)
            inner_ids = slots
        if self._inner.requires_training and not self._inner.is_trained:
            try:
                self._inner.train(inner_vectors)
            except ValueError as exc:
                raise ValueError(
                    f"docs: the first add trains the inner {self.inner_kind!r} index on its "
                    f"{inner_vectors.shape[0]} vectors and failed: {exc}"
                ) from None
        self._inner.add(inner_vectors, ids=inner_ids)
        self._append_tokens(vectors, offsets)
        self._ids.append(ids)
        auto = self._auto_candidates
        if auto is not None and self.search_defaults.get("candidates") == auto["value"]:
            auto["value"] = max(1, int(np.ceil(auto["fraction"] * self.ntotal - 1e-9)))
            self.search_defaults = {**self.search_defaults, "candidates": auto["value"]}

    def _choose_fde(self, vectors: np.ndarray, offsets: np.ndarray) -> None:
        """``fde="auto"``: measure on the first batch, then encode with the chosen config from now on."""
        choice = choose_fde(vectors, offsets)
        self.fde, self.fde_choice, self._fde_pending = choice.config, choice, False
        self._fde_state = fde_random_state(self.fde, self.dim)
        self._inner = _make_inner(self.inner_kind, self.fde.output_dim, self.inner_params)
        if choice.candidates is not None and "candidates" not in self.search_defaults:
            self.search_defaults = {**self.search_defaults, "candidates": choice.candidates}
            self._auto_candidates = {"fraction": choice.candidates / choice.n_docs, "value": choice.candidates}

    def _append_tokens(self, vectors: np.ndarray, offsets: np.ndarray) -> None:
        needed = self._n_tok + vectors.shape[0]
        if needed > self._tok_vecs.shape[0] or not self._tok_vecs.flags.writeable:
            grown = np.empty(
                (max(needed, int(self._tok_vecs.shape[0] * 1.5), 1024), self.dim), np.float32
            )
            grown[: self._n_tok] = self._tok_vecs[: self._n_tok]
            self._tok_vecs = grown
        self._tok_vecs[self._n_tok : needed] = vectors
        self._tok_offsets = np.concatenate([self._tok_offsets, self._n_tok + offsets[1:]])
        self._n_tok = needed

    # ---- search -------------------------------------------------------------------------------
    def search(  # type: ignore[override]
        self, queries: Any, k: int, *, offsets: Any = None, where: Any = None, **params: Any
    ) -> SearchResult:
        """Top-``k`` documents by exact Chamfer among the candidates of each query.

        ``queries``: a list of ``(n_i, dim)`` token arrays or CSR ``(vectors, offsets)``.
        Returns ids int64 ``(nq, k)`` (-1 padding) and distances float32 ``(nq, k)`` = -Chamfer
        (+inf padding), best first. ``where``: a predicate over the documents' attributes; when
        few documents match they are all re-ranked exactly, otherwise candidates are over-fetched
        by the inverse selectivity and filtered.
        """
        k = result_width(check_k(k), self.ntotal)
        q_vecs, q_offs = as_token_sets(queries, self.dim, "queries", offsets)
        check_magnitude(q_vecs, "queries", "ip")
        if self.search_defaults:
            params = {**self.search_defaults, **params}  # explicit per-call parameters win
        parsed = clamp_search_params(self._parse_search_params(params), k, self.n_slots)
        allowed = self.compile_where(where) if where is not None else None
        nq = q_offs.shape[0] - 1
        if self.ntotal == 0 or nq == 0 or (allowed is not None and allowed.count == 0):
            return SearchResult(*padded_results(nq, k))
        if allowed is None:
            slots, scores = self._search((q_vecs, q_offs), k, parsed)
        else:
            slots, scores = self._search_where(q_vecs, q_offs, k, parsed, allowed)
        ids = self._ids.to_external(slots)
        scores = np.where(ids >= 0, scores, np.float32(np.inf)).astype(np.float32, copy=False)
        return SearchResult(ids, scores)

    def search_exact(self, queries: Any, k: int, *, offsets: Any = None) -> SearchResult:
        """Brute-force Chamfer top-``k`` over every live document (the ground truth)."""
        k = result_width(check_k(k), self.ntotal)
        q_vecs, q_offs = as_token_sets(queries, self.dim, "queries", offsets)
        check_magnitude(q_vecs, "queries", "ip")
        nq = q_offs.shape[0] - 1
        live = np.flatnonzero(~self._ids.deleted).astype(np.int64)
        if live.size == 0 or nq == 0:
            return SearchResult(*padded_results(nq, k))
        cand = np.ascontiguousarray(np.broadcast_to(live, (nq, live.size)))
        slots, scores = self._rerank(q_vecs, q_offs, cand, k)
        ids = self._ids.to_external(slots)
        return SearchResult(ids, np.where(ids >= 0, scores, np.float32(np.inf)).astype(np.float32))

    def calibrate(  # type: ignore[override]
        self, target_recall: float = 0.95, k: int = 10, queries: Any = None, *, offsets: Any = None,
        vectors: Any = None, vector_ids: Any = None, n_queries: int = 1000, seed: int = 0,
    ) -> CalibrationReport:
        """Make the smallest ``candidates`` measured to reach ``target_recall`` (recall@``k`` against
        brute-force Chamfer, :meth:`search_exact`) this index's :attr:`search_defaults` (saved;
        per-call parameters still win); see :mod:`vecsearch.calibration`.

        ``queries``: token sets of the kind the index will serve (as :meth:`search` takes them);
        default ``n_queries`` stored documents' token matrices, sampled with ``seed`` (each one's
        own document is left out of its results and its truth). Stored documents are longer than
        most queries: pass real queries when there are some. ``vectors``/``vector_ids`` are not
        taken: the index keeps every document's tokens, the truth is computed from them.
        """
        t_start = time.perf_counter()
        target, k = check_arguments(target_recall, k, n_queries)
        if vectors is not None or vector_ids is not None:
            raise ValueError("vectors: a MultiVectorIndex keeps its documents' tokens and computes the exact "
                             "Chamfer truth from them; expected no vectors/vector_ids")
        if self.ntotal == 0:
            raise ValueError("index: calibration needs a non-empty index")
        k = min(k, self.ntotal)
        if queries is None:
            if offsets is not None:
                raise ValueError("offsets: only meaningful together with queries=...")
            live = self.ids()
            self_ids = live[sample_rows(live.shape[0], n_queries, seed)]
            sets = [self.document_tokens(int(i)) for i in self_ids]
            origin = "stored documents"
        else:
            q_vecs, q_offs = as_token_sets(queries, self.dim, "queries", offsets)
            check_magnitude(q_vecs, "queries", "ip")
            if q_offs.shape[0] < 2:
                raise ValueError("queries: expected at least one token set, got 0")
            sets = [q_vecs[q_offs[i] : q_offs[i + 1]] for i in range(q_offs.shape[0] - 1)]
            self_ids, origin = None, "given"
        want = k + (1 if self_ids is not None else 0)
        exact = self.search_exact(sets, want).ids
        sample = CalibrationSample.from_exact(sets, len(sets), exact, self_ids, k, origin)
        report = calibrate_on(self, sample, target, k, t_start=t_start)
        self.set_search_defaults(report.params)
        return report

    @classmethod
    def search_grid(cls) -> dict[str, list[Any]]:
        return {"candidates": list(CANDIDATES_GRID)}

    def _parse_search_params(self, params: dict[str, Any]) -> MultiVectorSearchParams:
        return parse_params(MultiVectorSearchParams, params, "MultiVectorIndex.search")

    def _search(
        self, queries: Any, k: int, params: MultiVectorSearchParams
    ) -> tuple[np.ndarray, np.ndarray]:
        q_vecs, q_offs = queries
        cand = self.candidates(q_vecs, q_offs, params)
        if params.ball_carving is not None:
            q_vecs, q_offs = ball_carve(q_vecs, q_offs, np.float32(params.ball_carving))
        return self._rerank(q_vecs, q_offs, cand, k)

    def _search_where(
        self,
        q_vecs: np.ndarray,
        q_offs: np.ndarray,
        k: int,
        params: MultiVectorSearchParams,
        allowed: Any,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Filtered search: exact Chamfer over all matches when they are few, else over-fetch."""
        nq = q_offs.shape[0] - 1
        if allowed.count <= max(params.candidates, self.filter_tuning.multivector_exact_max_matches):
            cand = np.ascontiguousarray(np.broadcast_to(allowed.slots, (nq, allowed.count)))
        else:
            selectivity = allowed.count / max(self.ntotal, 1)
            fetch = min(self.ntotal, int(np.ceil(2.0 * params.candidates / selectivity)))
            wide = self.candidates(q_vecs, q_offs, params.model_copy(update={"candidates": fetch}))
            passing = (wide >= 0) & allowed.mask[np.maximum(wide, 0)]
            cand = np.full((nq, params.candidates), -1, np.int64)
            for qi in range(nq):
                kept = wide[qi, passing[qi]][: params.candidates]
                cand[qi, : kept.size] = kept
        if params.ball_carving is not None:
            q_vecs, q_offs = ball_carve(q_vecs, q_offs, np.float32(params.ball_carving))
        return self._rerank(q_vecs, q_offs, cand, k)

    def candidates(
        self, q_vecs: np.ndarray, q_offs: np.ndarray, params: MultiVectorSearchParams
    ) -> np.ndarray:
        """Candidate document slots ``(nq, C)`` int64 (-1 padded) for validated CSR queries."""
        n_cand = min(params.candidates, self.ntotal)
        if self.candidate_source != "tokens":
            qv = self._query_vectors(q_vecs, q_offs)
            return self._inner.search(qv, n_cand, **params.inner_search).ids
        return self._token_candidates(q_vecs, q_offs, params.token_k, n_cand, params.inner_search)

    def _token_candidates(
        self,
        q_vecs: np.ndarray,
        q_offs: np.ndarray,
        token_k: int,
        n_cand: int,
        inner_search: dict[str, Any],
    ) -> np.ndarray:
        res = self._inner.search(q_vecs, min(token_k, self._inner.ntotal), **inner_search)
        rows, sims = res.ids, -res.distances  # ip convention: distance = -similarity
        owner_of_row = np.searchsorted(self._tok_offsets, np.maximum(rows, 0), side="right") - 1
        owners = np.where(rows >= 0, owner_of_row, -1)
        nq = q_offs.shape[0] - 1
        out = np.full((nq, n_cand), -1, np.int64)
        for qi in range(nq):
            o = owners[q_offs[qi] : q_offs[qi + 1]]
            s = sims[q_offs[qi] : q_offs[qi + 1]]
            valid = o >= 0
            docs, inverse = np.unique(o[valid], return_inverse=True)
            if docs.size == 0:
                continue
            if docs.size > 1:
                # rank by an optimistic Chamfer estimate: per query token, the best retrieved
                # similarity of the document, or the list's last (token_k-th) one when it missed it
                n_tok = o.shape[0]
                floor = np.where(valid, s, np.inf).min(axis=1)
                floor = np.where(np.isfinite(floor), floor, 0.0)
                est = np.repeat(floor[:, None], docs.size, axis=1)
                best = np.full((n_tok, docs.size), -np.inf, np.float32)
                tok_idx = np.repeat(np.arange(n_tok), o.shape[1]).reshape(o.shape)[valid]
                np.maximum.at(best, (tok_idx, inverse), s[valid])
                est = np.where(np.isfinite(best), best, est).sum(axis=0)
                docs = docs[np.argsort(-est, kind="stable")[:n_cand]]
            out[qi, : docs.size] = docs
        return out

    def _rerank(
        self, q_vecs: np.ndarray, q_offs: np.ndarray, cand: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        cand = np.ascontiguousarray(cand, np.int64)
        sims = chamfer_scores(q_vecs, q_offs, self._tok_vecs, self._tok_offsets, cand)
        kk = min(k, cand.shape[1])
        order = np.argsort(-sims, axis=1, kind="stable")[:, :kk]
        nq = cand.shape[0]
        slots = np.full((nq, k), -1, np.int64)
        scores = np.full((nq, k), np.inf, np.float32)
        top = np.take_along_axis(cand, order, axis=1)
        top_sims = np.take_along_axis(sims, order, axis=1)
        valid = (top >= 0) & np.isfinite(top_sims)
        slots[:, :kk] = np.where(valid, top, -1)
        scores[:, :kk] = np.where(valid, -top_sims, np.inf)
        return slots, scores

    # ---- remove -------------------------------------------------------------------------------
    def _remove_slots(self, slots: np.ndarray) -> None:
        if self.candidate_source == "tokens":
            rows = np.concatenate(
                [np.arange(self._tok_offsets[s], self._tok_offsets[s + 1]) for s in slots]
            )
            self._inner.remove(rows.astype(np.int64))
        else:
            self._inner.remove(slots)
        self._ids.mark_deleted(slots)

    # ---- factory / persistence ----------------------------------------------------------------
    def describe(self) -> str:
        return f"MultiVector{_SOURCE_NAMES[self.candidate_source]},{self._inner.describe()}"

    @classmethod
    def _from_factory(cls, dim: int, metric: str, groups: dict[str, Any], params: dict[str, Any]) -> MultiVectorIndex:
        if metric != "ip":
            raise ValueError(f"metric: a MultiVectorIndex ranks by Chamfer similarity (metric 'ip'), got {metric!r}")
        source = {v: k for k, v in _SOURCE_NAMES.items()}[groups["source"] or "FDE"]
        return cls(dim, inner=groups["inner"], candidate_source=source, **params)

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        inner_header, inner_arrays = self._inner.get_state()
        params = {
            "fde": "auto" if self._fde_pending else self.fde.model_dump(),
            "auto_candidates": self._auto_candidates,
            "inner": self.inner_kind,
            "candidate_source": self.candidate_source,
            "inner_params": self.inner_params,
            "inner_index": inner_header,
        }
        arrays = {
            "token_vectors": self._tok_vecs[: self._n_tok],
            "token_offsets": self._tok_offsets,
            **{_INNER + name: arr for name, arr in inner_arrays.items()},
        }
        return params, arrays

    @classmethod
    def _from_state(cls, dim: int, metric: str, params: dict[str, Any], arrays: dict[str, np.ndarray],
                    n_slots: int) -> MultiVectorIndex:
        params = {"inner_params": {}, "auto_candidates": None, **params}  # files written before these were saved
        keys = {"fde", "inner", "candidate_source", "inner_params", "inner_index", "auto_candidates"}
        if set(params) != keys:
            raise ValueError(f"params: expected the keys {sorted(keys)}, got {sorted(params)}")
        if metric != "ip":
            raise ValueError(f"metric: a MultiVectorIndex ranks by Chamfer similarity (metric 'ip'), got {metric!r}")
        if params["fde"] == "auto" and n_slots > 0:
            raise ValueError("params.fde: 'auto' (not chosen yet) is only valid for an empty index")
        auto = params["auto_candidates"]
        if auto is not None and not (isinstance(auto, dict) and set(auto) == {"fraction", "value"}
                                     and isinstance(auto["value"], int) and auto["value"] >= 1
                                     and isinstance(auto["fraction"], float) and 0 < auto["fraction"] <= 1):
            raise ValueError(f"params.auto_candidates: expected None or {{'fraction': float in (0, 1], "
                             f"'value': int >= 1}}, got {auto!r}")
        for name in ("inner_params", "inner_index"):
            if not isinstance(params[name], dict):
                raise ValueError(f"params.{name}: expected a dict, got {type(params[name]).__name__}")
        try:
            inner_header = dict(params["inner_index"])
            index = cls(dim, fde=params["fde"], inner=params["inner"], candidate_source=params["candidate_source"],
                        **params["inner_params"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"params: malformed ({exc})") from None
        vecs, offs = arrays.get("token_vectors"), arrays.get("token_offsets")
        if vecs is None or vecs.ndim != 2 or vecs.shape[1] != dim or vecs.dtype != np.float32:
            got = "missing" if vecs is None else f"{vecs.dtype} {vecs.shape}"
            raise ValueError(f"token_vectors: expected float32 (n, {dim}), got {got}")
        if (offs is None or offs.shape != (n_slots + 1,) or offs.dtype != np.int64 or offs[0] != 0
                or offs[-1] != vecs.shape[0] or (np.diff(offs) < 1).any()):
            raise ValueError(f"token_offsets: expected int64 CSR offsets ({n_slots + 1},) from 0 to "
                             f"{vecs.shape[0]}, every document with a token")
        check_stored_vectors(vecs, "token_vectors", "ip")
        index._tok_vecs, index._tok_offsets, index._n_tok = copy_on_write(vecs), np.array(offs), vecs.shape[0]
        index._auto_candidates = None if auto is None else dict(auto)
        inner_header.setdefault("metric", "ip")  # files written before inner headers named it
        expected_dim = index._inner.dim
        inner_type = inner_header.get("type")
        if not any(r.name == inner_type and r.vector_input for r in registry.all_types()):
            raise ValueError(f"params.inner_index.type: expected a single-vector index type, got {inner_type!r}")
        inner_arrays = {name[len(_INNER):]: arr for name, arr in arrays.items() if name.startswith(_INNER)}
        index._inner = Index.from_state(inner_header, inner_arrays)
        if index._inner.dim != expected_dim or index._inner.metric != "ip":
            raise ValueError(f"params.inner_index: expected dim {expected_dim} and metric 'ip', got "
                             f"{index._inner.dim} and {index._inner.metric!r}")
        return index

    def _check_restored(self) -> None:
        """The inner index holds exactly the live documents (their token rows for the ``tokens``
        source): an id of a removed document there would come back from searches."""
        live = np.flatnonzero(~self._ids.deleted)
        if self.candidate_source == "tokens":
            starts, counts = self._tok_offsets[live], np.diff(self._tok_offsets)[live]
            expected = np.repeat(starts, counts) + (np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts))
        else:
            expected = live
        if not np.array_equal(np.sort(self._inner.ids()), np.sort(expected)):
            raise ValueError("inner_index: its ids are not exactly the live documents' "
                             + ("token rows" if self.candidate_source == "tokens" else "slots"))

    def __repr__(self) -> str:
        return (
            f"MultiVectorIndex(dim={self.dim}, ntotal={self.ntotal}, candidate_source={self.candidate_source!r}, "
            f"inner={self.inner_kind!r}, fde={'auto' if self._fde_pending else self.fde!r})"
        )

    @classmethod
    def warmup_kernels(cls, data: np.ndarray) -> None:
        """Compile (or load from cache) the FDE, token and Chamfer paths on tiny data."""
        data = np.ascontiguousarray(data[:120], np.float32)
        docs = [data[i : i + 3] for i in range(0, 90, 3)]
        queries = [data[i : i + 2] for i in range(90, 100, 2)]
        for source in CANDIDATE_SOURCES:
            index = cls(data.shape[1], fde=FDEConfig(reps=2, k_sim=2, d_proj=4), candidate_source=source)
            index.add(docs)
            index.search(queries, 3, candidates=5, token_k=2)
            index.search(queries, 3, candidates=5, ball_carving=0.7)
        encode_queries(queries, FDEConfig(reps=2, k_sim=2, d_proj=4, final_dim=16))
        encode_documents([data] * 3, FDEConfig(reps=2, k_sim=2, d_proj=4))  # > SERIAL_MAX_TOKENS: parallel path
