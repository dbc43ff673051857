"""Shared fixtures: the real-data slice in tests/data (WordNet definitions, all-MiniLM-L6-v2).

Files (sliced from ../shared/data/wordnet-minilm by tests/data/README.md's recipe):
train.npy (5000, 384) f16 unit-norm, test_id.npy (200, 384) in-distribution queries,
test_ood.npy (200, 384) single-word queries, train_queries_ood.npy (500, 384) OOD training
queries, attrs.npz (per train row: pos, lexfile, n_lemmas, gloss_len, has_example),
multivector.npz (200 documents' token vectors as CSR doc_vecs/doc_offsets, 100 queries
query_vecs/query_offsets: first 50 OOD words, last 50 ID texts).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"


def _f32(name: str) -> np.ndarray:
    return np.ascontiguousarray(np.load(DATA / name).astype(np.float32))


@pytest.fixture(scope="session")
def wordnet_train() -> np.ndarray:
    """(5000, 384) float32 unit-norm database vectors."""
    return _f32("train.npy")


@pytest.fixture(scope="session")
def wordnet_queries_id() -> np.ndarray:
    """(200, 384) float32 in-distribution queries."""
    return _f32("test_id.npy")


@pytest.fixture(scope="session")
def wordnet_queries_ood() -> np.ndarray:
    """(200, 384) float32 out-of-distribution (single-word) queries."""
    return _f32("test_ood.npy")


@pytest.fixture(scope="session")
def wordnet_train_queries_ood() -> np.ndarray:
    """(500, 384) float32 OOD query sample for training (disjoint from wordnet_queries_ood)."""
    return _f32("train_queries_ood.npy")


@pytest.fixture(scope="session")
def wordnet_attrs() -> dict[str, np.ndarray]:
    """Per-row attributes of wordnet_train: pos (<U1), lexfile, n_lemmas, gloss_len, has_example (int64)."""
    with np.load(DATA / "attrs.npz") as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="session")
def wordnet_multivector() -> dict[str, np.ndarray]:
    """Token vectors (float32, unit norm) as CSR: doc_vecs/doc_offsets (200 docs), query_vecs/query_offsets (100 queries)."""
    with np.load(DATA / "multivector.npz") as f:
        return {k: (f[k].astype(np.float32) if f[k].dtype == np.float16 else f[k]) for k in f.files}


def exact_knn(database: np.ndarray, queries: np.ndarray, k: int, metric: str) -> np.ndarray:
    """Ground-truth ids (nq, k) from faiss IndexFlat (the reference oracle)."""
    import faiss

    db, q = database.astype(np.float32), queries.astype(np.float32)
    if metric == "cosine":
        db = db / np.linalg.norm(db, axis=1, keepdims=True)
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
    index = faiss.IndexFlatL2(db.shape[1]) if metric == "l2" else faiss.IndexFlatIP(db.shape[1])
    index.add(db)
    return index.search(q, k)[1]
