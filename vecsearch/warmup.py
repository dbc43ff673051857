"""``vecsearch.warmup()``: compile (or load from the cache) the kernels of every index type.

Compilation is single-threaded inside one process (numba holds a global compiler lock), so with
the on-disk cache on (the default) the work is shared between processes: this one compiles one
group of index types while ``processes - 1`` helper processes (:func:`main`)
compile the others into the same cache; then this process loads their kernels from the cache
(about a second). Groups keep types that share kernels together (HNSW and LeanVec walk the same
graph kernels), so no kernel is compiled twice. Without the cache, or with ``processes=1``,
everything compiles here, one type after another.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

from . import (
    indexes,  # noqa: F401  (defines, and so registers, every index type)
    registry,
)
from .kernels._jit import CACHE_ENABLED

# Types that share compiled kernels go to the same process (LeanVec walks HNSW's graph kernels;
# IVF-PQ and IVF fast-scan train with the same k-means and re-rank with Flat's kernels), in this
# order. COLD_SECONDS: each type's compile CPU seconds after the types before it in its group
# (2-core machine, quiet, 2026-12-07 07:20 UTC: LeanVec after HNSW compiles nothing new), used only to
# balance the groups across processes.
SHARED_KERNELS = (("hnsw", "leanvec"), ("flat", "ivfpq", "ivf_fastscan"))
COLD_SECONDS = {"hnsw": 40.0, "leanvec": 0.5, "flat": 8.0, "ivfpq": 32.0, "ivf_fastscan": 18.0, "multivector": 8.0}


def warmup(verbose: bool = False, processes: int | None = None) -> float:
    """Build and query a tiny index of every registered type and metric; returns wall seconds spent.

    Call once at service start so the first user query does not pay numba's compile or
    cache-load time. ``processes``: how many processes compile at once (default: the number of
    CPUs, at most the number of kernel groups; 1 when the on-disk cache is off, since helpers
    could not hand their kernels over). Returns after every kernel is usable in this process.
    """
    if processes is not None and (isinstance(processes, bool) or not isinstance(processes, int) or processes < 1):
        raise ValueError(f"processes: expected a positive int or None, got {processes!r}")
    start = time.perf_counter()
    names = sorted(record.name for record in registry.all_types())
    groups = plan_groups(names, _default_processes(processes, names))
    helpers = [start_helper(group) for group in groups[1:]]
    _warm(groups[0], verbose)
    for group, helper in zip(groups[1:], helpers):
        code = helper.wait()
        if verbose and code != 0:
            print(f"warmup helper for {','.join(group)} exited with {code}; compiling here")
    _warm([name for group in groups[1:] for name in group], verbose)  # cache loads (or compiles on failure)
    return time.perf_counter() - start


def plan_groups(names: list[str], processes: int) -> list[list[str]]:
    """Split type ``names`` into at most ``processes`` groups of similar cold compile time, keeping
    the types of each :data:`SHARED_KERNELS` tuple together; the heaviest group first."""
    units: list[list[str]] = []
    for shared in SHARED_KERNELS:
        unit = [n for n in shared if n in names]
        if unit:
            units.append(unit)
    units += [[n] for n in names if not any(n in u for u in units)]
    groups: list[list[str]] = [[] for _ in range(max(1, min(processes, len(units))))]
    for unit in sorted(units, key=_cold_seconds, reverse=True):  # longest first, onto the lightest group
        min(groups, key=_cold_seconds).extend(unit)
    return sorted(groups, key=_cold_seconds, reverse=True)


def _cold_seconds(names: list[str]) -> float:
    return sum(COLD_SECONDS.get(name, 10.0) for name in names)


def _default_processes(processes: int | None, names: list[str]) -> int:
    if not CACHE_ENABLED:
        return 1
    if processes is None:
        processes = os.cpu_count() or 1
    return processes


def start_helper(group: list[str]) -> subprocess.Popen:
    """A process running :func:`main` on ``group`` with this environment (same numba cache) and this
    copy of vecsearch first on its path."""
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    code = "import sys; from vecsearch.warmup import main; main(sys.argv[1:])"
    return subprocess.Popen([sys.executable, "-c", code, "--types", ",".join(group)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _warm(names: list[str], verbose: bool) -> None:
    data = np.random.default_rng(0).standard_normal((300, 8)).astype(np.float32)
    by_name = {record.name: record for record in registry.all_types()}
    for name in names:
        t0 = time.perf_counter()
        by_name[name].cls.warmup_kernels(data)
        if verbose:
            print(f"warmup {name}: {time.perf_counter() - t0:.2f}s")


def main(argv: list[str] | None = None) -> None:
    """Helper process entry: warm the given types (into the shared on-disk cache) and exit."""
    parser = argparse.ArgumentParser(prog="vecsearch.warmup", description=__doc__)
    parser.add_argument("--types", required=True, help="comma-separated registered type names")
    args = parser.parse_args(argv)
    known = {record.name for record in registry.all_types()}
    names = [n for n in args.types.split(",") if n]
    unknown = sorted(set(names) - known)
    if unknown:
        parser.error(f"unknown index types: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    _warm(names, verbose=False)


if __name__ == "__main__":
    main()
