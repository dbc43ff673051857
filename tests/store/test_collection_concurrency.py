"""Collection thread safety: concurrent dense and hybrid queries while another thread adds and deletes (bounded time)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from vecsearch.store.collection import Collection

RUN_SECONDS = 2.0
# ... and at least this many writes and queries (at most MAX_SECONDS): on a cold numba cache the first
# writes wait for compilation, and the checks need enough of both (a checkpoint needs ~100 kB of log).
MIN_WRITES = 20
MIN_QUERIES = 30
MAX_SECONDS = 90.0
BASE = 1000


def _stress(col: Collection, vectors: np.ndarray, exact: bool) -> dict:
    """Run 3 query threads and 1 writer for RUN_SECONDS and until MIN_WRITES / MIN_QUERIES are done
    (at most MAX_SECONDS); returns what was checked."""
    rng = np.random.default_rng(0)
    stop = threading.Event()
    errors: list[BaseException] = []
    lock = threading.Lock()
    deleted: set[str] = set()  # ids whose delete call has returned
    added: dict[str, int] = {}  # id -> row of `vectors`, for adds that have returned
    live_order: list[str] = [f"base-{i}" for i in range(BASE)]
    stats = {"queries": 0, "writes": 0, "self_checks": 0, "self_hits": 0, "hybrid_checks": 0}

    def writer() -> None:
        row, batch = BASE, 0
        try:
            while not stop.is_set() and row + 10 <= vectors.shape[0]:
                ids = [f"w{batch}-{i}" for i in range(10)]
                col.add(ids, vectors[row : row + 10], metadatas=[{"batch": batch}] * 10,
                        documents=[f"w{batch} item{row + i} shared" for i in range(10)])
                with lock:
                    added.update({s: row + i for i, s in enumerate(ids)})
                    live_order.extend(ids)
                row += 10
                victims = [live_order.pop(int(rng.integers(len(live_order)))) for _ in range(3)]
                col.delete(ids=victims)
                with lock:
                    deleted.update(victims)
                if batch % 2:
                    col.delete(where={"batch": batch - 3})
                    gone = {f"w{batch - 3}-{i}" for i in range(10)}
                    with lock:
                        deleted.update(gone)
                        live_order[:] = [s for s in live_order if s not in gone]
                stats["writes"] += 1
                batch += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
            stop.set()

    def reader(seed: int) -> None:
        r = np.random.default_rng(seed)
        try:
            while not stop.is_set():
                with lock:
                    gone_before = set(deleted)
                    recent = [(s, row) for s, row in list(added.items())[-30:] if s not in deleted]
                pick = r.integers(vectors.shape[0], size=4)
                queries = vectors[pick]
                texts = ["shared"] * 4
                if recent:
                    s, row = recent[int(r.integers(len(recent)))]
                    queries = np.vstack([queries, vectors[row]])
                    texts.append(f"item{row}")  # its unique term: the keyword leg finds it exactly
                hybrid = bool(r.integers(2))
                res = col.query(queries, n_results=10, include=["distances"], search_text=texts if hybrid else None)
                returned = {x for ids in res["ids"] for x in ids}
                assert not (returned & gone_before), f"deleted ids returned: {sorted(returned & gone_before)[:5]}"
                if recent:
                    # an add that returned before the query started is visible to it (unless
                    # deleted meanwhile by the writer)
                    with lock:
                        still_live = s not in deleted
                    if still_live:
                        if exact or hybrid:
                            assert s in res["ids"][-1], f"{s} added before the query but not found"
                        if hybrid:
                            with lock:
                                stats["hybrid_checks"] += 1
                        with lock:
                            stats["self_checks"] += 1
                            stats["self_hits"] += s in res["ids"][-1]
                with lock:
                    stats["queries"] += 1
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader, args=(s,)) for s in range(3)]
    for t in threads:
        t.start()
    time.sleep(RUN_SECONDS)
    deadline = time.monotonic() + MAX_SECONDS
    while (stats["writes"] < MIN_WRITES or stats["queries"] < MIN_QUERIES) and not stop.is_set() \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]
    # no add lost: every added id not deleted is stored and retrievable
    expected = {s for s in added if s not in deleted} | {f"base-{i}" for i in range(BASE) if f"base-{i}" not in deleted}
    assert set(col.get()["ids"]) == expected
    assert col.count() == len(expected)
    return stats


@pytest.mark.parametrize("index", ["flat", "hnsw"])
def test_queries_during_adds_and_deletes_never_see_deleted_ids_or_lose_adds(tmp_path, monkeypatch, wordnet_train, index):
    vectors = wordnet_train[:3000]
    params = {"M": 8, "ef_construction": 40} if index == "hnsw" else {}
    col = Collection(str(tmp_path / index), index=index, **params)
    col.add([f"base-{i}" for i in range(BASE)], vectors[:BASE], metadatas=[{"batch": -10}] * BASE,
            documents=[f"base item{i} shared" for i in range(BASE)])
    # snapshot every ~100 kB of log, so checkpoints (read lock, log switch) run during the queries
    monkeypatch.setattr(col, "_checkpoint_threshold", lambda: 100_000)
    stats = _stress(col, vectors, exact=index == "flat")
    assert col._gen >= 2
    assert stats["writes"] > 5 and stats["queries"] > 10 and stats["hybrid_checks"] > 3
    # an add that returned before a query started is found by it (HNSW: approximate, so a floor)
    assert stats["self_checks"] > 10 and stats["self_hits"] >= 0.9 * stats["self_checks"]
    # and everything written concurrently is durable
    ids = col.get()["ids"]
    col.close()
    assert Collection(str(tmp_path / index)).get()["ids"] == ids


def test_rwlock_allows_concurrent_readers_and_excludes_writers():
    from vecsearch.store.collection import RWLock

    lock = RWLock()
    inside = []
    barrier = threading.Barrier(3, timeout=10)

    def read() -> None:
        with lock.read():
            inside.append("r")
            barrier.wait()  # all three readers must be inside together, or this times out

    threads = [threading.Thread(target=read) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert inside == ["r"] * 3

    state = {"writer_in": False, "overlap": False}

    def write() -> None:
        for _ in range(200):
            with lock.write():
                state["writer_in"] = True
                time.sleep(0)
                state["writer_in"] = False

    def check() -> None:
        for _ in range(200):
            with lock.read():
                if state["writer_in"]:
                    state["overlap"] = True

    threads = [threading.Thread(target=write), threading.Thread(target=check), threading.Thread(target=check)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not state["overlap"]
