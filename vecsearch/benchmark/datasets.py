"""Benchmark datasets: ann-benchmarks HDF5 files, .npy/.fvecs/.fbin readers, synthetic data, ground truth.

A :class:`Dataset` holds ``train`` (n, d) and ``test`` (nq, d) float32 vectors, a vecsearch metric
(``l2``, ``ip`` or ``cosine``) and, when known, the exact ``neighbors`` (nq, k) int64 and their
``distances`` (nq, k) float32 **in vecsearch's convention** (squared L2, ``1 - cos``, ``-<q, x>``;
smaller is better, padding -1 / +inf).

ann-benchmarks files store the ``distance`` attribute ``euclidean`` (true L2, not squared),
``angular`` (``1 - cos``) or, in some forks, ``ip``/``dot``; :func:`load_hdf5` maps them to
``l2``/``cosine``/``ip`` and converts the stored distances (:func:`write_hdf5` does the reverse),
so a file written here is read by ann-benchmarks and vice versa.

The embedded default (:func:`load_embedded`) is a seeded slice of the WordNet/all-MiniLM-L6-v2
embeddings (10,000 train vectors, 500 in-distribution and 500 single-word queries, float16, with
exact top-100 ground truth) shipped in ``vecsearch/data/``; WordNet's license is beside it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
EMBEDDED_FILE = DATA_DIR / "wordnet_minilm_10k.npz"
EMBEDDED_NAMES = ("embedded", "embedded-ood")

# ann-benchmarks ``distance`` attribute -> vecsearch metric.
_ANN_TO_METRIC = {
    "euclidean": "l2",
    "angular": "cosine",
    "ip": "ip",
    "dot": "ip",
    "inner_product": "ip",
}
_METRIC_TO_ANN = {"l2": "euclidean", "cosine": "angular", "ip": "ip"}


@dataclass
class Dataset:
    """Vectors to index and queries to run, with exact neighbors when known (see module docstring)."""

    name: str
    train: np.ndarray
    test: np.ndarray
    metric: str
    neighbors: np.ndarray | None = None
    distances: np.ndarray | None = None
    source: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.train.shape[1])

    def with_queries(self, n: int | None) -> Dataset:
        """The same dataset keeping only the first ``n`` queries (all when ``n`` is None)."""
        if n is None or n >= self.test.shape[0]:
            return self
        if n < 1:
            raise ValueError(f"queries: expected a positive number of queries, got {n}")
        nb = None if self.neighbors is None else self.neighbors[:n]
        dist = None if self.distances is None else self.distances[:n]
        return replace(self, test=self.test[:n], neighbors=nb, distances=dist)

    def __repr__(self) -> str:
        gt = "none" if self.neighbors is None else f"top-{self.neighbors.shape[1]}"
        return (
            f"Dataset({self.name!r}, train={self.train.shape}, test={self.test.shape}, "
            f"metric={self.metric!r}, ground_truth={gt})"
        )


# ---- metric names and distance conventions ------------------------------------------------------
def metric_from_ann(distance: str) -> str:
    """Map an ann-benchmarks ``distance`` attribute to a vecsearch metric (``angular`` -> ``cosine``)."""
    key = str(distance).strip().lower()
    if key not in _ANN_TO_METRIC:
        raise ValueError(
            f"distance: expected one of {sorted(_ANN_TO_METRIC)} (vecsearch supports dense float "
            f"metrics only), got {distance!r}"
        )
    return _ANN_TO_METRIC[key]


def _check_metric(metric: str) -> str:
    if metric not in _METRIC_TO_ANN:
        raise ValueError(f"metric: expected one of {sorted(_METRIC_TO_ANN)}, got {metric!r}")
    return metric


def _as_f32(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D (n, d) array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float32)


# ---- ann-benchmarks HDF5 ---------------------------------------------------------------------------
def _h5py():
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is in the bench/test extras
        raise ImportError(
            "reading HDF5 datasets needs h5py: pip install 'vecsearch[bench]'"
        ) from exc
    return h5py


def load_hdf5(path: str | os.PathLike) -> Dataset:
    """Read an ann-benchmarks HDF5 file (``train``, ``test``, optional ``neighbors``/``distances``)."""
    h5py = _h5py()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dataset: no such HDF5 file: {path}")
    with h5py.File(path, "r") as f:
        for key in ("train", "test"):
            if key not in f:
                raise ValueError(f"dataset: {path} has no {key!r} array (found {sorted(f.keys())})")
        metric = metric_from_ann(f.attrs.get("distance", "euclidean"))
        train = _as_f32(f["train"][()], f"{path}:train")
        test = _as_f32(f["test"][()], f"{path}:test")
        neighbors = f["neighbors"][()].astype(np.int64) if "neighbors" in f else None
        distances = f["distances"][()].astype(np.float32) if "distances" in f else None
    if neighbors is not None and neighbors.shape[0] != test.shape[0]:
        raise ValueError(
            f"dataset: {path} neighbors has {neighbors.shape[0]} rows, expected one per query ({test.shape[0]})"
        )
    if distances is not None:
        if neighbors is None or distances.shape != neighbors.shape:
            distances = None  # unusable without matching neighbors; recomputed when needed
        else:
            distances = _from_ann_distances(distances, metric)
    return Dataset(path.stem, train, test, metric, neighbors, distances, source=str(path))


def write_hdf5(dataset: Dataset, path: str | os.PathLike) -> None:
    """Write ``dataset`` as an ann-benchmarks HDF5 file (distances converted to its convention)."""
    h5py = _h5py()
    metric = _check_metric(dataset.metric)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with h5py.File(tmp, "w") as f:
        f.attrs["type"] = "dense"
        f.attrs["distance"] = _METRIC_TO_ANN[metric]
        f.attrs["dimension"] = dataset.dim
        f.attrs["point_type"] = "float"
        f.create_dataset("train", data=np.asarray(dataset.train, np.float32))
        f.create_dataset("test", data=np.asarray(dataset.test, np.float32))
        if dataset.neighbors is not None:
            f.create_dataset("neighbors", data=np.asarray(dataset.neighbors, np.int32))
            if dataset.distances is not None:
                f.create_dataset("distances", data=_to_ann_distances(dataset.distances, metric))
    os.replace(tmp, path)


def _from_ann_distances(d: np.ndarray, metric: str) -> np.ndarray:
    d = np.asarray(d, np.float32).copy()
    if metric == "l2":
        np.square(d, out=d)  # ann-benchmarks stores true L2; vecsearch reports squared L2
    return d


def _to_ann_distances(d: np.ndarray, metric: str) -> np.ndarray:
    d = np.asarray(d, np.float32).copy()
    if metric == "l2":
        np.sqrt(np.maximum(d, 0, out=d), out=d)
    return d


# ---- raw vector files ----------------------------------------------------------------------------
def read_vectors(path: str | os.PathLike) -> np.ndarray:
    """Read a matrix from ``.npy``, ``.fvecs`` (per-row int32 dim + float32s), ``.fbin`` or ``.u8bin``/``.i8bin``
    (big-ann format: int32 n, int32 d, then n*d values); returns float32 ``(n, d)``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dataset: no such file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return _as_f32(np.load(path, mmap_mode="r"), str(path))
    if suffix == ".fvecs":
        return read_fvecs(path)
    if suffix in (".fbin", ".u8bin", ".i8bin"):
        dtype = {".fbin": np.float32, ".u8bin": np.uint8, ".i8bin": np.int8}[suffix]
        return read_bin(path, dtype)
    raise ValueError(
        f"dataset: unsupported file type {suffix!r} (expected .hdf5, .npy, .fvecs, .fbin)"
    )


def read_fvecs(path: str | os.PathLike) -> np.ndarray:
    """Read an ``.fvecs`` file: each row is an int32 dimension followed by that many float32s."""
    raw = np.fromfile(path, dtype=np.int32)
    if raw.size == 0:
        return np.empty((0, 0), np.float32)
    d = int(raw[0])
    if d <= 0 or raw.size % (d + 1) != 0:
        raise ValueError(
            f"dataset: {path} is not a valid .fvecs file (first dim {d}, {raw.size} words)"
        )
    rows = raw.reshape(-1, d + 1)
    if not (rows[:, 0] == d).all():
        raise ValueError(f"dataset: {path} has rows of different dimensions")
    return np.ascontiguousarray(rows[:, 1:].view(np.float32))


def read_ivecs(path: str | os.PathLike) -> np.ndarray:
    """Read an ``.ivecs`` file (ground-truth ids of the TEXMEX sets) as int64 ``(n, k)``."""
    raw = np.fromfile(path, dtype=np.int32)
    d = int(raw[0]) if raw.size else 0
    if raw.size == 0:
        return np.empty((0, 0), np.int64)
    if d <= 0 or raw.size % (d + 1) != 0:
        raise ValueError(f"dataset: {path} is not a valid .ivecs file")
    return raw.reshape(-1, d + 1)[:, 1:].astype(np.int64)


def read_bin(path: str | os.PathLike, dtype: Any = np.float32) -> np.ndarray:
    """Read a big-ann-benchmarks ``.fbin``/``.u8bin``/``.i8bin`` file (int32 n, int32 d, values) as float32."""
    header = np.fromfile(path, dtype=np.int32, count=2)
    if header.size != 2:
        raise ValueError(f"dataset: {path} is too short for a .bin header")
    n, d = int(header[0]), int(header[1])
    values = np.fromfile(path, dtype=dtype, offset=8)
    if values.size != n * d:
        raise ValueError(f"dataset: {path} header says {n}x{d} values, file holds {values.size}")
    return np.ascontiguousarray(values.reshape(n, d), dtype=np.float32)


def load_vectors_dataset(
    path: str | os.PathLike,
    *,
    metric: str = "l2",
    queries: str | os.PathLike | None = None,
    n_queries: int = 1000,
    seed: int = 0,
) -> Dataset:
    """A dataset from raw vector files: ``queries`` from their own file, or ``n_queries`` rows held out
    (seeded) of ``path`` when none is given."""
    _check_metric(metric)
    data = read_vectors(path)
    if queries is not None:
        train, test = data, read_vectors(queries)
        if test.shape[1] != train.shape[1]:
            raise ValueError(
                f"queries: expected dimension {train.shape[1]}, got shape {test.shape}"
            )
    else:
        if data.shape[0] < 2:
            raise ValueError(
                f"dataset: {path} needs at least 2 rows to hold out queries, got {data.shape[0]}"
            )
        nq = min(n_queries, data.shape[0] // 10 or 1)
        order = np.random.default_rng(seed).permutation(data.shape[0])
        test = np.ascontiguousarray(data[np.sort(order[:nq])])
        train = np.ascontiguousarray(data[np.sort(order[nq:])])
    return Dataset(Path(path).stem, train, test, metric, source=str(path))


# ---- ground truth ------------------------------------------------------------------------------------
def compute_ground_truth(
    train: np.ndarray, test: np.ndarray, k: int, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` with vecsearch's :class:`~vecsearch.FlatIndex` (checked against faiss in the tests).

    Returns ``(neighbors int64 (nq, k), distances float32 (nq, k))`` in vecsearch's convention;
    rows are padded with -1 / +inf when ``k`` exceeds the number of train vectors.
    """
    from ..indexes.flat import FlatIndex

    _check_metric(metric)
    train = _as_f32(train, "train")
    test = _as_f32(test, "test")
    index = FlatIndex(train.shape[1], metric)
    index.add(train)
    neighbors = np.empty((test.shape[0], k), np.int64)
    distances = np.empty((test.shape[0], k), np.float32)
    step = 1024
    for start in range(0, test.shape[0], step):
        res = index.search(test[start : start + step], k)
        neighbors[start : start + step] = res.ids
        distances[start : start + step] = res.distances
    return neighbors, distances


def cache_dir() -> Path:
    """Where computed ground truth is cached: ``$VECSEARCH_CACHE_DIR`` or ``~/.cache/vecsearch``."""
    env = os.environ.get("VECSEARCH_CACHE_DIR")
    base = (
        Path(env)
        if env
        else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vecsearch"
    )
    return base / "ground_truth"


def _content_key(train: np.ndarray, test: np.ndarray, metric: str, k: int) -> str:
    h = hashlib.blake2b(digest_size=16)
    for arr in (train, test):
        a = np.ascontiguousarray(arr, np.float32)
        h.update(repr(a.shape).encode())
        h.update(memoryview(a).cast("B"))
    h.update(f"{metric}:{k}".encode())
    return h.hexdigest()


def ensure_ground_truth(dataset: Dataset, k: int, *, cache: bool = True) -> Dataset:
    """Return ``dataset`` with at least top-``k`` neighbors and distances, computing them if missing.

    Computed results are cached (keyed by a hash of the vectors, the metric and ``k``) under
    :func:`cache_dir`, so a second run on the same file does not recompute them. When a file
    has neighbors but no distances, the distances are recomputed exactly from the vectors.
    """
    k_have = 0 if dataset.neighbors is None else dataset.neighbors.shape[1]
    k_need = min(k, dataset.train.shape[0])
    if k_have >= k_need and dataset.distances is not None:
        return dataset
    if k_have >= k_need and dataset.neighbors is not None:
        from .evaluation import exact_distances

        dist = exact_distances(dataset.train, dataset.test, dataset.neighbors, dataset.metric)
        return replace(dataset, distances=dist)
    k_gt = max(k, 100) if dataset.train.shape[0] >= 100 else k
    path = (
        cache_dir() / f"{_content_key(dataset.train, dataset.test, dataset.metric, k_gt)}.npz"
        if cache
        else None
    )
    if path is not None and path.is_file():
        with np.load(path) as f:
            return replace(
                dataset, neighbors=f["neighbors"].astype(np.int64), distances=f["distances"]
            )
    neighbors, distances = compute_ground_truth(dataset.train, dataset.test, k_gt, dataset.metric)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
            np.savez(tmp, neighbors=neighbors, distances=distances)
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only cache only costs a recomputation next time
    return replace(dataset, neighbors=neighbors, distances=distances)


def exact_neighbors(
    database: np.ndarray, queries: np.ndarray, k: int, metric: str, *, cache: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` of ``queries`` (nq, d) over ``database`` (n, d): ``(ids int64 (nq, k),
    distances float32 (nq, k))``, vecsearch's convention, -1 / +inf padding when ``k > n``.

    Computed with :class:`~vecsearch.FlatIndex` and cached like :func:`ensure_ground_truth`
    (content-keyed under :func:`cache_dir`; a cached top-100 serves every ``k <= 100``).
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k: expected a positive integer, got {k!r}")
    ds = Dataset(
        "exact", _as_f32(database, "database"), _as_f32(queries, "queries"), _check_metric(metric)
    )
    ds = ensure_ground_truth(ds, int(k), cache=cache)
    found, found_d = ds.neighbors, ds.distances
    if found is None or found_d is None:  # pragma: no cover - ensure_ground_truth fills both
        raise RuntimeError("ground truth: neighbors or distances missing after computation")
    ids = np.full((ds.test.shape[0], k), -1, np.int64)
    dist = np.full((ds.test.shape[0], k), np.inf, np.float32)
    have = min(k, found.shape[1])
    ids[:, :have] = found[:, :have]
    dist[:, :have] = found_d[:, :have]
    return ids, dist


def filtered_exact_neighbors(
    database: np.ndarray, queries: np.ndarray, masks: list[np.ndarray], k: int, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` of each query over the database rows its mask allows (not cached).

    ``masks``: one bool ``(n,)`` array per query, computed independently of the index under
    test (the oracle must not share its filter compiler). Queries given the same mask object
    are searched together. Returns row ids int64 ``(nq, k)`` and distances float32, padded with
    -1 / +inf where fewer than ``k`` rows pass (recall then divides by the rows that exist).
    """
    database = _as_f32(database, "database")
    queries = _as_f32(queries, "queries")
    if len(masks) != queries.shape[0]:
        raise ValueError(
            f"masks: expected one mask per query ({queries.shape[0]}), got {len(masks)}"
        )
    ids = np.full((queries.shape[0], k), -1, np.int64)
    dist = np.full((queries.shape[0], k), np.inf, np.float32)
    groups: dict[int, list[int]] = {}
    for i, mask in enumerate(masks):
        groups.setdefault(id(mask), []).append(i)
    for members in groups.values():
        mask = np.asarray(masks[members[0]], bool)
        if mask.shape != (database.shape[0],):
            raise ValueError(
                f"masks: expected bool arrays of shape ({database.shape[0]},), got {mask.shape}"
            )
        rows = np.flatnonzero(mask)
        if rows.size == 0:
            continue
        found, d = compute_ground_truth(database[rows], queries[members], min(k, rows.size), metric)
        ids[members, : found.shape[1]] = np.where(found >= 0, rows[np.maximum(found, 0)], -1)
        dist[members, : d.shape[1]] = d
    return ids, dist


# ---- synthetic data ----------------------------------------------------------------------------------
def synthetic(
    n_train: int = 10_000,
    n_test: int = 200,
    dim: int = 64,
    *,
    intrinsic_dim: int = 8,
    n_clusters: int = 20,
    metric: str = "l2",
    seed: int = 0,
    ground_truth_k: int | None = 100,
) -> Dataset:
    """Clustered data of low intrinsic dimension embedded non-linearly in ``dim`` dimensions.

    As in faiss ``contrib/datasets.SyntheticDataset``: points live on an ``intrinsic_dim``-dimensional
    manifold (a Gaussian mixture mapped through a random linear map and a sine), so nearest
    neighbors are meaningful and approximate indexes show real recall/speed trade-offs (uniform
    noise in high dimension makes every point nearly equidistant). Queries come from the same
    distribution. Vectors are unit-normalized for ``cosine``.
    """
    _check_metric(metric)
    if n_train < 1 or n_test < 1 or dim < 1 or intrinsic_dim < 1:
        raise ValueError(
            f"synthetic: expected positive sizes, got n_train={n_train}, n_test={n_test}, "
            f"dim={dim}, intrinsic_dim={intrinsic_dim}"
        )
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=2.0, size=(n_clusters, intrinsic_dim))
    n = n_train + n_test
    latent = centers[rng.integers(0, n_clusters, n)] + rng.normal(size=(n, intrinsic_dim))
    proj = rng.random((intrinsic_dim, dim))
    x = latent @ proj
    x *= rng.random(dim) * 4 + 0.1
    x = np.sin(x).astype(np.float32)
    if metric == "cosine":
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    order = rng.permutation(n)
    train = np.ascontiguousarray(x[order[:n_train]])
    test = np.ascontiguousarray(x[order[n_train:]])
    ds = Dataset(f"synthetic-{n_train}x{dim}-id{intrinsic_dim}", train, test, metric)
    if ground_truth_k:
        nb, dist = compute_ground_truth(train, test, min(ground_truth_k, n_train), metric)
        ds = replace(ds, neighbors=nb, distances=dist)
    return ds


# ---- the embedded default ----------------------------------------------------------------------------
def load_embedded(queries: str = "id") -> Dataset:
    """The embedded WordNet/MiniLM slice (cosine): 10,000 x 384 train, 500 queries, exact top-100.

    ``queries="id"`` gives held-out WordNet definitions (in-distribution); ``"ood"`` single-word
    queries against definitions (out-of-distribution).
    """
    if queries not in ("id", "ood"):
        raise ValueError(f"queries: expected 'id' or 'ood', got {queries!r}")
    if not EMBEDDED_FILE.is_file():
        raise FileNotFoundError(
            f"the embedded dataset {EMBEDDED_FILE} is missing from this installation"
        )
    with np.load(EMBEDDED_FILE) as f:
        train = np.ascontiguousarray(f["train"].astype(np.float32))
        test = np.ascontiguousarray(f[f"test_{queries}"].astype(np.float32))
        neighbors = f[f"neighbors_{queries}"].astype(np.int64)
        distances = f[f"distances_{queries}"].astype(np.float32)
    name = "wordnet-minilm-10k" + ("" if queries == "id" else "-ood")
    info = {"license": str(DATA_DIR / "LICENSE-WordNet.txt")}
    return Dataset(
        name, train, test, "cosine", neighbors, distances, source=str(EMBEDDED_FILE), info=info
    )


def make_embedded(
    source_dir: str | os.PathLike,
    out: str | os.PathLike = EMBEDDED_FILE,
    *,
    n_train: int = 10_000,
    n_queries: int = 500,
    k: int = 100,
    seed: int = 0,
) -> Path:
    """Rebuild the embedded slice from ``wordnet-minilm/`` (train.npy, test_id.npy, test_ood.npy).

    Train rows are a seeded uniform sample (sorted) of the full set; queries are the first
    ``n_queries`` of each query file; ground truth is exact (cosine) over the sampled rows.
    Vectors are stored float16 as in the source; ground truth is computed on their float32 values.
    """
    src = Path(source_dir)
    full = np.load(src / "train.npy", mmap_mode="r")
    rows = np.sort(np.random.default_rng(seed).choice(full.shape[0], n_train, replace=False))
    train16 = np.ascontiguousarray(full[rows], dtype=np.float16)
    arrays: dict[str, np.ndarray] = {"train": train16, "source_rows": rows.astype(np.int32)}
    for kind in ("id", "ood"):
        q16 = np.ascontiguousarray(np.load(src / f"test_{kind}.npy")[:n_queries], dtype=np.float16)
        nb, dist = compute_ground_truth(
            train16.astype(np.float32), q16.astype(np.float32), k, "cosine"
        )
        arrays[f"test_{kind}"] = q16
        arrays[f"neighbors_{kind}"] = nb.astype(np.int32)
        arrays[f"distances_{kind}"] = dist.astype(np.float32)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    return out


# ---- one entry point for the CLI --------------------------------------------------------------------
def load_dataset(
    spec: str | os.PathLike | None = None,
    *,
    metric: str | None = None,
    queries_file: str | os.PathLike | None = None,
    n_queries: int = 1000,
) -> Dataset:
    """Open a dataset by name or path: ``"embedded"`` / ``"embedded-ood"`` (default), an ann-benchmarks
    ``.hdf5``/``.h5`` file, or a ``.npy``/``.fvecs``/``.fbin`` matrix (queries held out unless
    ``queries_file`` is given; ``metric`` defaults to ``l2`` for raw files)."""
    if spec is None or str(spec) in EMBEDDED_NAMES:
        ds = load_embedded("ood" if str(spec) == "embedded-ood" else "id")
        if metric not in (None, ds.metric):
            raise ValueError(f"metric: the embedded dataset is {ds.metric!r}, got {metric!r}")
        return ds
    path = Path(spec)
    if path.suffix.lower() in (".hdf5", ".h5"):
        ds = load_hdf5(path)
        if metric not in (None, ds.metric):
            raise ValueError(f"metric: {path} declares {ds.metric!r}, got {metric!r}")
        return ds
    if not path.exists():
        raise FileNotFoundError(
            f"dataset: expected 'embedded', 'embedded-ood' or a .hdf5/.npy/.fvecs/.fbin path, got {str(spec)!r}"
        )
    return load_vectors_dataset(
        path, metric=metric or "l2", queries=queries_file, n_queries=n_queries
    )
