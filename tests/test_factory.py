"""index_factory and describe: one grammar, each form round-trips."""

from __future__ import annotations

import pytest

import vecsearch as vs


def test_flat_factory_builds_flat_and_describe_inverts_it():
    index = vs.index_factory(16, "Flat", metric="ip")
    assert isinstance(index, vs.FlatIndex) and index.metric == "ip" and index.dim == 16
    assert vs.describe(index) == "Flat"


@pytest.mark.parametrize("text", ["Flat", "HNSW32", "IVF1024,PQ48", "LeanVec128,LVQ8,HNSW32"])
def test_every_known_form_round_trips_through_describe(text):
    try:
        index = vs.index_factory(384, text, metric="cosine")
    except ValueError as exc:  # a form whose index type is not registered in this build
        pytest.fail(f"{text}: {exc}")
    assert vs.describe(index) == text


@pytest.mark.parametrize("text", ["", "flat", "HNSW", "Foo32", "IVF,PQ"])
def test_unknown_forms_are_rejected_listing_known_ones(text):
    with pytest.raises(ValueError, match="known forms"):
        vs.index_factory(8, text)


def test_factory_validates_dim_and_metric():
    with pytest.raises(ValueError, match="dim"):
        vs.index_factory(0, "Flat")
    with pytest.raises(ValueError, match="metric"):
        vs.index_factory(8, "Flat", metric="manhattan")
