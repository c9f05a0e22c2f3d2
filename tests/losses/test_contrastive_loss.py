"""Contrastive loss (Hadsell et al. 2006) against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from ragtune.losses import ContrastiveLoss, LossError


def t(x) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64)


def test_euclidean_value_by_hand():
    # distances: |(0,0)-(3,4)| = 5 (relevant), |(1,1)-(1,1.5)| = 0.5 (irrelevant),
    # |(0,0)-(0,2)| = 2 (irrelevant, beyond the margin).
    # loss = mean of 1/2 * [5^2, max(0, 1 - 0.5)^2, max(0, 1 - 2)^2] = (12.5 + 0.125 + 0) / 3
    q = t([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    d = t([[3.0, 4.0], [1.0, 1.5], [0.0, 2.0]])
    label = t([1.0, 0.0, 0.0])
    loss = ContrastiveLoss(margin=1.0, distance="euclidean")(query=q, document=d, label=label)
    assert loss.item() == pytest.approx((12.5 + 0.125) / 3, rel=1e-12)


def test_cosine_value_and_gradient_by_hand():
    # One relevant pair at 60 degrees: d = 1 - cos = 0.5, loss = 1/2 d^2 = 0.125.
    # Gradient w.r.t. the unit query (1, 0): dL/dd * dd/dq = d * -(x - cos q) = -0.5 * (x - 0.5 q)
    # with x the unit document (0.5, sqrt(3)/2) (the cosine's gradient for unit vectors).
    q = t([[1.0, 0.0]]).requires_grad_()
    x = [0.5, math.sqrt(3) / 2]
    loss = ContrastiveLoss()(query=q, document=t([x]), label=t([1.0]))
    loss.backward()
    assert loss.item() == pytest.approx(0.125, rel=1e-12)
    expected = [-0.5 * (x[0] - 0.5 * 1.0), -0.5 * (x[1] - 0.5 * 0.0)]
    torch.testing.assert_close(q.grad, t([expected]))


def test_irrelevant_pair_inside_the_margin_is_pushed_and_outside_is_free():
    q, doc = t([[1.0, 0.0]]), t([[0.8, 0.6]])  # cosine distance 0.2
    inside = ContrastiveLoss(margin=0.5)(query=q, document=doc, label=t([0.0]))
    outside = ContrastiveLoss(margin=0.1)(query=q, document=doc, label=t([0.0]))
    assert inside.item() == pytest.approx(0.5 * 0.3**2, rel=1e-10)
    assert outside.item() == 0.0


def test_all_equal_embeddings_are_finite():
    z = torch.ones(3, 4, requires_grad=True)
    loss = ContrastiveLoss(distance="euclidean")(query=z, document=z, label=t([1.0, 0.0, 1.0]))
    loss.backward()
    assert loss.item() == pytest.approx(0.5 * 1.0**2 / 3)  # only the irrelevant pair, at d = 0
    assert torch.isfinite(z.grad).all()


@pytest.mark.parametrize("bad", [0.5, 2.0, -1.0])
def test_labels_must_be_zero_or_one(bad):
    with pytest.raises(ValueError, match=rf"label must be in \{{0, 1\}}, got {bad:g}"):
        ContrastiveLoss()(query=torch.zeros(2, 3), document=torch.zeros(2, 3), label=t([1.0, bad]))


def test_shapes_are_checked():
    with pytest.raises(LossError, match=r"query \(2, 3\) and document \(2, 4\)"):
        ContrastiveLoss()(query=torch.zeros(2, 3), document=torch.zeros(2, 4), label=t([1.0, 0.0]))
    with pytest.raises(LossError, match=r"label must have shape \(2,\), got \(3,\)"):
        ContrastiveLoss()(query=torch.zeros(2, 3), document=torch.zeros(2, 3), label=t([1.0, 0, 1]))
    with pytest.raises(
        LossError, match="unknown distance 'dot'; choose one of 'cosine', 'euclidean'"
    ):
        ContrastiveLoss(distance="dot")  # type: ignore[arg-type]


def test_declares_its_inputs_and_default_margins():
    assert ContrastiveLoss.inputs == ("query", "document", "label")
    assert ContrastiveLoss().margin == 0.5
    assert ContrastiveLoss(distance="euclidean").margin == 1.0
