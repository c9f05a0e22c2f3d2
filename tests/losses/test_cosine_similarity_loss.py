"""Cosine similarity regression against hand-computed cosines."""

from __future__ import annotations

import math

import pytest
import torch

from ragtune.losses import CosineSimilarityLoss, LossError


def t(x) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64)


def test_value_and_gradient_by_hand():
    # cos((1,0),(0.6,0.8)) = 0.6, label 1 -> (0.6-1)^2 = 0.16
    # cos((3,0),(0,2)) = 0, label 0.5 -> 0.25. mean 0.205.
    q = t([[1.0, 0.0], [3.0, 0.0]]).requires_grad_()
    d = t([[0.6, 0.8], [0.0, 2.0]])
    loss = CosineSimilarityLoss()(query=q, document=d, label=t([1.0, 0.5]))
    loss.backward()
    assert loss.item() == pytest.approx(0.205, rel=1e-12)
    # dL/dq_0 = (2/B)(cos - y) * dcos/dq, dcos/dq = (x - cos q^)/|q| for unit doc x:
    # row 0: (0.6-1) * ((0.6, 0.8) - 0.6 (1, 0)) = -0.4 * (0, 0.8)
    # row 1: (0-0.5) * ((0, 1) - 0) / 3
    torch.testing.assert_close(q.grad, t([[0.0, -0.4 * 0.8], [0.0, -0.5 / 3]]))


def test_signed_range_accepts_negative_labels():
    q, d = t([[1.0, 0.0]]), t([[-1.0, 0.0]])  # cos -1
    loss = CosineSimilarityLoss(label_range="[-1,1]")(query=q, document=d, label=t([-0.5]))
    assert loss.item() == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("label_range", "bad", "shown"),
    [
        ("[0,1]", -0.5, r"\[0, 1\], got -0.5"),
        ("[0,1]", 1.2, r"\[0, 1\], got 1.2"),
        ("[-1,1]", -2.0, r"\[-1, 1\], got -2"),
        ("[0,1]", math.nan, r"\[0, 1\], got nan"),
    ],
)
def test_out_of_range_labels_name_the_range_and_the_value(label_range, bad, shown):
    loss_fn = CosineSimilarityLoss(label_range=label_range)
    with pytest.raises(ValueError, match=f"label must be in {shown}"):
        loss_fn(query=torch.ones(2, 3), document=torch.ones(2, 3), label=t([0.5, bad]))


def test_edge_cases_and_shapes():
    z = torch.zeros(1, 4, requires_grad=True)
    loss = CosineSimilarityLoss()(query=z, document=torch.zeros(1, 4), label=t([1.0]))
    loss.backward()
    assert loss.item() == pytest.approx(1.0)  # zero vectors have cosine 0, not NaN
    assert torch.isfinite(z.grad).all()
    with pytest.raises(LossError, match=r"query \(2, 3\) and document \(1, 3\)"):
        CosineSimilarityLoss()(
            query=torch.ones(2, 3), document=torch.ones(1, 3), label=t([1.0, 1.0])
        )
    with pytest.raises(
        LossError, match=r"unknown label_range '0-1'; choose one of '\[0,1\]', '\[-1,1\]'"
    ):
        CosineSimilarityLoss(label_range="0-1")  # type: ignore[arg-type]


def test_declares_its_inputs():
    assert CosineSimilarityLoss.inputs == ("query", "document", "label")
