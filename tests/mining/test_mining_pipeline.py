"""mine_hard_negatives end to end: window, filters, positives never negatives, seeds, bad input."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import numpy as np
import pytest

from ragtune.data.readers import load_training_data
from ragtune.data.schema import Document, Example, LabelledPair
from ragtune.errors import DataError, RagtuneError
from ragtune.mining import MiningConfig, corpus_from_positives, mine_hard_negatives


class FakeEncoder:
    """Hand-set 2-D vectors, so every dot-product score below is known exactly."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors
        self.config = SimpleNamespace(similarity="dot")

    def encode_queries(self, texts, **kwargs):
        return np.array([self.vectors[t] for t in texts], dtype=np.float32)

    encode_documents = encode_queries

    def fingerprint(self) -> str:
        return "fake"


QUERY = "what does vitamin c prevent?"
# Dot products with the query [1, 0] are the first coordinates: the positive scores 0.9.
VECTORS = {
    QUERY: [1.0, 0.0],
    "P vitamin C prevents scurvy": [0.9, 0.1],
    "P  vitamin C prevents\nscurvy": [0.9, 0.1],
    "d1 near copy": [0.95, 0.0],
    "d2": [0.88, 0.0],
    "d3": [0.70, 0.0],
    "d4": [0.50, 0.0],
    "d5": [0.20, 0.0],
}
CORPUS = {
    "p": Document("p", "P vitamin C prevents scurvy"),
    "p-copy": Document("p-copy", "P  vitamin C prevents\nscurvy"),  # same text, other id
    **{
        name.split()[0]: Document(name.split()[0], name)
        for name in ["d1 near copy", "d2", "d3", "d4", "d5"]
    },
}
PAIR = Example(QUERY, "P vitamin C prevents scurvy", query_id="q1", positive_id="p")


def test_window_relative_margin_and_top_selection_worked_by_hand() -> None:
    # Ranking without the positive and its copy: d1 .95 (rank 0), d2 .88, d3 .70, d4 .50, d5.
    # Depth is range_max + 2 positives = 6, so d5 is never retrieved. range 1..3 skips d1;
    # relative margin 0.95 * 0.9 = 0.855 drops d2 (0.88); the top 2 survivors are d3 and d4.
    cfg = MiningConfig(num_negatives=2, range_min=1, range_max=4, relative_margin=0.95)
    result = mine_hard_negatives([PAIR], CORPUS, cfg, encoder=FakeEncoder(VECTORS))

    (mined,) = result.examples
    assert mined.negative_ids == ("d3", "d4")
    assert mined.negative_scores == pytest.approx((0.70, 0.50))
    assert mined.positive_score == pytest.approx(0.9)
    assert [s["dense"]["rank"] for s in mined.negative_sources] == [2, 3]
    counts = result.summary.counts
    assert counts == {
        "retrieved": 6,
        "positive_id": 1,
        "positive_text": 1,
        "above_range_min": 1,
        "beyond_range_max": 0,
        "in_window": 3,
        "duplicate_text": 0,
        "margin": 0,
        "relative_margin": 1,
        "max_score": 0,
        "kept": 2,
        "selected": 2,
    }
    assert result.summary.removed_scores.tolist() == pytest.approx([0.88])


def test_absolute_margin_keeps_what_relative_margin_dropped() -> None:
    # margin 0.01: threshold 0.89, so d2 (0.88) stays and is the hardest negative.
    cfg = MiningConfig(num_negatives=2, range_min=1, range_max=4, margin=0.01)
    result = mine_hard_negatives([PAIR], CORPUS, cfg, encoder=FakeEncoder(VECTORS))
    assert result.examples[0].negative_ids == ("d2", "d3")


def test_cross_encoder_scores_replace_the_dense_ones_for_the_filters() -> None:
    class Judge:
        """Thinks d3 is a paraphrase of the positive (0.99) and d4 is clearly irrelevant."""

        def score(self, queries, documents, *, batch_size=32):
            table = {"P vitamin C prevents scurvy": 0.97, "d2": 0.40, "d3": 0.99, "d4": 0.10}
            return np.array([table[d] for d in documents], dtype=np.float32)

    cfg = MiningConfig(num_negatives=2, range_min=1, range_max=4, relative_margin=0.95)
    result = mine_hard_negatives(
        [PAIR], CORPUS, cfg, encoder=FakeEncoder(VECTORS), cross_encoder=Judge()
    )
    mined = result.examples[0]
    assert mined.negative_ids == ("d2", "d4")  # d3 dropped: 0.99 > 0.95 * 0.97
    assert mined.negative_scores == pytest.approx((0.40, 0.10))
    assert mined.positive_score == pytest.approx(0.97)


def test_a_positive_is_never_a_negative_even_under_another_id(tiny_encoder) -> None:
    topics = ["vitamin", "iron", "protein", "sleep", "exercise", "sugar", "salt", "water"]
    corpus = {
        f"d{i}": Document(f"d{i}", f"{t} study number {i % 3}", title=t.title())
        for i, t in enumerate(topics * 3)
    }
    corpus["copy"] = Document("copy", corpus["d0"].text, title=corpus["d0"].title)
    pairs = [
        Example(
            f"what about {t}?",
            corpus[f"d{i}"].full_text(),
            query_id=f"q{i % 8}",
            positive_id=f"d{i}",
        )
        for i, t in enumerate(topics * 2)
    ]  # 2 positives each
    cfg = MiningConfig(source="both", num_negatives=30, range_max=100, keep_incomplete=True)
    result = mine_hard_negatives(pairs, corpus, cfg, encoder=tiny_encoder)

    positives: dict[str, set[str]] = {}
    for p in pairs:
        positives.setdefault(p.query_id, set()).update({p.positive_id, p.positive})
    assert len(result.examples) == len(pairs)
    for mined in result.examples:
        banned = positives[mined.query_id]
        assert not banned & set(mined.negative_ids)
        assert not banned & set(mined.negatives)
        assert len(set(mined.negatives)) == len(mined.negatives)  # one copy per text
    first = result.examples[0]  # q0: d0 and d8 are its positives; "copy" repeats d0's text
    assert "copy" not in first.negative_ids
    assert result.summary.counts["positive_text"] >= 2  # "copy" for both q0 examples


def test_random_sampling_is_reproducible_by_seed(tiny_encoder) -> None:
    corpus = {f"d{i}": Document(f"d{i}", f"document {i} about topic {i % 5}") for i in range(40)}
    pairs = [Example(f"topic {i}", corpus[f"d{i}"].text, positive_id=f"d{i}") for i in range(5)]

    def run(seed: int) -> list[tuple[str, ...]]:
        cfg = MiningConfig(num_negatives=4, range_min=2, range_max=30, sampling="random", seed=seed)
        return [
            m.negative_ids
            for m in mine_hard_negatives(pairs, corpus, cfg, encoder=tiny_encoder).examples
        ]

    assert run(0) == run(0)
    assert run(0) != run(1)
    top = MiningConfig(num_negatives=4, range_min=2, range_max=30)
    for mined in mine_hard_negatives(pairs, corpus, top, encoder=tiny_encoder).examples:
        ranks = [s["dense"]["rank"] for s in mined.negative_sources]
        assert ranks == [2, 3, 4, 5]  # "top" from the window's start, hardest first


def test_fewer_candidates_than_asked_is_counted_and_warned(caplog) -> None:
    # Corpus of 7 with range 0..100: the query has 2 positives in it (p, p-copy), 5 remain.
    cfg = MiningConfig(num_negatives=6)
    with pytest.raises(RagtuneError, match="no example found 6 negative"):
        mine_hard_negatives([PAIR], CORPUS, cfg, encoder=FakeEncoder(VECTORS))

    cfg = MiningConfig(num_negatives=6, keep_incomplete=True)
    with caplog.at_level(logging.WARNING, logger="ragtune.mining"):
        result = mine_hard_negatives([PAIR], CORPUS, cfg, encoder=FakeEncoder(VECTORS))
    assert result.summary.short == 1 and result.summary.fewest_found == 5
    assert len(result.examples[0].negatives) == 5
    assert "1 of 1 examples found fewer than 6 negatives (fewest 5)" in caplog.text


def test_short_examples_are_left_out_by_default() -> None:
    second = Example(QUERY, "d1 near copy", query_id="q1", positive_id="d1")
    other = Example("iron", "d5", query_id="q2", positive_id="d5")
    vectors = {**VECTORS, "iron": [0.0, 1.0]}
    # q1 (positives p, d1; p-copy excluded by text) keeps d2..d5: 4. q2 keeps p, d1..d4: 5
    # (p-copy is a duplicate text of p).
    cfg = MiningConfig(num_negatives=5)
    result = mine_hard_negatives([PAIR, second, other], CORPUS, cfg, encoder=FakeEncoder(vectors))
    assert [m.query_id for m in result.examples] == ["q2"]
    assert (result.summary.short, result.summary.written) == (2, 1)
    assert result.summary.counts["duplicate_text"] == 1


def test_bad_input_gives_clear_errors() -> None:
    with pytest.raises(RagtuneError, match="corpus is empty"):
        mine_hard_negatives([PAIR], {}, MiningConfig(), encoder=FakeEncoder(VECTORS))
    with pytest.raises(RagtuneError, match="source 'dense' needs an encoder"):
        mine_hard_negatives([PAIR], CORPUS, MiningConfig())
    with pytest.raises(RagtuneError, match="filters .* need an encoder"):
        mine_hard_negatives([PAIR], CORPUS, MiningConfig(source="bm25", margin=0.1))
    with pytest.raises(DataError, match="none of the 1 queries has a positive"):
        mine_hard_negatives([LabelledPair("q", "doc", 0.0)], CORPUS, MiningConfig())
    with pytest.raises(RagtuneError, match="unknown sampling 'hardest'"):
        MiningConfig(sampling="hardest")  # type: ignore[arg-type]
    with pytest.raises(RagtuneError, match="range_min < range_max"):
        MiningConfig(range_min=10, range_max=10)


def test_labelled_pairs_count_queries_without_positives() -> None:
    corpus = {
        "p": Document("p", "vitamin C prevents scurvy"),
        "x": Document("x", "vitamin D deficiency"),
    }
    records = [
        LabelledPair("vitamin C", "vitamin C prevents scurvy", 1.0, "q1", "p"),
        LabelledPair("unanswered", "vitamin D deficiency", 0.0, "q9", "x"),
    ]
    result = mine_hard_negatives(records, corpus, MiningConfig(source="bm25", num_negatives=1))
    assert result.summary.queries_without_positives == 1
    assert [m.query_id for m in result.examples] == ["q1"]


def test_bm25_alone_needs_no_model_and_ranks_lexically() -> None:
    corpus = {
        "pos": Document("pos", "Scurvy is prevented by vitamin C"),
        "a": Document("a", "Vitamin C and scurvy in sailors"),
        "b": Document("b", "Vitamin D and bones"),
        "c": Document("c", "Traffic in large cities"),
    }
    pair = Example("vitamin C scurvy", corpus["pos"].text, positive_id="pos")
    result = mine_hard_negatives([pair], corpus, MiningConfig(source="bm25", num_negatives=2))
    mined = result.examples[0]
    assert mined.negative_ids == ("a", "b")  # "c" shares no word: never a candidate
    assert mined.negative_scores == (None, None) and mined.positive_score is None
    assert mined.negative_sources[0]["bm25"]["rank"] == 0


def test_both_sources_are_merged_keeping_each_rank() -> None:
    corpus = {
        "pos": Document("pos", "red apple pie"),
        "car": Document("car", "red car"),
        "green": Document("green", "green apple"),
        "sky": Document("sky", "blue sky"),
    }
    vectors = {
        "red apple": [1.0, 0.0],
        "red apple pie": [0.9, 0.0],
        "red car": [0.8, 0.0],
        "green apple": [0.3, 0.0],
        "blue sky": [0.6, 0.0],
    }
    pair = Example("red apple", "red apple pie", positive_id="pos")
    cfg = MiningConfig(source="both", num_negatives=2, range_min=1, range_max=10)
    result = mine_hard_negatives([pair], corpus, cfg, encoder=FakeEncoder(vectors))
    mined = result.examples[0]
    # Dense ranks: car 0 (skipped by range_min), sky 1, green 2. BM25 ranks the two documents
    # sharing a word, tied, by position: car 0 (skipped), green 1; it never returns "blue sky".
    assert mined.negative_ids == ("sky", "green")  # ordered by the dense teacher's score
    assert set(mined.negative_sources[0]) == {"dense"}
    assert {k: v["rank"] for k, v in mined.negative_sources[1].items()} == {"dense": 2, "bm25": 1}
    assert result.summary.counts["above_range_min"] == 1  # "car", skipped by both


def test_corpus_defaults_to_the_distinct_positives() -> None:
    pairs = [
        Example("q1", "alpha text", positive_id="a"),
        Example("q2", "beta text"),
        Example("q3", "beta  text"),
    ]
    corpus = corpus_from_positives(pairs)
    assert [(d.id, d.text) for d in corpus.values()] == [
        ("a", "alpha text"),
        ("positive:1", "beta text"),
    ]
    with pytest.raises(DataError, match="positive id 'a' is given two different texts"):
        corpus_from_positives([*pairs, Example("q4", "gamma", positive_id="a")])


def test_saved_output_loads_as_training_data(tmp_path, tiny_encoder) -> None:
    corpus = {f"d{i}": Document(f"d{i}", f"passage {i} on subject {i % 4}") for i in range(20)}
    pairs = [
        Example(f"subject {i}", corpus[f"d{i}"].text, query_id=f"q{i}", positive_id=f"d{i}")
        for i in range(6)
    ]
    cfg = MiningConfig(num_negatives=2, range_min=1, range_max=10, relative_margin=0.99)
    result = mine_hard_negatives(pairs, corpus, cfg, encoder=tiny_encoder)
    paths = result.save(tmp_path / "mined.jsonl")

    loaded = load_training_data(paths["data"])
    assert loaded.stats.shape == "tuples"
    assert loaded.records == [
        Example(m.query, m.positive, m.negatives, m.query_id, m.positive_id)
        for m in result.examples
    ]
    summary = json.loads(paths["summary"].read_text())
    assert summary["written"] == len(result.examples)
    assert summary["scores"]["positive"]["count"] == len(pairs)
    assert summary["config"]["relative_margin"] == 0.99
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
