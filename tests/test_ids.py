"""IdMap (vecsearch/ids.py): external int64 ids <-> slots through an int32 hash table."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vecsearch.ids import IdMap
from vecsearch.kernels.id_table import EMPTY, build_table, lookup_ids

MAX_ID = 2**63 - 1


def _filled(ids) -> IdMap:
    m = IdMap()
    m.append(m.new_ids(ids, len(ids)))
    return m


def _state(m: IdMap, probe=range(-2, 60)) -> tuple:
    """Everything a caller can observe of ``m`` (the probe ids cover the ids these tests use)."""
    probe = np.asarray(list(probe), np.int64)
    return (
        m.slot_to_id.tolist(),
        m.deleted.tolist(),
        m.version,
        m.n_live,
        m.n_slots,
        m.next_id,
        m.lookup(probe).tolist(),
        m.nbytes(),
    )


def _arrays_held(m: IdMap) -> list[np.ndarray]:
    """Every numpy array reachable from the map's attributes (directly or inside a tuple)."""
    found = []
    for value in vars(m).values():
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, np.ndarray):
                found.append(item)
    return found


# ---- rejected calls change nothing --------------------------------------------------------------
@pytest.mark.parametrize("n_new", [1, 40])  # fits the table / makes it grow
def test_duplicate_id_within_a_batch_is_rejected_and_leaves_the_map_unchanged(n_new):
    m = _filled([1, 2, 3])
    batch = list(range(10, 10 + n_new)) + [10]
    before = _state(m)
    with pytest.raises(ValueError, match=r"ids: duplicate id 10 within the batch"):
        m.new_ids(batch, len(batch))
    with pytest.raises(ValueError, match=r"ids: duplicate id 10 within the batch"):
        m.append(np.asarray(batch, np.int64))
    assert _state(m) == before


@pytest.mark.parametrize("n_new", [1, 40])
def test_id_already_stored_is_rejected_and_leaves_the_map_unchanged(n_new):
    m = _filled([1, 2, 3])
    batch = list(range(10, 10 + n_new)) + [2]
    before = _state(m)
    with pytest.raises(ValueError, match=r"ids: id 2 is already in the index"):
        m.new_ids(batch, len(batch))
    with pytest.raises(ValueError, match=r"ids: id 2 is already in the index"):
        m.append(np.asarray(batch, np.int64))
    assert _state(m) == before
    m.append(np.asarray(batch[:-1], np.int64))  # the rejected ids were not left half-stored
    assert m.lookup(np.asarray(batch[:-1])).tolist() == list(range(3, 3 + n_new))


@pytest.mark.parametrize(
    "ids, pattern", [([4, -1], "non-negative"), ([[4]], "1-D"), ([1.5], "integer")]
)
def test_bad_ids_for_append_are_rejected_naming_the_argument(ids, pattern):
    m = _filled([1, 2])
    before = _state(m)
    with pytest.raises((ValueError, TypeError), match=f"ids: .*{pattern}"):
        m.append(np.asarray(ids))
    assert _state(m) == before


@pytest.mark.parametrize("n_reused", [1, 20])  # fits the table / makes it grow
def test_assign_rejects_live_or_repeated_ids_and_live_slots_leaving_the_map_unchanged(n_reused):
    m = _filled(list(range(30)))
    m.mark_deleted(np.arange(n_reused))
    slots = np.arange(n_reused)
    fresh = np.arange(100, 100 + n_reused)
    before = _state(m, range(-2, 130))
    with pytest.raises(ValueError, match=r"ids: id 29 is already in the index"):
        m.assign(slots, np.append(fresh[:-1], 29))
    if n_reused > 1:
        with pytest.raises(ValueError, match=r"ids: duplicate id 100 within the batch"):
            m.assign(slots, np.append(fresh[:-1], 100))
    with pytest.raises(ValueError, match=r"slots: slot 29 is live"):
        m.assign(np.append(slots[:-1], 29), fresh)
    with pytest.raises(ValueError, match=r"slots: slot 30 is out of range"):
        m.assign(np.append(slots[:-1], 30), fresh)
    assert _state(m, range(-2, 130)) == before


# ---- removal, re-adding and slot reuse ---------------------------------------------------------
def test_removed_id_can_be_added_again_at_a_new_slot():
    m = _filled([7, 8, 9])
    m.mark_deleted(m.slots_of([8]))
    assert not m.contains(8) and m.slot_of(8) == -1 and m.n_live == 2
    assert m.new_ids([8], 1).tolist() == [8]
    assert m.append(np.array([8])).tolist() == [3]
    assert m.slot_of(8) == 3 and m.contains(8) and m.n_live == 3
    assert m.slot_to_id.tolist() == [7, 8, 9, 8]
    assert m.deleted.tolist() == [False, True, False, False]


def test_assign_reuses_a_removed_slot_for_a_new_id_or_the_same_id():
    m = _filled([7, 8, 9])
    m.mark_deleted(np.array([0, 1]))
    m.assign(np.array([1, 0]), np.array([50, 7]))
    assert m.lookup(np.array([7, 8, 9, 50])).tolist() == [0, -1, 2, 1]
    assert m.deleted.tolist() == [False, False, False] and m.n_live == 3 and m.next_id == 51


def test_removing_a_slot_twice_keeps_the_id_re_added_elsewhere():
    m = _filled([7, 8])
    m.mark_deleted(np.array([0]))
    m.append(np.array([7]))  # id 7 lives on at slot 2
    m.mark_deleted(np.array([0, 0]))  # slot 0 again: already deleted, must not forget id 7
    assert m.slot_of(7) == 2 and m.n_live == 2


def test_stored_ids_are_found_behind_removed_entries():
    # Removing every other id leaves tombstones inside most probe runs of the table.
    m = _filled(np.arange(10_000))
    m.mark_deleted(np.arange(0, 10_000, 2))
    for stored in range(1, 2000, 2):  # one id per call: inserted in place, not by a rebuild
        with pytest.raises(ValueError, match=f"ids: id {stored} is already in the index"):
            m.append(np.array([stored]))
    for removed in range(0, 2000, 2):
        m.append(np.array([removed]))
    ids = np.arange(10_000)
    expected = np.where(ids % 2 == 1, ids, -1)
    expected[:2000:2] = 10_000 + np.arange(1000)
    assert m.lookup(ids).tolist() == expected.tolist()


def test_one_by_one_appends_grow_the_table_and_keep_every_id():
    m = IdMap()
    for i in range(3000):
        m.append(np.array([7 * i]))
    assert m.lookup(7 * np.arange(3000)).tolist() == list(range(3000))
    assert m.lookup(7 * np.arange(3000) + 1).max() == -1


def test_removing_most_ids_shrinks_the_table():
    m = _filled(np.arange(100_000))
    before = m.nbytes()
    m.mark_deleted(np.arange(95_000))
    assert m.nbytes() < before
    assert m.lookup(np.arange(94_998, 95_002)).tolist() == [-1, -1, 95_000, 95_001]


# ---- compaction and readers ---------------------------------------------------------------------
def test_compact_renumbers_kept_slots_and_keeps_next_id():
    m = _filled([10, 11, 12, 13, 99])
    m.mark_deleted(m.slots_of([11, 99]))
    m.compact(np.array([0, 2, 3]))
    assert m.slot_to_id.tolist() == [10, 12, 13] and m.deleted.tolist() == [False] * 3
    assert m.lookup(np.array([10, 11, 12, 13, 99])).tolist() == [0, -1, 1, 2, -1]
    assert m.n_live == 3 and m.n_slots == 3
    assert m.next_id == 100  # id 99 was removed and dropped, but is not handed out again
    assert m.new_ids(None, 2).tolist() == [100, 101]


def test_compact_rejects_unsorted_or_out_of_range_keep():
    m = _filled([10, 11, 12])
    before = _state(m)
    with pytest.raises(ValueError, match="keep: expected strictly increasing"):
        m.compact(np.array([2, 0]))
    with pytest.raises(ValueError, match="keep: slot 3 is out of range"):
        m.compact(np.array([0, 3]))
    assert _state(m) == before


def test_to_external_keeps_padding():
    m = _filled([40, 41, 42])
    slots = np.array([[2, -1, 0], [-1, -1, 1]])
    assert m.to_external(slots).tolist() == [[42, -1, 40], [-1, -1, 41]]


def test_lookup_is_aligned_with_ids():
    m = _filled([5, 6, 7, 8])
    m.mark_deleted(m.slots_of([6]))
    ids = np.array([8, 6, 5, 1000, 8, -1, 7])
    assert m.lookup(ids).tolist() == [3, -1, 0, -1, 3, -1, 2]
    assert m.lookup(ids.reshape(7, 1)).shape == (7, 1)
    assert m.lookup(np.empty(0, np.int64)).shape == (0,)


def test_slots_of_returns_the_sorted_unique_slots_of_live_ids():
    m = _filled([5, 6, 7, 8])
    m.mark_deleted(m.slots_of([6]))
    assert m.slots_of([8, 5, 8, 6, 1000, -1]).tolist() == [0, 3]
    assert m.slots_of(7).tolist() == [2] and m.slots_of([]).tolist() == []
    with pytest.raises(TypeError, match="doc_ids: expected integer ids"):
        m.slots_of([1.5], name="doc_ids")


def test_contains_and_slot_of_answer_out_of_range_ids():
    m = _filled([0, MAX_ID])
    assert m.slot_of(MAX_ID) == 1 and m.contains(0)
    for outside in (-1, -(2**63), 2**63, 2**70):
        assert not m.contains(outside) and m.slot_of(outside) == -1


def test_version_is_unique_and_changes_on_every_change():
    a, b = IdMap(), IdMap()
    seen = {a.version, b.version}
    for change in (
        lambda: a.append(np.array([1, 2, 3])),
        lambda: a.mark_deleted(np.array([0])),
        lambda: a.assign(np.array([0]), np.array([9])),
        lambda: a.compact(np.array([0, 2])),
    ):
        change()
        assert a.version not in seen
        seen.add(a.version)
    mask, count = a.live()
    assert mask.tolist() == [True, True] and count == 2


# ---- sequential ids -----------------------------------------------------------------------------
def test_sequential_ids_continue_after_the_largest_id_ever_stored():
    m = _filled([3, 50, 4])
    m.mark_deleted(m.slots_of([50]))
    assert m.new_ids(None, 3).tolist() == [51, 52, 53]


def test_sequential_id_exhaustion_raises_a_clear_error():
    m = _filled([MAX_ID - 2])
    assert m.new_ids(None, 2).tolist() == [MAX_ID - 1, MAX_ID]
    with pytest.raises(ValueError, match=r"ids: sequential ids are exhausted.*pass ids="):
        m.new_ids(None, 3)
    m.append(np.array([MAX_ID]))
    with pytest.raises(ValueError, match=r"ids: sequential ids are exhausted.*pass ids="):
        m.new_ids(None, 1)
    assert m.new_ids(None, 0).shape == (0,)
    assert m.new_ids([5], 1).tolist() == [5]  # explicit ids still work


# ---- restoring from arrays ----------------------------------------------------------------------
def test_round_trip_through_the_arrays_restores_the_map():
    m = _filled(np.arange(0, 300, 3))
    m.mark_deleted(m.slots_of(np.arange(0, 300, 9)))
    m.append(np.array([0, 1000]))  # 0 is live again, at a new slot
    restored = IdMap(m.slot_to_id.copy(), m.deleted.copy())
    probe = np.arange(-1, 1002)
    assert restored.lookup(probe).tolist() == m.lookup(probe).tolist()
    assert (restored.n_live, restored.n_slots, restored.next_id) == (m.n_live, m.n_slots, m.next_id)
    assert restored.version != m.version


def test_restoring_keeps_what_removal_leaves_on_deleted_slots():
    # Deleted slots may hold anything: padding, or an id that is live again at another slot.
    m = IdMap(np.array([4, -1, 4, 9]), np.array([True, True, False, False]))
    assert m.lookup(np.array([4, 9, -1])).tolist() == [2, 3, -1] and m.n_live == 2


def test_restoring_from_read_only_arrays_leaves_them_untouched():
    ids, deleted = np.arange(5), np.zeros(5, bool)
    ids.flags.writeable = deleted.flags.writeable = False  # as from a memory-mapped file
    m = IdMap(ids, deleted)
    m.mark_deleted(np.array([1]))
    m.assign(np.array([1]), np.array([70]))
    assert ids.tolist() == [0, 1, 2, 3, 4] and not deleted.any()
    assert m.slot_of(70) == 1


@pytest.mark.parametrize(
    "slot_to_id, deleted, pattern",
    [
        (np.arange(3, dtype=np.int32), None, "slot_to_id: expected a 1-D int64"),
        (np.arange(4).reshape(2, 2), None, "slot_to_id: expected a 1-D int64"),
        (np.arange(3.0), None, "slot_to_id: expected a 1-D int64"),
        (np.arange(3), np.zeros(2, bool), r"deleted: expected a bool array of shape \(3,\)"),
        (np.arange(3), np.zeros(3, np.uint8), r"deleted: expected a bool array of shape \(3,\)"),
        (np.array([1, -5, 2]), None, "slot_to_id: live slot 1 holds the negative id -5"),
        (np.array([1, 2, 1]), None, r"slot_to_id: id 1 is live at two slots \(0 and 2\)"),
        (np.array([1, 2, 1, 2]), np.array([1, 0, 0, 0], bool), "slot_to_id: id 2 is live at two"),
    ],
)
def test_crafted_arrays_are_rejected_naming_the_array(slot_to_id, deleted, pattern):
    with pytest.raises(ValueError, match=pattern):
        IdMap(slot_to_id, deleted)


# ---- memory -------------------------------------------------------------------------------------
def test_nbytes_counts_every_array_the_map_holds():
    m = _filled(np.arange(1000))
    m.mark_deleted(np.arange(10))
    m.live()  # populate the cached mask too
    assert m.nbytes() == sum(a.nbytes for a in _arrays_held(m))


def test_one_million_ids_take_at_most_20_bytes_each():
    m = IdMap()
    for start in range(0, 1_000_000, 250_000):  # grows the table batch by batch
        m.append(m.new_ids(None, 250_000))
    m.live()
    assert m.n_live == 1_000_000
    assert m.nbytes() == sum(a.nbytes for a in _arrays_held(m))
    assert m.nbytes() / 1e6 <= 20
    restored = IdMap(m.slot_to_id, m.deleted)
    assert restored.nbytes() / 1e6 <= 20


# ---- concurrency --------------------------------------------------------------------------------
def test_reader_with_an_older_slot_array_sees_a_miss_not_out_of_bounds():
    # A reader that took slot_to_id before an append meets table entries of the new slots.
    grown = np.array([10, 11, 12], np.int64)
    table = np.full(16, EMPTY, np.int32)
    build_table(table, grown, np.zeros(3, np.bool_))
    older = grown[:1]  # a view: reading past its end would find 11 and 12 in memory
    out = np.empty(3, np.int64)
    lookup_ids(table, older, np.array([10, 11, 12], np.int64), out)
    assert out.tolist() == [0, -1, -1]


def test_readers_running_beside_a_writer_never_fail():
    m = _filled(np.arange(1000))
    errors: list[BaseException] = []
    done = threading.Event()
    probe = np.arange(-1, 5000, dtype=np.int64)
    most_slots = 1000 + 200 * 29  # the writer below appends at most 29 ids per step

    def read():
        try:
            while not done.is_set():
                slots = m.lookup(probe)
                assert slots.min() >= -1 and slots.max() < most_slots
                m.slots_of(probe)
                m.to_external(slots[slots >= 0][:10])
                m.contains(7)
                m.live()
        except BaseException as exc:  # noqa: BLE001 (reported by the main thread)
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    rng = np.random.default_rng(0)
    try:
        for step in range(200):
            m.append(m.new_ids(None, int(rng.integers(1, 30))))
            live = np.flatnonzero(~m.deleted)
            m.mark_deleted(rng.choice(live, size=min(10, live.size), replace=False))
            if step % 50 == 49:
                m.compact(np.flatnonzero(~m.deleted))
    finally:
        done.set()
        reader.join()
    assert not errors, errors


# ---- against a dict model -----------------------------------------------------------------------
_ID = st.integers(0, 40)
_OP = st.one_of(
    st.tuples(st.just("add"), st.lists(_ID, max_size=14)),
    st.tuples(st.just("add_sequential"), st.integers(0, 25)),
    st.tuples(st.just("remove"), st.lists(st.integers(-1, 45), max_size=8)),
    st.tuples(st.just("reuse"), st.lists(_ID, max_size=6)),
    st.tuples(st.just("compact"), st.booleans()),
    st.tuples(st.just("restore"), st.booleans()),
)


class _Model:
    """The map as plain Python: slot lists plus a dict of the live ids."""

    def __init__(self) -> None:
        self.slot_ids: list[int] = []
        self.deleted: list[bool] = []
        self.live: dict[int, int] = {}
        self.next_id = 0

    def accepts(self, ids: list[int]) -> bool:
        return len(set(ids)) == len(ids) and not any(i in self.live for i in ids)

    def store(self, slots: list[int], ids: list[int]) -> None:
        for slot, i in zip(slots, ids):
            if slot == len(self.slot_ids):
                self.slot_ids.append(i)
                self.deleted.append(False)
            self.slot_ids[slot], self.deleted[slot] = i, False
            self.live[i] = slot
        self.next_id = max([self.next_id, *(i + 1 for i in ids)])


@settings(max_examples=80, deadline=None)
@given(ops=st.lists(_OP, max_size=25))
def test_id_map_matches_a_dict_model(ops):
    m, model = IdMap(), _Model()
    for op, arg in ops:
        before = _state(m)
        if op in ("add", "add_sequential"):
            ids = list(range(model.next_id, model.next_id + arg)) if op == "add_sequential" else arg
            if model.accepts(ids):
                got = m.new_ids(None if op == "add_sequential" else ids, len(ids))
                assert got.tolist() == ids
                slots = list(range(len(model.slot_ids), len(model.slot_ids) + len(ids)))
                assert m.append(got).tolist() == slots
                model.store(slots, ids)
            else:
                with pytest.raises(ValueError, match="ids: "):
                    m.new_ids(ids, len(ids))
                with pytest.raises(ValueError, match="ids: "):
                    m.append(np.asarray(ids, np.int64))
                assert _state(m) == before
        elif op == "remove":
            slots = m.slots_of(arg)
            assert slots.tolist() == sorted({model.live[i] for i in arg if i in model.live})
            m.mark_deleted(slots)
            for slot in slots.tolist():
                model.deleted[slot] = True
                del model.live[model.slot_ids[slot]]
        elif op == "reuse":
            free = [s for s, d in enumerate(model.deleted) if d][: len(arg)]
            ids = arg[: len(free)]
            if model.accepts(ids):
                m.assign(np.asarray(free, np.int64), m.new_ids(ids, len(ids)))
                model.store(free, ids)
            else:
                with pytest.raises(ValueError, match="ids: "):
                    m.assign(np.asarray(free, np.int64), np.asarray(ids, np.int64))
                assert _state(m) == before
        elif op == "compact":
            keep = [s for s, d in enumerate(model.deleted) if not d or arg and s % 2]
            m.compact(np.asarray(keep, np.int64))
            model.slot_ids = [model.slot_ids[s] for s in keep]
            model.deleted = [model.deleted[s] for s in keep]
            model.live = {i: s for s, i in enumerate(model.slot_ids) if not model.deleted[s]}
        else:  # restore: the arrays are all a saved index keeps, so next_id restarts from them
            m = IdMap(m.slot_to_id.copy(), m.deleted.copy())
            model.next_id = max([0, *(i + 1 for i in model.slot_ids)])
        assert m.slot_to_id.tolist() == model.slot_ids and m.deleted.tolist() == model.deleted
        assert m.n_live == len(model.live) and m.n_slots == len(model.slot_ids)
        assert m.next_id == model.next_id
        probe = list(range(-1, 47))
        assert m.lookup(np.asarray(probe)).tolist() == [model.live.get(i, -1) for i in probe]
        assert [m.slot_of(i) for i in (0, 7, 40)] == [model.live.get(i, -1) for i in (0, 7, 40)]
        assert m.live()[1] == len(model.live)
