"""Metrics checked against numbers worked out by hand from their definitions."""

from __future__ import annotations

from math import log2

import pytest

from ragtune.errors import RagtuneError
from ragtune.evaluation.metrics import compute_metrics, compute_per_query, metric_names

QRELS = {
    "q1": {"d1": 2, "d2": 1, "d3": 0, "d4": 1},  # graded; d3 judged non-relevant; R = 3
    "q2": {"d5": 1},  # R = 1
    "q3": {"d9": 0},  # no relevant document: left out (BEIR convention)
    "q4": {"d6": 1},  # never retrieved: scores 0 everywhere
}
RUN = {
    # ranks:  1 (rel 0)   2 (rel 2)   3 (unjudged) 4 (rel 1)   5 (unjudged)
    "q1": {"d3": 0.9, "d1": 0.8, "d7": 0.7, "d2": 0.6, "d8": 0.5},
    # A tie: the run's order wins (d5 first). trec_eval alone would put "dz" first.
    "q2": {"d5": 0.5, "dz": 0.5},
    "q3": {"d9": 1.0},
    "q5": {"d1": 1.0},  # not in the qrels: ignored
}

# q1 by hand. Discount of rank i is log2(i + 1); gains are the relevance grades (linear).
Q1_IDCG = 2 / log2(2) + 1 / log2(3) + 1 / log2(4)  # grades 2, 1, 1 in the best order
Q1 = {
    "nDCG@1": 0.0,  # rank 1 is d3 (grade 0)
    "nDCG@3": (2 / log2(3)) / Q1_IDCG,  # d1 at rank 2
    "nDCG@5": (2 / log2(3) + 1 / log2(5)) / Q1_IDCG,  # + d2 at rank 4
    "MRR@1": 0.0,  # first relevant is at rank 2 > 1 (recip_rank alone would say 1/2)
    "MRR@3": 1 / 2,
    "MRR@5": 1 / 2,
    "Recall@1": 0.0,
    "Recall@3": 1 / 3,
    "Recall@5": 2 / 3,
    "MAP@1": 0.0,
    "MAP@3": (1 / 2) / 3,  # P@2 = 1/2 at the one relevant rank, divided by R = 3
    "MAP@5": (1 / 2 + 2 / 4) / 3,  # + P@4 = 2/4
    "P@1": 0.0,
    "P@3": 1 / 3,
    "P@5": 2 / 5,
}
# q2: the only relevant document is at rank 1.
Q2 = {name: 1.0 for name in Q1} | {"P@3": 1 / 3, "P@5": 1 / 5}
Q4 = {name: 0.0 for name in Q1}


def test_per_query_values_match_hand_computation() -> None:
    per_query = compute_per_query(RUN, QRELS, k_values=(1, 3, 5))

    assert sorted(per_query) == ["q1", "q2", "q4"]
    for qid, want in [("q1", Q1), ("q2", Q2), ("q4", Q4)]:
        assert per_query[qid] == pytest.approx(want), qid


def test_means_over_judged_queries() -> None:
    metrics = compute_metrics(RUN, QRELS, k_values=(1, 3, 5))

    assert list(metrics) == metric_names((1, 3, 5))
    assert metrics["nDCG@3"] == pytest.approx((Q1["nDCG@3"] + 1 + 0) / 3)  # (0.4030 + 1) / 3
    assert metrics["nDCG@5"] == pytest.approx((Q1["nDCG@5"] + 1 + 0) / 3)  # (0.5406 + 1) / 3
    assert metrics["MRR@3"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert metrics["Recall@5"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert metrics["MAP@3"] == pytest.approx((1 / 6 + 1 + 0) / 3)
    assert metrics["P@5"] == pytest.approx((2 / 5 + 1 / 5 + 0) / 3)
    assert metrics["nDCG@1"] == pytest.approx(1 / 3)


def test_linear_gain_not_exponential() -> None:
    # With 2^rel - 1 gains q1's nDCG@3 would be (3 / log2(3)) / (3 + 1 / log2(3) + 1 / 2) = 0.458.
    per_query = compute_per_query(RUN, QRELS, k_values=(3,))
    assert per_query["q1"]["nDCG@3"] == pytest.approx(0.4030302838)


def test_empty_ranking_counts_as_zero() -> None:
    per_query = compute_per_query({"q2": {}}, {"q2": {"d5": 1}}, k_values=(10,))
    assert per_query["q2"]["nDCG@10"] == 0.0


def test_nothing_to_evaluate_is_a_user_error() -> None:
    with pytest.raises(RagtuneError, match="no query in the qrels has a relevant document"):
        compute_metrics(RUN, {"q1": {"d1": 0}})


def test_bad_k_values() -> None:
    with pytest.raises(RagtuneError, match="positive integers"):
        compute_metrics(RUN, QRELS, k_values=(0, 10))
