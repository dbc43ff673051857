"""Cost of the concurrency model on the search path (vecsearch.concurrency), with and without a writer.

    flock /work/notes/bench.lock nice -n 5 python bench/bench_concurrency.py [--rounds 7] [--queries 1000]
    # -> bench/results/bench_concurrency.json (date, load average, settings, one row per measurement)

For Flat, HNSW and IVF-PQ on the WordNet test slice (tests/data/train.npy: 5,000 x 384, cosine),
one query per call on one thread:

* ``no_writer``: the public (locked) ``search`` against the same method with the lock bypassed
  (``type(index).search.__wrapped__``: the body under the lock wrapper; checked to take no lock).
  Queries run in blocks of ``--block``; each block is timed locked and unlocked back to back, the
  order alternating, so machine-load drift hits both alike. Per round: microseconds per query of
  each, and their difference; the row keeps every round, and the median and range of the
  per-round differences;
* ``writer``: the public ``search`` while another thread adds and removes one vector, pausing
  5 ms after each write or in a tight loop (searches wait while a write is applied), with the
  writes per second that thread made;
* ``lock_call``: the lock's own cost per call, on a reader that does almost nothing else
  (``7 in index``), locked against ``__wrapped__``, interleaved.

Prints the README's table (also ``--table FILE`` for an existing file); the load average before
and after is in the results file (the machine is shared).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from pathlib import Path

import numpy as np

import vecsearch as vs
from vecsearch.benchmark.results import ResultsFile, read_results_file

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
# The writer thread: pausing 5 ms after each write (about 200 writes per second), and in a tight
# loop (the worst case: searches and writes alternate).
WRITER_PAUSES = (0.005, 0.0)
KINDS = {
    "flat": "FlatIndex(384, cosine)",
    "hnsw": "HNSWIndex(384, cosine, M=16, ef_construction=100), default ef",
    "ivfpq": "IVFPQIndex(384, cosine, nlist=64, m=48, keep_vectors=True, nprobe=8)",
}


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


class _CountingLock:
    """Stands in for an index's lock to count the acquisitions a call makes."""

    def __init__(self, lock) -> None:
        self.lock, self.calls = lock, 0

    def __getattr__(self, name):
        if name.startswith("acquire"):
            self.calls += 1
        return getattr(self.lock, name)


def _takes_no_lock(index, fn, q) -> bool:
    real = index.rwlock
    index.rwlock = counting = _CountingLock(real)
    try:
        fn(q, 10)
    finally:
        index.rwlock = real
    return counting.calls == 0


def _time_block(search, block: np.ndarray) -> float:
    start = time.perf_counter()
    for q in block:
        search(q, 10)
    return time.perf_counter() - start


def no_writer(index, queries: np.ndarray, rounds: int, block: int) -> dict:
    """Locked vs lock-bypassed single-query search, interleaved per block; microseconds per query."""
    unwrapped = type(index).search.__wrapped__

    def plain(q, k):
        return unwrapped(index, q, k)

    if not _takes_no_lock(index, plain, queries[0]) or _takes_no_lock(index, index.search, queries[0]):
        raise RuntimeError("the bypassed search took the lock, or the public one did not: the comparison is void")
    for fn in (index.search, plain):  # compile / warm caches
        _time_block(fn, queries[:200])
    blocks = [queries[i : i + block] for i in range(0, queries.shape[0], block)]
    locked_us, plain_us = [], []
    for r in range(rounds):
        t_locked = t_plain = 0.0
        for b, qs in enumerate(blocks):
            if (r + b) % 2 == 0:
                t_locked += _time_block(index.search, qs)
                t_plain += _time_block(plain, qs)
            else:
                t_plain += _time_block(plain, qs)
                t_locked += _time_block(index.search, qs)
        locked_us.append(t_locked / queries.shape[0] * 1e6)
        plain_us.append(t_plain / queries.shape[0] * 1e6)
    diffs = [a - b for a, b in zip(locked_us, plain_us)]
    pct = [100 * d / p for d, p in zip(diffs, plain_us)]
    return {"unlocked_us": _r(plain_us), "locked_us": _r(locked_us),
            "unlocked_median_us": round(statistics.median(plain_us), 2),
            "locked_median_us": round(statistics.median(locked_us), 2),
            "cost_median_us": round(statistics.median(diffs), 2), "cost_range_us": [round(min(diffs), 2), round(max(diffs), 2)],
            "cost_median_pct": round(statistics.median(pct), 2), "cost_range_pct": [round(min(pct), 2), round(max(pct), 2)]}


def with_writer(index, x: np.ndarray, queries: np.ndarray, rounds: int, pause: float) -> dict:
    """The public search's microseconds per query while a thread adds and removes one vector."""
    extra = x[:50] + np.float32(0.001)
    stop = threading.Event()
    writes = [0]

    def write_loop():
        next_id = 10**9
        while not stop.is_set():
            index.add(extra[next_id % 50][None], ids=[next_id])
            index.remove([next_id])
            next_id += 1
            writes[0] += 1
            if pause:
                time.sleep(pause)

    busy = []
    thread = threading.Thread(target=write_loop)
    start = time.perf_counter()
    thread.start()
    try:
        for _ in range(rounds):
            busy.append(_time_block(index.search, queries) / queries.shape[0] * 1e6)
    finally:
        stop.set()
        thread.join()
    return {"locked_us": _r(busy), "locked_median_us": round(statistics.median(busy), 2),
            "locked_range_us": [round(min(busy), 2), round(max(busy), 2)],
            "writes_per_s": round(writes[0] / (time.perf_counter() - start), 1)}


def lock_call_us(index, calls: int, rounds: int) -> dict:
    """Microseconds of ``7 in index`` (a reader: one id-table probe) locked and with the lock
    bypassed, interleaved: the lock's own per-call cost without a search's noise around it."""
    unwrapped = type(index).__contains__.__wrapped__
    locked_t, plain_t = [], []
    for r in range(rounds):
        for mode in (("locked", "plain") if r % 2 == 0 else ("plain", "locked")):
            start = time.perf_counter()
            if mode == "locked":
                for _ in range(calls):
                    7 in index  # noqa: B015
                locked_t.append((time.perf_counter() - start) / calls * 1e6)
            else:
                for _ in range(calls):
                    unwrapped(index, 7)
                plain_t.append((time.perf_counter() - start) / calls * 1e6)
    diffs = [a - b for a, b in zip(locked_t, plain_t)]
    return {"locked_us": _r(locked_t, 3), "unlocked_us": _r(plain_t, 3), "cost_median_us": round(statistics.median(diffs), 3),
            "cost_range_us": [round(min(diffs), 3), round(max(diffs), 3)]}


def _r(values: list[float], digits: int = 2) -> list[float]:
    return [round(v, digits) for v in values]


def markdown(doc: dict) -> str:
    """The README's table from a results file of this script."""
    rows = doc["rows"]
    kinds = [r["kind"] for r in rows if r["section"] == "no_writer"]
    get = {(r["section"], r["kind"], r.get("pause_s")): r for r in rows}
    head = "| us per query (median [range] of rounds) | " + " | ".join(kinds) + " |"
    lines = [head, "|---" * (len(kinds) + 1) + "|"]

    def cell(values: list[float]) -> str:
        return f"{statistics.median(values):.0f} [{min(values):.0f}-{max(values):.0f}]"

    lines.append("| search, lock bypassed | " + " | ".join(cell(get["no_writer", k, None]["unlocked_us"]) for k in kinds) + " |")
    lines.append("| search, locked, no writer | " + " | ".join(cell(get["no_writer", k, None]["locked_us"]) for k in kinds) + " |")
    lines.append("| lock cost per search (locked - bypassed, paired rounds) | " + " | ".join(
        f"{r['cost_median_us']:+.1f} us ({r['cost_median_pct']:+.1f}%) [{r['cost_range_pct'][0]:+.1f}% .. {r['cost_range_pct'][1]:+.1f}%]"
        for r in (get["no_writer", k, None] for k in kinds)) + " |")
    for pause in doc["settings"]["writer_pauses_s"]:
        label = "a writer in a tight loop" if pause == 0 else f"a writer every {pause * 1e3:g} ms"
        lines.append(f"| search with {label} (writes/s) | " + " | ".join(
            f"{cell(r['locked_us'])} ({r['writes_per_s']:.0f}/s)" for r in (get["writer", k, pause] for k in kinds)) + " |")
    call = next((r for r in rows if r["section"] == "lock_call"), None)
    if call:
        lines.append(f"\nLock per call (`7 in index`): {statistics.median(call['locked_us']):.2f} us locked, "
                     f"{statistics.median(call['unlocked_us']):.2f} us bypassed, cost {call['cost_median_us']:.2f} us "
                     f"[{call['cost_range_us'][0]:.2f}-{call['cost_range_us'][1]:.2f}]")
    m = doc["machine"]
    lines.append(f"\n{doc['date']}, {m['cpu_count']} cores, load average (1 min) {m['loadavg_start'][0]} -> "
                 f"{m['loadavg_end'][0]}; {doc['settings']['rounds']} rounds x {doc['settings']['queries']} queries")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--queries", type=int, default=1000, help="queries per round (the 200 test queries, cycled)")
    parser.add_argument("--block", type=int, default=50, help="queries per locked/unlocked block")
    parser.add_argument("--lock-calls", type=int, default=200_000)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "bench_concurrency.json"))
    parser.add_argument("--table", metavar="JSON", help="only print the README table of an existing results file")
    args = parser.parse_args()
    if args.table:
        print(markdown(read_results_file(args.table)))
        return
    results = ResultsFile(args.out, args, script="bench_concurrency")
    results.settings.update(data="tests/data/train.npy (5,000 x 384) + test_id.npy queries", k=10,
                            indexes={k: KINDS[k] for k in args.kinds.split(",")},
                            writer="adds then removes one vector per write", writer_pauses_s=list(WRITER_PAUSES))
    x = np.ascontiguousarray(np.load(DATA / "train.npy").astype(np.float32))
    queries = np.ascontiguousarray(np.load(DATA / "test_id.npy").astype(np.float32))
    queries = queries[np.arange(args.queries) % queries.shape[0]]
    print("per-query microseconds, median of the rounds; cost = locked - unlocked per round: median [range]")
    for kind in args.kinds.split(","):
        index = build(kind, x)
        row = results.add({"section": "no_writer", "kind": kind, **no_writer(index, queries, args.rounds, args.block)})
        print(f"{kind:6} no writer: unlocked {row['unlocked_median_us']:8.1f}  locked {row['locked_median_us']:8.1f}  "
              f"cost {row['cost_median_us']:6.2f} us [{row['cost_range_us'][0]:.2f}, {row['cost_range_us'][1]:.2f}] = "
              f"{row['cost_median_pct']:.2f}% [{row['cost_range_pct'][0]:.2f}, {row['cost_range_pct'][1]:.2f}]", flush=True)
        for pause in WRITER_PAUSES:
            row = results.add({"section": "writer", "kind": kind, "pause_s": pause,
                               **with_writer(index, x, queries, args.rounds, pause)})
            print(f"{kind:6} writer {'in a loop' if pause == 0 else f'every {pause * 1e3:g} ms':>12}: locked "
                  f"{row['locked_median_us']:8.1f} [{row['locked_range_us'][0]:.1f}, {row['locked_range_us'][1]:.1f}], "
                  f"{row['writes_per_s']:.0f} writes/s", flush=True)
        results.write()
    probe = vs.FlatIndex(8)
    probe.add(np.eye(8, dtype=np.float32))
    row = results.add({"section": "lock_call", "kind": "flat", "call": "7 in index",
                       **lock_call_us(probe, args.lock_calls, 2 * (args.rounds // 2) + 1)})
    print(f"lock per call (7 in index): {statistics.median(row['locked_us']):.3f} us locked, "
          f"{statistics.median(row['unlocked_us']):.3f} us unlocked, cost {row['cost_median_us']:.3f} us "
          f"[{row['cost_range_us'][0]:.3f}, {row['cost_range_us'][1]:.3f}]")
    print(f"wrote {results.write()}\n")
    print(markdown(results.document()))


if __name__ == "__main__":
    main()
