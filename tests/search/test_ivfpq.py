"""IVF-PQ: streaming build equals one-shot build, re-ranking gives exact scores, recipe recorded."""

from __future__ import annotations

import numpy as np
import pytest

from ragtune.errors import RagtuneError
from ragtune.search.ivfpq import default_pq_m, plan, rerank_exact
from ragtune.search.topk import DenseIndex, choose_kind, top_k


def clustered(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    """Unit vectors around 20 centres: structure like embeddings, unlike the uniform sphere."""
    centres = np.random.default_rng(99).standard_normal((20, dim)).astype(np.float32)
    rng = np.random.default_rng(seed)
    x = centres[rng.integers(0, 20, n)] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(
        np.mean([len(set(a) & set(e)) / e.size for a, e in zip(found, exact, strict=True)])
    )


def test_plan_follows_the_size_of_the_index() -> None:
    big = plan(1_000_000, 384)
    assert (big.nlist, big.pq_m, big.pq_bits, big.train_size) == (4000, 48, 8, 200_000)
    small = plan(2_000, 32)  # 4 sqrt(2000) = 178 cells, capped at 2000 // 39 = 51
    assert (small.nlist, small.pq_m, small.train_size) == (51, 4, 2_000)
    assert small.pq_bits == 5  # 2000 // 39 = 51 points: 32 centroids per sub-space
    assert default_pq_m(384) == 48 and default_pq_m(30) == 3
    with pytest.raises(RagtuneError, match="must divide"):
        plan(1000, 30, pq_m=4)


def test_streaming_add_after_training_on_a_sample_equals_one_shot_build() -> None:
    docs, queries = clustered(3000), clustered(20, seed=1)
    streamed = DenseIndex(32, "ivfpq", nlist=16, pq_m=8)
    streamed.train(docs[:2000], n_total=3000)  # the sample, then the chunks
    for start in range(0, 3000, 700):
        streamed.add(docs[start : start + 700])
    whole = DenseIndex(32, "ivfpq", nlist=16, pq_m=8, train_size=2000)
    whole.train(docs[:2000])
    whole.add(docs)

    assert streamed.ntotal == whole.ntotal == 3000
    a, b = streamed.search(queries, 10), whole.search(queries, 10)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_allclose(a[0], b[0], rtol=1e-5)


def test_reranking_returns_exact_scores_and_recovers_the_true_neighbours() -> None:
    docs, queries = clustered(3000), clustered(50, seed=2)
    exact_scores, exact_ids = top_k(queries, docs, 10)
    index = DenseIndex.build(docs, "ivfpq", nlist=16, pq_m=4, nprobe=16, rerank=300)

    _, pq_only = index.search(queries, 10)  # no vectors attached: PQ scores
    index.attach_vectors(docs)
    scores, ids = index.search(queries, 10)

    assert recall(pq_only, exact_ids) < 0.9  # 4 bytes per vector lose neighbours...
    assert recall(ids, exact_ids) >= 0.99  # ...that exact re-scoring of 300 finds again
    rows = docs[ids]  # (Q, 10, D)
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", queries, rows), rtol=1e-5)
    assert index.search(queries, 10, rerank=0)[1].tolist() == pq_only.tolist()


def test_nprobe_at_query_time_visits_more_cells() -> None:
    docs, queries = clustered(3000), clustered(50, seed=3)
    _, exact = top_k(queries, docs, 10)
    index = DenseIndex.build(docs, "ivfpq", nlist=40, nprobe=1, rerank=200)
    index.attach_vectors(docs)
    one = recall(index.search(queries, 10)[1], exact)
    all_cells = recall(index.search(queries, 10, nprobe=40)[1], exact)
    assert all_cells > one and all_cells >= 0.95


def test_rerank_exact_keeps_missing_slots_last() -> None:
    vectors = np.eye(4, dtype=np.float32)
    scores, ids = rerank_exact(
        np.array([[0, 0, 1, 0]], np.float32), np.array([[1, -1, 2]]), vectors, 3
    )
    assert ids.tolist() == [[2, 1, -1]]
    assert scores[0, 0] == 1.0 and scores[0, 2] == -np.inf


def test_save_and_load_keep_the_recipe(tmp_path) -> None:
    docs, queries = clustered(2000), clustered(5, seed=4)
    index = DenseIndex.build(docs, "ivfpq", nprobe=8, rerank=50)
    index.save(tmp_path / "idx")
    loaded = DenseIndex.load(tmp_path / "idx")
    assert loaded.params == index.params
    assert {"nlist", "pq_m", "pq_bits", "train_size", "nprobe", "rerank"} <= set(loaded.params)
    loaded.attach_vectors(docs)
    index.attach_vectors(docs)
    np.testing.assert_array_equal(loaded.search(queries, 5)[1], index.search(queries, 5)[1])


def test_auto_picks_ivfpq_from_a_million_vectors() -> None:
    assert choose_kind(999_999) == "hnsw"
    assert choose_kind(1_000_000) == "ivfpq"
