"""Per-index cache of compiled filters: a filter repeated across calls is compiled once.

Keyed by the predicate's structure (:attr:`vecsearch.filtering.predicates.Expr.key`) and the
versions of the index's ids and attributes, so any change to either makes older entries stale.
"""

from __future__ import annotations

import collections
import threading
from typing import Any

from .attributes import AttributeStore
from .compile import AllowedSlots, compile_where
from .predicates import parse_where

# At most this many entries per index, and at most this many bytes of masks (one byte per slot
# each; an index of 32M slots caches none).
MAX_ENTRIES = 16
MAX_BYTES = 32 << 20


class CompiledFilterCache:
    """LRU of :class:`AllowedSlots` by (predicate structure, ids version, attributes version); thread-safe."""

    def __init__(self) -> None:
        self._entries: collections.OrderedDict[tuple, AllowedSlots] = collections.OrderedDict()
        self._lock = threading.Lock()

    def compile(self, where: Any, ids: Any, store: AttributeStore | None) -> AllowedSlots:
        """The live slots of ``ids`` (an :class:`vecsearch.ids.IdMap`) whose attributes in ``store``
        (synced to ``ids``) satisfy ``where``; cached."""
        expr = parse_where(where)
        key = (expr.key, ids.version, 0 if store is None else store.version)
        with self._lock:
            allowed = self._entries.get(key)
            if allowed is not None:
                self._entries.move_to_end(key)
                return allowed
        live, n_live = ids.live()
        allowed = compile_where(expr, store, ids.deleted, live=live, n_live=n_live)
        max_entries = min(MAX_ENTRIES, MAX_BYTES // max(ids.n_slots, 1))
        with self._lock:
            for stale in [k for k in self._entries if k[1:] != key[1:]]:
                del self._entries[stale]
            if max_entries > 0:
                self._entries[key] = allowed
                while len(self._entries) > max_entries:
                    self._entries.popitem(last=False)
        return allowed

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
