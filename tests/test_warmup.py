"""``vs.warmup()``: the plan that shares compilation between processes, and the helper process itself."""

from __future__ import annotations

import numpy as np
import pytest

import vecsearch as vs
from vecsearch import registry
from vecsearch.warmup import COLD_SECONDS, SHARED_KERNELS, main, plan_groups, start_helper

ALL_TYPES = sorted(record.name for record in registry.all_types())


@pytest.mark.parametrize("processes", [1, 2, 3, 8])
def test_the_plan_covers_every_type_once_in_at_most_the_asked_processes(processes):
    groups = plan_groups(ALL_TYPES, processes)
    assert 1 <= len(groups) <= processes
    assert sorted(name for group in groups for name in group) == ALL_TYPES
    assert all(groups)  # no empty group: an idle helper process would cost a start-up for nothing


def test_types_that_share_kernels_are_compiled_in_the_same_process():
    for processes in (2, 3, 8):
        groups = plan_groups(ALL_TYPES, processes)
        for shared in SHARED_KERNELS:
            holding = [i for i, group in enumerate(groups) for name in shared if name in group]
            assert len(set(holding)) == 1, (shared, groups)


def test_two_processes_split_the_compile_time_evenly_enough():
    cost = lambda group: sum(COLD_SECONDS[n] for n in group)
    first, second = plan_groups(ALL_TYPES, 2)
    assert cost(first) >= cost(second)  # the heaviest group stays in the calling process
    assert cost(second) >= 0.5 * cost(first), (first, second)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_bad_process_counts_are_rejected_naming_the_argument(bad):
    with pytest.raises(ValueError, match="processes"):
        vs.warmup(processes=bad)


def test_the_helper_process_warms_the_types_it_is_given():
    helper = start_helper(["flat"])
    assert helper.wait(timeout=300) == 0


def test_the_helper_entry_rejects_unknown_types():
    with pytest.raises(SystemExit):
        main(["--types", "flat,no_such_index"])


def test_warmup_with_a_helper_process_leaves_every_kernel_usable_here(monkeypatch):
    two = [record for record in registry.all_types() if record.name in ("flat", "ivfpq")]
    monkeypatch.setattr(registry, "all_types", lambda: two)
    seconds = vs.warmup(processes=2)
    assert seconds > 0
    x = np.random.default_rng(1).standard_normal((50, 8)).astype(np.float32)
    index = vs.FlatIndex(8, "l2")
    index.add(x)
    assert index.search(x[:3], 1).ids[:, 0].tolist() == [0, 1, 2]
