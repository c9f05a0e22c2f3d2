"""evaluate_encoder: encode, search exactly, score; corpus embeddings cached by fingerprint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from ragtune.data.schema import Document, EvalSet
from ragtune.evaluation.evaluate import EvalResult, evaluate_bm25, evaluate_encoder

VOCAB = ["apple", "banana", "cherry", "date"]


@dataclass
class FakeConfig:
    normalize: bool = False
    similarity: str = "cosine"


class CountingEncoder:
    """Embeds a text as its counts of VOCAB words: rankings can be worked out by hand."""

    def __init__(self, similarity: str = "cosine", version: str = "v1") -> None:
        self.config = FakeConfig(similarity=similarity)
        self.version = version
        self.documents_encoded: list[list[str]] = []

    def _embed(self, texts: list[str]) -> np.ndarray:
        return np.array([[t.lower().split().count(w) for w in VOCAB] for t in texts], np.float32)

    def encode_queries(self, texts: list[str], **kwargs: Any) -> np.ndarray:
        return self._embed(texts)

    def encode_documents(self, texts: list[str], **kwargs: Any) -> np.ndarray:
        self.documents_encoded.append(list(texts))
        return self._embed(texts)

    def fingerprint(self) -> str:
        return f"counting-{self.version}".ljust(64, "0")


def fruit_evalset() -> EvalSet:
    corpus = {
        "long": Document("long", "apple apple apple"),  # vector (3, 0, 0, 0)
        "mixed": Document("mixed", "apple banana"),  # (1, 1, 0, 0)
        "titled": Document("titled", "date", title="Cherry"),  # (0, 0, 1, 1) via the title
        "none": Document("none", "nothing here"),  # (0, 0, 0, 0)
    }
    queries = {"q1": "apple banana", "q2": "cherry", "q3": "date date"}
    qrels = {"q1": {"mixed": 1}, "q2": {"titled": 2, "long": 0}, "q3": {"none": 1}}
    return EvalSet(queries=queries, corpus=corpus, qrels=qrels, name="fruit")


def test_cosine_ranking_and_metrics_by_hand() -> None:
    result = evaluate_encoder(CountingEncoder(), fruit_evalset(), k_values=(1, 10))

    # q1 = (1, 1, 0, 0): cosine with "mixed" is 2 / (sqrt2 * sqrt2) = 1, with "long" 3 / (3 *
    # sqrt2) = 0.707, with "titled" and "none" 0 (tie: corpus order).
    assert list(result.run["q1"]) == ["mixed", "long", "titled", "none"]
    assert result.run["q1"]["long"] == pytest.approx(1 / np.sqrt(2))
    # q2 = cherry: only the title of "titled" says cherry: cosine 1 / sqrt2.
    assert next(iter(result.run["q2"])) == "titled"
    # q3: the relevant "none" scores 0 and comes after "titled" (cosine 2 / (2 * sqrt2)) and
    # "long"/"mixed" (0, earlier in the corpus): rank 4, so RR = 1/4, nDCG@10 = 1 / log2(5).
    assert list(result.run["q3"]) == ["titled", "long", "mixed", "none"]
    assert result.per_query["q3"]["MRR@10"] == pytest.approx(1 / 4)
    assert result.per_query["q3"]["nDCG@10"] == pytest.approx(1 / np.log2(5))

    assert result.per_query["q1"]["nDCG@1"] == 1.0
    assert result.per_query["q2"]["nDCG@1"] == 1.0
    assert result.metrics["MRR@10"] == pytest.approx((1 + 1 + 1 / 4) / 3)
    assert result.metrics["nDCG@1"] == pytest.approx(2 / 3)
    assert (result.num_queries, result.num_docs) == (3, 4)
    assert result.docs_per_second is not None and result.docs_per_second > 0


def test_dot_product_models_are_not_normalised() -> None:
    result = evaluate_encoder(CountingEncoder(similarity="dot"), fruit_evalset())
    # q1 = (1, 1, 0, 0): dot with "long" is 3, with "mixed" 2: the long document wins.
    assert list(result.run["q1"])[:2] == ["long", "mixed"]
    assert result.run["q1"]["long"] == 3.0


def test_documents_are_encoded_as_title_then_text() -> None:
    encoder = CountingEncoder()
    evaluate_encoder(encoder, fruit_evalset())
    assert encoder.documents_encoded == [
        ["apple apple apple", "apple banana", "Cherry date", "nothing here"]
    ]


def test_corpus_embeddings_are_cached_by_model_and_corpus(tmp_path) -> None:
    evalset = fruit_evalset()
    first = CountingEncoder()
    a = evaluate_encoder(first, evalset, cache_dir=tmp_path)
    assert len(first.documents_encoded) == 1
    assert len(list(tmp_path.glob("*.npy"))) == 1

    again = CountingEncoder()  # same fingerprint: read from the cache, no encoding
    b = evaluate_encoder(again, evalset, cache_dir=tmp_path)
    assert again.documents_encoded == []
    assert b.docs_per_second is None
    assert b.run == a.run and b.metrics == a.metrics

    retrained = CountingEncoder(version="v2")  # other weights: encode again
    evaluate_encoder(retrained, evalset, cache_dir=tmp_path)
    assert len(retrained.documents_encoded) == 1

    evalset.corpus["extra"] = Document("extra", "banana")  # other corpus: only its new text
    evaluate_encoder(again, evalset, cache_dir=tmp_path)
    assert again.documents_encoded == [["banana"]]
    assert len(list(tmp_path.glob("*.npy"))) == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_a_corpus_of_texts_already_cached_elsewhere_encodes_nothing(tmp_path) -> None:
    """tune's case: every chunk encoded once, then subsets of them (train, dev, test files)."""
    from ragtune.model.corpus import encode_documents_cached

    texts = ["apple apple", "banana", "cherry date", "date", "apple cherry"]
    ids = [f"c{i}" for i in range(len(texts))]
    encoder = CountingEncoder()
    whole, rate = encode_documents_cached(encoder, ids, texts, cache_dir=tmp_path)
    assert rate is not None and len(encoder.documents_encoded) == 1

    # a subset in another order, under other ids: the same vectors, nothing encoded
    sub, rate = encode_documents_cached(
        encoder, ["x", "y"], [texts[3], texts[0]], cache_dir=tmp_path
    )
    assert rate is None and len(encoder.documents_encoded) == 1
    np.testing.assert_array_equal(sub, whole[[3, 0]])

    # a corpus with one new text encodes that text alone, and equals encoding all of it
    mixed_texts = [texts[1], "banana banana cherry", texts[4]]
    mixed, _ = encode_documents_cached(encoder, ["a", "b", "c"], mixed_texts, cache_dir=tmp_path)
    assert encoder.documents_encoded[-1] == ["banana banana cherry"]
    np.testing.assert_array_equal(mixed, CountingEncoder()._embed(mixed_texts))

    # another model never takes these rows
    other = CountingEncoder(version="v2")
    encode_documents_cached(other, ["x"], [texts[2]], cache_dir=tmp_path)
    assert other.documents_encoded == [[texts[2]]]


def test_run_keeps_top_100(tmp_path) -> None:
    corpus = {f"d{i}": Document(f"d{i}", "apple " * (i % 7 + 1)) for i in range(150)}
    evalset = EvalSet({"q": "apple"}, corpus, {"q": {"d3": 1}})
    result = evaluate_encoder(CountingEncoder(), evalset)
    assert len(result.run["q"]) == 100


def test_a_query_finding_itself_in_the_corpus_is_not_an_answer() -> None:
    # ArguAna's rule (BEIR's ignore_identical_ids): query "arg1" is also document "arg1"
    corpus = {
        "arg1": Document("arg1", "apple banana"),  # the query's own text: ranked first
        "counter": Document("counter", "apple"),
        "other": Document("other", "cherry"),
    }
    evalset = EvalSet({"arg1": "apple banana"}, corpus, {"arg1": {"counter": 1}})
    for result in (evaluate_encoder(CountingEncoder(), evalset), evaluate_bm25(evalset)):
        assert "arg1" not in result.run["arg1"]
        assert next(iter(result.run["arg1"])) == "counter"
        assert result.metrics["nDCG@10"] == pytest.approx(1.0)


def test_result_round_trips_through_a_dict() -> None:
    result = evaluate_bm25(fruit_evalset())
    again = EvalResult.from_dict(result.to_dict(include_run=True))
    assert again == result
    assert "run" not in result.to_dict()


def test_bm25_on_the_toy_set() -> None:
    result = evaluate_bm25(fruit_evalset(), k_values=(1,))
    # q1 "apple banana": only "mixed" has banana, and it is short: first. q2 "cherry": "titled".
    assert next(iter(result.run["q1"])) == "mixed"
    assert next(iter(result.run["q2"])) == "titled"
    assert result.system == "BM25"


def test_tiny_encoder_end_to_end(tiny_encoder, tmp_path) -> None:
    evalset = fruit_evalset()
    result = evaluate_encoder(tiny_encoder, evalset, name="tiny", cache_dir=tmp_path)

    # Same ranking as scoring every document with the model's own vectors (normalised).
    docs = tiny_encoder.encode_documents([d.full_text() for d in evalset.corpus.values()])
    queries = tiny_encoder.encode_queries(list(evalset.queries.values()))
    scores = queries @ docs.T  # (3, 4)
    ids = list(evalset.corpus)
    for qid, row in zip(evalset.queries, scores, strict=True):
        assert list(result.run[qid]) == [ids[i] for i in np.argsort(-row, kind="stable")]
        np.testing.assert_allclose(list(result.run[qid].values()), np.sort(row)[::-1], atol=1e-5)
    assert result.system == "tiny"
    assert all(0.0 <= v <= 1.0 for v in result.metrics.values())

    cached = evaluate_encoder(tiny_encoder, evalset, name="tiny", cache_dir=tmp_path)
    assert cached.docs_per_second is None
    assert cached.run.keys() == result.run.keys()
    for qid in cached.run:
        assert list(cached.run[qid]) == list(result.run[qid])


@pytest.mark.slow
def test_minilm_finds_the_obvious_documents(minilm) -> None:
    corpus = {
        "cat": Document("cat", "The cat slept on the warm mat all afternoon."),
        "tax": Document("tax", "Income tax returns must be filed by the end of April."),
        "rust": Document("rust", "Rust's borrow checker prevents data races at compile time."),
        "tea": Document("tea", "Green tea is brewed at a lower temperature than black tea."),
    }
    queries = {
        "q1": "where did the cat sleep?",
        "q2": "deadline for filing taxes",
        "q3": "memory safety in Rust",
    }
    qrels = {"q1": {"cat": 1}, "q2": {"tax": 1}, "q3": {"rust": 1}}
    result = evaluate_encoder(minilm, EvalSet(queries, corpus, qrels), k_values=(1,))
    assert result.metrics["nDCG@1"] == 1.0
