"""Cold start: how long numba compilation makes a new user wait, with an empty cache and with a warm one.

Each scenario runs in a fresh Python process whose numba cache directory (``NUMBA_CACHE_DIR``) is a new
empty folder, then once more in another process on the now-filled folder (what every later process
of the same installation sees). Recorded per run: wall seconds and CPU seconds of the process
(compilation is single-threaded, so on a busy machine wall time grows and CPU time does not).

Scenarios:

* ``hnsw-first-add-search``: ``HNSWIndex(384, "cosine").add(2,000 WordNet vectors)`` then one single
  query and one batch of 64 — the first thing a new user does;
* ``warmup``: ``vs.warmup()``, which compiles every kernel of every index type (what a service calls
  at start-up), sharing the work with a helper process on a machine with 2+ CPUs (its CPU seconds
  are recorded as ``helper_cpu_s``);
* ``warmup-1-process``: ``vs.warmup(processes=1)``, everything compiled in the calling process;
* ``flat``, ``ivfpq``, ``ivf-fastscan``, ``leanvec``: the first add + searches of each of those index types.

    python bench/bench_compile.py                      # every scenario
    python bench/bench_compile.py --scenarios hnsw-first-add-search,warmup

Writes ``bench/results/compile.json`` with the date, the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from vecsearch.benchmark import wordnet
from vecsearch.benchmark.report import format_table
from vecsearch.benchmark.results import ResultsFile

RESULTS = Path(__file__).resolve().parent / "results"
SCENARIOS = ("hnsw-first-add-search", "warmup", "warmup-1-process", "flat", "ivfpq", "ivf-fastscan", "leanvec")

# The child: times its scenario with perf_counter/process_time and prints one JSON line.
CHILD = r"""
import json, resource, sys, time
t_wall, t_cpu = time.perf_counter(), time.process_time()
import numpy as np
import vecsearch as vs
scenario, data = sys.argv[1], sys.argv[2]
x = np.load(data)[:2000].astype(np.float32)
if scenario == "warmup":
    vs.warmup()  # compiles in two processes on a 2-core machine (the helper's CPU is counted below)
elif scenario == "warmup-1-process":
    vs.warmup(processes=1)
else:
    if scenario == "hnsw-first-add-search":
        index = vs.HNSWIndex(384, "cosine")
    elif scenario == "flat":
        index = vs.FlatIndex(384, "cosine")
    elif scenario == "ivfpq":
        index = vs.IVFPQIndex(384, "cosine", nlist=16, m=48, keep_vectors=True)
        index.train(x)
    elif scenario == "ivf-fastscan":  # the batch of 64 takes the grouped scan, the single query the per-query one
        index = vs.IVFFastScanIndex(384, "cosine", nlist=16, m=96, keep_vectors=True)
        index.train(x)
    else:
        index = vs.LeanVecIndex(384, "cosine")
        index.train(x)
    index.add(x, progress=False)
    index.search(x[0], 10)
    index.search(x[:64], 10)
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall_s": time.perf_counter() - t_wall, "cpu_s": time.process_time() - t_cpu,
                  "helper_cpu_s": kids.ru_utime + kids.ru_stime}))
"""


def run_child(scenario: str, cache_dir: str, data: Path) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    out = subprocess.run([sys.executable, "-c", CHILD, scenario, str(data)], env=env, capture_output=True,
                         text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{scenario} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    wordnet.add_data_argument(ap)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--out", default=str(RESULTS / "compile.json"))
    args = ap.parse_args()
    data = wordnet.wordnet_dir(args.data) / "train.npy"
    results = ResultsFile(args.out, args, script="bench_compile")
    for scenario in args.scenarios.split(","):
        if scenario not in SCENARIOS:
            raise SystemExit(f"--scenarios: unknown scenario {scenario!r}; expected some of {SCENARIOS}")
        cache_dir = tempfile.mkdtemp(prefix="vecsearch-numba-")
        try:
            load_before = os.getloadavg()[0]
            cold = run_child(scenario, cache_dir, data)
            warm = run_child(scenario, cache_dir, data)
        finally:
            shutil.rmtree(cache_dir, ignore_errors=True)
        results.add({"scenario": scenario, "cold_wall_s": cold["wall_s"], "cold_cpu_s": cold["cpu_s"],
                     "cold_helper_cpu_s": cold["helper_cpu_s"], "cached_wall_s": warm["wall_s"], "cached_cpu_s": warm["cpu_s"],
                     "load1_before": load_before,
                     "load1_after": os.getloadavg()[0]},
                    show=("scenario", "cold_wall_s", "cold_cpu_s", "cached_wall_s", "load1_before"))
    print("\n" + format_table(results.rows, ["scenario", "cold_wall_s", "cold_cpu_s", "cold_helper_cpu_s", "cached_wall_s", "cached_cpu_s",
                                             "load1_before", "load1_after"]))
    print(f"\nwrote {results.write()}")


if __name__ == "__main__":
    sys.exit(main())
