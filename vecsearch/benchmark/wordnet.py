"""The shared WordNet/all-MiniLM-L6-v2 set that the ``bench/`` scripts measure on, and its held-out split.

The files (``../shared/data/README.md``): ``train.npy`` 116,659 x 384 float16 unit-norm synset
definitions; ``test_id.npy`` 1,000 in-distribution and ``test_ood.npy`` 1,000 single-word
(out-of-distribution) queries; ``train_queries_ood.npy`` 5,000 more single-word queries (the
sample that trains LeanVec-OOD, disjoint from ``test_ood``); ``attrs.npz`` typed attributes per
train row; ``multivector.npz`` token-level vectors of the first 1,500 train texts and of 600
queries; ``texts.json.gz`` the texts. The metric is cosine (unit norm: cosine = inner product).

Every loader returns float32 (the files are float16). The directory is found, in this order,
from the ``data_dir`` argument, the ``VECSEARCH_WORDNET_DIR`` environment variable, or
``<repository>/../shared/data/wordnet-minilm``.

:func:`held_out_split` cuts ``train.npy`` into a *tuning* part (its first 80%) and a *held-out*
part (its last 20%): tune parameters and defaults on the first, report the second separately, so
a figure never comes from the data it was tuned on. The rows of ``train.npy`` are in random
order (both parts have the same mix of parts of speech and lexicographer files).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .datasets import Dataset

ENV_VAR = "VECSEARCH_WORDNET_DIR"
DEFAULT_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "wordnet-minilm"
METRIC = "cosine"
N_TRAIN = 116_659
TUNING_FRACTION = 0.8
# Query kind -> file.
QUERY_FILES = {"id": "test_id.npy", "ood": "test_ood.npy", "train_ood": "train_queries_ood.npy"}


def wordnet_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The WordNet directory: ``data_dir``, else ``$VECSEARCH_WORDNET_DIR``, else the default beside
    the repository; ``FileNotFoundError`` naming what to set when it has no ``train.npy``."""
    if data_dir is not None:
        path, origin = Path(data_dir), "the data directory argument (--data)"
    elif os.environ.get(ENV_VAR):
        path, origin = Path(os.environ[ENV_VAR]), f"${ENV_VAR}"
    else:
        path, origin = DEFAULT_DIR, "the default location"
    if not (path / "train.npy").is_file():
        raise FileNotFoundError(
            f"WordNet data: no train.npy in {path} (from {origin}); pass the wordnet-minilm "
            f"directory with --data DIR or set {ENV_VAR}=DIR (see ../shared/data/README.md)"
        )
    return path


def _check_rows(n: int | None, name: str = "n") -> None:
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
        raise ValueError(f"{name}: expected a positive number of rows or None, got {n!r}")


def _f32(path: Path, n: int | None, name: str, unit: bool = False) -> np.ndarray:
    _check_rows(n, name)
    x = np.ascontiguousarray(np.load(path, mmap_mode="r")[:n], dtype=np.float32)
    if unit:
        x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), np.float32(1e-30))
    return x


def load_train(
    n: int | None = None, *, unit: bool = False, data_dir: str | os.PathLike | None = None
) -> np.ndarray:
    """Database vectors, float32 ``(n, 384)``: the first ``n`` rows of ``train.npy`` (all when None).

    ``unit``: rescale rows to unit norm exactly (float16 storage leaves them within ~1e-3 of it;
    needed where inner product must equal cosine, e.g. faiss ``METRIC_INNER_PRODUCT``).
    """
    return _f32(wordnet_dir(data_dir) / "train.npy", n, "n", unit)


def load_queries(
    kind: str = "id",
    n: int | None = None,
    *,
    unit: bool = False,
    data_dir: str | os.PathLike | None = None,
) -> np.ndarray:
    """Queries, float32 ``(n, 384)``: ``"id"`` (test_id), ``"ood"`` (test_ood) or ``"train_ood"``
    (train_queries_ood, LeanVec-OOD's training sample); the first ``n`` (all when None).
    ``unit`` as in :func:`load_train`."""
    if kind not in QUERY_FILES:
        raise ValueError(f"kind: expected one of {sorted(QUERY_FILES)}, got {kind!r}")
    return _f32(wordnet_dir(data_dir) / QUERY_FILES[kind], n, "n", unit)


def load_attributes(
    n: int | None = None, *, data_dir: str | os.PathLike | None = None
) -> dict[str, np.ndarray]:
    """Attributes of the first ``n`` train rows: ``pos`` (str n/v/a/s/r), ``lexfile``, ``n_lemmas``,
    ``gloss_len`` (int64) and ``has_example`` (bool)."""
    _check_rows(n)
    with np.load(wordnet_dir(data_dir) / "attrs.npz") as f:
        attrs = {key: f[key][:n] for key in f.files}
    if "has_example" in attrs:
        attrs["has_example"] = attrs["has_example"].astype(bool)
    return attrs


def load_multivector(*, data_dir: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """Token vectors as CSR: ``doc_vecs`` float32 (N, 384) + ``doc_offsets`` int64 (1501,) for the
    first 1,500 train texts; ``query_vecs`` + ``query_offsets`` (601,) for 600 queries (first 300
    single words, last 300 in-distribution texts)."""
    with np.load(wordnet_dir(data_dir) / "multivector.npz") as f:
        return {
            key: np.ascontiguousarray(f[key], np.float32 if f[key].dtype.kind == "f" else np.int64)
            for key in f.files
        }


def load_texts(*, data_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The texts: ``train``, ``test_id``, ``test_ood`` (lists of str) and ``ood_target`` (train row
    of each OOD word's synset)."""
    with gzip.open(wordnet_dir(data_dir) / "texts.json.gz", "rt", encoding="utf-8") as fh:
        return json.load(fh)


def load_wordnet(
    queries: str = "id",
    *,
    n: int | None = None,
    n_queries: int | None = None,
    data_dir: str | os.PathLike | None = None,
) -> Dataset:
    """The first ``n`` train rows and the first ``n_queries`` queries of ``queries`` kind as a
    cosine :class:`~vecsearch.benchmark.datasets.Dataset` (no ground truth yet: see
    :func:`~vecsearch.benchmark.datasets.ensure_ground_truth`)."""
    path = wordnet_dir(data_dir)
    train = load_train(n, data_dir=path)
    test = load_queries(queries, n_queries, data_dir=path)
    name = f"wordnet-minilm-{train.shape[0]}" + ("" if queries == "id" else f"-{queries}")
    return Dataset(name, train, test, METRIC, source=str(path), info={"rows": [0, train.shape[0]]})


def held_out_split(
    queries: str = "id",
    *,
    n: int | None = None,
    n_queries: int | None = None,
    data_dir: str | os.PathLike | None = None,
) -> tuple[Dataset, Dataset]:
    """``(tuning, held_out)``: tune on the first, report the second separately.

    ``tuning`` holds the first 80% of ``train.npy`` (rows ``0 .. cut - 1``), ``held_out`` the last
    20% (rows ``cut ..``); both are searched with the same queries (the first ``n_queries`` of
    ``queries`` kind). Ids inside each part count from 0; ``info["rows"]`` is the part's
    ``[first, stop)`` row range in ``train.npy`` (to slice :func:`load_attributes` alike).
    ``n`` keeps only the first ``n`` rows of each part (quick runs).
    """
    _check_rows(n)
    path = wordnet_dir(data_dir)
    full = np.load(path / "train.npy", mmap_mode="r")
    cut = int(full.shape[0] * TUNING_FRACTION)
    test = load_queries(queries, n_queries, data_dir=path)
    parts = []
    for part, start, stop in (("tuning", 0, cut), ("held-out", cut, full.shape[0])):
        if n is not None:
            stop = min(stop, start + n)
        train = np.ascontiguousarray(full[start:stop], dtype=np.float32)
        suffix = "" if queries == "id" else f"-{queries}"
        parts.append(
            Dataset(
                f"wordnet-minilm-{part}{suffix}",
                train,
                test,
                METRIC,
                source=str(path),
                info={"part": part, "rows": [start, stop]},
            )
        )
    return parts[0], parts[1]


def part_attributes(
    part: Dataset, *, data_dir: str | os.PathLike | None = None
) -> dict[str, np.ndarray]:
    """The attributes of a dataset's rows (:func:`load_wordnet` or a :func:`held_out_split` part)."""
    start, stop = part.info["rows"]
    attrs = load_attributes(stop, data_dir=data_dir)
    return {key: value[start:stop] for key, value in attrs.items()}


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    """``--data DIR``: the WordNet directory (default ``$VECSEARCH_WORDNET_DIR``, else beside the repo)."""
    parser.add_argument(
        "--data",
        default=None,
        help=f"wordnet-minilm directory (default: ${ENV_VAR}, else {DEFAULT_DIR})",
    )


__all__ = [
    "ENV_VAR",
    "add_data_argument",
    "held_out_split",
    "load_attributes",
    "load_multivector",
    "load_queries",
    "load_texts",
    "load_train",
    "load_wordnet",
    "part_attributes",
    "wordnet_dir",
]
