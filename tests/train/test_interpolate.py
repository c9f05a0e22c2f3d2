"""Weight interpolation with the base model (WiSE-FT) and the rule that picks the weight."""

from __future__ import annotations

import copy

import pytest
import torch

from ragtune.train.interpolate import WeightMixer, choose_mix, interpolate
from tests.conftest import make_tiny_encoder


@pytest.fixture
def pair(tokenizer):
    """Two tiny encoders of one architecture with different random weights: base and tuned."""
    return make_tiny_encoder(tokenizer, seed=0), make_tiny_encoder(tokenizer, seed=1)


def test_the_endpoints_are_exact_and_the_middle_is_the_elementwise_mean(pair) -> None:
    base, tuned = pair
    mixer = WeightMixer(tuned, base)
    states = {a: {k: v.clone() for k, v in mixer.mix(a).state_dict().items()} for a in (0, 0.5, 1)}
    t, b = tuned.state_dict(), base.state_dict()
    floating = [k for k, v in t.items() if v.is_floating_point()]
    assert floating and any(not torch.equal(t[k], b[k]) for k in floating)
    for name in t:
        assert torch.equal(states[1][name], t[name]), name
        if t[name].is_floating_point():
            assert torch.equal(states[0][name], b[name]), name
            assert torch.equal(states[0.5][name], (t[name] + b[name]) / 2), name
        else:  # integer buffers (position ids) are the same in both and copied
            assert torch.equal(states[0][name], t[name]), name


def test_the_mixed_model_encodes_like_its_endpoints(pair) -> None:
    base, tuned = pair
    mixer = WeightMixer(tuned, base)
    texts = ["what is a falcon", "falcon falcon notes about birds"]
    torch.testing.assert_close(mixer.mix(1.0).encode(texts), tuned.encode(texts), rtol=0, atol=0)
    torch.testing.assert_close(mixer.mix(0.0).encode(texts), base.encode(texts), rtol=0, atol=0)
    assert not torch.equal(
        torch.as_tensor(tuned.encode(texts)), torch.as_tensor(base.encode(texts))
    )


def test_mixing_leaves_both_endpoints_untouched(pair) -> None:
    base, tuned = pair
    before = {k: v.clone() for k, v in tuned.state_dict().items()}
    mixer = WeightMixer(tuned, base)
    mixer.mix(0.25)
    assert mixer.model is not tuned
    assert all(torch.equal(before[k], v) for k, v in tuned.state_dict().items())


def test_different_architectures_are_refused(pair, tokenizer) -> None:
    from ragtune.errors import RagtuneError

    base, tuned = pair
    narrow = {k: v[..., :1] for k, v in tuned.state_dict().items()}
    with pytest.raises(ValueError, match="shapes"):
        interpolate(copy.deepcopy(base), narrow, base.state_dict(), 0.5)
    deeper = make_tiny_encoder(tokenizer, seed=2).truncate(1)
    with pytest.raises(RagtuneError, match="set mix_grid to"):
        WeightMixer(deeper, base)


def scores(mean: float, spread: float = 0.0, n: int = 40) -> dict[str, float]:
    return {f"q{i}": mean + (spread if i % 2 else -spread) for i in range(n)}


def test_the_smallest_weight_within_noise_of_the_best_is_chosen() -> None:
    base = scores(0.50)
    # a = 0.5 is 0.001 below the best (a = 1.0), well inside 10% of the 0.05 gain (0.005)
    # and inside one paired standard error of the difference (per-query noise +-0.05)
    grid = {0.25: scores(0.52), 0.5: scores(0.549, 0.05), 0.75: scores(0.55), 1.0: scores(0.55)}
    a, why = choose_mix(base, grid)
    assert a == 0.5 and why.startswith("a = 0.5: dev 0.5490 is within")


def test_a_clear_loss_is_not_traded_for_closeness_to_the_base() -> None:
    base = scores(0.50)
    # identical per-query shifts: the standard error of the differences is 0, no tolerance
    grid = {0.25: scores(0.53), 0.5: scores(0.545), 1.0: scores(0.55)}
    assert choose_mix(base, grid)[0] == 1.0
    # the best may be inside the grid (WiSE-FT's curves often peak below a = 1)
    assert choose_mix(base, {0.5: scores(0.56), 1.0: scores(0.55)})[0] == 0.5


def test_no_gain_leaves_no_tolerance_and_ties_go_to_the_smaller_weight() -> None:
    base = scores(0.50)
    grid = {0.5: scores(0.50), 1.0: scores(0.50)}
    assert choose_mix(base, grid)[0] == 0.5
    worse = {0.5: scores(0.48, 0.05), 1.0: scores(0.49)}  # below the base: the best weight
    assert choose_mix(base, worse)[0] == 1.0
