"""GraphIndex: a hierarchical navigable small-world graph over a pluggable vector storage.

HNSW and LeanVec are this one graph with different storage (:mod:`vecsearch.kernels.storage`):

* the *walk storage* is what a search scores while it walks (float32 rows, LVQ codes of the
  vectors, or LeanVec-reduced LVQ codes of projected vectors);
* the *re-rank storage* re-scores the walk's best candidates (the full float32 vectors behind a
  code walk), so returned distances are exact; ``NO_STORAGE`` when the walk's scores are final;
* the *build storage* is what insertion scores (HNSW: the float32 vectors; LeanVec: its reduced codes).

Subclasses own those rows (``_reserve_rows``, ``_write_rows``, ``_keep_rows`` and the three storage
getters) and their persistence; this class owns the graph: level draws, batched parallel insertion
(:mod:`vecsearch.kernels.graph_build`), the walk (:mod:`vecsearch.kernels.graph_walk`), removal
(marked deleted, walked through, never returned), compaction with link repair, the graph arrays'
state and their content checks, and, through :class:`~vecsearch.indexes.graph_filtered.GraphFilteredSearch`,
every filtered strategy.

Threads: batch searches and builds run serial kernels on chunks in a thread pool
(:mod:`vecsearch.parallel`, numba's thread count); a batch of at most
:data:`vecsearch.parallel.SERIAL_MAX_QUERIES` queries runs on the calling thread alone.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

from ..io import copy_on_write
from ..kernels import graph_build as kb
from ..kernels import graph_walk as kw
from ..kernels.storage import Storage
from ..kernels.visited import new_visited
from ..parallel import run_chunks, run_shared, workers_for
from ..progress import Progress, auto_enabled
from .checks import check_hnsw_graph
from .graph_filtered import GraphFilteredSearch, collect_policy, plain_policy
from .scratch import ScratchPool

# Nodes per insertion batch: at most max(MAX_BATCH, 16 * threads), and at most a quarter of the
# graph so far, so early nodes are linked almost sequentially. Batch-mates see each other by
# brute force (cost ~B/2 distances per node), so the graph quality matches sequential insertion.
MAX_BATCH = 256
# An insertion batch is cut into CHUNKS_PER_THREAD chunks per thread and its reverse links into
# OWNERS_PER_THREAD owner classes per thread, handed out on demand (vecsearch.parallel.run_shared):
# a thread that waits for a core (a busy machine) takes fewer, instead of the others waiting for it
# at every batch. The graph is the same however the work is cut.
CHUNKS_PER_THREAD = 4
OWNERS_PER_THREAD = 4
# Beam widths a recall/speed sweep tries (search_grid).
EF_GRID = (10, 20, 40, 80, 160, 320)
# A walk over codes re-scores its best max(WALK_RERANK_PER_K * k, WALK_RERANK_MIN) nodes with the exact
# vectors (116k WordNet, ef 64: 20 re-scored gave the recall@10 of re-scoring all 64; LeanVec reduced to
# 256 of 384 dims, held-out part: within 0.0007 of re-scoring the whole beam at ef 48-64).
WALK_RERANK_PER_K = 2
WALK_RERANK_MIN = 20
# Levels are drawn as floor(-ln U / ln M), capped here.
MAX_LEVEL = 64
GRAPH_PARAMS = ("entry", "max_level", "n_inserted")
GRAPH_ARRAYS = ("levels", "links0", "counts0", "upper_start", "upper_links", "upper_counts")


def code_walk_rerank(k: int, ef: int) -> int:
    """How many of a code walk's ``ef`` best nodes are re-scored exactly for ``k`` results by default."""
    return min(ef, max(WALK_RERANK_PER_K * k, WALK_RERANK_MIN))


class GraphIndex(GraphFilteredSearch):
    """The graph half of :class:`~vecsearch.indexes.hnsw.HNSWIndex` and :class:`~vecsearch.indexes.leanvec.LeanVecIndex`.

    ``M`` links per node on upper levels (2M on level 0), ``ef_construction`` beam width when
    inserting, ``seed`` for the level draws, ``allow_replace_deleted`` lets ``add`` reuse removed
    slots. Subclasses call :meth:`_init_graph` from their constructor.
    """

    search_knobs = ("ef",)
    reports_progress = True

    def _init_graph(self, M: int, ef_construction: int, seed: int, allow_replace_deleted: bool,
                    build_alpha: float = 1.0) -> None:
        self.M = M
        self.ef_construction = ef_construction
        self._seed = seed
        self._allow_replace_deleted = allow_replace_deleted
        self._build_alpha = np.float32(build_alpha)
        self._n = 0  # slots in use (live + deleted)
        self._n_upper = 0  # rows of the upper-level block in use
        self._entry = -1
        self._max_level = -1
        self._n_inserted = 0  # total insertions ever (seeds the level draws)
        self._levels = np.empty(0, np.int32)
        self._links0 = np.empty((0, 2 * M), np.int32)
        self._counts0 = np.empty(0, np.int32)
        self._upper_start = np.empty(0, np.int64)
        self._upper_links = np.empty((0, M), np.int32)
        self._upper_counts = np.empty(0, np.int32)
        self._scratch = ScratchPool()
        self._bundle_cache: tuple | None = None

    # ---- storage hooks (subclasses) ---------------------------------------------------------------
    def _reserve_rows(self, capacity: int) -> None:
        """Make the row storages hold ``capacity`` slots, writable (copy mapped arrays)."""
        raise NotImplementedError

    def _write_rows(self, slots: np.ndarray, vectors: np.ndarray) -> None:
        """Store (encode) prepared ``vectors`` (n, dim) f32 at ``slots`` (n,) int64."""
        raise NotImplementedError

    def _keep_rows(self, keep: np.ndarray) -> None:
        """Keep only the rows of ``keep`` (sorted int64 slots), renumbered 0..len(keep)-1."""
        raise NotImplementedError

    def _build_storage(self) -> Storage:
        raise NotImplementedError

    def _walk_storage(self) -> Storage:
        raise NotImplementedError

    def _rerank_storage(self) -> Storage:
        raise NotImplementedError

    def _walk_queries(self, queries: np.ndarray) -> np.ndarray:
        """``queries`` (nq, dim) in the walk storage's space (float32, C-contiguous)."""
        return queries

    def _n_rerank(self, k: int, ef: int, params: Any) -> int:
        """How many of the walk's best candidates the re-rank storage re-scores."""
        raise NotImplementedError

    # ---- graph ----------------------------------------------------------------------------------
    @property
    def n_deleted(self) -> int:
        return self._n - self.ntotal

    @property
    def max_level(self) -> int:
        return self._max_level

    def _bundles(self) -> tuple[tuple, tuple, tuple, tuple]:
        """``(graph, walk storage, re-rank storage, build storage)`` as the plain tuples kernels take;
        cached until :meth:`_bundles_changed` (a search builds none of them)."""
        if self._bundle_cache is None:
            self._bundle_cache = (tuple(self._graph()), tuple(self._walk_storage()), tuple(self._rerank_storage()),
                                  tuple(self._build_storage()))
        return self._bundle_cache

    def _bundles_changed(self) -> None:
        """Forget the cached bundles: an array of the graph or of a storage was replaced or refitted."""
        self._bundle_cache = None

    @staticmethod
    def _row_dim(st: tuple) -> int:
        """Dimension of the rows of a storage (the size of a decoded row)."""
        storage = Storage(*st)
        return max(storage.f32.shape[1], storage.u16.shape[1], storage.mu.shape[0], 1)

    def _graph(self) -> kw.Graph:
        return kw.Graph(self._links0, self._counts0, self._upper_links, self._upper_counts, self._upper_start)

    def _reserve(self, n_nodes: int, n_upper: int) -> None:
        """Make room for ``n_nodes`` nodes and ``n_upper`` upper rows; copies read-only (mmap) arrays."""

        def grow(arr: np.ndarray, needed: int) -> np.ndarray:
            if needed <= arr.shape[0] and arr.flags.writeable:
                return arr
            capacity = max(needed, 2 * arr.shape[0], 64) if needed > arr.shape[0] else arr.shape[0]
            out = np.zeros((capacity,) + arr.shape[1:], arr.dtype)
            out[: arr.shape[0]] = arr
            return out

        self._levels = grow(self._levels, n_nodes)
        self._links0 = grow(self._links0, n_nodes)
        self._counts0 = grow(self._counts0, n_nodes)
        self._upper_start = grow(self._upper_start, n_nodes)
        self._upper_links = grow(self._upper_links, n_upper)
        self._upper_counts = grow(self._upper_counts, n_upper)
        self._reserve_rows(self._levels.shape[0])
        self._bundles_changed()

    def _draw_levels(self, n: int) -> np.ndarray:
        rng = np.random.default_rng([self._seed, self._n_inserted])
        u = 1.0 - rng.random(n)  # in (0, 1]
        levels = np.floor(-np.log(u) / math.log(self.M)).astype(np.int32)
        self._n_inserted += n
        return np.minimum(levels, MAX_LEVEL)

    # ---- add ----------------------------------------------------------------------------------
    def _add(self, vectors: np.ndarray, ids: np.ndarray, progress: bool | None = None, **kwargs: Any) -> None:
        if kwargs:
            raise TypeError(f"{type(self).__name__}.add: unexpected parameters {sorted(kwargs)} (allowed: ['progress'])")
        n_new = vectors.shape[0]
        reuse = np.empty(0, np.int64)
        if self._allow_replace_deleted and self.n_deleted:
            reuse = np.flatnonzero(self._ids.deleted[: self._n])[:n_new].astype(np.int64)
        n_append = n_new - reuse.shape[0]
        levels = self._draw_levels(n_new)
        n_rows = int(levels.sum())
        self._reserve(self._n + n_append, self._n_upper + n_rows)
        if reuse.size:
            self._unlink(reuse)
        slots = np.concatenate([reuse, np.arange(self._n, self._n + n_append, dtype=np.int64)])
        self._write_rows(slots, vectors)
        self._bundles_changed()  # an LVQ codec may have been refitted
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
        self._insert(slots, Progress(n_new, f"{type(self).__name__} add", enabled=auto_enabled(progress, n_new)))

    def _insert(self, slots: np.ndarray, bar: Progress) -> None:
        threads = max(1, int(numba.get_num_threads()))
        n_owners = OWNERS_PER_THREAD * threads if threads > 1 else 1
        max_batch = max(MAX_BATCH, 16 * threads)
        ef_c, M = self.ef_construction, self.M
        g, _, _, st = self._bundles()
        bufs = np.empty((threads, 3, self._row_dim(st)), np.float32)
        sel = np.empty((threads, 2 * M), np.int32)
        tmp_s = np.empty((threads, 2 * M + 1), np.float32)
        tmp_i = np.empty((threads, 2 * M + 1), np.int32)
        tmp_out = np.empty((threads, 2 * M + 1), np.int32)
        graph_size = self._n - slots.shape[0]
        scratch = self._scratch.take(threads, self._levels.shape[0], ef_c)
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
                entry, max_level = self._entry, self._max_level

                def insert(start: int, stop: int, worker: int) -> None:
                    kb.insert_nodes(g, self._levels, st, self._build_alpha, batch, start, stop, entry, max_level,
                                    M, ef_c, scratch.visited, scratch.epochs, worker, scratch.cand_s,
                                    scratch.cand_i, scratch.top_s, scratch.top_i, sel, bufs, prop_offsets,
                                    prop_target, prop_source, prop_level)

                def link(owner: int, _stop: int, worker: int) -> None:
                    kb.apply_reverse_links(g, st, self._build_alpha, M, prop_target, prop_source, prop_level,
                                           owner, n_owners, tmp_s[worker], tmp_i[worker], tmp_out[worker],
                                           bufs[worker])

                run_shared(insert, size, threads, grain=-(-size // (CHUNKS_PER_THREAD * threads)))
                run_shared(link, n_owners, threads, grain=1)
                top = int(np.argmax(blevels))
                if blevels[top] > self._max_level:
                    self._max_level, self._entry = int(blevels[top]), int(batch[top])
                graph_size += size
                pos += size
                bar.update(size)
        finally:
            self._scratch.give(scratch)
            bar.close()

    # ---- search -------------------------------------------------------------------------------
    def _search(self, queries: np.ndarray, k: int, params: Any) -> tuple[np.ndarray, np.ndarray]:
        ef = max(params.ef if params.ef is not None else self.ef_search, k)
        if ef >= self.ntotal:  # the beam would cover the index: scan it (exact, and reaches every node)
            return self._scan(queries, k, None, self._n_rerank(k, ef, params))
        n_rerank = self._n_rerank(k, ef, params)
        if n_rerank > ef:  # a re-rank pool wider than the beam: the best n_rerank live nodes scored anywhere
            live = ~self._ids.deleted[: self._n] if self.n_deleted else np.empty(0, np.bool_)
            policy = collect_policy(live)
        else:
            policy = plain_policy(self._ids.deleted, self.n_deleted > 0)
        slots, scores, _ = self._walk(queries, k, ef, policy, n_rerank)
        return slots, scores

    def _walk(self, queries: np.ndarray, k: int, ef: int, policy: kw.Policy, n_rerank: int,
              need: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The walk of :func:`vecsearch.kernels.graph_walk.search_query` for every query under ``policy``:
        ``(slots int64 (nq, k), scores f32 (nq, k), local f32 (nq,))`` (``local``: see the kernel)."""
        nq = queries.shape[0]
        out_slots = np.empty((nq, k), np.int64)  # the kernel fills them, padding included
        out_scores = np.empty((nq, k), np.float32)
        out_local = np.empty(nq, np.float32)
        walk_q = self._walk_queries(queries)
        g, st, sec, _ = self._bundles()
        kernel = kw.search_rows if policy.kind == kw.POLICY_PLAIN else kw.policy_rows
        policy = tuple(policy)
        workers = workers_for(nq)
        s = self._scratch.take(workers, self._levels.shape[0], ef)
        try:
            if workers == 1:  # the single-query path: no closure, no pool (~3 us of a ~12 us call)
                kernel(g, self._entry, self._max_level, st, sec, policy, walk_q, queries, 0, nq, k, ef,
                               n_rerank, need, s.visited, s.epochs, 0, s.cand_s, s.cand_i, s.top_s, s.top_i,
                               out_slots, out_scores, out_local)
            else:

                def walk(start: int, stop: int, worker: int) -> None:
                    kernel(g, self._entry, self._max_level, st, sec, policy, walk_q, queries, start, stop, k,
                                   ef, n_rerank, need, s.visited, s.epochs, worker, s.cand_s, s.cand_i, s.top_s,
                                   s.top_i, out_slots, out_scores, out_local)

                run_chunks(walk, nq, workers)
        finally:
            self._scratch.give(s)
        return out_slots, out_scores, out_local

    # ---- remove / compact ---------------------------------------------------------------------
    def _remove_slots(self, slots: np.ndarray) -> None:
        self._ids.mark_deleted(slots)

    def _repair(self, removed: np.ndarray) -> None:
        """Reconnect every list that points into ``removed`` (bool (n,)) without those nodes."""
        threads = workers_for(self._n)
        g, _, _, st = self._bundles()
        visited, epochs = new_visited(threads, self._n)
        width = 2 * self.M * (1 + 2 * self.M)
        cand_s = np.empty((threads, width), np.float32)
        cand_i = np.empty((threads, width), np.int32)
        sel = np.empty((threads, 2 * self.M), np.int32)
        bufs = np.empty((threads, 3, self._row_dim(st)), np.float32)
        repaired0 = np.zeros(self._n, np.bool_)

        def repair(start: int, stop: int, worker: int) -> None:
            kb.repair_links(g, self._levels, st, self._build_alpha, start, stop, removed, self.M, visited, epochs,
                            worker, cand_s, cand_i, sel, bufs, repaired0)

        run_chunks(repair, self._n, threads)
        # Give the re-selected level-0 lists their reverse links back (the in-links that removal
        # took away), with the same owner-partitioned, heuristic-pruned linking as insertion.
        nodes = np.flatnonzero(repaired0)
        counts = self._counts0[nodes]
        targets = self._links0[nodes][np.arange(2 * self.M)[None, :] < counts[:, None]].astype(np.int32)
        sources = np.repeat(nodes, counts).astype(np.int32)
        tmp = np.empty((threads, 2 * self.M + 1), np.float32)
        tmp_i, tmp_out = np.empty(tmp.shape, np.int32), np.empty(tmp.shape, np.int32)
        levels0 = np.zeros(targets.shape[0], np.int32)

        def link(owner: int, _stop: int, worker: int) -> None:
            kb.apply_reverse_links(g, st, self._build_alpha, self.M, targets, sources, levels0, owner, threads,
                                   tmp[worker], tmp_i[worker], tmp_out[worker], bufs[worker])

        run_chunks(link, threads, threads)

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
        first_row = np.concatenate([[0], np.cumsum(levels[:-1], dtype=np.int64)]) if keep.size else np.empty(0, np.int64)
        old_rows = self._upper_start[keep][node_of_row] + (np.arange(n_rows) - first_row[node_of_row])
        upper_links = self._upper_links[old_rows]
        upper_counts = self._upper_counts[old_rows]
        uvalid = np.arange(self.M)[None, :] < upper_counts[:, None]
        upper_links[uvalid] = old2new[upper_links[uvalid]]
        upper_links[~uvalid] = 0
        self._keep_rows(keep)
        self._levels, self._counts0, self._links0 = levels, counts0, links0
        self._upper_start = np.where(levels > 0, first_row, -1).astype(np.int64)
        self._upper_links, self._upper_counts = upper_links, upper_counts
        self._n, self._n_upper = int(keep.shape[0]), n_rows
        if self._entry >= 0:
            self._entry = int(old2new[self._entry])
        self._ids.compact(keep)
        self._scratch.clear()
        self._bundles_changed()
        self._attributes_changed()
        return n_removed

    # ---- state ----------------------------------------------------------------------------------
    def _graph_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``(params, arrays)`` of the graph (the rows are the subclass')."""
        n, r = self._n, self._n_upper
        params = {"entry": self._entry, "max_level": self._max_level, "n_inserted": self._n_inserted}
        arrays = {
            "levels": self._levels[:n], "links0": self._links0[:n], "counts0": self._counts0[:n],
            "upper_start": self._upper_start[:n], "upper_links": self._upper_links[:r],
            "upper_counts": self._upper_counts[:r],
        }
        return params, arrays

    @classmethod
    def _from_state(cls, dim: int, metric: str, params: dict[str, Any], arrays: dict[str, np.ndarray],
                    n_slots: int) -> GraphIndex:
        """The subclass restores its parameters and rows (:meth:`_restore_rows`), then the graph is
        installed and checked here."""
        params = dict(params)
        graph_params = {name: params.pop(name, None) for name in GRAPH_PARAMS}
        index = cls._restore_rows(dim, metric, params, arrays, n_slots)
        index._set_graph_state(graph_params, arrays, n_slots)
        return index

    @classmethod
    def _restore_rows(cls, dim: int, metric: str, params: dict[str, Any], arrays: dict[str, np.ndarray],
                      n_slots: int) -> GraphIndex:
        """A new index of ``params`` (the graph's own entries removed) holding the ``n_slots`` rows of
        ``arrays``, checked; the graph is installed afterwards."""
        raise NotImplementedError

    def _set_graph_state(self, params: dict[str, Any], arrays: dict[str, np.ndarray], n_slots: int) -> None:
        """Install the graph of :meth:`_graph_state` after checking every value a walk will trust."""
        values = {}
        for name in GRAPH_PARAMS:
            value = params.pop(name, None)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"params.{name}: expected an integer, got {value!r}")
            values[name] = value
        M, n = self.M, n_slots
        rows = arrays["upper_links"].shape[0] if "upper_links" in arrays else 0
        expected = {
            "levels": (np.int32, (n,)), "links0": (np.int32, (n, 2 * M)), "counts0": (np.int32, (n,)),
            "upper_start": (np.int64, (n,)), "upper_links": (np.int32, (rows, M)), "upper_counts": (np.int32, (rows,)),
        }
        for name, (dtype, shape) in expected.items():
            arr = arrays.get(name)
            if arr is None or arr.dtype != dtype or arr.shape != shape:
                got = "missing" if arr is None else f"{arr.dtype} {arr.shape}"
                raise ValueError(f"{name}: expected {np.dtype(dtype)} {shape}, got {got}")
        graph = {name: copy_on_write(arrays[name]) for name in GRAPH_ARRAYS}
        problem = check_hnsw_graph(graph["levels"], graph["links0"], graph["counts0"], graph["upper_start"],
                                   graph["upper_links"], graph["upper_counts"], values["entry"], values["max_level"])
        if problem:
            raise ValueError(problem)
        self._levels, self._links0, self._counts0 = graph["levels"], graph["links0"], graph["counts0"]
        self._upper_start, self._upper_links, self._upper_counts = (
            graph["upper_start"], graph["upper_links"], graph["upper_counts"])
        self._n, self._n_upper = n, rows
        self._entry, self._max_level, self._n_inserted = values["entry"], values["max_level"], values["n_inserted"]
        self._bundles_changed()
