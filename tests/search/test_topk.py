"""Top-k search: chunked exact search and FAISS indexes agree with a brute-force sort."""

from __future__ import annotations

import numpy as np
import pytest

from ragtune.errors import RagtuneError
from ragtune.search.topk import DenseIndex, choose_kind, select_top_k, top_k


def brute_force(queries: np.ndarray, docs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Score everything, sort each row by (-score, index): the definition top_k must meet."""
    scores = queries.astype(np.float64) @ docs.astype(np.float64).T  # (Q, N)
    order = np.stack([np.lexsort((np.arange(docs.shape[0]), -row))[:k] for row in scores])  # (Q, k)
    return np.take_along_axis(scores, order, axis=1), order


def test_top_k_matches_brute_force_on_random_data() -> None:
    rng = np.random.default_rng(0)
    queries = rng.standard_normal((37, 16)).astype(np.float32)
    docs = rng.standard_normal((1000, 16)).astype(np.float32)

    # A chunk size that does not divide N, so the last chunk is ragged.
    scores, indices = top_k(queries, docs, k=10, chunk_size=64)
    want_scores, want_indices = brute_force(queries, docs, 10)

    assert scores.shape == (37, 10) and scores.dtype == np.float32
    assert indices.shape == (37, 10) and indices.dtype == np.int64
    np.testing.assert_array_equal(indices, want_indices)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-5)


def test_ties_are_broken_by_lower_index_across_chunks() -> None:
    # Small integer vectors make exact float arithmetic and many equal scores.
    rng = np.random.default_rng(1)
    queries = rng.integers(-2, 3, size=(20, 4)).astype(np.float32)
    docs = rng.integers(-2, 3, size=(300, 4)).astype(np.float32)

    scores, indices = top_k(queries, docs, k=25, chunk_size=7)
    want_scores, want_indices = brute_force(queries, docs, 25)

    assert (np.diff(want_scores, axis=1) == 0).any()  # the data really has ties
    np.testing.assert_array_equal(indices, want_indices)
    np.testing.assert_array_equal(scores, want_scores.astype(np.float32))


def test_hand_made_tie() -> None:
    queries = np.array([[1.0, 0.0]], dtype=np.float32)
    docs = np.array([[0.5, 0], [2, 0], [0.5, 9], [-1, 0], [2, 5]], dtype=np.float32)
    # Scores: 0.5, 2, 0.5, -1, 2 -> best first, equal scores by lower index: 1, 4, 0, 2, 3.
    scores, indices = top_k(queries, docs, k=4, chunk_size=2)
    assert indices.tolist() == [[1, 4, 0, 2]]
    assert scores.tolist() == [[2.0, 2.0, 0.5, 0.5]]


def test_k_larger_than_corpus_returns_everything() -> None:
    queries = np.eye(3, dtype=np.float32)
    docs = np.array([[0, 1, 0], [1, 0, 0]], dtype=np.float32)
    scores, indices = top_k(queries, docs, k=10)
    assert indices.shape == (3, 2)
    assert indices.tolist() == [[1, 0], [0, 1], [0, 1]]  # third query scores 0, 0: index order
    assert scores.tolist() == [[1, 0], [1, 0], [0, 0]]


def test_select_top_k_with_custom_indices() -> None:
    scores = np.array([[3.0, 1.0, 3.0, 2.0]])
    indices = np.array([[40, 10, 20, 30]])
    s, i = select_top_k(scores, 3, indices)
    assert i.tolist() == [[20, 40, 30]]
    assert s.tolist() == [[3.0, 3.0, 2.0]]


def test_top_k_rejects_mismatched_dimensions() -> None:
    with pytest.raises(RagtuneError, match="dimension 3 does not match document dimension 4"):
        top_k(np.zeros((1, 3)), np.zeros((5, 4)), k=1)


def test_flat_index_is_exact() -> None:
    rng = np.random.default_rng(2)
    queries = rng.standard_normal((25, 32)).astype(np.float32)
    docs = rng.standard_normal((2000, 32)).astype(np.float32)

    index = DenseIndex(32, "flat")
    index.add(docs[:1500])
    index.add(docs[1500:])  # positions continue after the first batch
    scores, indices = index.search(queries, 10)

    want_scores, want_indices = brute_force(queries, docs, 10)
    assert index.ntotal == 2000 and index.dim == 32
    np.testing.assert_array_equal(indices, want_indices)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-4, atol=1e-4)


def test_hnsw_recall_at_10_against_exact() -> None:
    rng = np.random.default_rng(3)
    docs = rng.standard_normal((4000, 32)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    queries = rng.standard_normal((100, 32)).astype(np.float32)

    _, exact = top_k(queries, docs, k=10)
    _, approx = DenseIndex.build(docs, "hnsw").search(queries, 10)

    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert recall >= 0.95


def test_ivf_finds_most_neighbours() -> None:
    rng = np.random.default_rng(4)
    docs = rng.standard_normal((3000, 16)).astype(np.float32)
    queries = rng.standard_normal((50, 16)).astype(np.float32)

    index = DenseIndex.build(docs, "ivf", nlist=16, nprobe=8)  # half the lists visited
    _, approx = index.search(queries, 10)
    _, exact = top_k(queries, docs, k=10)

    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert index.params["nlist"] == 16
    assert recall >= 0.8


def test_auto_picks_flat_for_small_corpora() -> None:
    assert choose_kind(99_999) == "flat"
    assert choose_kind(100_000) == "hnsw"
    index = DenseIndex.build(np.eye(4, dtype=np.float32))
    assert index.kind == "flat"


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_save_and_load_round_trip(tmp_path, kind) -> None:
    rng = np.random.default_rng(5)
    docs = rng.standard_normal((500, 8)).astype(np.float32)
    queries = rng.standard_normal((5, 8)).astype(np.float32)
    index = DenseIndex.build(docs, kind, ef_search=64, nprobe=4)
    before = index.search(queries, 5)

    index.save(tmp_path / "idx")
    loaded = DenseIndex.load(tmp_path / "idx")

    assert (loaded.kind, loaded.dim, loaded.ntotal) == (kind, 8, 500)
    assert loaded.params == index.params
    if kind == "ivf":  # default nlist: min(4 sqrt(500) = 89, 500 // 39 = 12)
        assert loaded.params["nlist"] == 12
    after = loaded.search(queries, 5)
    np.testing.assert_array_equal(after[1], before[1])
    np.testing.assert_array_equal(after[0], before[0])
    assert sorted(p.name for p in (tmp_path).iterdir()) == ["idx"]  # no temp folders left


def test_search_with_k_beyond_ntotal() -> None:
    index = DenseIndex.build(np.eye(3, dtype=np.float32), "flat")
    scores, indices = index.search(np.array([[0, 0, 1]], dtype=np.float32), 10)
    assert indices.shape == (1, 3)
    assert indices[0, 0] == 2 and scores[0, 0] == 1.0


def test_unknown_kind_lists_valid_ones() -> None:
    with pytest.raises(RagtuneError, match="valid kinds: flat, hnsw, ivf, ivfpq, auto"):
        DenseIndex(4, "annoy")  # type: ignore[arg-type]


def test_load_missing_folder_is_a_user_error(tmp_path) -> None:
    with pytest.raises(RagtuneError, match="not a saved index"):
        DenseIndex.load(tmp_path)
