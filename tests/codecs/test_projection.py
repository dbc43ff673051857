"""LeanVec projections (ID PCA, OOD Frank-Wolfe: training, persistence, errors).

The index over them is covered in tests/indexes/test_leanvec_index.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from vecsearch.codecs.projection import (
    LeanVecProjection,
    ood_loss,
    train_leanvec_id,
    train_leanvec_ood,
)


def _ip_error(proj, q, x):
    true = q @ x.T
    return float(((proj.approx_inner_products(q, x) - true) ** 2).sum() / (true**2).sum())


def test_ood_projection_reconstructs_held_out_ood_inner_products_better_than_id(
    wordnet_train, wordnet_train_queries_ood, wordnet_queries_ood
):
    d = 32
    pid = train_leanvec_id(wordnet_train, d)
    pood = train_leanvec_ood(wordnet_train, wordnet_train_queries_ood, d)
    err_id = _ip_error(pid, wordnet_queries_ood, wordnet_train)
    err_ood = _ip_error(pood, wordnet_queries_ood, wordnet_train)
    assert err_ood < err_id
    assert err_ood < 0.5  # a real approximation, not a degenerate projection


def test_ood_frank_wolfe_decreases_the_loss_and_stops_on_relative_change(
    wordnet_train, wordnet_train_queries_ood
):
    pood = train_leanvec_ood(wordnet_train, wordnet_train_queries_ood, 16)
    hist = np.asarray(pood.loss_history)
    assert hist[-1] < 0.5 * hist[0]
    assert 2 < len(hist) <= 501
    assert abs(hist[-1] - hist[-2]) / abs(hist[-2]) < 1e-3
    # Iterates stay in the spectral-norm ball.
    assert np.linalg.norm(pood.query_matrix, 2) <= 1 + 1e-4
    assert np.linalg.norm(pood.database_matrix, 2) <= 1 + 1e-4


def test_id_projection_is_orthonormal_pca_of_centered_data(wordnet_train):
    p = train_leanvec_id(wordnet_train, 24)
    np.testing.assert_allclose(p.database_matrix.T @ p.database_matrix, np.eye(24), atol=1e-4)
    np.testing.assert_allclose(p.mu, wordnet_train.mean(0), atol=1e-5)
    z = p.transform_database(wordnet_train)
    var = z.var(0)
    assert (np.diff(var) <= 1e-6).all()  # components sorted by explained variance
    # PCA keeps more variance than a random orthonormal projection.
    rand = np.linalg.qr(np.random.default_rng(0).standard_normal((384, 24)))[0]
    assert var.sum() > ((wordnet_train - p.mu) @ rand).var(0).sum() * 2


def test_projection_round_trips_through_arrays(wordnet_train, wordnet_train_queries_ood):
    p = train_leanvec_ood(wordnet_train[:1000], wordnet_train_queries_ood, 8)
    q = LeanVecProjection.from_arrays("ood", p.to_arrays())
    np.testing.assert_array_equal(
        q.transform_queries(wordnet_train[:5], "ip"), p.transform_queries(wordnet_train[:5], "ip")
    )


def test_ood_loss_at_zero_is_trace_of_kq_kx():
    rng = np.random.default_rng(0)
    kq = rng.standard_normal((6, 6))
    kq = kq @ kq.T
    kx = rng.standard_normal((6, 6))
    kx = kx @ kx.T
    z = np.zeros((6, 2))
    assert ood_loss(z, z, kq, kx) == pytest.approx(np.trace(kq @ kx))


def test_leanvec_training_rejects_bad_reduced_dim_and_query_dim(wordnet_train):
    with pytest.raises(ValueError, match="reduced_dim"):
        train_leanvec_id(wordnet_train, 384)
    with pytest.raises(ValueError, match="reduced_dim"):
        train_leanvec_id(wordnet_train, 0)
    with pytest.raises(ValueError, match="queries"):
        train_leanvec_ood(wordnet_train, np.zeros((10, 100), np.float32), 16)
