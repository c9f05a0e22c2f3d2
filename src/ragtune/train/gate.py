"""The significance gate: publish the tuned model only when the dev queries say it is better.

:func:`decide` compares the base and the tuned model's per-query dev scores with a paired test
(:func:`ragtune.evaluation.significance.paired_comparison`: mean difference, 95% bootstrap
interval, two-sided sign-flip p-value) and returns a :class:`GateDecision`. The tuned model is
published only when its mean gain is above ``min_gain`` **and** p is below ``max_p``
(``TrainConfig.publish_min_gain`` / ``publish_p``); with ``max_p == 1`` the test is off and the
gain rule alone decides. Otherwise the base model is published, unchanged, and the reason gives
the dev difference and its interval. Without dev scores nothing is compared: the tuned model is
published and the improvement is "not measured", never "improved".

Why a test and not "best dev score wins": on a few hundred dev queries the dev score of a
checkpoint picked as the best of several evaluations is biased upwards, and a gain of 0.003
nDCG@10 is within query-sampling noise; publishing it risks a test regression. Smucker, Allan &
Carterette (CIKM 2007) compare the paired tests for IR metrics and recommend the randomisation
(sign-flip) test used here.

Example::

    d = decide(base_scores, tuned_scores, min_gain=0.0, max_p=0.05)
    print(d.published, d.reason)   # base: the dev gain +0.0031 [-0.0042, +0.0107] is not ...
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ragtune.evaluation.significance import paired_comparison
from ragtune.train.state import Improvement, Published


@dataclass(frozen=True)
class GateDecision:
    """Which model is published and why, with the dev evidence."""

    published: Published
    improvement: Improvement
    """"improved" only when the tuned model is published on dev evidence."""
    reason: str
    gain: float | None = None
    """Mean per-query dev gain of the tuned model over the base model (None: not measured)."""
    low: float | None = None
    """95% bootstrap interval of the gain."""
    high: float | None = None
    p_value: float | None = None
    """Two-sided paired sign-flip p-value of the gain."""
    n: int = 0
    """Dev queries compared."""
    min_gain: float = 0.0
    max_p: float = 0.05


def decide(
    base: Mapping[str, float] | None,
    tuned: Mapping[str, float] | None,
    *,
    min_gain: float = 0.0,
    max_p: float = 0.05,
    metric: str = "ndcg@10",
) -> GateDecision:
    """Publish ``"tuned"`` only when mean gain > ``min_gain`` and p < ``max_p`` (``max_p`` 1:
    gain only); ``base``/``tuned`` are ``{dev query id: score}``, None when there is no dev."""
    if base is None or tuned is None or not (base or tuned):
        return GateDecision(
            published="tuned",
            improvement="not measured",
            reason="no dev set: the tuned model is published without a comparison with the base "
            "model (improvement not measured)",
            min_gain=min_gain,
            max_p=max_p,
        )
    c = paired_comparison(base, tuned)
    evidence = (
        f"{c.mean_difference:+.4f} {metric} [{c.low:+.4f}, {c.high:+.4f}] over {c.n} dev queries"
    )
    gain_ok = c.mean_difference > min_gain
    test_ok = max_p >= 1 or c.p_value < max_p
    if gain_ok and test_ok:
        published: Published = "tuned"
        test = "" if max_p >= 1 else f", p = {c.p_value:.3g} < {max_p:g}"
        reason = f"the tuned model is published: dev gain {evidence}{test}"
    else:
        published = "base"
        if not gain_ok:
            why = f"is not above publish_min_gain = {min_gain:g}"
        else:
            why = f"is not significant (p = {c.p_value:.3g}, publish_p = {max_p:g})"
        reason = f"the base model is published, unchanged: the dev gain {evidence} {why}"
    return GateDecision(
        published=published,
        improvement="improved" if published == "tuned" else "not improved",
        reason=reason,
        gain=c.mean_difference,
        low=c.low,
        high=c.high,
        p_value=c.p_value,
        n=c.n,
        min_gain=min_gain,
        max_p=max_p,
    )
