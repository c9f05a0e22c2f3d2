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
