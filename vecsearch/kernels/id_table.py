"""Open-addressing hash table from external int64 ids to int32 slots (for vecsearch.ids.IdMap).

The table stores slots only, never keys: entry ``table[p]`` (int32, capacity a power of two) is
``EMPTY``, ``TOMBSTONE`` (a removed entry that probes walk past) or a slot ``s`` whose key is read
back as ``slot_to_id[s]`` (int64 ``(n_slots,)``). That keeps an entry at 4 bytes instead of 12;
the price is a second memory access per occupied entry a probe meets. Collisions are resolved
by linear probing from :func:`home`. The table holds exactly the live slots: removing a slot
turns its entry into a tombstone, so a lookup never needs the ``deleted`` flags.

Readers never trust an entry to be in range: a slot ``>= slot_to_id.shape[0]`` counts as a miss.
A reader that holds an older, shorter ``slot_to_id`` while a writer inserts new slots into the
same table therefore skips them instead of reading out of bounds.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit

EMPTY = np.int32(-1)
TOMBSTONE = np.int32(-2)


@jit
def home(key, mask):
    """First probe position of int64 ``key`` in a table of ``mask + 1`` entries.

    The splitmix64 finalizer: sequential or strided ids (the common cases) spread over the whole
    table, where the identity hash would pile strided ids into a few runs of linear probing.
    """
    x = np.uint64(key)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    return np.int64(x & np.uint64(mask))


@jit
def find_slot(table, slot_to_id, key):
    """Slot of int64 ``key`` or -1; ``table`` int32 (capacity,), ``slot_to_id`` int64 (n_slots,)."""
    if key < 0:  # padding and negative values are never stored
        return np.int64(-1)
    n_slots = slot_to_id.shape[0]
    mask = table.shape[0] - 1
    pos = home(key, mask)
    for _ in range(table.shape[0]):  # bounded even if a concurrent writer left no EMPTY entry
        s = table[pos]
        if s == EMPTY:
            return np.int64(-1)
        if s >= 0 and s < n_slots and slot_to_id[s] == key:
            return np.int64(s)
        pos = (pos + 1) & mask
    return np.int64(-1)


@jit
def lookup_ids(table, slot_to_id, ids, out):
    """``out[i]`` = slot of ``ids[i]`` or -1. ``ids`` int64 (n,), ``out`` int64 (n,)."""
    for i in range(ids.shape[0]):
        out[i] = find_slot(table, slot_to_id, ids[i])


@jit
def _take_entry(table, slot_to_id, slot):
    """Turn the entry of ``slot`` into a tombstone; False when ``slot`` has no entry."""
    mask = table.shape[0] - 1
    pos = home(slot_to_id[slot], mask)
    for _ in range(table.shape[0]):
        s = table[pos]
        if s == EMPTY:
            return False
        if s == slot:
            table[pos] = TOMBSTONE
            return True
        pos = (pos + 1) & mask
    return False


@jit
def insert_slots(table, slot_to_id, slots):
    """Insert ``slots`` (int64 (m,)) keyed by ``slot_to_id[slots]`` into ``table`` in place.

    The caller guarantees room (live entries + tombstones + m below capacity). Stops at the first
    key already present (stored earlier or earlier in ``slots``), removes the entries it made and
    returns ``(i, other)``: ``slots[i]`` collides with slot ``other``. ``(-1, -1)`` on success.
    Also returns the number of EMPTY entries consumed (each now holds a slot or a tombstone).
    """
    n_slots = slot_to_id.shape[0]
    mask = table.shape[0] - 1
    filled = 0
    for i in range(slots.shape[0]):
        slot = slots[i]
        key = slot_to_id[slot]
        pos = home(key, mask)
        free = np.int64(-1)
        for _ in range(table.shape[0]):
            s = table[pos]
            if s == EMPTY:
                break
            if s == TOMBSTONE:
                if free < 0:
                    free = pos
            elif s < n_slots and slot_to_id[s] == key:
                for j in range(i):
                    _take_entry(table, slot_to_id, slots[j])
                return np.int64(i), np.int64(s), filled
            pos = (pos + 1) & mask
        if free < 0:
            free = pos
            filled += 1
        table[free] = np.int32(slot)
    return np.int64(-1), np.int64(-1), filled


@jit
def remove_slots(table, slot_to_id, deleted, slots):
    """Flag ``slots`` (int64 (m,), in range) in ``deleted`` (bool (n_slots,)), tombstone entries.

    Slots already deleted are skipped (their id may live on at another slot). Returns how many
    slots were newly deleted.
    """
    removed = 0
    for i in range(slots.shape[0]):
        slot = slots[i]
        if deleted[slot]:
            continue
        _take_entry(table, slot_to_id, slot)
        deleted[slot] = True
        removed += 1
    return removed


@jit
def build_table(table, slot_to_id, deleted):
    """Fill ``table`` (int32 (capacity,), a power of two, all ``EMPTY``) with every live slot.

    Returns ``(bad, other)``: ``bad = -1`` on success; otherwise live slot ``bad`` holds a negative
    id (``other = -1``) or the same id as live slot ``other < bad``. The caller allocates the
    table (numpy's np.full doubles this kernel's compile time) and guarantees room for every slot.
    """
    mask = table.shape[0] - 1
    for slot in range(slot_to_id.shape[0]):
        if deleted[slot]:
            continue
        key = slot_to_id[slot]
        if key < 0:
            return np.int64(slot), np.int64(-1)
        pos = home(key, mask)
        while table[pos] != EMPTY:
            if slot_to_id[table[pos]] == key:
                return np.int64(slot), np.int64(table[pos])
            pos = (pos + 1) & mask
        table[pos] = np.int32(slot)
    return np.int64(-1), np.int64(-1)
