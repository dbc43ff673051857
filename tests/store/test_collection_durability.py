"""Collection durability: a writer killed mid-batch loses nothing committed (records, vectors and the
keyword index alike); torn log tails are discarded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vecsearch.store.collection import Collection
from vecsearch.store.keyword import KeywordIndex
from vecsearch.store.wal import WALCorruptError, encode_record

DIM = 16

# Batch j adds ids "b<j>-<i>" (vectors from a seeded RNG, so the parent can recompute them) with
# documents; every 4th batch also deletes batch j-2, upserts one record of batch j-1 and updates
# the document of another. After each call returns, the writer prints one line naming it;
# everything printed before SIGKILL must survive, in the records and in the keyword index.
WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from vecsearch.store.collection import Collection

    path, dim = sys.argv[1], int(sys.argv[2])
    col = Collection(path, dim=dim, metric="l2", index="flat", checkpoint_bytes=150_000)
    print("ready", flush=True)
    j = 0
    while True:
        rng = np.random.default_rng(j)
        vecs = rng.normal(size=(40, dim)).astype(np.float32)
        ids = [f"b{j}-{i}" for i in range(40)]
        col.add(ids, vecs, documents=[f"doc {x}" for x in ids], metadatas=[{"batch": j, "i": i} for i in range(40)])
        print(f"add {j}", flush=True)
        if j % 4 == 3:
            col.delete(where={"batch": j - 2})
            print(f"delete {j - 2}", flush=True)
            col.upsert([f"b{j - 1}-0"], np.full((1, dim), float(j), np.float32), documents=["upserted"])
            print(f"upsert {j - 1}", flush=True)
            col.update([f"b{j - 1}-1"], documents=[f"updated doc b{j - 1}-1"])
            print(f"update {j - 1}", flush=True)
        j += 1
    """
)


def _batch(j: int) -> np.ndarray:
    return np.random.default_rng(j).normal(size=(40, DIM)).astype(np.float32)


def _run_and_kill(path: str, min_lines: int) -> list[str]:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, path, str(DIM)], stdout=subprocess.PIPE, text=True)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line.strip())
            if len(lines) >= min_lines:
                break
        os.kill(proc.pid, signal.SIGKILL)
        rest = proc.stdout.read()  # lines printed (calls returned) before the kill
        lines += [x for x in rest.splitlines() if x.strip()]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return lines[1:]


def _ops():
    """The writer's calls in order, as (line it prints, function applying it to a model state)."""
    j = 0
    while True:
        def add(state, j=j):
            for i, v in enumerate(_batch(j)):
                state[f"b{j}-{i}"] = (f"doc b{j}-{i}", {"batch": j, "i": i}, v)

        yield f"add {j}", add
        if j % 4 == 3:
            def delete(state, b=j - 2):
                for key in [k for k, rec in state.items() if rec[1] is not None and rec[1]["batch"] == b]:
                    del state[key]

            def upsert(state, j=j):
                state[f"b{j - 1}-0"] = ("upserted", None, np.full(DIM, float(j), np.float32))

            def update(state, j=j):
                _, meta, vec = state[f"b{j - 1}-1"]
                state[f"b{j - 1}-1"] = (f"updated doc b{j - 1}-1", meta, vec)

            yield f"delete {j - 2}", delete
            yield f"upsert {j - 1}", upsert
            yield f"update {j - 1}", update
        j += 1


def _check_committed(col: Collection, lines: list[str]) -> None:
    """The reopened state is every reported call applied, plus possibly the one in flight, whole."""
    state: dict = {}
    ops = _ops()
    for line in lines:
        expected_line, apply = next(ops)
        assert line == expected_line
        apply(state)
    with_next = dict(state)
    next(ops)[1](with_next)
    got = col.get(include=["documents", "metadatas", "embeddings"])
    actual = {s: (d, m, e) for s, d, m, e in zip(got["ids"], got["documents"], got["metadatas"], got["embeddings"])}
    assert col.count() == len(actual)

    def same(model: dict) -> bool:
        return model.keys() == actual.keys() and all(
            model[k][0] == actual[k][0] and model[k][1] == actual[k][1] and np.array_equal(model[k][2], actual[k][2])
            for k in model
        )

    assert same(state) or same(with_next), "reopened state is neither the committed state nor it plus the call in flight"
    _check_keyword_index(col, actual)


def _check_keyword_index(col: Collection, records: dict) -> None:
    """The collection's keyword hits and BM25 scores equal those of an index built afresh from the
    surviving documents: no document lost, none half-indexed (statistics of a torn call would shift
    every score)."""
    sids = sorted(s for s, rec in records.items() if rec[0] is not None)
    fresh = KeywordIndex()
    fresh.add(np.arange(len(sids)), [records[s][0] for s in sids])
    batches = sorted({s.split("-")[0] for s in sids})
    for text in ["doc", "upserted", "updated", "updated doc", *batches]:
        got = col.query(search_text=text, n_results=len(records) + 1, include=["scores"])
        want_ids, want_scores = fresh.search(text, len(records) + 1)
        assert sorted(got["ids"][0]) == sorted(sids[i] for i in want_ids), text
        by_id = dict(zip(got["ids"][0], (h["keyword_score"] for h in got["scores"][0])))
        np.testing.assert_allclose([by_id[sids[i]] for i in want_ids], want_scores, rtol=1e-5, err_msg=text)


@pytest.mark.parametrize("min_lines", [25, 60])
def test_writer_killed_mid_batch_loses_no_committed_call(tmp_path, min_lines):
    path = str(tmp_path / "col")
    lines = _run_and_kill(path, min_lines)
    assert len(lines) >= min_lines - 1
    col = Collection(path)
    _check_committed(col, lines)
    # the reopened collection keeps working and stays durable
    col.add(["after"], np.ones((1, DIM), np.float32))
    col.close()
    assert "after" in Collection(path).get()["ids"]


def _crash(col: Collection) -> None:
    """Drop a collection as a killed process would: no snapshot, no clean close."""
    col._wal.close()
    col._dir.unlock()


def _three_batches(path: str) -> Collection:
    col = Collection(path, dim=4, metric="l2", index="flat")
    for j in range(3):
        col.add([f"{j}-{i}" for i in range(5)], np.full((5, 4), j, np.float32) + np.arange(5)[:, None])
    return col


@pytest.mark.parametrize("cut", [3, 12, 40])
def test_torn_last_record_is_discarded_and_later_writes_survive(tmp_path, cut):
    path = str(tmp_path / "col")
    col = _three_batches(path)
    wal = col._wal.path
    _crash(col)
    record = encode_record({"op": "add", "ids": ["torn"], "documents": [None], "metadatas": [None]},
                           {"vectors": np.ones((1, 4), np.float32)})
    with open(wal, "ab") as fh:
        fh.write(record[:cut])  # the crash cut this append short
    col = Collection(path)
    assert col.count() == 15 and "torn" not in col.get()["ids"]
    col.add(["later"], np.ones((1, 4), np.float32))
    _crash(col)
    col = Collection(path)
    assert col.count() == 16 and "later" in col.get()["ids"]
    col.close()


def test_zero_filled_tail_is_treated_as_torn(tmp_path):
    path = str(tmp_path / "col")
    col = _three_batches(path)
    wal = col._wal.path
    _crash(col)
    with open(wal, "ab") as fh:
        fh.write(b"\0" * 100)
    col = Collection(path)
    assert col.count() == 15
    col.close()


def test_damaged_record_followed_by_data_is_reported_not_dropped(tmp_path):
    path = str(tmp_path / "col")
    col = _three_batches(path)
    wal = col._wal.path
    _crash(col)
    data = bytearray(wal.read_bytes())
    data[30] ^= 0xFF  # inside the first record's payload; two whole records follow
    wal.write_bytes(bytes(data))
    with pytest.raises(WALCorruptError, match="checksum"):
        Collection(path)


def test_crash_after_snapshot_rename_before_new_log_reopens_consistently(tmp_path):
    path = tmp_path / "col"
    col = _three_batches(str(path))
    col.checkpoint()
    col.add(["x"], np.ones((1, 4), np.float32))
    _crash(col)
    # simulate the next checkpoint dying right after renaming its snapshot: no wal-<G+1>.log yet
    gen = col._gen
    col = Collection(str(path))
    col._write_snapshot()
    (path / f"wal-{gen + 1}.log").unlink()
    _crash(col)
    col = Collection(str(path))
    assert col.count() == 16
    col.close()


def test_leftover_temporary_snapshot_is_ignored_and_removed(tmp_path):
    path = tmp_path / "col"
    col = _three_batches(str(path))
    _crash(col)
    junk = path / ".snap-9.tmp-abc"
    junk.mkdir()
    (junk / "garbage").write_bytes(b"x")
    col = Collection(str(path))
    assert col.count() == 15 and not junk.exists()
    col.close()


def test_corrupted_snapshot_is_detected_by_checksum(tmp_path):
    path = tmp_path / "col"
    col = _three_batches(str(path))
    col.close()
    snap = next(path.glob("snap-*"))
    target = snap / "records" / "payload.npy"
    data = bytearray(target.read_bytes())
    data[-3] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum"):
        Collection(str(path))


def test_checkpoint_that_cannot_start_its_log_is_withdrawn_and_nothing_is_lost(tmp_path, monkeypatch):
    import vecsearch.store.collection as collection_module

    path = tmp_path / "col"
    col = _three_batches(str(path))
    real_open = collection_module.WriteAheadLog.open

    def failing_open(self):
        if self.path.name != "wal-0.log":
            raise OSError("disk full")
        real_open(self)

    monkeypatch.setattr(collection_module.WriteAheadLog, "open", failing_open)
    with pytest.raises(OSError, match="disk full"):
        col.checkpoint()
    assert not list(path.glob("snap-*"))  # the half-switched snapshot was withdrawn
    col.add(["after"], np.ones((1, 4), np.float32))  # still logged to wal-0
    monkeypatch.undo()
    _crash(col)
    col = Collection(str(path))
    assert col.count() == 16 and "after" in col.get()["ids"]
    col.close()


def test_change_that_fails_to_apply_after_logging_blocks_further_use(tmp_path, monkeypatch):
    path = str(tmp_path / "col")
    col = _three_batches(path)

    def broken_add(*args, **kwargs):
        raise MemoryError("simulated")

    monkeypatch.setattr(col.index, "add", broken_add)
    with pytest.raises(MemoryError):
        col.add(["x"], np.ones((1, 4), np.float32))
    with pytest.raises(ValueError, match="reopen"):
        col.add(["y"], np.ones((1, 4), np.float32))
    monkeypatch.undo()
    col.close()  # no snapshot of the inconsistent memory state
    col = Collection(path)  # the replayed log applies the change that was logged
    assert col.count() == 16 and "x" in col.get()["ids"]
    col.close()


def test_damaged_length_field_is_reported_not_read_as_a_torn_tail(tmp_path):
    path = str(tmp_path / "col")
    col = _three_batches(path)
    wal = col._wal.path
    _crash(col)
    data = bytearray(wal.read_bytes())
    data[5] ^= 0x40  # the first record's length now points far past the end of the file
    wal.write_bytes(bytes(data))
    with pytest.raises(WALCorruptError, match="header"):
        Collection(path)


# ---- model-based: random operation sequences, crashes and clean reopens, against a dict model ----

_IDS = [f"k{i}" for i in range(8)]
_OP = st.one_of(
    st.tuples(st.just("upsert"), st.lists(st.sampled_from(_IDS), min_size=1, max_size=4, unique=True),
              st.integers(0, 3)),
    st.tuples(st.just("delete"), st.lists(st.sampled_from(_IDS), min_size=1, max_size=3, unique=True), st.just(0)),
    st.tuples(st.just("delete_where"), st.just([]), st.integers(0, 3)),
    st.tuples(st.just("crash"), st.just([]), st.just(0)),
    st.tuples(st.just("close"), st.just([]), st.just(0)),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(_OP, min_size=1, max_size=12), seed=st.integers(0, 2**16))
def test_random_operations_with_crashes_match_a_dict_model(tmp_path_factory, ops, seed):
    path = str(tmp_path_factory.mktemp("model") / "col")
    rng = np.random.default_rng(seed)
    model: dict[str, tuple] = {}
    col = Collection(path, dim=3, metric="l2", index="flat", checkpoint_bytes=600)
    for op, ids, tag in ops:
        if op == "upsert":
            vecs = rng.normal(size=(len(ids), 3)).astype(np.float32)
            col.upsert(ids, vecs, documents=[f"{i}@{tag}" for i in ids], metadatas=[{"tag": tag}] * len(ids))
            model.update({i: (f"{i}@{tag}", {"tag": tag}, v) for i, v in zip(ids, vecs)})
        elif op == "delete":
            assert col.delete(ids=ids) == sum(i in model for i in ids)
            for i in ids:
                model.pop(i, None)
        elif op == "delete_where":
            if model:  # the field exists once something was written
                col.delete(where={"tag": tag})
                model = {k: v for k, v in model.items() if v[1]["tag"] != tag}
        elif op == "crash":
            _crash(col)
            col = Collection(path)
        else:
            col.close()
            col = Collection(path)
        got = col.get(include=["documents", "metadatas", "embeddings"])
        assert sorted(got["ids"]) == sorted(model)
        for i, d, m, e in zip(got["ids"], got["documents"], got["metadatas"], got["embeddings"]):
            assert (d, m) == model[i][:2]
            np.testing.assert_array_equal(e, model[i][2])
        if model:
            _check_keyword_index(col, model)
    col.close()
