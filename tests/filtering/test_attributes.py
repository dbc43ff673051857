"""AttributeStore through the Index API: typed columns, validation, update, remove, save/load."""

from __future__ import annotations

import numpy as np
import pytest

import vecsearch as vs
from vecsearch import F


def _vectors(n, dim=8, seed=0):
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def _rows(n, seed=0):
    rng = np.random.default_rng(seed)
    langs = ["en", "de", "fr"]
    tags = ["a", "b", "c", "d"]
    return [
        {
            "year": int(rng.integers(1990, 2025)),
            "price": float(rng.uniform(0, 100)),
            "lang": langs[int(rng.integers(3))],
            "draft": bool(rng.integers(2)),
            "tags": [t for t in tags if rng.random() < 0.4],
        }
        for _ in range(n)
    ]


def _flat_with_rows(n=60, seed=0):
    index = vs.FlatIndex(8, "l2")
    rows = _rows(n, seed)
    index.add(_vectors(n, seed=seed), ids=np.arange(100, 100 + n), attributes=rows)
    return index, rows


def test_list_of_dicts_and_dict_of_columns_store_the_same_values():
    rows = _rows(30)
    a = vs.FlatIndex(8)
    a.add(_vectors(30), attributes=rows)
    b = vs.FlatIndex(8)
    columns = {f: [r[f] for r in rows] for f in rows[0]}
    columns["year"] = np.array(columns["year"])  # numpy columns are accepted as well
    b.add(_vectors(30), attributes=columns)
    for i in range(30):
        assert a.get_attributes(i) == b.get_attributes(i) == rows[i]


def test_column_kinds_are_inferred_from_values():
    index, _ = _flat_with_rows(10)
    assert index._attributes.fields() == {"year": "int", "price": "float", "lang": "str", "draft": "bool", "tags": "tags"}


def test_missing_fields_are_null_and_never_match():
    index = vs.FlatIndex(8)
    index.add(_vectors(3), attributes=[{"year": 2000}, {}, {"year": None, "lang": "en"}])
    assert index.get_attributes(1) == {}
    assert index.get_attributes(2) == {"lang": "en"}
    res = index.search(_vectors(1, seed=5), 3, where=F.year != 1999)
    assert set(res.ids[0][res.ids[0] >= 0].tolist()) == {0}
    res = index.search(_vectors(1, seed=5), 3, where=~(F.year == 1999))
    assert set(res.ids[0][res.ids[0] >= 0].tolist()) == {0, 1, 2}  # ~ is the complement among live rows


def test_a_new_field_in_a_later_add_leaves_earlier_rows_null():
    index = vs.FlatIndex(8)
    index.add(_vectors(4), attributes={"year": [1, 2, 3, 4]})
    index.add(_vectors(2, seed=1), attributes={"lang": ["en", "de"]})
    assert index.get_attributes(0) == {"year": 1}
    assert index.get_attributes(5) == {"lang": "de"}


def test_add_without_attributes_after_attributes_gives_null_rows():
    index = vs.FlatIndex(8)
    index.add(_vectors(2), attributes={"year": [1, 2]})
    index.add(_vectors(2, seed=1))
    assert index.get_attributes(3) == {}
    assert index.search(_vectors(1), 4, where=F.year >= 0).ids[0].tolist()[2:] == [-1, -1]


@pytest.mark.parametrize(
    "attributes, error, fragment",
    [
        ({"year": [2000, "x", 2001]}, TypeError, "one type per column"),
        ({"year": [2000, 2001]}, ValueError, "expected 3 values"),
        ([{"year": 1}, {"year": 2}], ValueError, "list of 3 dicts"),
        ([{"year": 1}, 5, {"year": 2}], TypeError, "expected a dict"),
        ({"year": np.zeros((3, 2))}, ValueError, "shape"),
        ({"year": [None, None, None]}, ValueError, "only None"),
        ("year", TypeError, "dict of columns or a list of dicts"),
    ],
)
def test_bad_attributes_raise_clear_errors(attributes, error, fragment):
    index = vs.FlatIndex(8)
    with pytest.raises(error, match=fragment):
        index.add(_vectors(3), attributes=attributes)
    assert index.ntotal == 0


def test_wrong_value_type_for_an_existing_field_is_rejected_and_index_unchanged():
    index, _ = _flat_with_rows(10)
    with pytest.raises(TypeError, match="field 'year' holds int"):
        index.add(_vectors(2, seed=9), attributes={"year": [2000.5, 2001.0]})
    with pytest.raises(TypeError, match="field 'lang' holds str"):
        index.add(_vectors(1, seed=9), attributes=[{"lang": 3}])
    assert index.ntotal == 10
    # ints are accepted into a float column
    index.add(_vectors(1, seed=9), ids=[7], attributes={"price": [3]})
    assert index.get_attributes(7) == {"price": 3.0}


def test_update_attributes_changes_only_given_fields_and_none_clears():
    index, rows = _flat_with_rows(20)
    index.update_attributes([105, 106], {"lang": ["xx", None], "tags": [["z"], []]})
    assert index.get_attributes(105) == {**rows[5], "lang": "xx", "tags": ["z"]}
    expected = {**rows[6], "tags": []}
    del expected["lang"]
    assert index.get_attributes(106) == expected
    res = index.search(_vectors(1), 20, where=F.lang == "xx")
    assert res.ids[0][0] == 105 and (res.ids[0][1:] == -1).all()
    res = index.search(_vectors(1), 20, where=F.tags.contains_any(["z"]))
    assert res.ids[0][0] == 105 and (res.ids[0][1:] == -1).all()
    for i in range(20):
        if i not in (5, 6):
            assert index.get_attributes(100 + i) == rows[i]


def test_update_attributes_rejects_unknown_ids_and_bad_values():
    index, _ = _flat_with_rows(5)
    with pytest.raises(KeyError, match="not in the index"):
        index.update_attributes([999], {"year": [1]})
    with pytest.raises(TypeError, match="holds int"):
        index.update_attributes([100], {"year": ["x"]})
    with pytest.raises(ValueError, match="duplicate"):
        index.update_attributes([100, 100], {"year": [1, 2]})


def test_removed_vectors_take_their_attributes_with_them():
    index, rows = _flat_with_rows(40)
    removed = [100, 103, 117, 139]
    index.remove(removed)
    for i in range(40):
        if 100 + i not in removed:
            assert index.get_attributes(100 + i) == rows[i]
    res = index.search(_vectors(1), 40, where=F.year >= 0)
    assert set(res.ids[0][res.ids[0] >= 0].tolist()) == set(range(100, 140)) - set(removed)
    # re-adding a removed id gets the new attributes, not the old ones
    index.add(_vectors(1, seed=3), ids=[103], attributes=[{"year": 1234}])
    assert index.get_attributes(103) == {"year": 1234}


@pytest.mark.parametrize("mmap", [False, True])
def test_attributes_survive_save_and_load(tmp_path, mmap):
    index, rows = _flat_with_rows(50)
    index.remove([101, 120])
    index.update_attributes([102], {"tags": [["new", "a"]]})
    index.save(tmp_path / "idx")
    loaded = vs.load(tmp_path / "idx", mmap=mmap)
    for i in range(50):
        if 100 + i in (101, 120):
            continue
        assert loaded.get_attributes(100 + i) == index.get_attributes(100 + i)
    where = (F.lang == "en") | F.tags.contains_all(["a", "new"])
    q = _vectors(3, seed=4)
    np.testing.assert_array_equal(loaded.search(q, 10, where=where).ids, index.search(q, 10, where=where).ids)
    # a loaded (possibly read-only mapped) store accepts updates and adds
    loaded.update_attributes([100], {"year": [1], "tags": [["q"]]})
    loaded.add(_vectors(1, seed=8), ids=[5], attributes=[{"lang": "de", "tags": ["q"]}])
    res = loaded.search(q, 10, where=F.tags.contains_any(["q"]))
    assert set(res.ids[0][res.ids[0] >= 0].tolist()) == {100, 5}


def test_index_without_attributes_saves_and_loads_without_them(tmp_path):
    index = vs.FlatIndex(8)
    index.add(_vectors(5))
    index.save(tmp_path / "idx")
    loaded = vs.load(tmp_path / "idx")
    assert loaded._attribute_store() is None
    with pytest.raises(ValueError, match="unknown field"):
        loaded.search(_vectors(1), 3, where=F.year > 1)


def test_tag_csr_stays_consistent_under_many_updates():
    rng = np.random.default_rng(1)
    index = vs.FlatIndex(8)
    n = 200
    tags = [[f"t{j}" for j in range(6) if rng.random() < 0.3] for _ in range(n)]
    index.add(_vectors(n), attributes={"tags": tags})
    for _ in range(30):
        ids = rng.choice(n, size=int(rng.integers(1, 10)), replace=False)
        new = [[f"t{j}" for j in range(8) if rng.random() < 0.3] for _ in ids]
        index.update_attributes(ids, {"tags": new})
        for i, t in zip(ids.tolist(), new):
            tags[i] = t
    for i in range(n):
        assert index.get_attributes(i) == {"tags": list(dict.fromkeys(tags[i]))}
    res = index.search(_vectors(1), n, where=F.tags.contains_all(["t1", "t2"]))
    expected = {i for i in range(n) if {"t1", "t2"} <= set(tags[i])}
    assert set(res.ids[0][res.ids[0] >= 0].tolist()) == expected


def test_edited_attribute_schema_raises_index_file_error(tmp_path):
    import json

    from vecsearch.io import manifest_checksum

    index, _ = _flat_with_rows(10)
    index.save(tmp_path / "idx")
    manifest_path = tmp_path / "idx" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["attributes"].append({"name": "ghost", "kind": "int"})  # a column without arrays
    manifest["manifest_checksum"] = manifest_checksum(manifest)  # a deliberate edit, not a corruption
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(vs.IndexFileError, match="attributes"):
        vs.load(tmp_path / "idx")
