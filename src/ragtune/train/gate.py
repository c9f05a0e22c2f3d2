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

**Strata** (``strata``: ``{dev query id: stratum}``, given by :attr:`EvalSet.strata`): when the
dev queries are of several kinds, the gain must also hold on each kind with at least
:data:`MIN_STRATUM_QUERIES` queries, by the same rule (mean above ``min_gain``, p below
``max_p``). This is an intersection-union test (Berger, Technometrics 1982): the null hypothesis
"some stratum does not gain" is rejected only when every stratum rejects its own at level
``max_p``, so the combined test keeps level ``max_p`` without a multiple-comparison correction.
Why: ``ragtune tune`` judges a label-free model on pseudo-queries of several generators (titles,
held-out sentences, keywords), none of which is the user's real questions. On the SciFact corpus
the pooled pseudo-dev gain was significant (nDCG@10 0.617 -> 0.635, p = 0.0001) while the most
question-like generator, titles, barely moved (+0.003 on its held-out queries) and the real test
queries lost 0.009 (BENCHMARKS.md, "Label-free tuning"): a pooled gain can come from one
generator's artefact (exact sentence overlap) that real questions do not share. A gain that holds
for every kind of pseudo-query is the evidence that it is not such an artefact.

Example::

    d = decide(base_scores, tuned_scores, min_gain=0.0, max_p=0.05)
    print(d.published, d.reason)   # base: the dev gain +0.0031 [-0.0042, +0.0107] is not ...
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ragtune.evaluation.significance import paired_comparison
from ragtune.train.state import Improvement, Published

MIN_STRATUM_QUERIES = 30
"""Strata with fewer dev queries are reported but not tested: on a few queries the test cannot
reject, and a tiny stratum would veto every model."""


@dataclass(frozen=True)
class StratumGain:
    """The dev gain on one stratum of the dev queries (see the module doc)."""

    name: str
    n: int
    gain: float
    low: float
    high: float
    p_value: float
    tested: bool
    """False: fewer than :data:`MIN_STRATUM_QUERIES` queries, reported only."""
    passed: bool
    """The stratum's own gain rule held (True for an untested stratum)."""

    @property
    def verdict(self) -> str:
        """``holds``, ``fails`` or ``too few to test``: what the card and the tune report show."""
        if not self.tested:
            return "too few to test"
        return "holds" if self.passed else "fails"


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
    strata: tuple[StratumGain, ...] = ()
    """The gain per stratum of the dev queries, when they were given strata."""


def decide(
    base: Mapping[str, float] | None,
    tuned: Mapping[str, float] | None,
    *,
    min_gain: float = 0.0,
    max_p: float = 0.05,
    metric: str = "ndcg@10",
    strata: Mapping[str, str] | None = None,
) -> GateDecision:
    """Publish ``"tuned"`` only when mean gain > ``min_gain`` and p < ``max_p`` (``max_p`` 1:
    gain only); ``base``/``tuned`` are ``{dev query id: score}``, None when there is no dev.

    ``strata`` (``{dev query id: stratum}``): the same rule must also hold on every stratum of at
    least :data:`MIN_STRATUM_QUERIES` queries (see the module doc); queries it does not name
    count in the pooled test only."""
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
    by_stratum = _strata(base, tuned, strata or {}, min_gain, max_p)
    failed = [s for s in by_stratum if not s.passed]
    if gain_ok and test_ok and not failed:
        published: Published = "tuned"
        test = "" if max_p >= 1 else f", p = {c.p_value:.3g} < {max_p:g}"
        reason = f"the tuned model is published: dev gain {evidence}{test}"
    elif gain_ok and test_ok:
        published = "base"
        lines = "; ".join(
            f"{s.name} {s.gain:+.4f} [{s.low:+.4f}, {s.high:+.4f}], p = {s.p_value:.3g}, n = {s.n}"
            for s in failed
        )
        reason = (
            f"the base model is published, unchanged: the pooled dev gain {evidence} is "
            f"significant, but not on every kind of dev query ({lines}); a gain that one kind "
            "of query does not show may not reach real queries either"
        )
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
        strata=by_stratum,
    )


def _strata(
    base: Mapping[str, float],
    tuned: Mapping[str, float],
    strata: Mapping[str, str],
    min_gain: float,
    max_p: float,
) -> tuple[StratumGain, ...]:
    """The paired comparison on each stratum's queries, sorted by stratum name."""
    members: dict[str, list[str]] = {}
    for qid in sorted(set(base) | set(tuned)):
        if qid in strata:
            members.setdefault(strata[qid], []).append(qid)
    out = []
    for name, qids in sorted(members.items()):
        c = paired_comparison(
            {q: base.get(q, 0.0) for q in qids}, {q: tuned.get(q, 0.0) for q in qids}
        )
        tested = c.n >= MIN_STRATUM_QUERIES
        holds = c.mean_difference > min_gain and (max_p >= 1 or c.p_value < max_p)
        out.append(
            StratumGain(
                name=name,
                n=c.n,
                gain=c.mean_difference,
                low=c.low,
                high=c.high,
                p_value=c.p_value,
                tested=tested,
                passed=holds or not tested,
            )
        )
    return tuple(out)
