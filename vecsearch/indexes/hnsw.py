"""HNSWIndex: a hierarchical navigable small-world graph over float32 vectors (numba kernels).

The graph lives in flat arrays (see :mod:`vecsearch.kernels.hnsw_graph` for the layout); capacity
grows by amortized doubling without rebuilding. ``add`` inserts in batches on all numba threads
(phase 1 parallel search + neighbor selection, phase 2 owner-partitioned reverse links); the
graph depends only on the data, the seed and the insertion history, not on the thread count.
``remove`` marks deleted (walked through, never returned); ``compact()`` drops deleted nodes and
reconnects their neighbors; ``allow_replace_deleted=True`` lets ``add`` reuse deleted slots.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

from ..codecs.lvq import f16_values
from ..codecs.shadow_codes import ShadowCodes, walk_rerank
from ..io import copy_on_write
from ..kernels import hnsw_build as kb
from ..kernels import hnsw_graph as kh
from ..kernels.visited import new_visited
from ..parallel import run_serial, thread_rows
from ..params import HNSWBuildParams, HNSWSearchParams, parse_params
from ..progress import Progress, auto_enabled
from .checks import check_hnsw_graph
from .hnsw_filtered import HNSWFilteredSearch
from .scratch import ScratchPool

# Nodes per insertion batch: at most max(MAX_BATCH, 16 * threads), and at most a quarter of the
# graph so far, so early nodes are linked almost sequentially. Batch-mates see each other by
# brute force (cost ~B/2 distances per node), so the graph quality matches sequential insertion.
MAX_BATCH = 256
# Beam widths a recall/speed sweep tries (search_grid).
EF_GRID = (10, 20, 40, 80, 160, 320)
_DEFAULT_SEARCH_PARAMS = HNSWSearchParams()
# Placeholders for "no LVQ8 walk" in the search kernels (codes (0, 1) uint8, mu / f16 (0,) f32).
_NO_CODES = np.empty((0, 1), np.uint8)
_NO_F32 = np.empty(0, np.float32)


def _max_threads() -> int:
    return int(numba.config.NUMBA_NUM_THREADS)


class HNSWIndex(HNSWFilteredSearch, type_name="hnsw"):
    """HNSW graph index for ``l2``, ``ip`` and ``cosine``.

    Parameters (defaults in :class:`vecsearch.params.HNSWBuildParams`): ``M`` links per node on
    upper levels (2M on level 0), ``ef_construction`` beam width when inserting, ``ef_search``
    default beam width when searching (per call: ``search(q, k, ef=...)``, always at least k),
    ``seed`` for the level draws, ``allow_replace_deleted`` to reuse removed slots on ``add``,
    ``walk_codes`` to walk level 0 on LVQ8 codes of the vectors (``d + 4`` more bytes per vector,
    encoded by ``add``; not saved: a loaded index encodes them on its first search) and re-score
    the best ``max(2 k, 20)`` candidates with the float32 vectors: returned distances stay exact;
    single queries ran 1.7x faster at equal recall on 116k 384-d WordNet vectors (ef 64: 92 vs
    155 us per call, recall@10 0.987 both). Filtered searches build and walk the same codes in
    either mode (:mod:`vecsearch.filtering.planner`, ``beam_collect``).

    Concurrency: ``search`` may be called from several Python threads at once (kernels release
    the GIL; each call takes its own scratch buffers from the index's pool) when numba's threading
    layer is ``omp`` or ``tbb`` (``workqueue`` forbids concurrent parallel regions); ``add``,
    ``remove`` and ``compact`` must not overlap with any other call on the same index.
    """

    factory_forms = ((r"HNSW(?P<M>\d+)", "HNSW32"),)
    search_knobs = ("ef",)

    def __init__(
        self,
        dim: int,
        metric: str = "l2",
        *,
        M: int = 16,
        ef_construction: int = 200,
        ef_search: int = 64,
        seed: int = 0,
        allow_replace_deleted: bool = False,
        walk_codes: bool = False,
    ):
        super().__init__(dim, metric)
        self.params = parse_params(
            HNSWBuildParams,
            {
                "M": M,
                "ef_construction": ef_construction,
                "ef_search": ef_search,
                "seed": seed,
                "allow_replace_deleted": allow_replace_deleted,
                "walk_codes": walk_codes,
            },
            "HNSWIndex",
        )
        self.M = self.params.M
        self.ef_construction = self.params.ef_construction
        self._n = 0  # slots in use (live + deleted)
        self._n_upper = 0  # rows of the upper-level block in use
        self._entry = -1
        self._max_level = -1
        self._n_inserted = 0  # total insertions ever (seeds the level draws)
        self._vectors = np.empty((0, self.dim), np.float32)
        self._levels = np.empty(0, np.int32)
        self._links0 = np.empty((0, 2 * self.M), np.int32)
        self._counts0 = np.empty(0, np.int32)
        self._upper_start = np.empty(0, np.int64)
        self._upper_links = np.empty((0, self.M), np.int32)
        self._upper_counts = np.empty(0, np.int32)
        self._scratch = ScratchPool()
        self._shadow = ShadowCodes()

    @property
    def ef_search(self) -> int:
        """Default beam width of ``search`` (per call: ``ef=``); saved with the index."""
        return self.params.ef_search

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        self.params = parse_params(HNSWBuildParams, {**self.params.model_dump(), "ef_search": value}, "HNSWIndex")

    def describe(self) -> str:
        return f"HNSW{self.M}"

    def memory_bytes(self) -> int:
        """Bytes of the saved arrays plus the LVQ8 shadow codes when built (not saved)."""
        return super().memory_bytes() + self._shadow.nbytes

    @classmethod
    def suggested_params(cls, n: int, dim: int) -> dict[str, Any]:
        return {"M": 16, "ef_construction": 200}

    @classmethod
    def search_grid(cls) -> dict[str, list[Any]]:
        return {"ef": list(EF_GRID)}

    @classmethod
    def _from_factory(cls, dim: int, metric: str, groups: dict[str, Any], params: dict[str, Any]) -> HNSWIndex:
        return cls(dim, metric, M=int(groups["M"]), **params)

    # ---- storage ------------------------------------------------------------------------------
    @property
    def n_deleted(self) -> int:
        return self._n - self.ntotal

    @property
    def max_level(self) -> int:
        return self._max_level

    def _graph(self) -> tuple[np.ndarray, ...]:
        return (
            self._links0,
            self._counts0,
            self._upper_links,
            self._upper_counts,
            self._upper_start,
        )

    def _walk_storage(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """``(codes, mu, f16, n_rerank)`` for the search kernels: the LVQ8 walk when ``walk_codes``,
        else empty arrays (walk the float32 vectors)."""
        if not self.params.walk_codes:
            return _NO_CODES, _NO_F32, _NO_F32, 0
        return self._code_walk_storage(k)

    def _code_walk_storage(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """``(codes, mu, f16, n_rerank)`` of the LVQ8 shadow codes (built here on first use) for a
        walk on the codes whatever ``walk_codes`` says: the filtered beam (:mod:`vecsearch.filtering.planner`)
        always walks them, since filtered search keeps them for its scans anyway."""
        codes = self._shadow.ensure(self._vectors, self._ids.n_slots)
        return codes.rows, codes.codec.mu, f16_values(), walk_rerank(k)

    def _reserve(self, n_nodes: int, n_upper: int) -> None:
        """Make room for ``n_nodes`` nodes and ``n_upper`` upper rows; copies read-only (mmap) arrays."""

        def grow(arr: np.ndarray, needed: int) -> np.ndarray:
            if needed <= arr.shape[0] and arr.flags.writeable:
                return arr
            capacity = max(needed, 2 * arr.shape[0], 64) if needed > arr.shape[0] else arr.shape[0]
            out = np.zeros((capacity,) + arr.shape[1:], arr.dtype)
            out[: arr.shape[0]] = arr
            return out

        self._vectors = grow(self._vectors, n_nodes)
        self._levels = grow(self._levels, n_nodes)
        self._links0 = grow(self._links0, n_nodes)
        self._counts0 = grow(self._counts0, n_nodes)
        self._upper_start = grow(self._upper_start, n_nodes)
        self._upper_links = grow(self._upper_links, n_upper)
        self._upper_counts = grow(self._upper_counts, n_upper)

    def _draw_levels(self, n: int) -> np.ndarray:
        rng = np.random.default_rng([self.params.seed, self._n_inserted])
        u = 1.0 - rng.random(n)  # in (0, 1]
        levels = np.floor(-np.log(u) / math.log(self.M)).astype(np.int32)
        self._n_inserted += n
        return np.minimum(levels, 64)

    # ---- add ----------------------------------------------------------------------------------
    def _add(
        self, vectors: np.ndarray, ids: np.ndarray, progress: bool | None = None, **kwargs: Any
    ) -> None:
        if kwargs:
            raise TypeError(
                f"HNSWIndex.add: unexpected parameters {sorted(kwargs)} (allowed: ['progress'])"
            )
        show = auto_enabled(progress, vectors.shape[0])
        n_new = vectors.shape[0]
        reuse = np.empty(0, np.int64)
        if self.params.allow_replace_deleted and self.n_deleted:
            reuse = np.flatnonzero(self._ids.deleted[: self._n])[:n_new].astype(np.int64)
        n_append = n_new - reuse.shape[0]
        levels = self._draw_levels(n_new)
        n_rows = int(levels.sum())
        self._reserve(self._n + n_append, self._n_upper + n_rows)
        if reuse.size:
            self._unlink(reuse)
        slots = np.concatenate([reuse, np.arange(self._n, self._n + n_append, dtype=np.int64)])
        self._vectors[slots] = vectors
        if reuse.size:
            self._shadow.refresh(self._vectors, reuse)
        self._levels[slots] = levels
        self._counts0[slots] = 0
        starts = self._n_upper + np.concatenate([[0], np.cumsum(levels[:-1], dtype=np.int64)])
        self._upper_start[slots] = np.where(levels > 0, starts, -1)
        self._upper_counts[self._n_upper : self._n_upper + n_rows] = 0
        self._n_upper += n_rows
        self._n += n_append
        if reuse.size:
            self._ids.assign(reuse, ids[: reuse.shape[0]])
        self._ids.append(ids[reuse.shape[0] :])
        self._insert(slots, Progress(n_new, "HNSW add", enabled=show))
        if self.params.walk_codes:  # encode now, so the first search does not pay for it
            self._shadow.ensure(self._vectors, self._ids.n_slots)

    def _insert(self, slots: np.ndarray, bar: Progress) -> None:
        threads = _max_threads()
        max_batch = max(MAX_BATCH, 16 * threads)
        ef_c, M = self.ef_construction, self.M
        scratch = self._scratch.take(threads, self._vectors.shape[0], ef_c)
        visited, epochs, cand_s, cand_i, top_s, top_i = scratch
        sel = np.empty((threads, M), np.int32)
        tmp_s = np.empty((threads, 2 * M + 1), np.float32)
        tmp_i = np.empty((threads, 2 * M + 1), np.int32)
        tmp_out = np.empty((threads, 2 * M + 1), np.int32)
        graph_size = self._n - slots.shape[0]
        pos = 0
        try:
            while pos < slots.shape[0]:
                size = int(min(max_batch, max(1, graph_size // 4), slots.shape[0] - pos))
                batch = slots[pos : pos + size]
                blevels = self._levels[batch]
                prop_offsets = np.zeros(size + 1, np.int64)
                np.cumsum((blevels.astype(np.int64) + 1) * M, out=prop_offsets[1:])
                n_prop = int(prop_offsets[-1])
                prop_target = np.empty(n_prop, np.int32)
                prop_source = np.empty(n_prop, np.int32)
                prop_level = np.empty(n_prop, np.int32)
                kb.insert_batch_search(
                    self._metric_code,
                    self._vectors,
                    *self._graph(),
                    self._levels,
                    batch,
                    self._entry,
                    self._max_level,
                    M,
                    ef_c,
                    visited,
                    epochs,
                    cand_s,
                    cand_i,
                    top_s,
                    top_i,
                    sel,
                    prop_offsets,
                    prop_target,
                    prop_source,
                    prop_level,
                )
                kb.apply_reverse_links(
                    self._metric_code,
                    self._vectors,
                    *self._graph(),
                    M,
                    prop_target,
                    prop_source,
                    prop_level,
                    tmp_s,
                    tmp_i,
                    tmp_out,
                )
                for b in range(size):
                    if blevels[b] > self._max_level:
                        self._max_level = int(blevels[b])
                        self._entry = int(batch[b])
                graph_size += size
                pos += size
                bar.update(size)
        finally:
            self._scratch.give(scratch)
            bar.close()

    # ---- search -------------------------------------------------------------------------------
    def _parse_search_params(self, params: dict[str, Any]) -> HNSWSearchParams:
        # Fast path for the common calls (no knob, or a plain positive int ef): pydantic costs
        # ~10 us per call, a noticeable share of single-query latency. Anything else is validated.
        if not params:
            return _DEFAULT_SEARCH_PARAMS
        ef = params.get("ef")
        if len(params) == 1 and type(ef) is int and ef >= 1:
            return HNSWSearchParams.model_construct(ef=ef)
        return parse_params(HNSWSearchParams, params, "HNSWIndex.search")

    def _search(
        self, queries: np.ndarray, k: int, params: HNSWSearchParams
    ) -> tuple[np.ndarray, np.ndarray]:
        ef = max(params.ef if params.ef is not None else self.ef_search, k)
        nq = queries.shape[0]
        out_slots = np.empty((nq, k), np.int64)  # the kernel fills them, padding included
        out_scores = np.empty((nq, k), np.float32)
        kernel = kh.search_serial if run_serial(nq) else kh.search_batch
        deleted = self._ids.deleted
        with self._scratch.borrow(thread_rows(nq), self._vectors.shape[0], ef) as scratch:
            kernel(self._metric_code, queries, k, ef, self._vectors, *self._graph(), self._entry, self._max_level,
                   deleted, self.n_deleted > 0, *scratch, *self._walk_storage(k), out_slots, out_scores)
        return out_slots, out_scores

    # ---- remove / compact ---------------------------------------------------------------------
    def _remove_slots(self, slots: np.ndarray) -> None:
        self._ids.mark_deleted(slots)

    def _repair(self, removed: np.ndarray) -> None:
        """Reconnect every list that points into ``removed`` (bool (n,)) without those nodes."""
        threads = _max_threads()
        visited, epochs = new_visited(threads, self._n)
        width = 2 * self.M * (1 + 2 * self.M)
        cand_s = np.empty((threads, width), np.float32)
        cand_i = np.empty((threads, width), np.int32)
        sel = np.empty((threads, 2 * self.M), np.int32)
        repaired0 = np.zeros(self._n, np.bool_)
        kb.repair_links(
            self._metric_code,
            self._vectors,
            *self._graph(),
            self._levels,
            self._n,
            removed,
            self.M,
            visited,
            epochs,
            cand_s,
            cand_i,
            sel,
            repaired0,
        )
        # Give the re-selected level-0 lists their reverse links back (the in-links that removal
        # took away), with the same owner-partitioned, heuristic-pruned linking as insertion.
        nodes = np.flatnonzero(repaired0)
        counts = self._counts0[nodes]
        targets = self._links0[nodes][np.arange(2 * self.M)[None, :] < counts[:, None]].astype(
            np.int32
        )
        sources = np.repeat(nodes, counts).astype(np.int32)
        tmp = np.empty((threads, 2 * self.M + 1), np.float32)
        kb.apply_reverse_links(
            self._metric_code,
            self._vectors,
            *self._graph(),
            self.M,
            targets,
            sources,
            np.zeros(targets.shape[0], np.int32),
            tmp,
            np.empty(tmp.shape, np.int32),
            np.empty(tmp.shape, np.int32),
        )

    def _pick_entry(self, excluded: np.ndarray) -> None:
        """Entry point = a highest-level node not in ``excluded`` (bool (n,)); -1 if none."""
        candidates = np.flatnonzero(~excluded[: self._n])
        if candidates.size == 0:
            self._entry, self._max_level = -1, -1
            return
        if self._entry >= 0 and not excluded[self._entry]:
            return
        best = candidates[int(np.argmax(self._levels[candidates]))]
        self._entry, self._max_level = int(best), int(self._levels[best])

    def _unlink(self, slots: np.ndarray) -> None:
        """Detach deleted ``slots`` from the graph so they can be reused as fresh nodes."""
        self._reserve(self._n, self._n_upper)  # writable copies if mmap-loaded
        removed = np.zeros(self._n, np.bool_)
        removed[slots] = True
        self._repair(removed)
        self._pick_entry(removed)

    def compact(self) -> int:
        """Physically drop deleted nodes, renumber slots and repair the links around them.

        Returns the number of nodes dropped. Search results (ids) are unchanged in meaning;
        recall stays close to a fresh build on the remaining vectors.
        """
        removed = self._ids.deleted[: self._n].copy()
        n_removed = int(removed.sum())
        if n_removed == 0:
            return 0
        self._reserve(self._n, self._n_upper)
        self._repair(removed)
        self._pick_entry(removed)
        keep = np.flatnonzero(~removed)
        old2new = np.full(self._n, -1, np.int32)
        old2new[keep] = np.arange(keep.shape[0], dtype=np.int32)
        counts0 = self._counts0[keep]
        links0 = self._links0[keep]
        valid = np.arange(links0.shape[1])[None, :] < counts0[:, None]
        links0[valid] = old2new[links0[valid]]
        links0[~valid] = 0
        levels = self._levels[keep]
        n_rows = int(levels.sum())
        node_of_row = np.repeat(np.arange(keep.shape[0]), levels)
        first_row = (
            np.concatenate([[0], np.cumsum(levels[:-1], dtype=np.int64)])
            if keep.size
            else np.empty(0, np.int64)
        )
        old_rows = self._upper_start[keep][node_of_row] + (
            np.arange(n_rows) - first_row[node_of_row]
        )
        upper_links = self._upper_links[old_rows]
        upper_counts = self._upper_counts[old_rows]
        uvalid = np.arange(self.M)[None, :] < upper_counts[:, None]
        upper_links[uvalid] = old2new[upper_links[uvalid]]
        upper_links[~uvalid] = 0
        self._vectors = np.ascontiguousarray(self._vectors[keep])
        self._shadow.reset()  # slots are renumbered
        self._levels, self._counts0, self._links0 = levels, counts0, links0
        self._upper_start = np.where(levels > 0, first_row, -1).astype(np.int64)
        self._upper_links, self._upper_counts = upper_links, upper_counts
        self._n, self._n_upper = int(keep.shape[0]), n_rows
        if self._entry >= 0:
            self._entry = int(old2new[self._entry])
        self._ids.compact(keep)
        self._scratch.clear()
        self._attributes_changed()
        return n_removed

    # ---- persistence --------------------------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        params = {
            **self.params.model_dump(),
            "entry": self._entry,
            "max_level": self._max_level,
            "n_inserted": self._n_inserted,
        }
        n, r = self._n, self._n_upper
        arrays = {
            "vectors": self._vectors[:n],
            "levels": self._levels[:n],
            "links0": self._links0[:n],
            "counts0": self._counts0[:n],
            "upper_start": self._upper_start[:n],
            "upper_links": self._upper_links[:r],
            "upper_counts": self._upper_counts[:r],
        }
        return params, arrays

    @classmethod
    def _from_state(cls, dim: int, metric: str, params: dict[str, Any], arrays: dict[str, np.ndarray],
                    n_slots: int) -> HNSWIndex:
        params = dict(params)
        try:
            entry, max_level, n_inserted = params.pop("entry"), params.pop("max_level"), params.pop("n_inserted")
        except KeyError as exc:
            raise ValueError(f"params: {exc.args[0]!r} is missing") from None
        for name, value in (("entry", entry), ("max_level", max_level), ("n_inserted", n_inserted)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"params.{name}: expected an integer, got {value!r}")
        index = cls(dim, metric, **params)
        M, n = index.M, n_slots
        rows = arrays["upper_links"].shape[0] if "upper_links" in arrays else 0
        expected = {
            "vectors": (np.float32, (n, dim)),
            "levels": (np.int32, (n,)),
            "links0": (np.int32, (n, 2 * M)),
            "counts0": (np.int32, (n,)),
            "upper_start": (np.int64, (n,)),
            "upper_links": (np.int32, (rows, M)),
            "upper_counts": (np.int32, (rows,)),
        }
        for name, (dtype, shape) in expected.items():
            arr = arrays.get(name)
            if arr is None or arr.dtype != dtype or arr.shape != shape:
                got = "missing" if arr is None else f"{arr.dtype} {arr.shape}"
                raise ValueError(f"{name}: expected {np.dtype(dtype)} {shape}, got {got}")
        arrays = {name: copy_on_write(arr) for name, arr in arrays.items()}
        problem = check_hnsw_graph(arrays["levels"], arrays["links0"], arrays["counts0"], arrays["upper_start"],
                                   arrays["upper_links"], arrays["upper_counts"], int(entry), int(max_level))
        if problem:
            raise ValueError(problem)
        index._vectors, index._levels = arrays["vectors"], arrays["levels"]
        index._links0, index._counts0 = arrays["links0"], arrays["counts0"]
        index._upper_start = arrays["upper_start"]
        index._upper_links, index._upper_counts = arrays["upper_links"], arrays["upper_counts"]
        index._n, index._n_upper = n, rows
        index._entry, index._max_level, index._n_inserted = int(entry), int(max_level), int(n_inserted)
        return index

    # ---- warmup -------------------------------------------------------------------------------
    @classmethod
    def warmup_kernels(cls, data: np.ndarray) -> None:
        """Compile (or load from cache) the add, search, filtered search (every strategy, and the
        shadow-code scan), remove and compact paths for every metric."""
        data = np.ascontiguousarray(data[:200], np.float32)
        n = data.shape[0]
        for metric, walk_codes in [(m, w) for m in ("l2", "ip", "cosine") for w in (False, True)]:
            index = cls(data.shape[1], metric, M=4, ef_construction=16, ef_search=16, walk_codes=walk_codes)
            index.add(data, attributes={"rank": np.arange(n, dtype=np.int64)}, progress=False)
            index.search(data[:1], 5)
            index.search(data[:32], 5)
            half = {"rank": {"$lt": n // 2}}
            for strategy in ("prefilter", "beam_collect", "filtered_walk", "postfilter"):
                for batch in (data[:1], data[:32]):
                    index.search(batch, 5, where=half, strategy=strategy)
            index.warm_code_scan(data[:2])
            index.remove(np.arange(0, data.shape[0], 3))
            index.search(data[:32], 5)
            index.compact()
