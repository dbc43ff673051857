"""Adapters to third-party frameworks; each submodule imports its framework only when imported itself.

``vecsearch.integrations.langchain``: :class:`VecsearchVectorStore`, a LangChain ``VectorStore``
over a :class:`vecsearch.Collection` (``pip install "vecsearch[rag]"``).
``vecsearch.integrations.ann_benchmarks``: vecsearch as an ann-benchmarks algorithm module.
"""
