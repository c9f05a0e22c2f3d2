"""The paired statistics against hand-computed values: exact sign flips, the interval, the mean."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ragtune.evaluation import report
from ragtune.evaluation.significance import (
    bootstrap_interval,
    paired_comparison,
    scores_of,
    sign_flip_p_value,
    standard_error,
)


def test_the_p_value_of_four_queries_is_the_share_of_sign_patterns_by_hand() -> None:
    # Differences (0.4, 0.2, 0.1, -0.1): observed |mean| = 0.6 / 4 = 0.15. Of the 16 patterns,
    # |sum| >= 0.6 for: (+,+,+,-) 0.6, (+,+,-,+) 0.6, (+,+,+,+) 0.8, and their 3 negations: 6/16.
    base = {"q1": 0.1, "q2": 0.5, "q3": 0.3, "q4": 0.6}
    tuned = {"q1": 0.5, "q2": 0.7, "q3": 0.4, "q4": 0.5}
    deltas = [0.4, 0.2, 0.1, -0.1]
    sums = [
        abs(sum(s * d for s, d in zip(signs, deltas, strict=True)))
        for signs in itertools.product([1, -1], repeat=4)
    ]
    assert sum(s >= 0.6 - 1e-12 for s in sums) == 6
    c = paired_comparison(base, tuned)
    assert c.p_value == 6 / 16  # exact enumeration: no sampling error at all
    assert (c.n, c.wins, c.losses, c.ties) == (4, 3, 1, 0)
    assert c.mean_difference == pytest.approx(0.15)
    assert c.low <= c.mean_difference <= c.high


def test_the_exact_test_never_reaches_significance_below_six_queries() -> None:
    # The smallest exact p is 2 / 2**n: with 5 queries 1/16 > 0.05, with 6 queries 1/32 < 0.05.
    assert sign_flip_p_value([0.1] * 5) == 2 / 32
    assert sign_flip_p_value([0.1] * 6) == 2 / 64
    assert sign_flip_p_value([0.0, 0.0]) == 1.0
    assert sign_flip_p_value([]) == 1.0


def test_above_sixteen_queries_the_monte_carlo_estimate_is_seeded_and_close() -> None:
    rng = np.random.default_rng(1)
    deltas = rng.normal(0.02, 0.1, size=40)
    first, again = sign_flip_p_value(deltas), sign_flip_p_value(deltas)
    assert first == again  # a fixed seed: a run is reproducible
    assert sign_flip_p_value([0.1] * 20) < 0.001
    # 17 queries: the exact answer by enumeration, the estimate within Monte Carlo error
    d17 = rng.normal(0.03, 0.1, size=17)
    signs = 1.0 - 2.0 * (np.arange(2**17)[:, None] >> np.arange(17) & 1)
    exact = np.mean(np.abs(signs @ d17) >= abs(d17.sum()) - 1e-12)
    assert sign_flip_p_value(d17, samples=20_000) == pytest.approx(exact, abs=0.01)


def test_the_bootstrap_interval_covers_the_mean_and_shrinks_with_more_queries() -> None:
    rng = np.random.default_rng(0)
    small, large = rng.normal(0.05, 0.2, 30), rng.normal(0.05, 0.2, 3000)
    lo_s, hi_s = bootstrap_interval(small)
    lo_l, hi_l = bootstrap_interval(large)
    assert lo_s <= small.mean() <= hi_s and lo_l <= large.mean() <= hi_l
    assert hi_l - lo_l < (hi_s - lo_s) / 5  # width ~ 1 / sqrt(n): 10x the queries, ~1/3.2
    # the normal approximation of the 95% interval: mean +- 1.96 standard errors
    assert hi_l - lo_l == pytest.approx(2 * 1.96 * standard_error(large), rel=0.1)
    assert bootstrap_interval([]) == (0.0, 0.0)


def test_a_query_missing_from_one_system_counts_zero_there() -> None:
    c = paired_comparison({"q1": 0.5}, {"q1": 0.5, "q2": 1.0})
    assert c.n == 2 and c.mean_difference == pytest.approx(0.5)


def test_scores_of_reads_a_metric_case_insensitively() -> None:
    per_query = {"q1": {"nDCG@10": 0.5, "MRR@10": 1.0}, "q2": {"nDCG@10": 0.25, "MRR@10": 0.5}}
    assert scores_of(per_query, "ndcg@10") == {"q1": 0.5, "q2": 0.25}


def test_report_still_exports_the_test() -> None:
    assert report.sign_flip_p_value is sign_flip_p_value
