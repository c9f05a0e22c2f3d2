"""Random negatives: never relevant to the query, never a copy of a positive, reproducible."""

from __future__ import annotations

import pytest

from ragtune.data import Document, Example, LabelledPair, pairs_to_labelled, pairs_to_triplets
from ragtune.errors import DataError

PAIRS = [Example("q1", "d1"), Example("q2", "d2"), Example("q3", "d3")]


def test_the_only_eligible_documents_are_the_other_queries_positives():
    # Pool = {d1, d2, d3}; q1 may only get d2 or d3, and with k=2 it must get exactly both.
    for seed in range(20):
        labelled = pairs_to_labelled(PAIRS, negatives_per_query=2, seed=seed)
        q1 = [(p.document, p.label) for p in labelled if p.query == "q1"]
        assert q1[0] == ("d1", 1.0)
        assert sorted(q1[1:]) == [("d2", 0.0), ("d3", 0.0)]
        assert len(labelled) == 9  # per query: 1 positive + 2 negatives


def test_a_query_never_gets_one_of_its_own_positives():
    pairs = [Example("q1", "a"), Example("q1", "b"), Example("q2", "c")]  # q1 has two positives
    for seed in range(20):
        for ex in pairs_to_triplets(pairs, negatives_per_query=1, seed=seed):
            if ex.query == "q1":
                assert ex.negatives == ("c",)


def test_a_copy_of_a_positive_under_another_id_is_not_a_negative():
    pairs = [Example("q1", "alpha  beta", positive_id="x")]
    corpus = {
        "x": Document("x", "alpha  beta"),
        "y": Document("y", " alpha beta\n"),  # same text once whitespace is normalised
        "z": Document("z", "gamma"),
    }
    for seed in range(20):
        [ex] = pairs_to_triplets(pairs, negatives_per_query=1, corpus=corpus, seed=seed)
        assert (ex.negatives, ex.negative_ids) == (("gamma",), ("z",))


def test_relevant_ids_are_excluded_even_when_texts_differ():
    pairs = [Example("q1", "old wording", positive_id="d1")]
    corpus = {"d1": Document("d1", "new wording"), "d2": Document("d2", "other")}
    [ex] = pairs_to_triplets(pairs, corpus=corpus)
    assert ex.negative_ids == ("d2",)


def test_same_seed_same_negatives_other_seed_other_negatives():
    pairs = [Example(f"q{i}", f"doc {i}") for i in range(200)]
    first = pairs_to_triplets(pairs, negatives_per_query=3, seed=7)
    assert first == pairs_to_triplets(pairs, negatives_per_query=3, seed=7)
    assert first != pairs_to_triplets(pairs, negatives_per_query=3, seed=8)
    assert all(len(set(ex.negatives)) == 3 for ex in first)  # distinct within an example


def test_no_eligible_document_is_a_clear_error():
    with pytest.raises(DataError, match=r"'q1' has 0 eligible negative\(s\) in a pool of 1"):
        pairs_to_triplets([Example("q1", "d1")])
    with pytest.raises(DataError, match="has 2 eligible negative.*3 needed"):
        pairs_to_labelled(PAIRS, negatives_per_query=3)


def test_mostly_ineligible_pool_still_finds_the_one_eligible_document():
    # q1 is relevant to 99 of the 100 pool documents: rejection sampling gives up, the
    # exhaustive fallback must still return the single eligible one.
    pairs = [Example("q1", f"p{i}", positive_id=f"p{i}") for i in range(99)]
    corpus = {f"p{i}": Document(f"p{i}", f"p{i}") for i in range(99)}
    corpus["free"] = Document("free", "free")
    for ex in pairs_to_triplets(pairs, corpus=corpus, seed=3):
        assert ex.negative_ids == ("free",)


def test_existing_negatives_are_kept_and_not_drawn_again():
    pairs = [Example("q1", "d1", negatives=("d2",)), Example("q2", "d2"), Example("q3", "d3")]
    [ex, *_] = pairs_to_triplets(pairs, negatives_per_query=1)
    assert ex.negatives == ("d2", "d3")


def test_negative_ids_are_left_empty_when_some_are_unknown():
    [ex, *_] = pairs_to_triplets(PAIRS)  # positives without ids: pool entries have no ids
    assert ex.negative_ids == ()


def test_labelled_pairs_keep_ids():
    pairs = [
        Example("q1", "d1", query_id="1", positive_id="a"),
        Example("q2", "d2", query_id="2", positive_id="b"),
    ]
    assert pairs_to_labelled(pairs, negatives_per_query=1) == [
        LabelledPair("q1", "d1", 1.0, query_id="1", document_id="a"),
        LabelledPair("q1", "d2", 0.0, query_id="1", document_id="b"),
        LabelledPair("q2", "d2", 1.0, query_id="2", document_id="b"),
        LabelledPair("q2", "d1", 0.0, query_id="2", document_id="a"),
    ]


def test_labelled_records_are_refused():
    with pytest.raises(DataError, match="expected Example"):
        pairs_to_triplets([LabelledPair("q", "d", 1.0)])  # type: ignore[list-item]
