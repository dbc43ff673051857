"""The concurrency model (vecsearch.concurrency): many searches alongside one writer, for every index type.

The lock itself is tested directly (shared reads, exclusive writes, writer preference, re-entrancy,
no self-deadlock); every registered type's readers and writers are checked to be wrapped; and each
type runs a bounded stress (``stress.py``) in a child process, so that a crash is a failed test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import vecsearch as vs
from vecsearch import registry
from vecsearch.concurrency import READER_METHODS, WRITER_METHODS, ReadWriteLock

sys.path.insert(0, str(Path(__file__).parent))
import reporting

ROOT = Path(__file__).resolve().parents[2]
STRESS_SECONDS = 2.0
STRESS_RUNS = int(os.environ.get("VECSEARCH_STRESS_RUNS", "1"))  # more for the closing counts


def _in_thread(fn) -> threading.Thread:
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    return t


def test_readers_share_the_lock_and_a_writer_waits_for_them():
    lock = ReadWriteLock()
    both_in = threading.Barrier(3, timeout=5)
    wrote = threading.Event()

    def read():
        lock.acquire_read()
        both_in.wait()  # two readers inside at once, or the barrier times out
        time.sleep(0.05)
        lock.release_read()

    def write():
        lock.acquire_write()
        wrote.set()
        lock.release_write()

    readers = [_in_thread(read), _in_thread(read)]
    both_in.wait()
    writer = _in_thread(write)
    time.sleep(0.02)
    assert not wrote.is_set()  # the readers are still inside
    for t in readers + [writer]:
        t.join(5)
    assert wrote.is_set() and lock.state == (0, False, 0)


def test_a_waiting_writer_blocks_new_readers_but_not_reentrant_ones():
    lock = ReadWriteLock()
    lock.acquire_read()
    writer = _in_thread(lambda: (lock.acquire_write(), lock.release_write()))
    while lock.state[2] == 0:  # the writer is waiting
        time.sleep(0.001)
    lock.acquire_read()  # re-entrant: must not wait behind the writer that waits for us
    lock.release_read()
    entered = threading.Event()
    newcomer = _in_thread(lambda: (lock.acquire_read(), entered.set(), lock.release_read()))
    time.sleep(0.05)
    assert not entered.is_set()  # a new reader queues behind the waiting writer
    lock.release_read()
    writer.join(5)
    newcomer.join(5)
    assert entered.is_set() and lock.state == (0, False, 0)


def test_a_writer_writing_in_a_loop_does_not_starve_the_readers():
    lock = ReadWriteLock()
    stop = threading.Event()

    def write_forever():
        while not stop.is_set():
            lock.acquire_write()
            time.sleep(0.001)
            lock.release_write()

    reads = [0]

    def read_a_while():
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            lock.acquire_read()
            reads[0] += 1
            lock.release_read()

    writer = _in_thread(write_forever)
    reader = _in_thread(read_a_while)
    reader.join(5)
    starved = reader.is_alive()
    stop.set()
    writer.join(5)
    reader.join(5)
    assert not starved and reads[0] > 20, reads  # each release lets the waiting reader in first


def test_a_writer_may_read_and_write_again_but_a_reader_may_not_write():
    lock = ReadWriteLock()
    lock.acquire_write()
    lock.acquire_read()
    lock.acquire_write()
    lock.release_write()
    lock.release_read()
    lock.release_write()
    lock.acquire_read()
    with pytest.raises(RuntimeError, match="would wait for itself"):
        lock.acquire_write()
    lock.release_read()
    assert lock.state == (0, False, 0)


@pytest.mark.parametrize("lock_free_reads", [True, False], ids=["gil-fast-path", "mutex-path"])
def test_no_reader_is_ever_inside_while_a_writer_is(monkeypatch, lock_free_reads):
    """The lock-free read path (token + gate handshake) and the mutex path exclude writers alike."""
    from vecsearch import concurrency

    monkeypatch.setattr(concurrency, "LOCK_FREE_READS", lock_free_reads)
    lock = ReadWriteLock()
    inside = {"readers": 0, "writer": False}
    counter_lock = threading.Lock()
    violations, reads, writes = [], [0], [0]
    stop = threading.Event()

    def read_loop():
        while not stop.is_set():
            lock.acquire_read()
            with counter_lock:
                inside["readers"] += 1
                if inside["writer"]:
                    violations.append("reader entered during a write")
            lock.acquire_read()  # nested reads never queue
            lock.release_read()
            with counter_lock:
                inside["readers"] -= 1
                reads[0] += 1
            lock.release_read()

    def write_loop():
        while not stop.is_set():
            lock.acquire_write()
            with counter_lock:
                if inside["readers"]:
                    violations.append("writer entered during a read")
                inside["writer"] = True
            lock.acquire_read()  # a writer reading its own state
            lock.release_read()
            with counter_lock:
                inside["writer"] = False
                writes[0] += 1
            lock.release_write()

    threads = [_in_thread(read_loop) for _ in range(3)] + [_in_thread(write_loop)]
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join(5)
    assert not any(t.is_alive() for t in threads), "a thread is stuck: deadlock"
    assert not violations, violations[:3]
    assert reads[0] > 100 and writes[0] > 10, (reads, writes)
    assert lock.state == (0, False, 0)


@pytest.mark.parametrize("record", registry.all_types(), ids=lambda r: r.name)
def test_every_reader_and_writer_of_every_index_type_is_locked(record):
    for name in READER_METHODS + WRITER_METHODS:
        method = getattr(record.cls, name, None)
        if method is not None:
            assert getattr(method, "__vecsearch_locked__", False), f"{record.name}.{name} is not locked"


def test_a_search_waits_while_a_write_is_applied():
    index = vs.FlatIndex(4, "l2")
    index.add(np.eye(4, dtype=np.float32))
    index.rwlock.acquire_write()  # a writer in the middle of its work
    done = threading.Event()
    t = _in_thread(lambda: (index.search(np.ones(4, np.float32), 2), done.set()))
    time.sleep(0.05)
    assert not done.is_set()
    index.rwlock.release_write()
    t.join(5)
    assert done.is_set()


@pytest.mark.parametrize("record", registry.all_types(), ids=lambda r: r.name)
def test_searches_alongside_one_writer_never_crash_or_see_a_torn_state(record):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    totals = {"runs": 0, "passed": 0, "crashed": 0, "searches": 0, "writes": 0}
    failures = []
    for _ in range(STRESS_RUNS):
        proc = subprocess.run([sys.executable, str(Path(__file__).parent / "stress.py"), record.name, str(STRESS_SECONDS)],
                              capture_output=True, text=True, check=False, env=env, timeout=300)
        totals["runs"] += 1
        if proc.returncode != 0:
            totals["crashed"] += 1
            failures.append(f"the stress child died (exit code {proc.returncode}): {proc.stderr[-2000:]}")
            continue
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        totals["searches"] += result["searches"]
        totals["writes"] += result["writes"]
        if result["errors"] or result["searches"] < 50 or result["writes"] < 5:
            failures.append(str(result))
        else:
            totals["passed"] += 1
    reporting.record({f"stress/{record.name}": totals})
    assert not failures, failures[:3]
