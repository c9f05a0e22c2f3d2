"""The significance gate: the tuned model is published only on significant dev evidence."""

from __future__ import annotations

import numpy as np

from ragtune.train.gate import decide


def per_query(values) -> dict[str, float]:
    return {f"q{i}": float(v) for i, v in enumerate(values)}


BASE = per_query(np.linspace(0.2, 0.8, 50))


def test_a_small_noisy_gain_publishes_the_base_model_with_the_evidence() -> None:
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 0.2, 50)
    tuned = per_query(np.array(list(BASE.values())) + noise - noise.mean() + 0.005)
    d = decide(BASE, tuned, min_gain=0.0, max_p=0.05)
    assert d.published == "base" and d.improvement == "not improved"
    assert d.gain is not None and d.gain > 0  # better on average, but within the noise
    assert d.p_value is not None and d.p_value >= 0.05
    assert d.low is not None and d.high is not None and d.low < 0 < d.high
    assert d.reason.startswith("the base model is published, unchanged: the dev gain +0.0050")
    assert "is not significant (p = " in d.reason and "over 50 dev queries" in d.reason


def test_a_consistent_gain_publishes_the_tuned_model() -> None:
    rng = np.random.default_rng(0)
    tuned = per_query(np.array(list(BASE.values())) + 0.05 + rng.normal(0, 0.02, 50))
    d = decide(BASE, tuned, min_gain=0.0, max_p=0.05)
    assert d.published == "tuned" and d.improvement == "improved"
    assert d.p_value is not None and d.p_value < 0.001 and d.n == 50
    assert d.low is not None and d.low > 0
    assert d.reason.startswith("the tuned model is published: dev gain +0.05")


def test_the_gain_must_also_exceed_publish_min_gain() -> None:
    tuned = per_query(np.array(list(BASE.values())) + 0.01)  # significant, but small
    assert decide(BASE, tuned, min_gain=0.0).published == "tuned"
    d = decide(BASE, tuned, min_gain=0.02)
    assert d.published == "base" and "is not above publish_min_gain = 0.02" in d.reason


def test_publish_p_one_turns_the_test_off() -> None:
    tuned = dict(BASE, q0=BASE["q0"] + 0.05)  # one query better: p = 1 by the sign-flip test
    assert decide(BASE, tuned).published == "base"
    d = decide(BASE, tuned, max_p=1.0)
    assert d.published == "tuned" and d.improvement == "improved"
    assert decide(BASE, dict(BASE), max_p=1.0).published == "base"  # no gain, no publishing


def test_without_dev_scores_nothing_is_claimed() -> None:
    for base, tuned in ((None, None), (BASE, None), (None, BASE), ({}, {})):
        d = decide(base, tuned)
        assert d.improvement == "not measured" and d.published == "tuned"
        assert d.gain is None and d.p_value is None and "not measured" in d.reason


def _two_kinds(gain_a: float, gain_b: float, n: int = 60) -> tuple[dict, dict, dict]:
    """2n dev queries, n of kind "cloze" and n of kind "title", with the given mean gains."""
    rng = np.random.default_rng(1)
    base = per_query(rng.uniform(0.2, 0.8, 2 * n))
    gains = np.r_[gain_a + rng.normal(0, 0.02, n), gain_b + rng.normal(0, 0.02, n)]
    tuned = {q: s + g for (q, s), g in zip(base.items(), gains, strict=True)}
    strata = {q: ("cloze" if i < n else "title") for i, q in enumerate(base)}
    return base, tuned, strata


def test_a_pooled_gain_that_one_kind_of_query_does_not_show_publishes_the_base_model() -> None:
    base, tuned, strata = _two_kinds(0.08, 0.0)  # pooled +0.04, clearly significant
    assert decide(base, tuned).published == "tuned"  # without strata: published
    d = decide(base, tuned, strata=strata)
    assert d.published == "base" and d.improvement == "not improved"
    assert d.p_value is not None and d.p_value < 0.001  # the pooled test alone would publish
    assert "significant, but not on every kind of dev query (title " in d.reason
    assert [(s.name, s.n, s.tested, s.passed) for s in d.strata] == [
        ("cloze", 60, True, True),
        ("title", 60, True, False),
    ]


def test_a_gain_on_every_kind_publishes_the_tuned_model_with_each_kinds_evidence() -> None:
    base, tuned, strata = _two_kinds(0.05, 0.03)
    d = decide(base, tuned, strata=strata)
    assert d.published == "tuned" and all(s.passed and s.tested for s in d.strata)
    assert [round(s.gain, 2) for s in d.strata] == [0.05, 0.03]
    assert all(s.low > 0 for s in d.strata)


def test_a_stratum_too_small_to_test_is_reported_and_does_not_veto() -> None:
    base, tuned, strata = _two_kinds(0.05, 0.05)
    few = [q for q in base][:5]
    strata.update({q: "keywords" for q in few})  # 5 queries: below MIN_STRATUM_QUERIES
    for q in few:
        tuned[q] = base[q] - 0.2  # worse on them, but 5 queries decide nothing alone
    d = decide(base, tuned, strata=strata)
    kinds = {s.name: s for s in d.strata}
    assert not kinds["keywords"].tested and kinds["keywords"].passed and kinds["keywords"].n == 5
    assert d.published == "tuned"
