"""``vecsearch bench``: recall-vs-QPS sweeps of vecsearch indexes beside faiss and hnswlib.

:func:`run_benchmark` (:mod:`.runner`) drives the run, :mod:`.algorithms` wraps each library
behind one API, :mod:`.report` writes the plot and the tables.
"""

from .runner import BenchConfig, read_results, run_benchmark

__all__ = ["BenchConfig", "read_results", "run_benchmark"]
