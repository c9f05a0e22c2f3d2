"""Pooling maths against values worked out by hand; padding must never leak in."""

import pytest
import torch

from ragtune.model.pooling import pool

# Two texts, three positions, two dims. Row 0 has 2 real tokens, row 1 has 3.
TOKENS = torch.tensor(
    [
        [[1.0, 2.0], [3.0, -4.0], [100.0, 100.0]],  # last position is padding
        [[0.0, 1.0], [2.0, 0.0], [4.0, 5.0]],
    ]
)
MASK = torch.tensor([[1, 1, 0], [1, 1, 1]])


def test_mean_ignores_padding():
    expected = torch.tensor([[(1 + 3) / 2, (2 - 4) / 2], [(0 + 2 + 4) / 3, (1 + 0 + 5) / 3]])
    assert torch.allclose(pool(TOKENS, MASK, "mean"), expected)


def test_cls_takes_first_token():
    assert torch.equal(pool(TOKENS, MASK, "cls"), torch.tensor([[1.0, 2.0], [0.0, 1.0]]))


def test_max_never_picks_padding():
    # Without masking, row 0 would give [100, 100].
    assert torch.equal(pool(TOKENS, MASK, "max"), torch.tensor([[3.0, 2.0], [4.0, 5.0]]))


def test_max_with_all_negative_values_ignores_padding():
    tokens = torch.tensor([[[-5.0], [-3.0], [0.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert pool(tokens, mask, "max").item() == -3.0


def test_weighted_mean_weights_by_position():
    # Row 0: weights 1, 2 -> (1*1 + 2*3) / 3, (1*2 + 2*-4) / 3
    # Row 1: weights 1, 2, 3 -> (0 + 4 + 12) / 6, (1 + 0 + 15) / 6
    expected = torch.tensor([[7 / 3, -6 / 3], [16 / 6, 16 / 6]])
    assert torch.allclose(pool(TOKENS, MASK, "weighted_mean"), expected)


def test_last_token_right_padding():
    assert torch.equal(pool(TOKENS, MASK, "last_token"), torch.tensor([[3.0, -4.0], [4.0, 5.0]]))


def test_last_token_left_padding():
    tokens = torch.tensor([[[9.0], [1.0], [2.0]], [[3.0], [4.0], [5.0]]])
    mask = torch.tensor([[0, 1, 1], [1, 1, 1]])  # row 0 padded on the left
    assert torch.equal(pool(tokens, mask, "last_token"), torch.tensor([[2.0], [5.0]]))


def test_unknown_mode_lists_valid_ones():
    with pytest.raises(ValueError, match="mean, cls, max, weighted_mean, last_token"):
        pool(TOKENS, MASK, "average")  # type: ignore[arg-type]


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="tokens \\(B, T, D\\)"):
        pool(TOKENS, MASK[:, :2], "mean")
