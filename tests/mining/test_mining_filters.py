"""The pure mining rules against numbers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from ragtune.errors import RagtuneError
from ragtune.mining.filters import (
    false_negative_filters,
    first_occurrences,
    in_window,
    is_positive,
    normalise_text,
    ranks_without,
    select_negatives,
)

SCORES = np.array([0.90, 0.78, 0.74, 0.60, 0.30])
POSITIVE = 0.80


def test_absolute_margin_drops_scores_above_positive_minus_margin() -> None:
    keep, removed = false_negative_filters(SCORES, POSITIVE, margin=0.05)  # threshold 0.75
    assert keep.tolist() == [False, False, True, True, True]
    assert removed == {"margin": 2, "relative_margin": 0, "max_score": 0}


def test_relative_margin_is_a_fraction_of_the_positive_score() -> None:
    keep, removed = false_negative_filters(SCORES, POSITIVE, relative_margin=0.95)  # 0.76
    assert keep.tolist() == [False, False, True, True, True]
    assert removed["relative_margin"] == 2
    keep, _ = false_negative_filters(SCORES, POSITIVE, relative_margin=0.9)  # 0.72
    assert keep.tolist() == [False, False, False, True, True]


def test_max_score_is_an_absolute_ceiling() -> None:
    keep, removed = false_negative_filters(SCORES, POSITIVE, max_score=0.5)
    assert keep.tolist() == [False, False, False, False, True]
    assert removed["max_score"] == 4


def test_each_filter_counts_only_what_the_earlier_ones_kept() -> None:
    # margin 0.03 -> 0.77 drops 0.90, 0.78; relative 0.9 -> 0.72 then drops 0.74;
    # max 0.5 then drops 0.60; only 0.30 survives, and 2 + 1 + 1 = 4 removed in all.
    keep, removed = false_negative_filters(
        SCORES, POSITIVE, margin=0.03, relative_margin=0.9, max_score=0.5
    )
    assert keep.tolist() == [False, False, False, False, True]
    assert removed == {"margin": 2, "relative_margin": 1, "max_score": 1}


def test_a_score_equal_to_the_threshold_is_kept() -> None:
    keep, _ = false_negative_filters(np.array([0.25, 0.2500001]), 0.5, margin=0.25)
    assert keep.tolist() == [True, False]


def test_no_filter_keeps_everything() -> None:
    keep, removed = false_negative_filters(SCORES, POSITIVE)
    assert keep.all() and sum(removed.values()) == 0


def test_positives_are_found_by_id_and_by_identical_text() -> None:
    texts = [normalise_text(t) for t in ["Vitamin C", "Iron", "Vitamin   C\n"]]
    by_id, by_text = is_positive(["a", "b", "c"], texts, {"a"}, {"Vitamin C"})
    assert by_id.tolist() == [True, False, False]
    assert by_text.tolist() == [False, False, True]  # the copy under another id


def test_ranks_skip_excluded_candidates_and_window_is_half_open() -> None:
    ranks = ranks_without(np.array([False, True, False, True, False, False]))
    assert ranks.tolist() == [0, -1, 1, -1, 2, 3]
    assert in_window(ranks, 1, 3).tolist() == [False, False, True, False, True, False]


def test_first_occurrence_of_each_text_is_kept() -> None:
    assert first_occurrences(["x", "y", "x", "z", "y"]).tolist() == [True, True, False, True, False]


def test_top_takes_the_first_n_and_random_is_seeded() -> None:
    rng = np.random.default_rng(0)
    assert select_negatives(10, 3, "top", rng).tolist() == [0, 1, 2]
    assert select_negatives(2, 3, "top", rng).tolist() == [0, 1]  # fewer available: all

    draws = [select_negatives(50, 5, "random", np.random.default_rng(7)) for _ in range(2)]
    assert draws[0].tolist() == draws[1].tolist()
    assert len(set(draws[0].tolist())) == 5 and draws[0].tolist() == sorted(draws[0].tolist())
    other = select_negatives(50, 5, "random", np.random.default_rng(8))
    assert other.tolist() != draws[0].tolist()
    with pytest.raises(RagtuneError, match="'top', 'random'"):
        select_negatives(5, 1, "hardest", rng)
