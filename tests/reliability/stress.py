"""Concurrency stress of one index type: searcher threads alongside one writer (``python stress.py TYPE SECONDS``).

The writer adds batches, removes, updates attributes and compacts (when the type can) in a loop;
three searcher threads search with and without a filter, one query and batches, and check every
result against what they can know for sure:

* every returned id was added at some point, and none was removed before the search started;
* no id twice in a row, distances sorted, padding (-1 / +inf) consistent;
* a returned id passes the filter (its ``parity`` attribute never changes);
* where the type's distances are exact, each equals the distance to that id's vector: a result
  read from a half-applied write (ids of one state, rows of another) fails this.

Prints one JSON line ``{"searches": n, "writes": n, "errors": [...]}``; a crash kills the process
(the parent test reports the signal). Vectors are a fixed table indexed by id.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

import numpy as np

DIM = 16
TABLE = 6000
INITIAL = 400
BATCH = 40
MIN_SEARCHES, MIN_WRITES, MAX_SECONDS = 50, 5, 60.0


def table() -> np.ndarray:
    rng = np.random.default_rng(3)
    return (rng.standard_normal((TABLE, 6)) @ rng.standard_normal((6, DIM)) + 0.05 * rng.standard_normal((TABLE, DIM))).astype(np.float32)


def make(type_name: str) -> tuple[Any, dict[str, Any]]:
    """The index and the search parameters whose distances are exact (empty dict: not exact)."""
    import vecsearch as vs
    from vecsearch import registry

    record = registry.get(type_name)
    if not record.vector_input:
        return record.cls(DIM, fde=vs.FDEConfig(reps=2, k_sim=2, d_proj=4), inner="hnsw", M=8), {}
    params = record.cls.suggested_params(INITIAL, DIM)
    index = record.cls(DIM, "l2", **params)
    exact = {"flat": {}, "hnsw": {}, "ivfpq": {"rerank": 4}}.get(type_name)
    return index, {"exact": True, **exact} if exact is not None else {}


def docs_of(vectors: np.ndarray, ids: np.ndarray) -> list[np.ndarray]:
    """One small token set per id (multi-vector types)."""
    return [np.stack([vectors[i], vectors[(i * 7 + 1) % TABLE]]) for i in ids.tolist()]


class Stress:
    def __init__(self, type_name: str) -> None:
        from vecsearch import registry

        self.record = registry.get(type_name)
        self.vectors = table()
        self.index, exact = make(type_name)
        self.exact = exact.pop("exact", False)
        self.search_params = exact
        self.lock = threading.Lock()
        self.ever: set[int] = set()
        self.removed_at: dict[int, float] = {}
        self.next_id = 0
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.searches = 0
        self.writes = 0
        self.filled = threading.Event()  # the first batch is in: filters know the fields from then on

    # ---- writer ---------------------------------------------------------------------------------
    def _add(self, n: int) -> None:
        ids = np.arange(self.next_id, self.next_id + n, dtype=np.int64)
        self.next_id += n
        with self.lock:
            self.ever.update(ids.tolist())
        attrs = {"parity": (ids % 2).tolist(), "gen": [0] * n}
        data = self.vectors[ids] if self.record.vector_input else docs_of(self.vectors, ids)
        self.index.add(data, ids=ids, attributes=attrs)
        self.filled.set()

    def writer(self) -> None:
        rng = np.random.default_rng(1)
        try:
            if self.record.requires_training and not self.index.is_trained:
                self.index.train(self.vectors[:2000])  # searchers run (and are refused) meanwhile
                self._add(INITIAL)
            while not self.stop.is_set() and self.next_id + BATCH < TABLE:
                self._add(BATCH)
                live = self.index.ids()
                victims = rng.choice(live, size=min(10, live.size), replace=False)
                self.index.remove(victims)
                now = time.perf_counter()
                with self.lock:
                    self.removed_at.update((int(v), now) for v in victims)
                keep = self.index.ids()[:5]
                self.index.update_attributes(keep, {"gen": [self.writes] * keep.size})
                if hasattr(self.index, "compact") and self.writes % 3 == 2:
                    self.index.compact()
                self.writes += 1
        except Exception as exc:  # noqa: BLE001
            self.errors.append(f"writer: {type(exc).__name__}: {exc}")
        finally:
            self.stop.set()

    # ---- searchers ------------------------------------------------------------------------------
    def _queries(self, rng: np.random.Generator, n: int) -> Any:
        rows = rng.integers(0, TABLE, n)
        if self.record.vector_input:
            q = self.vectors[rows] + 0.01
            return q[0] if n == 1 and rng.random() < 0.5 else q
        return docs_of(self.vectors, rows)

    def _check(self, res: Any, queries: Any, started: float, where: Any) -> None:
        with self.lock:
            ever, removed = set(self.ever), dict(self.removed_at)
        for qi, (row, dist) in enumerate(zip(res.ids, res.distances)):
            found = row[row >= 0].tolist()
            if not set(found) <= ever:
                raise AssertionError(f"ids never added: {sorted(set(found) - ever)[:5]}")
            gone = [i for i in found if removed.get(i, np.inf) < started]
            if gone:
                raise AssertionError(f"ids removed before the search started came back: {gone[:5]}")
            if len(set(found)) != len(found):
                raise AssertionError(f"an id twice in one row: {row.tolist()}")
            if not np.array_equal(row >= 0, np.isfinite(dist)):
                raise AssertionError(f"padding disagrees: {row.tolist()} {dist.tolist()}")
            finite = dist[np.isfinite(dist)]
            if (np.diff(finite) < -1e-4 * (1 + np.abs(finite[:-1]))).any():
                raise AssertionError(f"distances not sorted: {dist.tolist()}")
            if where is not None and any(i % 2 != 1 for i in found):
                raise AssertionError(f"filtered search returned even ids: {found}")
            if self.exact and found:
                q = np.atleast_2d(queries)[qi].astype(np.float64)
                want = ((self.vectors[found].astype(np.float64) - q) ** 2).sum(axis=1)
                if not np.allclose(dist[: len(found)], want, rtol=2e-3, atol=1e-3):
                    raise AssertionError(f"distances {dist[:3]} are not those of the returned ids {want[:3]}")

    def searcher(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            while not self.stop.is_set():
                queries = self._queries(rng, int(rng.choice([1, 1, 8, 32])))
                where = {"parity": 1} if self.filled.is_set() and rng.random() < 0.4 else None
                started = time.perf_counter()
                try:
                    res = self.index.search(queries, int(rng.choice([1, 5, 20])), where=where, **self.search_params)
                except ValueError as exc:
                    if "not trained" in str(exc):  # searches that ran before train() finished
                        continue
                    raise
                self._check(res, queries, started, where)
                self.searches += 1
        except Exception as exc:  # noqa: BLE001
            self.errors.append(f"searcher {seed}: {type(exc).__name__}: {exc}")
            self.stop.set()

    def _warm(self) -> None:
        """Compile (or load from numba's cache) the paths the threads take, before the clock starts."""
        rng = np.random.default_rng(99)
        for n, where in ((1, None), (8, None), (1, {"parity": 1}), (8, {"parity": 1})):
            self.index.search(self._queries(rng, n), 5, where=where, **self.search_params)

    def run(self, seconds: float) -> dict[str, Any]:
        """Run for ``seconds`` and until at least MIN_SEARCHES searches and MIN_WRITES write rounds
        were made (a busy machine slows both), at most MAX_SECONDS."""
        if not self.record.requires_training:
            self._add(INITIAL)
            self._warm()
        threads = [threading.Thread(target=self.searcher, args=(s,)) for s in range(3)]
        threads.append(threading.Thread(target=self.writer))
        for t in threads:
            t.start()
        start = time.monotonic()
        while not self.stop.is_set():
            elapsed = time.monotonic() - start
            if elapsed > MAX_SECONDS or (elapsed > seconds and self.searches >= MIN_SEARCHES and self.writes >= MIN_WRITES):
                break
            time.sleep(0.02)
        self.stop.set()
        for t in threads:
            t.join(60)
        if self.record.requires_training and self.index.is_trained and self.index.ntotal == 0:
            self.errors.append("the writer never added anything")
        return {"searches": self.searches, "writes": self.writes, "errors": self.errors[:5]}


if __name__ == "__main__":
    print(json.dumps(Stress(sys.argv[1]).run(float(sys.argv[2]))), flush=True)
