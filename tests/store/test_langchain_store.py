"""VecsearchVectorStore: LangChain's standard vector-store suite, filters, scores, MMR, persistence."""

from __future__ import annotations

from collections.abc import Generator

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests.vectorstores import VectorStoreIntegrationTests

import vecsearch as vs
from vecsearch.integrations.langchain import VecsearchVectorStore

# The suite's async tests run under pytest-asyncio (a dependency of langchain-tests); the class-wide
# mark also lands on the sync tests, where pytest-asyncio only warns.
_ASYNC = [
    pytest.mark.asyncio,
    pytest.mark.filterwarnings("ignore:The test <Function .* is marked with '@pytest.mark.asyncio' but it is not an async"),
]


class TestStandardSuiteFlat(VectorStoreIntegrationTests):
    """langchain-tests' standard sync + async suite on an exact (flat) in-memory store."""

    pytestmark = _ASYNC

    @pytest.fixture()
    def vectorstore(self) -> Generator[VectorStore, None, None]:  # type: ignore[override]
        yield VecsearchVectorStore(self.get_embeddings(), index="flat")


class TestStandardSuiteHNSWPersistent(VectorStoreIntegrationTests):
    """The same suite on the default HNSW index with a path (write-ahead log on every call)."""

    pytestmark = _ASYNC

    @pytest.fixture()
    def vectorstore(self, tmp_path) -> Generator[VectorStore, None, None]:  # type: ignore[override]
        store = VecsearchVectorStore(self.get_embeddings(), path=str(tmp_path / "store"))
        try:
            yield store
        finally:
            store.close()


class _AxisEmbeddings(Embeddings):
    """Texts of the form "x,y,z" embed to that vector: a constructed geometry for MMR and scores."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [[float(v) for v in t.split(",")] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def test_mmr_prefers_a_diverse_result_over_near_duplicates():
    # Three near-duplicates close to the query and one different but still relevant direction.
    texts = ["1,0.05,0", "1,0.06,0", "1,0.04,0.01", "0.6,0,0.8"]
    store = VecsearchVectorStore.from_texts(texts, _AxisEmbeddings(), ids=["d1", "d2", "d3", "far"], index="flat")
    plain = store.similarity_search("1,0,0.1", k=2)
    assert {d.id for d in plain} <= {"d1", "d2", "d3"}  # plain top-2 are two duplicates
    mmr = store.max_marginal_relevance_search("1,0,0.1", k=2, fetch_k=4, lambda_mult=0.5)
    assert mmr[0].id in {"d1", "d2", "d3"} and mmr[1].id == "far"
    # lambda_mult=1 is pure relevance: MMR reduces to the plain ranking
    assert [d.id for d in store.max_marginal_relevance_search("1,0,0.1", k=2, fetch_k=4, lambda_mult=1.0)] == [
        d.id for d in plain
    ]
    retriever = store.as_retriever(search_type="mmr", search_kwargs={"k": 2, "fetch_k": 4})
    assert [d.id for d in retriever.invoke("1,0,0.1")] == [d.id for d in mmr]


@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
def test_relevance_scores_are_in_unit_interval_and_ordered(metric):
    emb = DeterministicFakeEmbedding(size=16)
    texts = [f"text number {i}" for i in range(30)]
    store = VecsearchVectorStore.from_texts(texts, emb, index="flat", metric=metric)
    with_scores = store.similarity_search_with_relevance_scores("text number 3", k=10)
    scores = [s for _, s in with_scores]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores == sorted(scores, reverse=True)
    assert with_scores[0][0].page_content == "text number 3"
    raw = store.similarity_search_with_score("text number 3", k=10)
    assert [d.id for d, _ in raw] == [d.id for d, _ in with_scores]
    q = np.asarray(emb.embed_query("text number 3"), np.float32)
    x = np.asarray(emb.embed_query(raw[1][0].page_content), np.float32)
    expected = {"cosine": 1 - q @ x / np.linalg.norm(q) / np.linalg.norm(x), "l2": ((q - x) ** 2).sum(), "ip": -(q @ x)}
    assert raw[1][1] == pytest.approx(float(expected[metric]), abs=1e-4)  # raw distances are available
    if metric == "cosine":
        assert scores[0] == pytest.approx(1.0, abs=1e-5)
    thresholded = store.similarity_search_with_relevance_scores("text number 3", k=10, score_threshold=scores[2])
    assert len(thresholded) == 3 or scores[2] == scores[3]


def test_metadata_filter_in_dict_form_and_as_predicate():
    emb = DeterministicFakeEmbedding(size=8)
    texts = [f"t{i}" for i in range(40)]
    metas = [{"source": "a.pdf" if i % 2 else "b.pdf", "page": i} for i in range(40)]
    store = VecsearchVectorStore.from_texts(texts, emb, metadatas=metas, index="flat")
    docs = store.similarity_search("t3", k=40, filter={"source": "a.pdf"})
    assert len(docs) == 20 and all(d.metadata["source"] == "a.pdf" for d in docs)
    docs = store.similarity_search("t3", k=40, filter={"$and": [{"source": "b.pdf"}, {"page": {"$gte": 30}}]})
    assert sorted(d.metadata["page"] for d in docs) == [30, 32, 34, 36, 38]
    docs = store.similarity_search("t3", k=5, filter=vs.F.page.between(10, 12))
    assert sorted(d.metadata["page"] for d in docs) == [10, 11, 12]
    mmr = store.max_marginal_relevance_search("t3", k=3, fetch_k=10, filter={"source": "b.pdf"})
    assert len(mmr) == 3 and all(d.metadata["source"] == "b.pdf" for d in mmr)
    retriever = store.as_retriever(search_kwargs={"k": 3, "filter": {"page": {"$lt": 2}}})
    assert sorted(d.metadata["page"] for d in retriever.invoke("t7")) == [0, 1]
    store.delete(filter={"source": "a.pdf"})
    assert store.collection.count() == 20


def test_store_persists_and_reopens(tmp_path):
    emb = DeterministicFakeEmbedding(size=8)
    path = str(tmp_path / "s")
    store = VecsearchVectorStore(emb, path=path, index="flat")
    ids = store.add_documents([Document(page_content=f"p{i}", metadata={"i": i}) for i in range(10)])
    store.delete([ids[0]])
    store.close()
    again = VecsearchVectorStore(emb, path=path)
    assert [d.page_content for d in again.get_by_ids(ids[:3])] == ["p1", "p2"]
    assert again.similarity_search("p4", k=1)[0].metadata == {"i": 4}
    again.delete()  # no ids: everything
    assert again.collection.count() == 0
    again.close()


def test_add_texts_validates_lengths_and_keeps_given_ids():
    store = VecsearchVectorStore(DeterministicFakeEmbedding(size=4), index="flat")
    with pytest.raises(ValueError, match="metadatas"):
        store.add_texts(["a", "b"], metadatas=[{}])
    with pytest.raises(ValueError, match="ids"):
        store.add_texts(["a", "b"], ids=["x"])
    ids = store.add_texts(["a", "b"], ids=["x", None])
    assert ids[0] == "x" and ids[1] and store.collection.count() == 2
    with pytest.raises(ValueError, match="collection"):
        VecsearchVectorStore(DeterministicFakeEmbedding(size=4), collection=store.collection, index="flat")


class _TopicEmbeddings(Embeddings):
    """Embeds by topic words only: texts sharing a topic are near, other words are invisible to it."""

    TOPICS = ("fruit", "animal", "city")

    def _vec(self, text: str) -> list[float]:
        return [1.0 + 3.0 * (t in text) for t in self.TOPICS]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._vec(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vec(text)


def _topic_store() -> VecsearchVectorStore:
    texts = [f"fruit number {i}" for i in range(10)] + ["animal zebra stripes", "city zebra crossing", "animal lion"]
    return VecsearchVectorStore.from_texts(texts, _TopicEmbeddings(), ids=[f"t{i}" for i in range(13)], index="flat",
                                           metadatas=[{"kind": "doc", "i": i} for i in range(13)])


def test_hybrid_search_finds_what_only_the_keywords_see_and_reports_both_legs():
    store = _topic_store()
    # the embedding sees only "animal": the zebra text is one of two animal texts for it
    dense = store.similarity_search("animal zebra", k=2)
    assert {d.id for d in dense} == {"t10", "t12"}
    hybrid = store.hybrid_search_with_scores("animal zebra", k=3)
    assert hybrid[0][0].id == "t10"  # first in both legs
    assert hybrid[0][1]["found_by"] == ["vector", "keyword"] and hybrid[0][1]["keyword_rank"] == 1
    assert "t11" in [d.id for d, _ in hybrid]  # "city zebra crossing": found through its keyword only
    assert [d.id for d in store.hybrid_search("animal zebra", k=3)] == [d.id for d, _ in hybrid]
    # relative score fusion with all the weight on the embedding reproduces the dense ranking
    # (the first two: every text after them is at the same distance, a tie in any order)
    alpha1 = store.hybrid_search("animal zebra", k=2, fusion="relative_score", alpha=1.0)
    assert [d.id for d in alpha1] == [d.id for d in dense]
    # filters apply to both legs
    got = store.hybrid_search("animal zebra", k=5, filter={"i": {"$lt": 11}}, where_document={"$contains": "zebra"})
    assert [d.id for d in got] == ["t10"]


def test_retriever_accepts_search_type_hybrid_sync_and_async():
    store = _topic_store()
    retriever = store.as_retriever(search_type="hybrid", search_kwargs={"k": 3})
    docs = retriever.invoke("animal zebra")
    assert [d.id for d in docs] == [d.id for d in store.hybrid_search("animal zebra", k=3)]
    import asyncio

    assert [d.id for d in asyncio.run(retriever.ainvoke("animal zebra"))] == [d.id for d in docs]
    assert [d.id for d in store.as_retriever(search_kwargs={"k": 2}).invoke("animal zebra")] == [
        d.id for d in store.similarity_search("animal zebra", k=2)
    ]
    with pytest.raises(ValueError, match="search_type"):
        store.as_retriever(search_type="bm25")


def test_delete_by_where_document():
    store = _topic_store()
    store.delete(where_document={"$contains": "zebra"})
    assert store.collection.count() == 11 and store.get_by_ids(["t10", "t11"]) == []
