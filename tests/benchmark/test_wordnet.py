"""vecsearch.benchmark.wordnet: the shared WordNet loader and its held-out split.

The shared data lives beside the repository (``../shared/data/wordnet-minilm``); where it is
missing these tests are skipped with a message saying so (the loader's error path is tested
without it).
"""

from __future__ import annotations

import numpy as np
import pytest

from vecsearch.benchmark import wordnet
from vecsearch.benchmark.datasets import exact_neighbors


@pytest.fixture(scope="module")
def data_dir():
    if not (wordnet.DEFAULT_DIR / "train.npy").is_file():
        pytest.skip(
            f"shared WordNet data not found at {wordnet.DEFAULT_DIR} (see ../shared/data/README.md)"
        )
    return wordnet.DEFAULT_DIR


def test_missing_directory_error_names_the_argument_and_the_environment_variable(
    tmp_path, monkeypatch
):
    monkeypatch.setenv(wordnet.ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=wordnet.ENV_VAR) as err:
        wordnet.load_train(10)
    assert "--data" in str(err.value) and "nowhere" in str(err.value)


def test_directory_comes_from_the_argument_then_the_environment(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(wordnet.ENV_VAR, str(data_dir))
    assert wordnet.wordnet_dir() == data_dir
    with pytest.raises(FileNotFoundError, match="argument"):
        wordnet.wordnet_dir(tmp_path)  # the argument wins over the environment
    monkeypatch.delenv(wordnet.ENV_VAR)
    assert wordnet.wordnet_dir() == wordnet.DEFAULT_DIR


def test_loaders_return_float32_rows_of_the_files(data_dir):
    train = wordnet.load_train(100, data_dir=data_dir)
    assert train.dtype == np.float32 and train.shape == (100, 384) and train.flags.c_contiguous
    raw = np.load(data_dir / "train.npy", mmap_mode="r")[:100]
    np.testing.assert_array_equal(train, raw.astype(np.float32))
    np.testing.assert_allclose(np.linalg.norm(train, axis=1), 1.0, atol=2e-3)
    unit = wordnet.load_train(100, unit=True, data_dir=data_dir)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-6)
    for kind, rows in (("id", 1000), ("ood", 1000), ("train_ood", 5000)):
        q = wordnet.load_queries(kind, data_dir=data_dir)
        assert q.dtype == np.float32 and q.shape == (rows, 384)
    assert wordnet.load_queries("ood", 7, data_dir=data_dir).shape == (7, 384)
    with pytest.raises(ValueError, match="kind"):
        wordnet.load_queries("test", data_dir=data_dir)
    with pytest.raises(ValueError, match="n"):
        wordnet.load_train(0, data_dir=data_dir)


def test_attributes_multivector_and_texts_line_up_with_train(data_dir):
    attrs = wordnet.load_attributes(50, data_dir=data_dir)
    assert set(attrs) == {"pos", "lexfile", "n_lemmas", "gloss_len", "has_example"}
    assert all(v.shape == (50,) for v in attrs.values()) and attrs["has_example"].dtype == bool
    mv = wordnet.load_multivector(data_dir=data_dir)
    assert mv["doc_vecs"].dtype == np.float32 and mv["doc_offsets"].dtype == np.int64
    assert mv["doc_offsets"][-1] == mv["doc_vecs"].shape[0] and mv["query_offsets"].shape == (601,)
    texts = wordnet.load_texts(data_dir=data_dir)
    assert len(texts["train"]) == wordnet.N_TRAIN and len(texts["test_ood"]) == 1000


def test_held_out_split_is_the_first_80_and_the_last_20_percent_of_train(data_dir):
    tuning, held_out = wordnet.held_out_split("ood", n=20, n_queries=5, data_dir=data_dir)
    full = np.load(data_dir / "train.npy", mmap_mode="r")
    cut = int(full.shape[0] * 0.8)
    assert tuning.info == {"part": "tuning", "rows": [0, 20]}
    assert held_out.info == {"part": "held-out", "rows": [cut, cut + 20]}
    np.testing.assert_array_equal(tuning.train, full[:20].astype(np.float32))
    np.testing.assert_array_equal(held_out.train, full[cut : cut + 20].astype(np.float32))
    np.testing.assert_array_equal(tuning.test, wordnet.load_queries("ood", 5, data_dir=data_dir))
    np.testing.assert_array_equal(held_out.test, tuning.test)
    assert tuning.metric == held_out.metric == "cosine"
    attrs = wordnet.part_attributes(held_out, data_dir=data_dir)
    with np.load(data_dir / "attrs.npz") as f:
        np.testing.assert_array_equal(attrs["lexfile"], f["lexfile"][cut : cut + 20])


def test_held_out_part_gets_its_own_exact_ground_truth(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("VECSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    _, held_out = wordnet.held_out_split(n=300, n_queries=8, data_dir=data_dir)
    ids, dist = exact_neighbors(held_out.train, held_out.test, 10, "cosine")
    sims = held_out.test @ held_out.train.T / np.linalg.norm(held_out.train, axis=1)
    sims /= np.linalg.norm(held_out.test, axis=1, keepdims=True)
    np.testing.assert_array_equal(ids[:, 0], sims.argmax(axis=1))
    assert ids.shape == (8, 10) and ids.max() < 300 and (np.diff(dist, axis=1) >= 0).all()
