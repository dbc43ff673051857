"""A tiny progress bar on stderr for long adds (no dependency; rate-limited redraws)."""

from __future__ import annotations

import sys
import time


class Progress:
    """``Progress(total, "HNSW add", enabled=True)``; call ``update(n)`` then ``close()``.

    Redraws at most every ``interval`` seconds; does nothing when ``enabled`` is false.
    """

    def __init__(self, total: int, desc: str, *, enabled: bool = True, interval: float = 0.5):
        self.total = max(int(total), 1)
        self.desc = desc
        self.enabled = enabled
        self.interval = interval
        self.done = 0
        self._start = time.perf_counter()
        self._last = 0.0

    def update(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last >= self.interval or self.done >= self.total:
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        frac = min(self.done / self.total, 1.0)
        elapsed = now - self._start
        eta = elapsed * (1 - frac) / frac if frac > 0 else 0.0
        bar = "#" * int(frac * 30)
        sys.stderr.write(
            f"\r{self.desc}: [{bar:<30}] {self.done}/{self.total} {elapsed:5.1f}s elapsed, eta {eta:5.1f}s"
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            if self.done < self.total:
                self._draw(time.perf_counter())
            sys.stderr.write("\n")
            sys.stderr.flush()


def auto_enabled(progress: bool | None, n: int, threshold: int = 20_000) -> bool:
    """``progress`` if given, else on for adds of at least ``threshold`` vectors."""
    if progress is None:
        return n >= threshold
    if not isinstance(progress, bool):
        raise TypeError(f"progress: expected True, False or None, got {type(progress).__name__}")
    return progress
