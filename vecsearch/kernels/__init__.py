"""numba kernels: pure functions over arrays (no classes, no Python objects, nothing compiled at import)."""
