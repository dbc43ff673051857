"""The tiled inner-product kernel of the coarse probe and k-means: GFLOP/s on one core, against faiss.

Rows: the WordNet definition vectors (``../shared/data``, first ``--rows``); centroids: ``--nlist``
other rows, normalized (like a spherical IVF quantizer). On one thread, the arms interleaved and
repeated ``--rounds`` times (best and median kept):

* ``block_12x2``: :func:`vecsearch.kernels.fastscan_coarse.block_dots` as it is (12 rows x 2 tiles
  of 16 centroids per register block);
* ``block_16x1``: the same loops with the kernel of commit ``BEFORE`` (16 rows x 1 tile), loaded
  from git as a sibling module;
* ``assign``: :func:`vecsearch.codecs.kmeans.assign` (products + nearest centroid), the k-means /
  add step;
* ``faiss_top1``: ``faiss.IndexFlatIP.search(rows, 1)`` (BLAS ``sgemm`` + top-1), the same step in faiss.

GFLOP/s count ``2 * rows * nlist * d`` for every arm.

    flock /work/notes/bench.lock nice -n 5 python bench/bench_coarse_kernel.py
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import faiss
import numba
import numpy as np

from vecsearch.benchmark.results import ResultsFile
from vecsearch.benchmark.wordnet import load_train
from vecsearch.codecs.kmeans import assign, centroid_tiles
from vecsearch.kernels import fastscan_coarse

ROOT = Path(__file__).resolve().parents[1]
BEFORE = "0f6be61"  # the last commit with the 16 x 1 register block


def kernel_module_at(commit: str):
    """``vecsearch/kernels/fastscan_coarse.py`` of ``commit``, imported as a sibling module."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:vecsearch/kernels/fastscan_coarse.py"],
                            check=True, capture_output=True, text=True).stdout
    name = f"fastscan_coarse_{commit.lower()}"
    path = Path(tempfile.mkdtemp()) / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"vecsearch.kernels.{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def all_blocks(module):
    """Products of every row with every tile through ``module``'s ``fill_block`` / ``block_dots``."""

    @numba.njit(cache=False, nogil=True)
    def run(x, tiles, block, dots):
        group = block.shape[0]
        for lo in range(0, x.shape[0], group):
            n_rows = module.fill_block(x, lo, min(x.shape[0], lo + group), block)
            module.block_dots(block, n_rows, tiles, dots)

    def call(x, tiles):
        block = np.empty((module.GROUP_QUERIES, x.shape[1]), np.float32)
        dots = np.empty((module.GROUP_QUERIES, tiles.shape[0] * module.TILE), np.float32)
        run(x, tiles, block, dots)

    return call


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--nlist", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "bench/results/coarse_kernel.json"))
    args = ap.parse_args()
    numba.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    data = load_train()
    x = np.ascontiguousarray(data[:args.rows])
    centroids = np.ascontiguousarray(data[-args.nlist:])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    tiles = centroid_tiles(centroids)
    flat = faiss.IndexFlatIP(x.shape[1])
    flat.add(centroids)
    now, before = all_blocks(fastscan_coarse), all_blocks(kernel_module_at(BEFORE))
    calls = {
        "block_12x2": lambda: now(x, tiles),
        "block_16x1": lambda: before(x, tiles),
        "assign": lambda: assign(x, centroids, "ip"),
        "faiss_top1": lambda: flat.search(x, 1),
    }
    now(x[:64], tiles), before(x[:64], tiles), assign(x[:64], centroids, "ip")  # compile outside the timing
    results = ResultsFile(args.out, args, script="bench_coarse_kernel")
    flops = 2.0 * x.shape[0] * args.nlist * x.shape[1]
    times: dict[str, list[float]] = {name: [] for name in calls}
    loads: list[float] = []
    for r in range(args.rounds):
        order = list(calls)[r % len(calls):] + list(calls)[:r % len(calls)]
        for name in order:
            t0 = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - t0)
        loads.append(os.getloadavg()[0])
    for name, ts in times.items():
        results.add({"arm": name, "rows": x.shape[0], "nlist": args.nlist, "dim": x.shape[1],
                     "best_s": min(ts), "median_s": float(np.median(ts)), "gflops_best": flops / min(ts) / 1e9,
                     "gflops_median": flops / float(np.median(ts)) / 1e9, "load1_median": float(np.median(loads))},
                    show=("arm", "best_s", "gflops_best", "gflops_median", "load1_median"))
    best = {row["arm"]: row["gflops_median"] for row in results.rows}
    results.summary = {"gflops_median": best,
                       "ratio_12x2_to_16x1": best["block_12x2"] / best["block_16x1"],
                       "ratio_assign_to_faiss_top1": best["assign"] / best["faiss_top1"]}
    results.write()
    print(results.summary)


if __name__ == "__main__":
    main()
