"""ann-benchmarks' entry point for vecsearch: copied to ``ann_benchmarks/algorithms/vecsearch/module.py``.

ann-benchmarks imports ``<module>.module`` and looks up the ``constructor`` named in config.yml;
the class itself lives in the installed package (:mod:`vecsearch.integrations.ann_benchmarks`).
"""

from vecsearch.integrations.ann_benchmarks import Vecsearch

__all__ = ["Vecsearch"]
