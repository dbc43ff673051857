"""``vecsearch.parallel``: chunks of a batch on threads, statically cut or handed out on demand."""

from __future__ import annotations

import threading
import time

import numba
import pytest

from vecsearch.parallel import run_chunks, run_shared


@pytest.mark.parametrize("n_items, n_workers, grain", [(0, 2, 4), (1, 2, 4), (10, 1, 3), (100, 2, 7), (100, 4, 1),
                                                       (5, 8, 2)])
def test_run_shared_covers_every_item_exactly_once(n_items, n_workers, grain):
    seen = [0] * n_items
    workers = set()
    lock = threading.Lock()

    def fn(start, stop, worker):
        assert 0 < stop - start <= grain
        with lock:
            workers.add(worker)
            for i in range(start, stop):
                seen[i] += 1

    run_shared(fn, n_items, n_workers, grain)
    assert seen == [1] * n_items
    assert workers <= set(range(n_workers))


def test_run_shared_lets_a_fast_worker_take_the_chunks_a_slow_one_cannot():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("the shared pool has no second thread")
    taken = {0: 0, 1: 0}

    def fn(start, stop, worker):
        taken[worker] += 1
        if worker == 0:
            time.sleep(0.05)  # the calling thread is slowed (as if it waited for a core)

    run_shared(fn, 40, 2, grain=1)
    assert taken[0] + taken[1] == 40 and taken[1] > taken[0]  # a static cut would give each 20


def test_run_chunks_and_run_shared_raise_the_first_error():
    def fn(start, stop, worker):
        if start == 0:
            raise ValueError("boom")

    for run in (lambda: run_chunks(fn, 10, 2), lambda: run_shared(fn, 10, 2, 3)):
        with pytest.raises(ValueError, match="boom"):
            run()
