"""Candidate sources: BM25 finds the lexically obvious document, dense search, the shared cache."""

from __future__ import annotations

import numpy as np
import pytest

from ragtune.data.schema import Document, EvalSet, Example
from ragtune.mining import MiningConfig, mine_hard_negatives
from ragtune.mining.candidates import (
    bm25_candidates,
    corpus_embeddings,
    corpus_fingerprint,
    dense_candidates,
)

DOCS = [
    "Traffic congestion in large cities",
    "Scurvy in sailors was cured by citrus fruit rich in vitamin C",
    "Bone density and vitamin D supplements",
    "The history of the printing press",
]


def test_bm25_finds_the_lexically_obvious_document() -> None:
    scores, indices = bm25_candidates(["Which vitamin cures scurvy?", "printing"], DOCS, k=4)
    assert indices[0, 0] == 1  # shares "vitamin" and "scurvy" (stemmed "cures" -> "cure")
    assert indices[0, 1] == 2  # shares only "vitamin"
    assert indices[0, 2:].tolist() == [-1, -1]  # no shared word: never a candidate
    assert scores[0, 0] > scores[0, 1] > 0
    assert indices[1].tolist() == [3, -1, -1, -1]


def test_hnsw_finds_the_exact_neighbours_on_a_small_corpus() -> None:
    rng = np.random.default_rng(0)
    docs = rng.normal(size=(200, 16)).astype(np.float32)
    queries = rng.normal(size=(5, 16)).astype(np.float32)
    exact_s, exact_i = dense_candidates(queries, docs, 5, "exact")
    brute = np.argsort(-(queries @ docs.T), axis=1)[:, :5]  # (5, 5)
    assert exact_i.tolist() == brute.tolist()
    _, hnsw_i = dense_candidates(queries, docs, 5, "hnsw")
    assert hnsw_i.tolist() == exact_i.tolist()


def test_corpus_embeddings_are_shared_with_evaluation(tmp_path, tiny_encoder) -> None:
    from ragtune.evaluation.evaluate import corpus_fingerprint as evaluation_fingerprint
    from ragtune.evaluation.evaluate import evaluate_encoder

    corpus = {f"d{i}": Document(f"d{i}", text, title=f"T{i}") for i, text in enumerate(DOCS)}
    ids, texts = list(corpus), [d.full_text() for d in corpus.values()]
    assert corpus_fingerprint(ids, texts) == evaluation_fingerprint(ids, texts)

    pairs = [Example("vitamin C scurvy", texts[1], positive_id="d1")]
    cfg = MiningConfig(num_negatives=2, cache_dir=str(tmp_path))
    first = mine_hard_negatives(pairs, corpus, cfg, encoder=tiny_encoder)
    assert not first.summary.embeddings_from_cache
    (cached,) = tmp_path.glob("*.npy")
    key = f"{tiny_encoder.fingerprint()[:20]}-{corpus_fingerprint(ids, texts)[:20]}.npy"
    assert cached.name == key
    np.testing.assert_allclose(np.load(cached), tiny_encoder.encode_documents(texts), atol=1e-6)

    again = mine_hard_negatives(pairs, corpus, cfg, encoder=tiny_encoder)
    assert again.summary.embeddings_from_cache
    assert again.examples == first.examples
    evalset = EvalSet({"q": "vitamin C scurvy"}, corpus, {"q": {"d1": 1}})
    result = evaluate_encoder(tiny_encoder, evalset, cache_dir=tmp_path)
    assert result.docs_per_second is None  # evaluation read mining's file instead of encoding


@pytest.mark.parametrize("bad", ["", "missing"])
def test_embeddings_without_a_cache_dir_or_file_are_encoded(tmp_path, tiny_encoder, bad) -> None:
    cache = None if bad == "" else tmp_path / bad
    emb, from_cache = corpus_embeddings(tiny_encoder, ["a"], ["some text"], cache_dir=cache)
    assert emb.shape == (1, 32) and not from_cache
