"""LVQ codecs: quantization error bound, distances on codes, 4-bit packing, float16 scales."""

from __future__ import annotations

import numpy as np
import pytest

from vecsearch.codecs.lvq import LVQ4, LVQ8, LVQ4x8, make_codec

CODECS = [LVQ8, LVQ4, LVQ4x8]


def _step(codec, rows):
    delta, _ = codec.row_scales(rows)
    step = delta.astype(np.float32)
    return step / 255.0 if isinstance(codec, LVQ4x8) else step


@pytest.mark.parametrize("cls", CODECS)
def test_lvq_error_at_most_half_a_step_per_dimension(cls, wordnet_train):
    x = wordnet_train[:2000]
    codec = cls().fit(x)
    rows = codec.encode(x)
    err = np.abs(codec.decode(rows) - x)
    bound = _step(codec, rows)[:, None] / 2
    assert (err <= bound * (1 + 1e-3) + 1e-7).all()
    # The error is a real quantization error, not zero (the codes are really 8/4/12 bits).
    assert err.max() > 0


@pytest.mark.parametrize("cls", CODECS)
@pytest.mark.parametrize("d", [1, 3, 97])
def test_lvq_odd_dimensions_round_trip_within_bound(cls, d):
    rng = np.random.default_rng(d)
    x = rng.standard_normal((300, d)).astype(np.float32)
    codec = cls().fit(x)
    rows = codec.encode(x)
    assert rows.shape == (300, codec.row_bytes)
    err = np.abs(codec.decode(rows) - x)
    assert (err <= _step(codec, rows)[:, None] / 2 * (1 + 1e-3) + 1e-6).all()


@pytest.mark.parametrize("cls", CODECS)
@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_lvq_scores_on_codes_equal_scores_with_decoded_vectors(
    cls, metric, wordnet_train, wordnet_queries_ood
):
    x = wordnet_train[:1000]
    codec = cls().fit(x)
    rows = codec.encode(x)
    decoded = codec.decode(rows).astype(np.float64)
    q = wordnet_queries_ood[:20]
    got = codec.scores(q, rows, metric)
    if metric == "ip":
        ref = -(q.astype(np.float64) @ decoded.T)
    else:
        ref = ((q.astype(np.float64)[:, None, :] - decoded[None]) ** 2).sum(-1)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=2e-5)


def test_lvq4_packs_two_codes_per_byte_and_round_trips():
    d = 7
    mu = np.zeros(d, np.float32)
    codec = LVQ4(mu)
    codes = np.array([[0, 15, 3, 12, 7, 8, 15], [15, 0, 1, 2, 3, 4, 5]], np.float32)
    rows = codec.encode(codes)  # low = min, delta = (max-min)/15 = 1: codes are the values
    assert rows.shape == (2, 4 + 4)
    assert rows[0, 0] == 0 | (15 << 4) and rows[0, 1] == 3 | (12 << 4) and rows[0, 3] == 15
    np.testing.assert_array_equal(codec.decode(rows), codes)
    assert (
        codec.row_bytes == 8 and LVQ8(mu).row_bytes == d + 4 and LVQ4x8(mu).row_bytes == 4 + d + 4
    )


def test_lvq_scales_are_float16_covering_the_range(wordnet_train):
    x = wordnet_train[:500]
    codec = LVQ8().fit(x)
    rows = codec.encode(x)
    delta, low = codec.row_scales(rows)
    assert delta.dtype == np.float16 and low.dtype == np.float16
    centered = x - codec.mu
    assert (low.astype(np.float32) <= centered.min(1)).all()
    assert (
        low.astype(np.float32) + 255 * delta.astype(np.float32) >= centered.max(1) * (1 - 1e-6)
    ).all()


def test_lvq_rejects_wrong_dimension_and_unfitted_use():
    codec = LVQ8()
    with pytest.raises(ValueError, match="not fitted"):
        codec.encode(np.zeros((2, 4), np.float32))
    codec.fit(np.ones((3, 4), np.float32))
    with pytest.raises(ValueError, match="x: expected shape"):
        codec.encode(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="codec"):
        make_codec("lvq2")


def test_float16_scales_decode_exactly_for_every_finite_bit_pattern():
    from vecsearch.kernels.lvq_codes import half_to_float

    bits = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    values = bits.view(np.float16)
    finite = np.flatnonzero(np.isfinite(values))[
        ::7
    ]  # every 7th finite pattern: all exponents and signs
    got = np.array([half_to_float(int(b)) for b in finite], np.float32)
    np.testing.assert_array_equal(got, values[finite].astype(np.float32))
