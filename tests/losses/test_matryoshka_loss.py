"""MatryoshkaLoss = weighted sum of the inner loss on embedding prefixes."""

from __future__ import annotations

import pytest
import torch

from ragtune.losses import CosineSimilarityLoss, InfoNCELoss, LossError, MatryoshkaLoss


def test_equals_the_weighted_sum_of_the_inner_loss_on_prefixes():
    torch.manual_seed(0)
    q = torch.randn(4, 8, dtype=torch.float64, requires_grad=True)
    p = torch.randn(4, 8, dtype=torch.float64, requires_grad=True)
    n = torch.randn(4, 2, 8, dtype=torch.float64, requires_grad=True)
    ids = torch.tensor([0, 1, 0, 2])
    inner = InfoNCELoss(symmetric=True)
    wrapped = MatryoshkaLoss(inner, dims=(8, 4, 2), weights=(1.0, 0.5, 0.25))
    loss = wrapped(query=q, positive=p, negatives=n, positive_ids=ids)
    grads = torch.autograd.grad(loss, (q, p, n))

    expected = sum(
        w * inner(query=q[:, :m], positive=p[:, :m], negatives=n[:, :, :m], positive_ids=ids)
        for m, w in ((8, 1.0), (4, 0.5), (2, 0.25))
    )
    expected_grads = torch.autograd.grad(expected, (q, p, n))
    torch.testing.assert_close(loss, expected)
    for g, e in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(g, e)
    # the inner stats are forwarded: plain keys from the first size, every size suffixed
    assert wrapped.last_stats["masked_false_negatives"] == 4.0
    assert wrapped.last_stats["masked_false_negatives@2"] == 4.0
    assert set(wrapped.last_stats) >= {"loss@8", "loss@4", "loss@2"}


def test_prefix_cosines_by_hand_and_labels_untouched():
    # q = (1, 0, 0, 1), d = (1, 1, 1, 0). Full: cos = 1 / (sqrt2 sqrt3). Prefix 2: cos((1,0),(1,1))
    # = 1/sqrt2. Prefix 1: cos = 1. label 1 everywhere -> sum of (cos - 1)^2.
    q = torch.tensor([[1.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
    d = torch.tensor([[1.0, 1.0, 1.0, 0.0]], dtype=torch.float64)
    label = torch.tensor([1.0], dtype=torch.float64)
    loss = MatryoshkaLoss(CosineSimilarityLoss(), dims=(4, 2, 1))(query=q, document=d, label=label)
    expected = (1 / (2**0.5 * 3**0.5) - 1) ** 2 + (1 / 2**0.5 - 1) ** 2 + 0.0
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_forwards_inputs_and_rejects_bad_dims():
    wrapped = MatryoshkaLoss(InfoNCELoss(), dims=(4, 2))
    assert wrapped.inputs == ("query", "positive")
    with pytest.raises(LossError, match=r"dims \(16,\) exceed the embedding size 8"):
        MatryoshkaLoss(InfoNCELoss(), dims=(16, 4))(
            query=torch.ones(2, 8), positive=torch.ones(2, 8)
        )
    with pytest.raises(LossError, match="one entry per dim"):
        MatryoshkaLoss(InfoNCELoss(), dims=(4, 2), weights=(1.0,))
    with pytest.raises(LossError, match="must be positive"):
        MatryoshkaLoss(InfoNCELoss(), dims=(4, 0))
