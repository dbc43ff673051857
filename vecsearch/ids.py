"""IdMap: external int64 ids <-> internal slots (row numbers of an index's storage).

Memory: ``slot_to_id`` (8 B per slot), ``deleted`` (1 B per slot) and an int32 open-addressing
table of the live slots (:mod:`vecsearch.kernels.id_table`) whose keys are read back through
``slot_to_id``. The table is a power of two kept at most ``MAX_LOAD`` full (live entries plus
tombstones) and rebuilt at the size for ``MAX_LOAD`` when inserts would pass that, so right after
a rebuild it is between ``MAX_LOAD / 2`` and ``MAX_LOAD`` full: 5.3-10.7 B per live id, 14.3-19.7 B
per id in all when no slot is deleted, plus 1 B per slot while :meth:`IdMap.live` caches its mask
(17.4 B per id at 1M sequential ids; the dict this replaced took ~115 B per id). Removals shrink
the table once it is less than a quarter of ``MAX_LOAD`` full.

Concurrency: writers run one at a time (the index layer's lock). A reader that runs while a
writer works may see the old or the new state but never indexes out of bounds: arrays that
change size are built in full and then swapped in by one attribute assignment, in-place writes
only touch slots no table entry points to yet, and the kernels treat a table entry past the end
of the ``slot_to_id`` they were given as a miss.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from .kernels.id_table import EMPTY, build_table, find_slot, insert_slots, lookup_ids, remove_slots
from .validation import as_external_ids

# Versions of IdMap states, unique across all IdMap objects of the process (a cache keyed by a
# version can never mistake one index's ids for another's).
_IDMAP_VERSIONS = itertools.count(1)

MAX_ID = np.iinfo(np.int64).max
MAX_SLOTS = int(np.iinfo(np.int32).max)  # the table stores slots as int32
MAX_LOAD = 0.75  # (live entries + tombstones) / capacity before the table is rebuilt larger
MIN_CAPACITY = 16


def table_capacity(n_live: int) -> int:
    """The power of two (>= MIN_CAPACITY) holding ``n_live`` entries at most ``MAX_LOAD`` full."""
    capacity = MIN_CAPACITY
    while n_live > capacity * MAX_LOAD:
        capacity *= 2
    return capacity


def new_table(
    n_live: int, slot_to_id: np.ndarray, deleted: np.ndarray
) -> tuple[np.ndarray, int, int]:
    """``(table, bad, other)``: a table sized for ``n_live`` with the live slots (build_table)."""
    table = np.full(table_capacity(n_live), EMPTY, np.int32)
    bad, other = build_table(table, slot_to_id, deleted)
    return table, int(bad), int(other)


def _kernel_ids(values: Any, name: str) -> np.ndarray:
    """``values`` as a C-contiguous, writable int64 1-D array: one kernel signature for all."""
    arr = np.asarray(values)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name}: expected integer ids, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr.reshape(-1), dtype=np.int64)
    return arr if arr.flags.writeable else arr.copy()


class IdMap:
    """External int64 ids <-> internal slots (int32 row numbers of the index's storage).

    ``slot_to_id[s]`` is the external id stored at slot ``s``; a removed slot keeps its row but is
    flagged in ``deleted`` so graph indexes can still route through it.
    """

    def __init__(self, slot_to_id: np.ndarray | None = None, deleted: np.ndarray | None = None):
        """Empty, or restored from ``slot_to_id`` (int64 (n,)) and ``deleted`` (bool (n,)).

        Raises ``ValueError`` naming the array when they do not form a valid map: wrong dtype or
        shape, a negative id on a live slot, or one id live at two slots.
        """
        slot_to_id = np.empty(0, np.int64) if slot_to_id is None else np.asarray(slot_to_id)
        if slot_to_id.ndim == 1 and slot_to_id.size == 0:
            slot_to_id = slot_to_id.astype(np.int64)  # np.asarray([]) is float64
        if slot_to_id.dtype.kind != "i" or slot_to_id.dtype.itemsize != 8 or slot_to_id.ndim != 1:
            raise ValueError(
                "slot_to_id: expected a 1-D int64 array, "
                f"got {slot_to_id.ndim}-D dtype {slot_to_id.dtype}"
            )
        n_slots = slot_to_id.shape[0]
        if n_slots > MAX_SLOTS:
            raise ValueError(f"slot_to_id: at most {MAX_SLOTS} slots are supported, got {n_slots}")
        deleted = np.zeros(n_slots, np.bool_) if deleted is None else np.asarray(deleted)
        if deleted.ndim == 1 and deleted.size == 0:
            deleted = deleted.astype(np.bool_)
        if deleted.dtype != np.bool_ or deleted.shape != (n_slots,):
            raise ValueError(
                f"deleted: expected a bool array of shape ({n_slots},) like slot_to_id, "
                f"got dtype {deleted.dtype} shape {deleted.shape}"
            )
        # Kernels write in place and compile once per array type: own writable, native-order
        # C arrays (a read-only memory map is copied, never written).
        slot_to_id = np.require(slot_to_id, np.int64, requirements=["C", "W"])
        deleted = np.require(deleted, np.bool_, requirements=["C", "W"])
        n_live = n_slots - int(np.count_nonzero(deleted))
        table, bad, other = new_table(n_live, slot_to_id, deleted)
        if bad >= 0:
            if other < 0:
                raise ValueError(
                    f"slot_to_id: live slot {bad} holds the negative id {slot_to_id[bad]}"
                )
            raise ValueError(
                f"slot_to_id: id {slot_to_id[bad]} is live at two slots ({other} and {bad})"
            )
        self.slot_to_id = slot_to_id
        self.deleted = deleted
        self._table = table
        self._n_live = n_live
        self._n_used = n_live  # table entries that are not EMPTY (live slots + tombstones)
        # Sequential ids continue after the largest id ever stored, removed ones included.
        self.next_id = max(int(slot_to_id.max()) + 1, 0) if n_slots else 0
        self._touch()

    # ---- state ----------------------------------------------------------------------------------
    @property
    def n_live(self) -> int:
        return self._n_live

    @property
    def n_slots(self) -> int:
        return int(self.slot_to_id.shape[0])

    def _touch(self) -> None:
        """Record a change of ``slot_to_id``/``deleted``: a new, process-unique ``version``.

        Called after the change, so a reader that read the old version cannot cache the new
        state under it for good (it is recomputed for the next version).
        """
        self.version = next(_IDMAP_VERSIONS)
        self._live: tuple[int, np.ndarray, int] | None = None

    def live(self) -> tuple[np.ndarray, int]:
        """``(mask bool (n_slots,), count)`` of the live slots; cached until the next change.

        The mask is shared: callers must not write to it.
        """
        cached = self._live
        version = self.version
        if cached is None or cached[0] != version:
            mask = ~self.deleted
            cached = (version, mask, int(np.count_nonzero(mask)))
            self._live = cached
        return cached[1], cached[2]

    def nbytes(self) -> int:
        """Bytes held by the map's arrays, for memory reports.

        ``slot_to_id``, ``deleted``, the hash table, and the mask :meth:`live` caches (1 B per slot,
        until the next change).
        """
        cached = self._live
        mask_bytes = 0 if cached is None else cached[1].nbytes
        return int(self.slot_to_id.nbytes + self.deleted.nbytes + self._table.nbytes + mask_bytes)

    # ---- writers --------------------------------------------------------------------------------
    def new_ids(self, ids: Any, n: int) -> np.ndarray:
        """Validate ids for ``n`` new vectors (sequential when None); reject ids already stored.

        Changes nothing: the caller stores the returned int64 (n,) ids with :meth:`append` or
        :meth:`assign`.
        """
        if ids is None:
            if n <= 0:
                return np.empty(0, np.int64)
            if self.next_id > MAX_ID - (n - 1):
                raise ValueError(
                    f"ids: sequential ids are exhausted: {n} more after {self.next_id - 1} "
                    "would pass 2**63-1; pass ids= explicitly"
                )
            # Offsets from the start: np.arange(start, stop) fails when stop is 2**63.
            return np.arange(n, dtype=np.int64) + np.int64(self.next_id)
        arr = _kernel_ids(as_external_ids(ids, n), "ids")
        self._reject_stored(arr, "ids")
        return arr

    def _reject_stored(self, ids: np.ndarray, name: str) -> None:
        slots = np.empty(ids.shape[0], np.int64)
        lookup_ids(self._table, self.slot_to_id, ids, slots)
        if (slots >= 0).any():
            value = int(ids[np.flatnonzero(slots >= 0)[0]])
            raise ValueError(f"{name}: id {value} is already in the index (remove it first)")

    def _check_new_ids(self, ids: Any, name: str) -> np.ndarray:
        arr = np.asarray(ids)
        if arr.ndim != 1:
            raise ValueError(f"{name}: expected a 1-D array of ids, got shape {arr.shape}")
        arr = _kernel_ids(arr, name)
        if arr.size and int(arr.min()) < 0:
            raise ValueError(
                f"{name}: expected non-negative ids (-1 marks padding), got {int(arr.min())}"
            )
        return arr

    @staticmethod
    def _collision(name: str, key: int, within_batch: bool) -> ValueError:
        if within_batch:
            return ValueError(f"{name}: duplicate id {key} within the batch")
        return ValueError(f"{name}: id {key} is already in the index (remove it first)")

    def append(self, ids: Any) -> np.ndarray:
        """Append ``ids`` (int64 (m,)) at new slots; returns the slots (int64 (m,)).

        Ids already live or repeated within ``ids`` raise ``ValueError`` and change nothing.
        """
        arr = self._check_new_ids(ids, "ids")
        start, m = self.n_slots, arr.shape[0]
        slots = np.arange(start, start + m, dtype=np.int64)
        if m == 0:
            return slots
        if start + m > MAX_SLOTS:
            raise ValueError(
                f"ids: at most {MAX_SLOTS} slots are supported, {start} + {m} would pass it"
            )
        slot_to_id = np.concatenate([self.slot_to_id, arr])
        deleted = np.concatenate([self.deleted, np.zeros(m, np.bool_)])
        table = self._table
        if self._n_used + m <= table.shape[0] * MAX_LOAD:
            bad, other, filled = insert_slots(table, slot_to_id, slots)
            self._n_used += filled
            if bad >= 0:
                raise self._collision("ids", int(arr[bad]), other >= start)
        else:
            table, bad, other = new_table(self._n_live + m, slot_to_id, deleted)
            if bad >= 0:  # bad >= start: the stored slots form a valid map
                raise self._collision("ids", int(slot_to_id[bad]), other >= start)
            self._n_used = self._n_live + m
        self.slot_to_id, self.deleted, self._table = slot_to_id, deleted, table
        self._n_live += m
        self.next_id = max(self.next_id, int(arr.max()) + 1)
        self._touch()
        return slots

    def assign(self, slots: Any, ids: Any) -> None:
        """Store ``ids`` (int64 (m,)) at removed ``slots`` (int (m,)), e.g. a graph reusing them.

        Slots out of range, live or repeated, and ids already live or repeated raise ``ValueError``
        and change nothing.
        """
        arr = self._check_new_ids(ids, "ids")
        slot_arr = self._check_slots(slots, "slots")
        m = arr.shape[0]
        if slot_arr.shape[0] != m:
            raise ValueError(f"slots: expected shape ({m},) to match ids, got {np.shape(slots)}")
        if m == 0:
            return
        if not self.deleted[slot_arr].all():
            bad = int(slot_arr[np.flatnonzero(~self.deleted[slot_arr])[0]])
            raise ValueError(f"slots: slot {bad} is live (only removed slots can be reused)")
        if np.unique(slot_arr).shape[0] != m:
            raise ValueError("slots: a slot is repeated within the batch")
        if self._n_used + m <= self._table.shape[0] * MAX_LOAD:
            # No table entry points to a removed slot: readers cannot reach these writes before
            # insert_slots links them.
            previous = self.slot_to_id[slot_arr]
            self.slot_to_id[slot_arr] = arr
            bad, other, filled = insert_slots(self._table, self.slot_to_id, slot_arr)
            self._n_used += filled
            if bad >= 0:
                self.slot_to_id[slot_arr] = previous
                raise self._collision("ids", int(arr[bad]), bool((slot_arr == other).any()))
            self.deleted[slot_arr] = False
        else:
            slot_to_id, deleted = self.slot_to_id.copy(), self.deleted.copy()
            slot_to_id[slot_arr] = arr
            deleted[slot_arr] = False
            table, bad, other = new_table(self._n_live + m, slot_to_id, deleted)
            if bad >= 0:
                within = bool((slot_arr == bad).any() and (slot_arr == other).any())
                raise self._collision("ids", int(slot_to_id[bad]), within)
            self.slot_to_id, self.deleted, self._table = slot_to_id, deleted, table
            self._n_used = self._n_live + m
        self._n_live += m
        self.next_id = max(self.next_id, int(arr.max()) + 1)
        self._touch()

    def _check_slots(self, slots: Any, name: str) -> np.ndarray:
        arr = np.asarray(slots)
        if arr.ndim != 1:
            raise ValueError(f"{name}: expected a 1-D array of slots, got shape {arr.shape}")
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"{name}: expected integer slots, got dtype {arr.dtype}")
        arr = _kernel_ids(arr, name)
        if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= self.n_slots):
            bad = int(arr[(arr < 0) | (arr >= self.n_slots)][0])
            raise ValueError(f"{name}: slot {bad} is out of range [0, {self.n_slots})")
        return arr

    def mark_deleted(self, slots: Any) -> None:
        """Flag ``slots`` (int (m,)) deleted and forget their ids; deleted slots are skipped.

        A slot already deleted may hold an id that lives on at another slot: that id stays.
        """
        slot_arr = self._check_slots(slots, "slots")
        removed = remove_slots(self._table, self.slot_to_id, self.deleted, slot_arr)
        self._n_live -= int(removed)
        if self._table.shape[0] > table_capacity(2 * self._n_live):
            # Below a quarter of MAX_LOAD: shrink. The gap to the growth threshold keeps an
            # add/remove cycle near a boundary from rebuilding every time.
            self._table = new_table(self._n_live, self.slot_to_id, self.deleted)[0]
            self._n_used = self._n_live
        self._touch()

    def compact(self, keep: Any) -> None:
        """Keep only the slots in ``keep`` (sorted int64), renumbering them 0..len(keep)-1.

        ``next_id`` is kept: ids of dropped slots are not handed out again as sequential ids.
        """
        keep_arr = self._check_slots(keep, "keep")
        if keep_arr.shape[0] > 1 and not (keep_arr[1:] > keep_arr[:-1]).all():
            raise ValueError("keep: expected strictly increasing slots")
        slot_to_id = self.slot_to_id[keep_arr]
        deleted = self.deleted[keep_arr]
        n_live = keep_arr.shape[0] - int(np.count_nonzero(deleted))
        table = new_table(n_live, slot_to_id, deleted)[0]  # a subset of a valid map
        self.slot_to_id, self.deleted, self._table = slot_to_id, deleted, table
        self._n_live = self._n_used = n_live
        self._touch()

    # ---- readers --------------------------------------------------------------------------------
    def slots_of(self, ids: Any, name: str = "ids") -> np.ndarray:
        """Sorted unique slots (int64) of the live ids among ``ids`` (unknown or removed: skipped).

        ``name`` is the argument named in a ``TypeError`` for non-integer ids.
        """
        arr = _kernel_ids(ids, name)
        slots = np.empty(arr.shape[0], np.int64)
        lookup_ids(self._table, self.slot_to_id, arr, slots)
        # np.sort and a neighbour test: np.unique (hash-based in numpy >= 2.3) took 0.7 s at 1M.
        found = np.sort(slots[slots >= 0])
        return found[np.concatenate(([True], found[1:] != found[:-1]))] if found.size else found

    def to_external(self, slots: np.ndarray) -> np.ndarray:
        """Map internal slots (any shape, -1 = padding) to external ids (-1 stays -1)."""
        slot_to_id = self.slot_to_id
        slots = np.asarray(slots)
        out = np.full(slots.shape, -1, dtype=np.int64)
        valid = slots >= 0
        out[valid] = slot_to_id[slots[valid]]
        return out

    def contains(self, external_id: int) -> bool:
        """True when ``external_id`` is stored and not removed."""
        return self.slot_of(external_id) >= 0

    def slot_of(self, external_id: int) -> int:
        """The slot of one live external id, or -1 when it is unknown or removed."""
        key = int(external_id)
        if not 0 <= key <= MAX_ID:
            return -1
        return int(find_slot(self._table, self.slot_to_id, key))

    def lookup(self, ids: Any) -> np.ndarray:
        """Slots (int64, the shape of ``ids``) aligned with ``ids``; -1 where unknown or removed."""
        shape = np.shape(ids)
        arr = _kernel_ids(ids, "ids")
        out = np.empty(arr.shape[0], np.int64)
        lookup_ids(self._table, self.slot_to_id, arr, out)
        return out.reshape(shape)
