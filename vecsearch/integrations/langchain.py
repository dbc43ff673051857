"""LangChain vector store over a :class:`vecsearch.Collection` (needs ``langchain-core``: extra ``rag``).

::

    from vecsearch.integrations.langchain import VecsearchVectorStore

    store = VecsearchVectorStore(embeddings, path="rag_store/", index="hnsw")
    store.add_texts(["..."], metadatas=[{"source": "a.pdf", "page": 3}])
    store.similarity_search("question", k=4, filter={"source": "a.pdf"})
    store.as_retriever(search_type="mmr", search_kwargs={"k": 4, "fetch_k": 20})
    store.hybrid_search("question", k=4)                      # dense + BM25, reciprocal rank fusion
    store.as_retriever(search_type="hybrid", search_kwargs={"k": 4, "fusion": "relative_score", "alpha": 0.5})
    store.calibrate(target_recall=0.95, queries=logged_questions)   # the fastest setting reaching it

Scores. ``similarity_search_with_score`` returns the collection's raw *distances* (smaller is
closer: cosine ``1 - cos``, squared L2, or negative inner product, as in :mod:`vecsearch.base`).
``similarity_search_with_relevance_scores`` maps them to [0, 1] (1 = most similar):

* cosine: ``1 - d / 2`` (i.e. ``(1 + cos) / 2``), exactly in [0, 1];
* l2: ``1 / (1 + d)`` on the squared distance, in (0, 1] for any vectors;
* ip: ``(1 - d) / 2 = (1 + <q, x>) / 2`` clipped to [0, 1] (exact for unit-norm embeddings,
  which most embedding models produce; use cosine or l2 otherwise).

Pass ``relevance_score_fn`` to override. ``filter`` (also ``where``) takes the Mongo/Chroma dict
form or ``vs.F`` expressions (:mod:`vecsearch.filtering.predicates`) over the metadata;
``where_document`` takes Chroma's document-text filter (``{"$contains": "..."}``) on every search.

Hybrid search. :meth:`VecsearchVectorStore.hybrid_search` runs the embedding search and a BM25
keyword search of the query text over the stored texts and fuses them (reciprocal rank fusion by
default; ``fusion="relative_score"`` with ``alpha`` = weight of the embedding leg), as
:meth:`vecsearch.Collection.query` does; :meth:`~VecsearchVectorStore.hybrid_search_with_scores`
also returns each hit's per-leg ranks and scores. ``as_retriever(search_type="hybrid")`` gives a
retriever that calls it (``search_kwargs``: ``k``, ``filter``, ``where_document``, ``fusion``,
``alpha``, ``fetch_k``, ...).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

import numpy as np

try:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForRetrieverRun,
        CallbackManagerForRetrieverRun,
    )
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.runnables.config import run_in_executor
    from langchain_core.vectorstores import VectorStore, VectorStoreRetriever
    from langchain_core.vectorstores.utils import maximal_marginal_relevance
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "vecsearch.integrations.langchain needs langchain-core: pip install 'vecsearch[rag]'"
    ) from exc

from ..store.collection import Collection


def cosine_relevance(distance: float) -> float:
    """Cosine distance ``1 - cos`` in [0, 2] -> relevance ``(1 + cos) / 2`` in [0, 1]."""
    return min(1.0, max(0.0, 1.0 - distance / 2.0))


def l2_relevance(distance: float) -> float:
    """Squared L2 distance >= 0 -> ``1 / (1 + d)`` in (0, 1]."""
    return 1.0 / (1.0 + max(0.0, distance))


def ip_relevance(distance: float) -> float:
    """Negative inner product -> ``(1 + <q, x>) / 2`` clipped to [0, 1] (exact for unit vectors)."""
    return min(1.0, max(0.0, (1.0 - distance) / 2.0))


_RELEVANCE = {"cosine": cosine_relevance, "l2": l2_relevance, "ip": ip_relevance}


class VecsearchVectorStore(VectorStore):
    """LangChain ``VectorStore`` backed by a persistent, thread-safe :class:`vecsearch.Collection`.

    ``embedding``: the LangChain embeddings model. Either pass an existing ``collection`` or the
    arguments to create/open one: ``path`` (None: in memory), ``metric``, ``index`` and index
    parameters (see :class:`vecsearch.Collection`). ``add_texts``/``add_documents`` upsert: adding
    an existing id replaces that record.
    """

    def __init__(self, embedding: Embeddings, *, collection: Collection | None = None, path: str | None = None,
                 metric: str | None = None, index: str | None = None,
                 relevance_score_fn: Callable[[float], float] | None = None, **index_params: Any):
        if collection is not None and (path is not None or metric is not None or index is not None or index_params):
            raise ValueError("collection: pass either an existing collection or path/metric/index/params, not both")
        self._embedding = embedding
        self.collection = collection if collection is not None else Collection(path, metric=metric, index=index, **index_params)
        self.override_relevance_score_fn = relevance_score_fn

    @property
    def embeddings(self) -> Embeddings:
        return self._embedding

    # ---- writes ------------------------------------------------------------------------------------
    def add_texts(self, texts: Iterable[str], metadatas: list[dict] | None = None, *,
                  ids: list[str | None] | None = None, **kwargs: Any) -> list[str]:
        """Embed and upsert ``texts``; ids missing or None get a fresh UUID. Returns the ids."""
        if kwargs:
            raise TypeError(f"add_texts: unexpected arguments {sorted(kwargs)}")
        texts = list(texts)
        if metadatas is not None and len(metadatas) != len(texts):
            raise ValueError(f"metadatas: expected {len(texts)} entries (one per text), got {len(metadatas)}")
        if ids is not None and len(ids) != len(texts):
            raise ValueError(f"ids: expected {len(texts)} entries (one per text), got {len(ids)}")
        if not texts:
            return []
        out_ids = [i if i else str(uuid.uuid4()) for i in (ids or [None] * len(texts))]
        vectors = np.asarray(self._embedding.embed_documents(texts), dtype=np.float32)
        metas = [dict(m) if m else {} for m in (metadatas or [None] * len(texts))]
        self.collection.upsert(out_ids, vectors, documents=texts, metadatas=metas)
        return out_ids

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete by ``ids``, by ``filter=`` (metadata) and/or ``where_document=`` (text), or
        everything when none is given."""
        where = kwargs.pop("filter", kwargs.pop("where", None))
        where_document = kwargs.pop("where_document", None)
        if kwargs:
            raise TypeError(f"delete: unexpected arguments {sorted(kwargs)}")
        if ids is None and where is None and where_document is None:
            ids = self.collection.get(include=[])["ids"]
            if not ids:
                return True
        self.collection.delete(ids=list(ids) if ids is not None else None, where=where, where_document=where_document)
        return True

    # ---- reads -------------------------------------------------------------------------------------
    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Documents with these ids, in the given order; unknown ids are skipped."""
        got = self.collection.get(ids=list(ids))
        return [Document(id=i, page_content=d or "", metadata=m or {})
                for i, d, m in zip(got["ids"], got["documents"], got["metadatas"])]

    def _query(self, embedding: Sequence[float] | None, k: int, filter: Any, kwargs: dict[str, Any],
               include: Sequence[str] = ("documents", "metadatas", "distances"), **hybrid: Any) -> dict[str, Any]:
        where = kwargs.pop("where", None) if filter is None else filter
        query = None if embedding is None else np.asarray(embedding, np.float32)
        return self.collection.query(query, n_results=k, where=where, include=list(include), **hybrid, **kwargs)

    @staticmethod
    def _documents(res: dict[str, Any]) -> list[Document]:
        return [Document(id=i, page_content=d or "", metadata=m or {})
                for i, d, m in zip(res["ids"][0], res["documents"][0], res["metadatas"][0])]

    def similarity_search_with_score_by_vector(self, embedding: Sequence[float], k: int = 4, filter: Any = None,
                                               **kwargs: Any) -> list[tuple[Document, float]]:
        """``(document, distance)`` pairs nearest to ``embedding``, closest first (raw distances)."""
        res = self._query(embedding, k, filter, kwargs)
        return list(zip(self._documents(res), res["distances"][0]))

    def similarity_search_with_score(self, query: str, k: int = 4, filter: Any = None,
                                     **kwargs: Any) -> list[tuple[Document, float]]:
        """``(document, distance)`` pairs for the text ``query``, closest first (raw distances)."""
        return self.similarity_search_with_score_by_vector(self._embedding.embed_query(query), k, filter, **kwargs)

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4, filter: Any = None,
                                    **kwargs: Any) -> list[Document]:
        return self._documents(self._query(embedding, k, filter, kwargs))

    def similarity_search(self, query: str, k: int = 4, filter: Any = None, **kwargs: Any) -> list[Document]:
        return self.similarity_search_by_vector(self._embedding.embed_query(query), k, filter, **kwargs)

    def hybrid_search_with_scores(self, query: str, k: int = 4, filter: Any = None, *, fusion: str = "rrf",
                                  alpha: float | None = None, fetch_k: int | None = None,
                                  **kwargs: Any) -> list[tuple[Document, dict[str, Any]]]:
        """Hybrid search: the embedding of ``query`` and its text (BM25 over the stored texts), fused.

        ``fusion``: ``"rrf"`` (reciprocal rank fusion, default) or ``"relative_score"``
        (``alpha * embedding + (1 - alpha) * keyword`` of min-max normalized scores; ``alpha``
        default 0.5). ``fetch_k``: hits fetched from each leg (default ``max(k, 50)``). Returns
        ``(document, scores)`` pairs, best first, where ``scores`` is the hit's
        ``{"fused", "found_by", "vector_rank", "vector_distance", "keyword_rank", "keyword_score"}``
        (see :meth:`vecsearch.Collection.query`). Other ``kwargs`` (``where_document``, ``ef``, ...)
        go to the collection's query.
        """
        embedding = self._embedding.embed_query(query)
        res = self._query(embedding, k, filter, kwargs, include=("documents", "metadatas", "scores"),
                          search_text=[query], fusion=fusion, alpha=alpha, fetch_k=fetch_k)
        return list(zip(self._documents(res), res["scores"][0]))

    def hybrid_search(self, query: str, k: int = 4, filter: Any = None, **kwargs: Any) -> list[Document]:
        """Documents of :meth:`hybrid_search_with_scores`, best first."""
        return [doc for doc, _ in self.hybrid_search_with_scores(query, k, filter, **kwargs)]

    async def ahybrid_search(self, query: str, k: int = 4, filter: Any = None, **kwargs: Any) -> list[Document]:
        return await run_in_executor(None, self.hybrid_search, query, k, filter, **kwargs)

    def as_retriever(self, **kwargs: Any) -> VecsearchRetriever:
        """A retriever over this store; ``search_type`` may also be ``"hybrid"`` (:meth:`hybrid_search`)."""
        tags = kwargs.pop("tags", None) or [*self._get_retriever_tags()]
        return VecsearchRetriever(vectorstore=self, tags=tags, **kwargs)

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        if self.override_relevance_score_fn is not None:
            return self.override_relevance_score_fn
        return _RELEVANCE[self.collection.metric]

    def max_marginal_relevance_search_by_vector(self, embedding: list[float], k: int = 4, fetch_k: int = 20,
                                                lambda_mult: float = 0.5, filter: Any = None,
                                                **kwargs: Any) -> list[Document]:
        """Fetch ``fetch_k`` nearest, then pick ``k`` by maximal marginal relevance (cosine on the stored vectors)."""
        res = self._query(embedding, max(fetch_k, k), filter, kwargs,
                          include=("documents", "metadatas", "embeddings"))
        if not res["ids"][0]:
            return []
        candidates = np.asarray(res["embeddings"][0], np.float32)
        picks = maximal_marginal_relevance(np.asarray(embedding, np.float32), candidates, lambda_mult=lambda_mult, k=k)
        docs = self._documents(res)
        return [docs[i] for i in picks]

    def max_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5,
                                      filter: Any = None, **kwargs: Any) -> list[Document]:
        return self.max_marginal_relevance_search_by_vector(
            self._embedding.embed_query(query), k, fetch_k, lambda_mult, filter, **kwargs
        )

    # ---- calibration -------------------------------------------------------------------------------
    def calibrate(self, target_recall: float = 0.95, k: int = 4, queries: Sequence[str] | None = None, *,
                  query_embeddings: Any = None, n_queries: int = 1000, seed: int = 0) -> Any:
        """Make the fastest search setting measured to reach ``target_recall`` (recall@``k`` against
        exact search; ``k`` as the searches will ask, LangChain's default 4) the store's default, saved
        with it (:meth:`vecsearch.Collection.calibrate`). ``queries``: texts of the kind users ask,
        embedded with ``embed_query`` (or ``query_embeddings`` ``(nq, dim)``, already embedded); default
        ``n_queries`` stored texts' vectors. Returns the :class:`~vecsearch.calibration.CalibrationReport`."""
        if queries is not None:
            if query_embeddings is not None:
                raise ValueError("queries: pass either queries (texts) or query_embeddings, not both")
            if isinstance(queries, str) or not isinstance(queries, Sequence):
                raise TypeError(f"queries: expected a list of str, got {type(queries).__name__}")
            if not queries:
                raise ValueError("queries: expected at least one text, got none")
            bad = [i for i, text in enumerate(queries) if not isinstance(text, str)]
            if bad:
                raise TypeError(f"queries[{bad[0]}]: expected str, got {type(queries[bad[0]]).__name__}")
            query_embeddings = np.asarray([self._embedding.embed_query(text) for text in queries], np.float32)
        return self.collection.calibrate(target_recall, k, query_embeddings, n_queries=n_queries, seed=seed)

    # ---- construction ------------------------------------------------------------------------------
    @classmethod
    def from_texts(cls, texts: list[str], embedding: Embeddings, metadatas: list[dict] | None = None, *,
                   ids: list[str] | None = None, **kwargs: Any) -> VecsearchVectorStore:
        """A new store (``kwargs`` as in the constructor) holding ``texts``."""
        store = cls(embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    def close(self) -> None:
        """Close the underlying collection (snapshot, release its directory)."""
        self.collection.close()


class VecsearchRetriever(VectorStoreRetriever):
    """LangChain's vector-store retriever plus ``search_type="hybrid"`` (:meth:`VecsearchVectorStore.hybrid_search`)."""

    allowed_search_types: ClassVar[Sequence[str]] = (*VectorStoreRetriever.allowed_search_types, "hybrid")

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                **kwargs: Any) -> list[Document]:
        if self.search_type == "hybrid":
            return self.vectorstore.hybrid_search(query, **(self.search_kwargs | kwargs))  # type: ignore[attr-defined]
        return super()._get_relevant_documents(query, run_manager=run_manager, **kwargs)

    async def _aget_relevant_documents(self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun,
                                       **kwargs: Any) -> list[Document]:
        if self.search_type == "hybrid":
            return await self.vectorstore.ahybrid_search(query, **(self.search_kwargs | kwargs))  # type: ignore[attr-defined]
        return await super()._aget_relevant_documents(query, run_manager=run_manager, **kwargs)
