"""Persistence: atomic directory with manifest + .npy arrays; verified load; read-only mmap."""

from __future__ import annotations

import json

import numpy as np
import pytest

import vecsearch as vs


@pytest.fixture
def saved_flat(tmp_path, wordnet_train):
    index = vs.FlatIndex(384, "cosine")
    index.add(wordnet_train[:300], ids=np.arange(300) * 7)
    index.remove([0, 7])
    path = tmp_path / "flat"
    index.save(path)
    return index, path


@pytest.mark.parametrize("mmap", [False, True])
def test_save_load_round_trip_gives_identical_results(saved_flat, wordnet_queries_id, mmap):
    index, path = saved_flat
    loaded = vs.load(path, mmap=mmap)
    assert isinstance(loaded, vs.FlatIndex)
    assert (loaded.dim, loaded.metric, loaded.ntotal) == (384, "cosine", 298)
    a, b = index.search(wordnet_queries_id, 10), loaded.search(wordnet_queries_id, 10)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.distances, b.distances)


def test_mmap_load_is_read_only_and_still_accepts_adds(saved_flat, wordnet_train):
    _, path = saved_flat
    loaded = vs.load(path, mmap=True)
    assert not loaded.vectors.flags.writeable
    loaded.add(wordnet_train[300:310])
    assert loaded.ntotal == 308
    assert loaded.search(wordnet_train[305], 1).ids[0, 0] == 299 * 7 + 1 + 5  # sequential ids continue after the largest (2093)


def test_manifest_records_format_type_dim_metric_and_checksums(saved_flat):
    _, path = saved_flat
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format"] == "vecsearch-index" and manifest["format_version"] == 2
    assert (manifest["type"], manifest["dim"], manifest["metric"]) == ("flat", 384, "cosine")
    entry = manifest["arrays"]["vectors"]
    assert entry["shape"] == [298, 384] and entry["checksum"].startswith("crc32:")
    assert manifest["manifest_checksum"].startswith("crc32:")


def _array_file(path, name="vectors"):
    """The file of array ``name`` in the saved index at ``path`` (named per save generation)."""
    return path / json.loads((path / "manifest.json").read_text())["arrays"][name]["file"]


def test_saving_over_an_existing_index_replaces_it_whole(saved_flat, tmp_path, wordnet_train):
    _, path = saved_flat
    other = vs.FlatIndex(384, "l2")
    other.add(wordnet_train[:5])
    other.save(path)
    assert vs.load(path).ntotal == 5
    assert [p.name for p in tmp_path.iterdir()] == ["flat"]  # no temporary leftovers


def test_failed_save_leaves_previous_index_intact(saved_flat, monkeypatch):
    index, path = saved_flat
    import vecsearch.io as vio

    def broken_checksum(arr):
        raise OSError("disk full")

    monkeypatch.setattr(vio, "_checksum", broken_checksum)
    with pytest.raises(OSError):
        index.save(path)
    monkeypatch.undo()
    assert vs.load(path).ntotal == 298
    assert [p.name for p in path.parent.iterdir()] == ["flat"]


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(vs.IndexFileError, match="not an index directory"):
        vs.load(tmp_path / "nope")


def test_missing_manifest_is_a_clear_error(saved_flat):
    _, path = saved_flat
    (path / "manifest.json").unlink()
    with pytest.raises(vs.IndexFileError, match="missing manifest"):
        vs.load(path)


def test_missing_array_file_is_named(saved_flat):
    _, path = saved_flat
    file = _array_file(path)
    file.unlink()
    with pytest.raises(vs.IndexFileError, match=f"{file.name}: missing"):
        vs.load(path)


def test_truncated_array_file_is_detected(saved_flat):
    _, path = saved_flat
    file = _array_file(path)
    file.write_bytes(file.read_bytes()[:5000])
    with pytest.raises(vs.IndexFileError, match=file.name):
        vs.load(path)


@pytest.mark.parametrize("mmap", [False, True])
def test_edited_array_bytes_fail_the_checksum(saved_flat, mmap):
    _, path = saved_flat
    file = _array_file(path)
    data = bytearray(file.read_bytes())
    data[-10] ^= 0xFF
    file.write_bytes(bytes(data))
    with pytest.raises(vs.IndexFileError, match="checksum mismatch"):
        vs.load(path, mmap=mmap)


def _rewrite_manifest(path, manifest):
    """Write ``manifest`` with a matching manifest checksum, as a deliberate crafter would."""
    from vecsearch.io import manifest_checksum

    manifest["manifest_checksum"] = manifest_checksum(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_edited_manifest_fails_its_own_checksum(saved_flat):
    _, path = saved_flat
    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps({**manifest, "metric": "l2"}))
    with pytest.raises(vs.IndexFileError, match="manifest_checksum mismatch"):
        vs.load(path)


def test_edited_manifest_shape_is_detected(saved_flat):
    _, path = saved_flat
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["arrays"]["vectors"]["shape"] = [10, 384]
    manifest["arrays"]["vectors"]["nbytes"] = 10 * 384 * 4
    _rewrite_manifest(path, manifest)
    with pytest.raises(vs.IndexFileError, match="expected dtype"):
        vs.load(path)


def test_garbage_manifest_is_detected(saved_flat):
    _, path = saved_flat
    (path / "manifest.json").write_text("{not json")
    with pytest.raises(vs.IndexFileError, match="not valid JSON"):
        vs.load(path)


def test_unknown_type_and_newer_format_are_rejected(saved_flat):
    _, path = saved_flat
    manifest = json.loads((path / "manifest.json").read_text())
    _rewrite_manifest(path, {**manifest, "type": "mystery"})
    with pytest.raises(vs.IndexFileError, match="unknown index type 'mystery'"):
        vs.load(path)
    _rewrite_manifest(path, {**manifest, "format_version": 99})
    with pytest.raises(vs.IndexFileError, match="format_version 99"):
        vs.load(path)


def _readonly_specializations(dispatcher) -> list:
    """Compiled signatures of a numba kernel that take a read-only array."""
    from numba import types

    return [sig for sig in dispatcher.signatures if any(isinstance(t, types.Array) and not t.mutable for t in sig)]


@pytest.mark.parametrize("kind", ["hnsw", "ivfpq", "leanvec"])
def test_mapped_index_and_read_only_queries_reuse_the_compiled_kernels(tmp_path, wordnet_train, kind):
    """A memory-mapped index and read-only queries reach the search kernels as writable arrays, so
    numba never compiles a second (read-only) specialization of them (tens of seconds each).
    l2: cosine would hand the kernels normalized copies of the queries anyway."""
    from vecsearch.kernels import graph_walk as kw
    from vecsearch.kernels import ivf as kivf

    x = wordnet_train[:600]
    if kind == "hnsw":
        index, kernels = vs.HNSWIndex(384, "l2", M=8, ef_construction=32), (kw.search_rows,)
    elif kind == "ivfpq":
        index = vs.IVFPQIndex(384, "l2", nlist=8, m=16, keep_vectors=True)
        index.train(x)
        kernels = (kivf.ivfpq_search,)
    else:
        index = vs.LeanVecIndex(384, "l2", reduced_dim=32, M=8, ef_construction=32)
        index.train(x)
        kernels = (kw.search_rows,)
    index.add(x)
    index.save(tmp_path / kind)
    mapped = vs.load(tmp_path / kind, mmap=True)
    frozen = x[:40].copy()
    frozen.setflags(write=False)
    np.testing.assert_array_equal(mapped.search(frozen, 5).ids, index.search(x[:40], 5).ids)
    np.testing.assert_array_equal(mapped.search(frozen[3], 5).ids, index.search(x[3], 5).ids)
    for kernel in kernels:
        assert kernel.signatures, kernel
        assert _readonly_specializations(kernel) == [], kernel
