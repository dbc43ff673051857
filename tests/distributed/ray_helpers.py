"""What the distributed tests share: one local Ray instance for the whole session, and a kill that
waits until the actor is really dead.

Each test module imports ``ray_session`` and uses it (``pytestmark``); the first module to run
starts Ray, the others find it running, and it is shut down once, at the end of the session (Ray's
start-up is the expensive part of these tests). Not a conftest.py: a second ``conftest`` module
would shadow ``tests/conftest.py`` for ``from conftest import exact_knn``.
"""

from __future__ import annotations

import pytest
import ray

from vecsearch.distributed.remote import kill_and_wait  # noqa: F401  (re-exported for the tests)


@pytest.fixture(scope="session")
def ray_session():
    started = not ray.is_initialized()
    if started:
        # address="local": always a fresh instance, never the cluster named in a stale
        # /tmp/ray/ray_current_cluster (left there by a ray.cluster_utils.Cluster or `ray start`).
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            ignore_reinit_error=True,
        )
    yield
    if started:
        ray.shutdown()


def actor_calls(actor, method: str) -> int:
    """How many times ``actor`` (a Shard) has served ``method``, counted inside the actor."""
    return int(ray.get(actor.stats.remote(), timeout=30)["calls"].get(method, 0))
