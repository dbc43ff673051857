"""Cost of the concurrency model on the search path (vecsearch.concurrency), with and without a writer.

    python bench/bench_concurrency.py [--rounds 7] [--queries 2000]

For Flat, HNSW and IVF-PQ on the WordNet test slice (5,000 x 384, cosine), one query per call on
one thread:

* ``unlocked`` calls the search method under the lock wrapper (``Index.search.__wrapped__``),
  ``locked`` the public ``search``: the difference is the lock's cost with no writer active.
  The two are timed in interleaved rounds (order alternating), median per-query microseconds;
* ``writer``: the public ``search`` while another thread adds and removes one vector, in a tight
  loop or pausing 5 ms after each write (searches wait while a write is applied), with the
  writes per second that thread made.

Then the lock's own cost per call, on a reader that does almost nothing else (``id in index``).
Prints a table and the 1-minute load average before and after (the machine is shared).
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from pathlib import Path

import numpy as np

import vecsearch as vs

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
# The writer thread: in a tight loop (the worst case: searches and writes alternate), and pausing
# 5 ms after each write (about 200 writes per second).
WRITER_PAUSES = (0.0, 0.005)


def per_query_us(search, queries: np.ndarray) -> float:
    start = time.perf_counter()
    for q in queries:
        search(q, 10)
    return (time.perf_counter() - start) / queries.shape[0] * 1e6


def build(kind: str, x: np.ndarray):
    if kind == "flat":
        index = vs.FlatIndex(384, "cosine")
    elif kind == "hnsw":
        index = vs.HNSWIndex(384, "cosine", M=16, ef_construction=100)
    else:
        index = vs.IVFPQIndex(384, "cosine", nlist=64, m=48, keep_vectors=True, nprobe=8)
        index.train(x)
    index.add(x)
    return index


def measure(kind: str, x: np.ndarray, queries: np.ndarray, rounds: int) -> dict:
    index = build(kind, x)
    unlocked = type(index).search.__wrapped__

    def plain(q, k):
        return unlocked(index, q, k)

    per_query_us(index.search, queries[:200])  # compile / warm caches
    per_query_us(plain, queries[:200])
    timings: dict[str, list[float]] = {"locked": [], "unlocked": []}
    for r in range(rounds):
        order = ("locked", "unlocked") if r % 2 == 0 else ("unlocked", "locked")
        for mode in order:
            timings[mode].append(per_query_us(index.search if mode == "locked" else plain, queries))
    out = {"kind": kind, "unlocked": statistics.median(timings["unlocked"]), "locked": statistics.median(timings["locked"]),
           "unlocked_min": min(timings["unlocked"]), "locked_min": min(timings["locked"])}
    extra = x[:50] + np.float32(0.001)
    for pause in WRITER_PAUSES:
        stop = threading.Event()
        writes = [0]

        def writer(pause=pause, stop=stop, writes=writes):
            next_id = 10**9
            while not stop.is_set():
                index.add(extra[next_id % 50][None], ids=[next_id])
                index.remove([next_id])
                next_id += 1
                writes[0] += 1
                if pause:
                    time.sleep(pause)

        busy = []
        thread = threading.Thread(target=writer)
        start = time.perf_counter()
        thread.start()
        try:
            for _ in range(rounds):
                busy.append(per_query_us(index.search, queries))
        finally:
            stop.set()
            thread.join()
        out[pause] = (statistics.median(busy), writes[0] / (time.perf_counter() - start))
    return out


def lock_overhead_us(index, calls: int = 200_000, rounds: int = 5) -> tuple[float, float]:
    """Median microseconds of ``7 in index`` (a reader: one id-table probe) locked and unlocked,
    interleaved: the lock's own per-call cost, without a search's noise around it."""
    unlocked = type(index).__contains__.__wrapped__
    locked_t, plain_t = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            7 in index  # noqa: B015
        locked_t.append((time.perf_counter() - start) / calls * 1e6)
        start = time.perf_counter()
        for _ in range(calls):
            unlocked(index, 7)
        plain_t.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(locked_t), statistics.median(plain_t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--queries", type=int, default=2000)
    args = parser.parse_args()
    x = np.ascontiguousarray(np.load(DATA / "train.npy").astype(np.float32))
    queries = np.ascontiguousarray(np.load(DATA / "test_id.npy").astype(np.float32))
    queries = queries[np.arange(args.queries) % queries.shape[0]]
    load_before = os.getloadavg()[0]
    print("per-query microseconds: median of the rounds [fastest round]; cost = locked - unlocked")
    print(f"{'index':6} {'unlocked':>16} {'locked':>16} {'cost (median)':>14} {'cost (fastest)':>15}"
          + "".join(f" {'writer ' + ('in a loop' if p == 0 else f'every {p * 1e3:g} ms'):>26}" for p in WRITER_PAUSES))
    for kind in ("flat", "hnsw", "ivfpq"):
        r = measure(kind, x, queries, args.rounds)
        cost, cost_min = r["locked"] - r["unlocked"], r["locked_min"] - r["unlocked_min"]
        print(f"{kind:6} {r['unlocked']:7.1f} [{r['unlocked_min']:6.1f}] {r['locked']:7.1f} [{r['locked_min']:6.1f}] "
              f"{cost:6.2f} ({100 * cost / r['unlocked']:4.1f}%) {cost_min:6.2f} ({100 * cost_min / r['unlocked_min']:4.1f}%)"
              + "".join(f" {r[p][0]:9.1f} us, {r[p][1]:4.0f} writes/s" for p in WRITER_PAUSES))
    probe = vs.FlatIndex(8)
    probe.add(np.eye(8, dtype=np.float32))
    locked, plain = lock_overhead_us(probe)
    print(f"lock per call (a reader that probes one id): {locked:.2f} us locked, {plain:.2f} us unlocked, "
          f"{locked - plain:.2f} us for the lock")
    print(f"load average (1 min): {load_before:.2f} before, {os.getloadavg()[0]:.2f} after, {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
