"""Paired significance of a difference between two systems scored on the same queries.

:func:`paired_comparison` takes two ``{query id: score}`` dicts (say per-query nDCG@10 of the base
and the tuned model on the dev queries) and returns a :class:`PairedComparison`: the mean
per-query difference, a 95% bootstrap interval of that mean, a two-sided paired sign-flip
p-value and the number of queries.

The sign-flip (randomisation) test: under "no difference" each query's difference is as likely
negative as positive, so the observed |mean| is compared with the |mean| of every sign pattern
(exactly, by enumerating the 2**n patterns, for n <= 16; by a fixed-seed Monte Carlo sample
above). Smucker, Allan & Carterette, "A Comparison of Statistical Significance Tests for
Information Retrieval Evaluation" (CIKM 2007) found it, the bootstrap and the t-test to agree on
IR metrics, and recommend the randomisation test; the sign test and Wilcoxon they advise against.
The interval is the percentile bootstrap of the mean difference (Efron & Tibshirani, "An
Introduction to the Bootstrap", 1993), with a fixed seed so that a run is reproducible.

Example::

    c = paired_comparison(scores_of(base.per_query, "nDCG@10"),
                          scores_of(tuned.per_query, "nDCG@10"))
    print(f"{c.mean_difference:+.4f} [{c.low:+.4f}, {c.high:+.4f}], p = {c.p_value:.3g}, n = {c.n}")
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

TIE_TOLERANCE = 1e-9
"""Per-query differences smaller than this are ties."""
EXACT_MAX_QUERIES = 16
"""Up to this many queries the sign-flip p-value enumerates all 2**n sign patterns (65,536)."""
SAMPLES = 10_000
"""Monte Carlo sign patterns (above EXACT_MAX_QUERIES) and bootstrap resamples."""


@dataclass(frozen=True)
class PairedComparison:
    """Candidate minus baseline over the same queries."""

    n: int
    """Queries compared."""
    mean_difference: float
    """Mean over queries of candidate score minus baseline score."""
    low: float
    """Lower end of the bootstrap interval of the mean difference."""
    high: float
    """Upper end of that interval."""
    p_value: float
    """Two-sided paired sign-flip p-value of "the mean difference is zero"."""
    confidence: float = 0.95
    wins: int = 0
    losses: int = 0
    ties: int = 0

    def describe(self, digits: int = 4) -> str:
        """``+0.0123 [+0.0040, +0.0210], p = 0.004, n = 300`` (a 95% interval)."""
        f = f"+.{digits}f"
        return (
            f"{self.mean_difference:{f}} [{self.low:{f}}, {self.high:{f}}], "
            f"p = {self.p_value:.3g}, n = {self.n}"
        )


def scores_of(per_query: Mapping[str, Mapping[str, float]], metric: str) -> dict[str, float]:
    """``{query id: value of metric}`` from an :attr:`EvalResult.per_query` (metric matched
    case-insensitively, as the training config names it: ``ndcg@10``)."""
    out = {}
    for qid, values in per_query.items():
        by_lower = {k.lower(): v for k, v in values.items()}
        out[qid] = float(by_lower[metric.lower()])
    return out


def paired_differences(
    baseline: Mapping[str, float], candidate: Mapping[str, float]
) -> tuple[list[str], np.ndarray]:
    """Query ids (sorted) and candidate-minus-baseline differences (n,).

    A query scored by only one system counts 0 for the other: evaluation leaves out no judged
    query, so a missing score can only mean nothing relevant was retrieved.
    """
    qids = sorted(set(baseline) | set(candidate))
    deltas = np.array(
        [float(candidate.get(q, 0.0)) - float(baseline.get(q, 0.0)) for q in qids],
        dtype=np.float64,
    )  # (n,)
    return qids, deltas


def paired_comparison(
    baseline: Mapping[str, float],
    candidate: Mapping[str, float],
    *,
    confidence: float = 0.95,
    samples: int = SAMPLES,
    seed: int = 0,
) -> PairedComparison:
    """Mean difference, its bootstrap interval and the sign-flip p-value (see the module doc)."""
    _, deltas = paired_differences(baseline, candidate)
    low, high = bootstrap_interval(deltas, confidence=confidence, samples=samples, seed=seed)
    return PairedComparison(
        n=int(deltas.size),
        mean_difference=float(deltas.mean()) if deltas.size else 0.0,
        low=low,
        high=high,
        p_value=sign_flip_p_value(deltas, samples=samples, seed=seed),
        confidence=confidence,
        wins=int(np.sum(deltas > TIE_TOLERANCE)),
        losses=int(np.sum(deltas < -TIE_TOLERANCE)),
        ties=int(np.sum(np.abs(deltas) <= TIE_TOLERANCE)),
    )


def sign_flip_p_value(deltas: object, samples: int = SAMPLES, seed: int = 0) -> float:
    """Two-sided p-value of a paired randomisation test that the mean difference is zero.

    p is the share of sign patterns whose |mean| is at least the observed |mean|: all 2**n
    patterns for n <= :data:`EXACT_MAX_QUERIES` (exact), else ``samples`` random ones with the
    observed pattern counted in, ``(hits + 1) / (samples + 1)``, so that p is never 0.
    """
    d = np.asarray(deltas, dtype=np.float64).ravel()  # (n,)
    if d.size == 0 or not np.any(np.abs(d) > TIE_TOLERANCE):
        return 1.0
    observed = abs(d.mean()) - 1e-12  # the observed pattern must count as a hit
    if d.size <= EXACT_MAX_QUERIES:
        patterns = np.arange(2**d.size)[:, None] >> np.arange(d.size) & 1  # (2**n, n) of 0/1
        signs = 1.0 - 2.0 * patterns
        return float(np.mean(np.abs(signs @ d) / d.size >= observed))
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, samples, 1000):
        rows = min(1000, samples - start)
        signs = rng.choice(np.array([-1.0, 1.0]), size=(rows, d.size))  # (rows, n)
        hits += int(np.sum(np.abs(signs @ d) / d.size >= observed))
    return (hits + 1) / (samples + 1)


def bootstrap_interval(
    deltas: object, *, confidence: float = 0.95, samples: int = SAMPLES, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``deltas`` (queries resampled with
    replacement); ``(0, 0)`` for no queries."""
    d = np.asarray(deltas, dtype=np.float64).ravel()  # (n,)
    if d.size == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    means = np.empty(samples)
    for start in range(0, samples, 1000):
        rows = min(1000, samples - start)
        picks = rng.integers(0, d.size, size=(rows, d.size))  # (rows, n)
        means[start : start + rows] = d[picks].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def standard_error(deltas: object) -> float:
    """Standard error of the mean of ``deltas`` (sample standard deviation / sqrt(n))."""
    d = np.asarray(deltas, dtype=np.float64).ravel()
    return float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else 0.0
