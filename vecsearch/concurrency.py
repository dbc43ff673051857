"""The concurrency model of every index: many readers or one writer, through one readers-writer lock.

An index (:class:`vecsearch.base.Index`) owns one :class:`ReadWriteLock`. Its *reader* methods
(``search``, filters, ``get_state``/``save``, lookups) take it shared; its *writer* methods
(``add``, ``remove``, ``update_attributes``, ``train``, ``compact``) take it exclusively. So any
number of searches run in parallel (the kernels release the GIL), a writer waits until the
searches in flight are done, and searches that arrive while a writer waits or works wait for it:
no search ever sees a half-applied write (a torn id map, a graph mid-relink, a list mid-relayout).
A waiting writer blocks new readers, so a steady stream of searches cannot starve it; a released
write admits the searches that waited for it before the next write, so a writer in a loop cannot
starve the searches either (phase-fair).

The lock is re-entrant for the thread that holds it: a reader may call other readers (a
MultiVector search compiles its filter), a writer may call readers and writers (``add`` searches
the graph it extends). A thread holding only a read lock that asks to write raises ``RuntimeError``
instead of deadlocking (it would wait for itself).

Cost on the search path with no writer active: one uncontended mutex acquire and release on
entry and on exit plus a dict update (about 1.3 us per call in CPython, against single-query
searches of 50-600 us); measured against the lock-bypassed path by ``bench/bench_concurrency.py``
(README, "Threads").
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

# Method names wrapped automatically in every index class that defines them (see
# vecsearch.base.Index.__init_subclass__): a subclass cannot forget to lock a writer.
WRITER_METHODS = ("add", "remove", "update_attributes", "train", "compact")
READER_METHODS = (
    "search",
    "search_exact",
    "compile_where",
    "match",
    "get_attributes",
    "get_state",
    "save",
    "ids",
    "reconstruct",
    "memory_bytes",
    "__contains__",
    "candidates",
    "document_tokens",
    "list_sizes",
)
_LOCKED = "__vecsearch_locked__"


class ReadWriteLock:
    """Shared (read) / exclusive (write) lock, re-entrant per thread and phase-fair.

    A waiting writer blocks readers that arrive after it (writers are not starved by a stream of
    searches); when a writer releases the lock, the readers that were waiting for it are admitted
    before the next writer (searches are not starved by a writer that writes in a loop).
    """

    __slots__ = ("_admitted", "_cond", "_mutex", "_readers", "_readers_waiting", "_writer", "_writer_depth",
                 "_writers_waiting")

    def __init__(self) -> None:
        self._mutex = threading.Lock()  # held directly on the fast paths (cheaper than the Condition)
        self._cond = threading.Condition(self._mutex)
        self._readers: dict[int, int] = {}  # thread ident -> read depth
        self._writer = 0  # ident of the thread holding the write lock (0: none)
        self._writer_depth = 0
        self._writers_waiting = 0
        self._readers_waiting = 0
        self._admitted = 0  # readers let in ahead of the waiting writers by the last release_write

    def acquire_read(self) -> None:
        me = threading.get_ident()
        with self._mutex:
            if self._writer == me:  # a writer reading its own state
                self._writer_depth += 1
                return
            depth = self._readers.get(me)
            if depth:  # re-entrant: never wait behind a writer that waits for us
                self._readers[me] = depth + 1
                return
            if self._writer or self._writers_waiting:
                self._readers_waiting += 1
                try:
                    while True:
                        if not self._writer and (self._admitted or not self._writers_waiting):
                            self._admitted = max(self._admitted - 1, 0)
                            break
                        self._cond.wait()
                finally:
                    self._readers_waiting -= 1
                    if self._admitted > self._readers_waiting:  # a waiter left without its turn (interrupted)
                        self._admitted = self._readers_waiting
                        self._cond.notify_all()
            self._readers[me] = 1

    def release_read(self) -> None:
        me = threading.get_ident()
        with self._mutex:
            if self._writer == me:
                self._writer_depth -= 1
                return
            depth = self._readers[me] - 1
            if depth:
                self._readers[me] = depth
                return
            del self._readers[me]
            if not self._readers and self._writers_waiting:
                self._cond.notify_all()

    def acquire_write(self) -> None:
        me = threading.get_ident()
        with self._cond:
            if self._writer == me:
                self._writer_depth += 1
                return
            if me in self._readers:
                raise RuntimeError(
                    "index: a write (add/remove/update_attributes/train/compact) was called while this thread "
                    "is inside a read (search/save/...) of the same index; it would wait for itself"
                )
            self._writers_waiting += 1
            try:
                while self._writer or self._readers or self._admitted:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer, self._writer_depth = me, 1

    def release_write(self) -> None:
        with self._cond:
            self._writer_depth -= 1
            if self._writer_depth == 0:
                self._writer = 0
                self._admitted = self._readers_waiting  # their turn before the next writer
                self._cond.notify_all()

    @property
    def state(self) -> tuple[int, bool, int]:
        """``(threads reading, a thread writing, writers waiting)``, for tests and diagnostics."""
        with self._cond:
            return len(self._readers), bool(self._writer), self._writers_waiting


def reader(method: F) -> F:
    """Run ``method(self, ...)`` under ``self.rwlock`` shared."""
    if getattr(method, _LOCKED, False):
        return method

    @functools.wraps(method)
    def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
        lock = self.rwlock
        lock.acquire_read()
        try:
            return method(self, *args, **kwargs)
        finally:
            lock.release_read()

    setattr(locked, _LOCKED, True)
    return locked  # type: ignore[return-value]


def writer(method: F) -> F:
    """Run ``method(self, ...)`` under ``self.rwlock`` exclusively."""
    if getattr(method, _LOCKED, False):
        return method

    @functools.wraps(method)
    def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
        lock = self.rwlock
        lock.acquire_write()
        try:
            return method(self, *args, **kwargs)
        finally:
            lock.release_write()

    setattr(locked, _LOCKED, True)
    return locked  # type: ignore[return-value]


def lock_methods(cls: type) -> None:
    """Wrap the reader and writer methods ``cls`` itself defines (not inherited ones, already wrapped)."""
    for names, wrap in ((WRITER_METHODS, writer), (READER_METHODS, reader)):
        for name in names:
            method = cls.__dict__.get(name)
            if callable(method) and not isinstance(method, (staticmethod, classmethod)):
                setattr(cls, name, wrap(method))
