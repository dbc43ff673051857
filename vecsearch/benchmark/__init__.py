"""Benchmarks: ``vecsearch bench`` (recall-vs-QPS sweeps beside faiss and hnswlib) and what the
``bench/`` scripts are built from.

:func:`run_benchmark` (:mod:`.runner`) drives a ``vecsearch bench`` run, :mod:`.algorithms` wraps
each library behind one API, :mod:`.report` writes the plot and the tables. The ``bench/``
scripts are configurations over the same parts: :mod:`.wordnet` (the shared WordNet set and its
held-out split), :mod:`.datasets` (ground truth, cached), :mod:`.evaluation` (``recall_at_k``, the
interleaved timing), :mod:`.results` (the one results file).
"""

from .runner import BenchConfig, read_results, run_benchmark

__all__ = ["BenchConfig", "read_results", "run_benchmark"]
