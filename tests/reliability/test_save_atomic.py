"""Saves are atomic for the path: killed at any moment, the path holds the old or the new index, whole;
leftovers of killed saves are cleaned; a path that is not an index is never overwritten."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import vecsearch as vs

ROOT = Path(__file__).resolve().parents[2]
KILL_ROUNDS = int(os.environ.get("VECSEARCH_KILL_ROUNDS", "12"))  # more for the closing counts

sys.path.insert(0, str(Path(__file__).parent))
import reporting

# The child saves two different indexes to one path in turn, forever, printing each completed save.
_SAVER = """
import sys, numpy as np, vecsearch as vs
path = sys.argv[1]
rng = np.random.default_rng(0)
indexes = []
for n in (3000, 5000):
    index = vs.FlatIndex(64, "l2")
    index.add(rng.standard_normal((n, 64)).astype(np.float32), attributes={"n": [n] * n})
    indexes.append(index)
i = 0
while True:
    indexes[i % 2].save(path)
    print(i, flush=True)
    i += 1
"""


def test_kill_9_during_saves_always_leaves_a_whole_index_at_the_path(tmp_path):
    path = tmp_path / "idx"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    rng = np.random.default_rng(1)
    kills, passed = 0, 0
    for _ in range(KILL_ROUNDS):
        proc = subprocess.Popen([sys.executable, "-c", _SAVER, str(path)], stdout=subprocess.PIPE, env=env, text=True)
        if not path.exists():
            assert proc.stdout.readline().strip() == "0"  # the first save completed
        time.sleep(float(rng.uniform(0.0, 0.25)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        reporting.record({"kill9/save": {"tried": kills, "passed": passed}})
        index = vs.load(path)  # never missing, never half-written
        assert index.ntotal in (3000, 5000)
        assert index.get_attributes(int(index.ids()[0])) == {"n": index.ntotal}
        passed += 1
    reporting.record({"kill9/save": {"tried": kills, "passed": passed}})
    assert kills == passed == KILL_ROUNDS
    # The next save removes what killed saves left behind, and only that.
    vs.FlatIndex(64, "l2").save(path)
    manifest = json.loads((path / "manifest.json").read_text())
    named = {entry["file"] for entry in manifest["arrays"].values()}
    assert set(os.listdir(path)) == named | {"manifest.json", ".vecsearch.lock"}
    assert [p.name for p in tmp_path.iterdir()] == ["idx"]


def test_loads_running_alongside_saves_of_the_same_path_always_read_a_whole_index(tmp_path):
    import threading

    rng = np.random.default_rng(2)
    versions = []
    for n in (200, 300):
        index = vs.FlatIndex(16, "l2")
        index.add(rng.standard_normal((n, 16)).astype(np.float32))
        versions.append(index)
    versions[0].save(tmp_path / "idx")
    stop, errors, loads, saves = threading.Event(), [], [0], [0]

    def saver():
        while not stop.is_set():
            versions[saves[0] % 2].save(tmp_path / "idx")
            saves[0] += 1

    def loader():
        while not stop.is_set():
            try:
                assert vs.load(tmp_path / "idx", mmap=loads[0] % 2 == 1).ntotal in (200, 300)
                loads[0] += 1
            except Exception as exc:  # noqa: BLE001
                errors.append(repr(exc))
                stop.set()

    threads = [threading.Thread(target=saver), threading.Thread(target=loader)]
    for t in threads:
        t.start()
    # Until both sides made enough rounds (a busy machine slows them), at most 60 s.
    deadline = time.monotonic() + 60
    while not stop.is_set() and time.monotonic() < deadline and min(loads[0], saves[0]) < 20:
        time.sleep(0.02)
    stop.set()
    for t in threads:
        t.join(30)
    assert errors == [] and loads[0] >= 20 and saves[0] >= 20, (errors[:3], loads, saves)


def test_leftovers_of_a_killed_save_are_removed_by_the_next_load(tmp_path):
    index = vs.FlatIndex(4, "l2")
    index.add(np.eye(4, dtype=np.float32))
    index.save(tmp_path / "idx")
    (tmp_path / "idx" / "vectors.g99.npy").write_bytes(b"half a file")
    (tmp_path / "idx" / "manifest.json.g99.tmp").write_text("{")
    (tmp_path / "idx" / "notes.txt").write_text("mine")  # not ours: kept
    assert vs.load(tmp_path / "idx").ntotal == 4
    assert not (tmp_path / "idx" / "vectors.g99.npy").exists()
    assert not (tmp_path / "idx" / "manifest.json.g99.tmp").exists()
    assert (tmp_path / "idx" / "notes.txt").read_text() == "mine"


def test_save_refuses_a_directory_that_is_not_an_index_and_keeps_its_contents(tmp_path):
    target = tmp_path / "photos"
    target.mkdir()
    (target / "cat.jpg").write_bytes(b"meow")
    index = vs.FlatIndex(4, "l2")
    with pytest.raises(FileExistsError, match="not a vecsearch index"):
        index.save(target)
    assert os.listdir(target) == ["cat.jpg"]
    (target / "manifest.json").write_text('{"format": "someone-else"}')
    with pytest.raises(FileExistsError, match="not a vecsearch index"):
        index.save(target)


def test_save_refuses_a_regular_file_and_keeps_it(tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("precious")
    with pytest.raises(FileExistsError, match="not a directory"):
        vs.FlatIndex(4, "l2").save(target)
    assert target.read_text() == "precious"


def test_save_into_an_empty_directory_and_over_an_index_of_any_type(tmp_path):
    target = tmp_path / "empty"
    target.mkdir()
    flat = vs.FlatIndex(4, "l2")
    flat.add(np.eye(4, dtype=np.float32))
    flat.save(target)
    hnsw = vs.HNSWIndex(4, "l2", M=4)
    hnsw.add(np.eye(4, dtype=np.float32) + 1)
    hnsw.save(target)
    assert isinstance(vs.load(target), vs.HNSWIndex)


def test_a_memory_mapped_index_can_be_saved_onto_its_own_path(tmp_path):
    index = vs.FlatIndex(8, "l2")
    x = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    index.add(x)
    index.save(tmp_path / "idx")
    mapped = vs.load(tmp_path / "idx", mmap=True)
    mapped.add(x[:5] + 1)
    mapped.save(tmp_path / "idx")  # writes the new generation from the old one's mapped files
    again = vs.load(tmp_path / "idx")
    assert again.ntotal == 55
    np.testing.assert_array_equal(again.search(x[:3], 2).ids, mapped.search(x[:3], 2).ids)


def test_an_index_of_format_version_1_still_loads_and_is_replaced_whole(tmp_path):
    """The layout before atomic saves: <array>.npy files, no manifest checksum, vocabularies as
    numpy fixed-width strings (which is why version 1 lost trailing NUL characters)."""
    index = vs.FlatIndex(4, "l2")
    index.add(np.eye(4, dtype=np.float32), attributes={"s": ["a", "b", "abc", "d"], "t": [["x"], [], ["y", "x"], []]})
    index.save(tmp_path / "idx")
    d = tmp_path / "idx"
    manifest = json.loads((d / "manifest.json").read_text())
    arrays = {name: np.load(d / entry["file"]) for name, entry in manifest["arrays"].items()}
    for entry in manifest["arrays"].values():
        os.unlink(d / entry["file"])
    for name in [n for n in arrays if n.endswith("__vocab_bytes")]:
        raw, offsets = arrays.pop(name).tobytes(), arrays.pop(name.replace("bytes", "offsets")).tolist()
        arrays[name.replace("__vocab_bytes", "__vocab")] = np.array(
            [raw[a:b].decode() for a, b in itertools.pairwise(offsets)], dtype=str)
    manifest["arrays"] = {}
    for name, arr in arrays.items():
        np.save(d / f"{name}.npy", arr)
        manifest["arrays"][name] = {"file": f"{name}.npy", "dtype": arr.dtype.str, "shape": list(arr.shape),
                                    "nbytes": int(arr.nbytes), "checksum": _crc(arr)}
    del manifest["manifest_checksum"], manifest["generation"]
    manifest["format_version"] = 1
    (d / "manifest.json").write_text(json.dumps(manifest))
    old = vs.load(d)
    assert old.ntotal == 4 and old.get_attributes(2) == {"s": "abc", "t": ["y", "x"]}
    assert old.match(vs.F.t.contains("x")).tolist() == [0, 2] and old.match(vs.F.s == "d").tolist() == [3]
    old.save(d)
    assert not any(n.endswith(".npy") and ".g" not in n for n in os.listdir(d))
    assert vs.load(d).get_attributes(2) == {"s": "abc", "t": ["y", "x"]}


def _crc(arr: np.ndarray) -> str:
    import zlib

    return f"crc32:{zlib.crc32(np.ascontiguousarray(arr).reshape(-1).view(np.uint8)):08x}"
