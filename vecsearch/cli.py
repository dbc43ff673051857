"""The ``vecsearch`` command line (also ``python -m vecsearch``). Sub-command: ``bench``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

BENCH_EPILOG = """\
index specs: KIND or KIND:key=v1,v2:key=v, KIND one of flat, hnsw, ivfpq, leanvec.
  Search keys (ef for hnsw/leanvec, nprobe/rerank for ivfpq) are swept; other keys are build
  parameters (several values build several indexes); 'none' means None.
  e.g. --index hnsw:M=16,32:ef=10,20,40,80 ivfpq:nlist=256:m=48:nprobe=1,4,16:rerank=none,10

datasets: 'embedded' (default: 10,000 WordNet/MiniLM vectors, 500 queries, cosine, shipped with
  vecsearch), 'embedded-ood' (single-word queries), an ann-benchmarks .hdf5 file
  (e.g. glove-100-angular.hdf5 from ann-benchmarks.com), or a .npy/.fvecs/.fbin matrix
  (queries from --query-file, else held out; --metric, default l2).

outputs in --out: results.jsonl (one JSON object per point), recall_qps.png, table.txt.

calibration: --calibrate 0.95 calibrates each vecsearch index after its sweep (index.calibrate) on
  held-out queries - those after the first --queries N, else the last half of the queries (at most
  --calibration-queries), which are then not measured - and measures the chosen setting on the
  measured queries: "QPS at the calibrated setting" in the table, "calibrated": true in results.jsonl.

OpenMP: unless OMP_WAIT_POLICY is already set, the benchmark sets it to PASSIVE before faiss or
numba start their thread pools, so idle OpenMP threads sleep instead of spinning: faiss and
numba share this process, and spinning threads of one library (or of other programs on a busy
machine) steal the cores the other is measured on. Export OMP_WAIT_POLICY=ACTIVE to override.
"""


def _int_at_least(minimum: int, what: str):
    """An argparse ``type=`` parser for integers >= ``minimum`` ("a <what> integer" in its errors)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1, "positive")


def _target_recall(text: str) -> float:
    """An argparse ``type=`` parser for a recall in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a recall in (0, 1], got {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a recall in (0, 1], got {value}")
    return value
_non_negative_int = _int_at_least(0, "non-negative")


def build_parser() -> argparse.ArgumentParser:
    from .benchmark.evaluation import TIE_EPS
    from .benchmark.runner import DEFAULT_INDEXES

    parser = argparse.ArgumentParser(prog="vecsearch", description="vecsearch command line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench = sub.add_parser(
        "bench",
        help="recall vs QPS of vecsearch indexes beside faiss and hnswlib",
        description="Build indexes, sweep their search parameter, write JSON lines and a recall-vs-QPS plot.",
        epilog=BENCH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument(
        "--dataset",
        default="embedded",
        help="embedded | embedded-ood | PATH.hdf5 | PATH.npy (default: embedded)",
    )
    bench.add_argument(
        "--metric", choices=("l2", "ip", "cosine"), help="metric for raw .npy/.fvecs/.fbin data"
    )
    bench.add_argument("--query-file", help="queries for a raw .npy/.fvecs/.fbin dataset")
    bench.add_argument(
        "--index",
        nargs="+",
        default=list(DEFAULT_INDEXES),
        metavar="SPEC",
        help=f"vecsearch indexes and parameter grids (default: {' '.join(DEFAULT_INDEXES)})",
    )
    bench.add_argument(
        "--peers",
        nargs="*",
        default=["faiss", "hnswlib"],
        metavar="PEER",
        help="peer libraries run beside vecsearch: faiss, hnswlib, or none (default: faiss hnswlib)",
    )
    bench.add_argument(
        "--k", type=_positive_int, default=10, help="neighbors per query (default 10)"
    )
    bench.add_argument(
        "--threads", type=_positive_int, help="threads for every library (default: all cores)"
    )
    bench.add_argument(
        "--queries", type=_positive_int, help="use only the first N queries (default: all)"
    )
    bench.add_argument(
        "--out", default="bench-results", help="output directory (default ./bench-results)"
    )
    bench.add_argument(
        "--runs",
        type=_positive_int,
        default=3,
        help="timed batch runs per point, best kept (default 3)",
    )
    bench.add_argument(
        "--rounds",
        type=_non_negative_int,
        default=3,
        help="after the sweep, re-time every point this many times with the algorithms taken in "
        "turn, keeping the best (default 3; 0: free each index after its sweep, less memory)",
    )
    bench.add_argument(
        "--latency-queries",
        type=_positive_int,
        default=200,
        help="one-at-a-time queries timed for p50/p99 latency (default 200)",
    )
    bench.add_argument(
        "--tie-eps",
        type=float,
        default=TIE_EPS,
        help=f"relative distance tolerance for ties in recall (default {TIE_EPS})",
    )
    bench.add_argument("--no-plot", action="store_true", help="do not write the PNG plot")
    bench.add_argument(
        "--calibrate",
        type=_target_recall,
        metavar="RECALL",
        help="after each vecsearch sweep, calibrate the index to this recall@k on held-out queries "
        "and measure the chosen setting (see below)",
    )
    bench.add_argument(
        "--calibration-queries",
        type=_positive_int,
        default=1000,
        help="at most this many held-out queries for --calibrate (default 1000)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "bench":
        parser.print_help()
        return 2
    # Before any OpenMP runtime starts (faiss import, first numba parallel kernel); see the epilog.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from .benchmark.runner import BenchConfig, run_benchmark

    peers = [p.lower() for p in args.peers if p.lower() != "none"]
    config = BenchConfig(
        dataset=args.dataset,
        metric=args.metric,
        query_file=args.query_file,
        indexes=args.index,
        peers=peers,
        k=args.k,
        threads=args.threads,
        queries=args.queries,
        out=args.out,
        runs=args.runs,
        rounds=args.rounds,
        latency_queries=args.latency_queries,
        tie_eps=args.tie_eps,
        plot=not args.no_plot,
        calibrate=args.calibrate,
        calibration_queries=args.calibration_queries,
    )
    try:
        run_benchmark(config)
    except (ValueError, FileNotFoundError) as exc:
        print(f"vecsearch bench: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
