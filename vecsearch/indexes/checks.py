"""Content checks of restored index arrays: every invariant a kernel trusts without a bounds check.

A checksum proves a file is what was written, not that what was written is valid: a crafted or
buggy file with a link past the end of the graph would make a kernel read outside its arrays.
Each function returns an empty string when the arrays are consistent, else a message naming the
array and the first offending value (the caller raises it as ``ValueError``).
"""

from __future__ import annotations

import numpy as np

# Deepest HNSW level a graph may have (levels are drawn as floor(-ln U / ln M), capped here).
MAX_LEVEL = 64


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def check_links(name: str, links: np.ndarray, counts: np.ndarray, n_nodes: int, width: int) -> str:
    """Neighbour rows ``links`` int32 (rows, width) with lengths ``counts`` int32 (rows,): every
    length in [0, width], every used entry a node in [0, n_nodes)."""
    if counts.size and (counts.min() < 0 or counts.max() > width):
        bad = _first_bad((counts < 0) | (counts > width))
        return f"{name}: row {bad} claims {int(counts[bad])} links, expected 0..{width}"
    used = np.arange(width)[None, :] < counts[:, None]
    targets = links[used]
    if targets.size and (targets.min() < 0 or targets.max() >= n_nodes):
        return f"{name}: a link points to node {int(targets[(targets < 0) | (targets >= n_nodes)][0])}, outside 0..{n_nodes - 1}"
    return ""


def check_hnsw_graph(levels: np.ndarray, links0: np.ndarray, counts0: np.ndarray, upper_start: np.ndarray,
                     upper_links: np.ndarray, upper_counts: np.ndarray, entry: int, max_level: int) -> str:
    """The HNSW layout of :mod:`vecsearch.kernels.hnsw_graph`: levels, both link blocks, the upper
    rows each node owns, upper links only to nodes that have that level, and the entry point."""
    n, rows = levels.shape[0], upper_links.shape[0]
    if n and (levels.min() < 0 or levels.max() > MAX_LEVEL):
        return f"levels: node {_first_bad((levels < 0) | (levels > MAX_LEVEL))} has a level outside 0..{MAX_LEVEL}"
    problem = check_links("links0", links0, counts0, n, links0.shape[1])
    if problem:
        return problem
    has_upper = levels > 0
    if (upper_start[~has_upper] != -1).any():
        return f"upper_start: node {_first_bad((upper_start != -1) & ~has_upper)} has no upper level but a row"
    starts, owned = upper_start[has_upper], levels[has_upper].astype(np.int64)
    if starts.size and (starts.min() < 0 or (starts + owned).max() > rows):
        return f"upper_start: a node's rows reach outside the {rows} upper rows"
    problem = check_links("upper_links", upper_links, upper_counts, n, upper_links.shape[1])
    if problem:
        return problem
    # Row r of node u holds its level (r - upper_start[u] + 1) list: links there need that level.
    row_node = np.full(rows, -1, np.int64)
    row_level = np.zeros(rows, np.int64)
    nodes = np.flatnonzero(has_upper)
    for depth in range(1, int(owned.max()) + 1 if owned.size else 1):
        sel = owned >= depth
        row_node[starts[sel] + depth - 1] = nodes[sel]
        row_level[starts[sel] + depth - 1] = depth
    used = np.arange(upper_links.shape[1])[None, :] < upper_counts[:, None]
    used &= (row_node >= 0)[:, None]
    target_levels = levels[upper_links[used]]
    need = np.broadcast_to(row_level[:, None], upper_links.shape)[used]
    if (target_levels < need).any():
        return "upper_links: a link at some level points to a node without that level"
    if n == 0:
        if entry != -1 or max_level != -1:
            return f"params.entry: an empty graph needs entry -1 and max_level -1, got {entry} and {max_level}"
        return ""
    if not 0 <= entry < n:
        return f"params.entry: expected a node in 0..{n - 1}, got {entry}"
    if max_level != int(levels[entry]):
        return f"params.max_level: expected the entry's level {int(levels[entry])}, got {max_level}"
    return ""


def check_ivf_lists(slots: np.ndarray, offsets: np.ndarray, n_slots: int) -> str:
    """Inverted lists: ``offsets`` int64 (nlist + 1,) from 0, non-decreasing, ending at len(slots);
    every ``slots`` int32 entry a slot in [0, n_slots), each slot at most once."""
    if offsets.size == 0 or offsets[0] != 0 or (np.diff(offsets) < 0).any() or offsets[-1] != slots.shape[0]:
        return f"list_offsets: expected non-decreasing offsets from 0 to {slots.shape[0]}"
    if slots.size and (slots.min() < 0 or slots.max() >= n_slots):
        return f"list_slots: slot {int(slots[(slots < 0) | (slots >= n_slots)][0])} outside 0..{n_slots - 1}"
    if slots.size and np.bincount(slots, minlength=n_slots).max() > 1:
        return "list_slots: a slot appears in more than one list position"
    return ""
