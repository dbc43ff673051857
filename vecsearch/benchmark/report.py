"""Benchmark output: the recall-vs-QPS plot (PNG) and the printed tables (``vecsearch bench``, its
calibrated settings: :func:`calibration_table`, and the ``bench/`` scripts: :func:`format_table`,
:func:`format_value`)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from .evaluation import best_qps, interpolated_qps, pareto_frontier

PLOT_SIZE_IN = (8.0, 5.5)
PLOT_DPI = 100  # -> 800 x 550 pixels


def group_rows(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row["label"]].append(row)
    return dict(groups)


def plot_frontiers(rows: list[dict[str, Any]], path: str, title: str) -> tuple[int, int]:
    """Write a recall@k (x) vs QPS (y, log) PNG: faint dots for every point, the Pareto frontier of
    each algorithm as a line (vecsearch solid, peers dashed). Returns the (width, height) in pixels."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=PLOT_SIZE_IN, dpi=PLOT_DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    groups = group_rows(rows)
    cmap = matplotlib.colormaps["tab10"]
    k = rows[0]["k"] if rows else 10
    for i, (label, pts) in enumerate(groups.items()):
        color = cmap(i % 10)
        recall = np.array([p["recall"] for p in pts])
        qps = np.array([p["qps"] for p in pts])
        front = pareto_frontier(recall, qps)
        style = "-" if pts[0]["library"] == "vecsearch" else "--"
        ax.scatter(recall, qps, color=color, alpha=0.25, s=14)
        ax.plot(recall[front], qps[front], style, marker="o", ms=4, color=color, label=label)
    ax.set_yscale("log")
    if rows:
        low = min(r["recall"] for r in rows)
        ax.set_xlim(max(0.0, low - 0.03), 1.005)
    ax.set_xlabel(f"recall@{k}")
    ax.set_ylabel("queries per second (log)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if groups:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=PLOT_DPI)
    w, h = fig.get_size_inches() * PLOT_DPI
    return round(w), round(h)


def _fmt_params(params: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in params.items()) or "-"


def _fmt_num(x: float, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:,.{digits}f}"


def _label_width(rows: list[dict[str, Any]]) -> int:
    return max([9] + [len(r["label"]) for r in rows])


def points_table(rows: list[dict[str, Any]]) -> str:
    """Every measured point, grouped by algorithm, by increasing recall."""
    w = _label_width(rows)
    sw = max([6] + [len(_fmt_params(r["search_params"])) for r in rows])
    header = (
        f"{'algorithm':<{w}} {'search':<{sw}} {'recall':>7} {'QPS':>10} {'p50 ms':>8} {'p99 ms':>8}"
    )
    lines = [header, "-" * len(header)]
    for label, pts in group_rows(rows).items():
        for p in sorted(pts, key=lambda r: r["recall"]):
            lines.append(
                f"{label:<{w}} {_fmt_params(p['search_params']):<{sw}} {p['recall']:>7.4f} "
                f"{_fmt_num(p['qps']):>10} {p['p50_ms']:>8.3f} {p['p99_ms']:>8.3f}"
            )
    return "\n".join(lines)


def summary_table(rows: list[dict[str, Any]], targets=(0.9, 0.95)) -> str:
    """One line per algorithm: build time, index size, best recall and the best QPS at each recall target."""
    cols = "".join(f" {'QPS@' + format(t, '.2f'):>11}" for t in targets)
    w = _label_width(rows)
    header = f"{'algorithm':<{w}} {'build s':>8} {'MB':>8} {'max recall':>10}{cols}"
    lines = [header, "-" * len(header)]
    for label, pts in group_rows(rows).items():
        recall = np.array([p["recall"] for p in pts])
        qps = np.array([p["qps"] for p in pts])
        at = "".join(f" {_fmt_num(best_qps(recall, qps, t)):>11}" for t in targets)
        lines.append(
            f"{label:<{w}} {pts[0]['build_s']:>8.2f} {pts[0]['index_bytes'] / 1e6:>8.1f} "
            f"{recall.max():>10.4f}{at}"
        )
    return "\n".join(lines)


def ratio_lines(rows: list[dict[str, Any]], target: float = 0.9) -> list[str]:
    """'vecsearch-X vs peer-Y: QPS ratio at recall >= target' for algorithms of the same family."""
    family = {"flat": "flat", "hnsw": "graph", "leanvec": "graph", "ivfpq": "ivfpq"}
    groups = group_rows(rows)
    best: dict[str, tuple[float, str, str]] = {}
    for label, pts in groups.items():
        recall = np.array([p["recall"] for p in pts])
        qps = np.array([p["qps"] for p in pts])
        best[label] = (
            best_qps(recall, qps, target),
            pts[0]["library"],
            family.get(pts[0]["index"], "?"),
        )
    # Short names (``vecsearch-hnsw``) unless one algorithm ran with several build configurations.
    names = [pts[0]["algorithm"] for pts in groups.values()]
    short = {
        label: (pts[0]["algorithm"] if names.count(pts[0]["algorithm"]) == 1 else label)
        for label, pts in groups.items()
    }
    lines = []
    for label, (q, lib, fam) in best.items():
        if lib != "vecsearch" or math.isnan(q):
            continue
        for other, (q2, lib2, fam2) in best.items():
            if lib2 == "vecsearch" or fam2 != fam or math.isnan(q2):
                continue
            lines.append(
                f"{short[label]} / {short[other]}: {q / q2:.2f}x QPS at recall@k >= {target}"
            )
    return lines


def format_value(value: Any) -> str:
    """A cell of a printed table: large numbers with thousands separators, others to 4 significant
    digits, None/NaN as ``-``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}" if abs(int(value)) >= 10_000 else str(int(value))
    x = float(value)
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """``rows`` as an aligned text table of ``columns`` (a missing value prints as ``-``)."""
    cells = [[format_value(row.get(col)) for col in columns] for row in rows]
    widths = [max([len(col)] + [len(line[i]) for line in cells]) for i, col in enumerate(columns)]
    lines = ["  ".join(f"{col:>{w}}" for col, w in zip(columns, widths))]
    lines.append("-" * len(lines[0]))
    lines += ["  ".join(f"{cell:>{w}}" for cell, w in zip(line, widths)) for line in cells]
    return "\n".join(lines)


def qps_at_target(
    rows: Sequence[dict[str, Any]],
    target: float,
    *,
    group: Sequence[str],
    order: str,
    recall: str = "recall",
    qps: str = "qps",
) -> dict[tuple, float]:
    """QPS at ``target`` recall of every sweep in ``rows``: rows grouped by the values of the
    ``group`` keys, each group ordered by ``order`` (``ef``, ``nprobe``) and interpolated with
    :func:`~vecsearch.benchmark.evaluation.interpolated_qps` (NaN: the sweep never reaches it)."""
    sweeps: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        sweeps[tuple(row[key] for key in group)].append(row)
    out = {}
    for key, points in sweeps.items():
        points = sorted(points, key=lambda r: r[order])
        out[key] = interpolated_qps([p[recall] for p in points], [p[qps] for p in points], target)
    return out


def calibration_table(calibrated: Sequence[dict[str, Any]], sweep: Sequence[dict[str, Any]]) -> str:
    """One line per calibrated index (``--calibrate``): the target, the setting chosen on the held-out
    queries and the recall it had there, then the recall and QPS it got on the measured queries, and
    the sweep's best QPS at that recall or more (``vs sweep``: the calibrated QPS over it)."""
    groups = group_rows(list(sweep))
    lines = []
    for row in calibrated:
        cal = row["calibration"]
        pts = groups.get(row["label"], [])
        best = best_qps(np.array([p["recall"] for p in pts]), np.array([p["qps"] for p in pts]), row["recall"]) \
            if pts else float("nan")
        lines.append({"calibrated": row["label"], "target": cal["target_recall"],
                      "setting": _fmt_params(cal["params"]), "recall held-out": cal["recall_held_out"],
                      "recall": row["recall"], "QPS": row["qps"], "sweep QPS": best,
                      "vs sweep": row["qps"] / best if best > 0 else float("nan"),
                      "calib s": cal["seconds"]})
    columns = ["calibrated", "target", "setting", "recall held-out", "recall", "QPS", "sweep QPS", "vs sweep",
               "calib s"]
    return "QPS at the calibrated setting (measured queries; setting chosen on held-out ones)\n" + \
        format_table(lines, columns)
