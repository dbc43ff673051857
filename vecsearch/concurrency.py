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

Cost on the search path with no writer active: no mutex. A reader appends a token to a list and
checks a flag a writer raises before it waits (``_gate``); on exit it pops the token. Under the GIL
a list append/pop and an attribute read are atomic and seen in program order by every thread, so
either the reader sees the raised gate (and backs off to the waiting path) or the writer sees the
token (and waits for it): the Dekker handshake, without a lock. Per-thread nesting depth lives in a
``threading.local``. About 0.4 us per acquire + release against 1.0 us for the mutex-and-dict version it replaced;
measured against the lock-bypassed search by ``bench/bench_concurrency.py`` (README, "Threads"). On
a free-threaded CPython build (``Py_GIL_DISABLED``) readers take the mutex instead.
"""

from __future__ import annotations

import functools
import sysconfig
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
# Readers skip the mutex only where the GIL makes list append/pop and attribute reads atomic and ordered.
LOCK_FREE_READS = not sysconfig.get_config_var("Py_GIL_DISABLED")


class _ThreadDepth(threading.local):
    """Per thread: how deep this thread holds one lock (see :class:`ReadWriteLock`); 0 until it does."""

    depth = 0  # a class default: reading it costs no AttributeError in a thread that never held the lock


class ReadWriteLock:
    """Shared (read) / exclusive (write) lock, re-entrant per thread and phase-fair.

    A waiting writer blocks readers that arrive after it (writers are not starved by a stream of
    searches); when a writer releases the lock, the readers that were waiting for it are admitted
    before the next writer (searches are not starved by a writer that writes in a loop).

    Per thread, ``_local.depth`` counts nested holds: ``> 0`` reads, ``< 0`` a write (a writer's
    own reads count down too), ``0`` none. ``_active`` holds one token per thread inside a read.
    ``_gate`` is True while a writer holds the lock or waits for it; every change of ``_gate``,
    ``_writer`` and the waiting counts happens under ``_mutex``.
    """

    __slots__ = ("_active", "_admitted", "_cond", "_gate", "_local", "_mutex", "_readers_waiting", "_writer",
                 "_writers_waiting")

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._cond = threading.Condition(self._mutex)
        self._local = _ThreadDepth()
        self._active: list[None] = []  # one token per thread reading (appended / popped without the mutex)
        self._gate = not LOCK_FREE_READS  # without the GIL every reader takes the waiting path
        self._writer = 0  # ident of the thread holding the write lock (0: none)
        self._writers_waiting = 0
        self._readers_waiting = 0
        self._admitted = 0  # readers let in ahead of the waiting writers by the last release_write

    def acquire_read(self) -> None:
        local = self._local
        depth = local.depth
        if depth:  # re-entrant (never wait behind a writer that waits for us), or a writer reading
            local.depth = depth + 1 if depth > 0 else depth - 1
            return
        active = self._active
        active.append(None)
        if self._gate:  # a writer holds the lock or waits: back off and queue
            active.pop()
            self._wait_to_read()
        local.depth = 1

    def _wait_to_read(self) -> None:
        with self._cond:
            if self._writers_waiting and not self._active:
                self._cond.notify_all()  # our backed-off token may have been the one a writer waited for
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
            self._active.append(None)

    def release_read(self) -> None:
        local = self._local
        depth = local.depth
        if depth != 1:
            local.depth = depth - 1 if depth > 0 else depth + 1
            return
        local.depth = 0
        active = self._active
        active.pop()
        if self._gate and not active:  # the last reader out lets a waiting writer in
            with self._cond:
                self._cond.notify_all()

    def acquire_write(self) -> None:
        local = self._local
        depth = local.depth
        if depth < 0:
            local.depth = depth - 1
            return
        if depth > 0:
            raise RuntimeError(
                "index: a write (add/remove/update_attributes/train/compact) was called while this thread "
                "is inside a read (search/save/...) of the same index; it would wait for itself"
            )
        with self._cond:
            self._writers_waiting += 1
            self._gate = True  # before reading _active: new readers now queue
            try:
                while self._writer or self._active or self._admitted:
                    self._cond.wait()
            except BaseException:
                self._writers_waiting -= 1
                self._gate = self._closed_gate()
                self._cond.notify_all()
                raise
            self._writers_waiting -= 1
            self._writer = threading.get_ident()
        local.depth = -1

    def release_write(self) -> None:
        local = self._local
        depth = local.depth
        if depth != -1:
            local.depth = depth + 1
            return
        local.depth = 0
        with self._cond:
            self._writer = 0
            self._admitted = self._readers_waiting  # their turn before the next writer
            self._gate = self._closed_gate()
            self._cond.notify_all()

    def _closed_gate(self) -> bool:
        return bool(self._writer or self._writers_waiting) or not LOCK_FREE_READS

    @property
    def state(self) -> tuple[int, bool, int]:
        """``(threads reading, a thread writing, writers waiting)``, for tests and diagnostics."""
        with self._cond:
            return len(self._active), bool(self._writer), self._writers_waiting


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
