"""The Ray plumbing shared by the sharded index's modules: lazy import, connecting, the shard actor
class, and waiting for one answer with a deadline. Ray is imported here only, lazily."""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

from .errors import ShardTimeoutError, ShardUnavailableError
from .shard import Shard

_REMOTE_SHARD: Any = None


def ray_module() -> Any:
    """The ``ray`` module, or ``ImportError`` saying how to install it."""
    try:
        import ray
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "vecsearch.distributed needs Ray: pip install 'vecsearch[distributed]' (or 'ray>=2.9')"
        ) from None
    return ray


def remote_shard_class() -> Any:
    """:class:`~vecsearch.distributed.shard.Shard` as a Ray actor class (made once)."""
    global _REMOTE_SHARD
    if _REMOTE_SHARD is None:
        _REMOTE_SHARD = ray_module().remote(Shard)
    return _REMOTE_SHARD


def kill_and_wait(actor: Any, timeout_s: float = 60.0) -> None:
    """Kill a Ray actor and return once it is dead: ``ray.kill`` returns before that, and a call made
    in the gap is still answered by the dying actor. ``RuntimeError`` if it still answers after
    ``timeout_s``. (Used by the fault tests and benchmarks.)"""
    ray = ray_module()
    ray.kill(actor)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            ray.get(actor.__ray_ready__.remote(), timeout=timeout_s)
        except ray.exceptions.RayActorError:
            return
        time.sleep(0.05)
    raise RuntimeError("the killed actor still answers")


def connect(address: str | None = None) -> bool:
    """Join the Ray cluster at ``address``, or start a local instance sized to the machine.

    An already initialized Ray session is reused as is. Returns True when Ray runs locally
    (no ``address``), which lets :class:`ShardedIndex` size each shard's thread pool.
    """
    ray = ray_module()
    if not ray.is_initialized():
        if address is None:
            # "local": start an instance here, not join whatever cluster the address file of the
            # last `ray start` (possibly long dead) names.
            ray.init(
                address="local",
                num_cpus=os.cpu_count(),
                include_dashboard=False,
                ignore_reinit_error=True,
                log_to_driver=False,
            )
        else:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    return address is None


def init_failure(exc: BaseException) -> str | None:
    """The error of a shard actor whose constructor raised (bad params, unreadable files), else None."""
    if not (getattr(exc, "actor_init_failed", False) or getattr(exc, "_actor_init_failed", False)):
        return None
    lines = [
        line.strip() for line in str(getattr(exc, "error_msg", exc)).splitlines() if line.strip()
    ]
    return lines[-1] if lines else "unknown error"


def raise_if_init_failed(shard: int, n_shards: int, exc: BaseException) -> None:
    """``ShardUnavailableError`` naming the shard and the cause when ``exc`` says its actor failed to start."""
    message = init_failure(exc)
    if message is not None:
        raise ShardUnavailableError(
            shard, f"shard {shard} of {n_shards}: its actor failed to start: {message}"
        ) from None


def get_answer(shard: int, n_shards: int, ref: Any, deadline: float, limit: str = "") -> Any:
    """``ray.get`` of one shard's answer, bounded by ``deadline`` (a ``time.monotonic`` value).

    A remote exception is re-raised as itself (with a note naming the shard); a dead actor raises
    Ray's ``RayActorError``; past the deadline :class:`ShardTimeoutError` (``limit`` names the
    setting that set the deadline, for the message).
    """
    ray = ray_module()
    try:
        return ray.get(ref, timeout=max(0.0, deadline - time.monotonic()))
    except ray.exceptions.GetTimeoutError:
        raise ShardTimeoutError(
            shard, f"shard {shard} of {n_shards} did not answer within {limit or 'timeout_s'} s"
        ) from None
    except ray.exceptions.RayActorError:
        raise
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause
        if isinstance(cause, Exception):
            cause.add_note(f"(raised by shard {shard} of the ShardedIndex)")
            raise cause from None
        raise


def cancel_quietly(ref: Any) -> None:
    """Best-effort ``ray.cancel`` of a call whose answer is no longer needed (a queued call is dropped)."""
    with contextlib.suppress(Exception):
        ray_module().cancel(ref)
