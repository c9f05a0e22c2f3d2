"""Triplet loss against hand-computed distances, hinges and gradients."""

from __future__ import annotations

import math

import pytest
import torch

from ragtune.losses import LossError, TripletLoss


def t(x) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64)


# Two queries, one positive each, two negatives each.
Q = [[0.0, 0.0], [1.0, 1.0]]
P = [[3.0, 4.0], [1.0, 2.0]]
N = [[[1.0, 0.0], [0.0, 6.0]], [[1.0, 1.5], [4.0, 5.0]]]


def test_euclidean_value_and_gradient_by_hand():
    # Query 0: d(q,p) = 5; d(q,n) = 1 and 6. margin 2: hinges max(0, 5-1+2)=6, max(0, 5-6+2)=1.
    # Query 1: d(q,p) = 1; d(q,n) = 0.5 and 5. hinges max(0, 1-0.5+2)=2.5, max(0, 1-5+2)=0.
    # mean over 4 (query, negative) pairs = (6 + 1 + 2.5 + 0) / 4.
    q = t(Q).requires_grad_()
    p = t(P).requires_grad_()
    n = t(N).requires_grad_()
    loss_fn = TripletLoss(margin=2.0, distance="euclidean")
    loss = loss_fn(query=q, positive=p, negatives=n)
    assert loss.item() == pytest.approx(9.5 / 4, rel=1e-12)
    assert loss_fn.last_stats == {"active_triplets": 3.0}

    # Each active hinge adds (1/4) * [ (q-p)/|q-p| - (q-n)/|q-n| ] to dL/dq, -(1/4)(q-p)/|q-p|
    # to dL/dp and +(1/4)(q-n)/|q-n| to dL/dn.
    loss.backward()
    u_p0 = [(0 - 3) / 5, (0 - 4) / 5]  # (q0 - p0) / |q0 - p0|
    u_n00 = [(0 - 1) / 1, 0.0]
    u_n01 = [0.0, (0 - 6) / 6]
    u_p1 = [0.0, (1 - 2) / 1]
    u_n10 = [0.0, (1 - 1.5) / 0.5]
    dq0 = [(2 * u_p0[k] - u_n00[k] - u_n01[k]) / 4 for k in range(2)]  # two active hinges
    dq1 = [(u_p1[k] - u_n10[k]) / 4 for k in range(2)]  # one active hinge
    torch.testing.assert_close(q.grad, t([dq0, dq1]))
    torch.testing.assert_close(p.grad, t([[-2 * x / 4 for x in u_p0], [-x / 4 for x in u_p1]]))
    torch.testing.assert_close(
        n.grad,
        t([[[x / 4 for x in u_n00], [x / 4 for x in u_n01]], [[x / 4 for x in u_n10], [0, 0]]]),
    )


def test_cosine_and_dot_values_by_hand():
    q, p, n = [1.0, 0.0], [0.6, 0.8], [[0.0, 1.0], [-1.0, 0.0]]
    # cosine distance: d(q,p) = 1 - 0.6 = 0.4; d(q,n) = 1 and 2. margin 0.7: 0.1 and 0.
    loss = TripletLoss(margin=0.7)(query=t([q]), positive=t([p]), negatives=t([n]))
    assert loss.item() == pytest.approx(0.1 / 2, rel=1e-10)
    # dot "distance" = -q.x: d(q,p) = -0.6; d(q,n) = 0 and 1. margin 1: 0.4 and 0 (-0.6-1+1 < 0).
    loss = TripletLoss(margin=1.0, distance="dot")(query=t([q]), positive=t([p]), negatives=t([n]))
    assert loss.item() == pytest.approx(0.4 / 2, rel=1e-10)
    # cosine is scale-free: stretching the vectors does not change it.
    loss = TripletLoss(margin=0.7)(
        query=t([[5.0, 0.0]]), positive=t([[6.0, 8.0]]), negatives=t([[[0.0, 3.0], [-2.0, 0.0]]])
    )
    assert loss.item() == pytest.approx(0.05, rel=1e-10)


def test_default_margins_depend_on_the_distance():
    assert TripletLoss().margin == 0.5
    assert TripletLoss(distance="euclidean").margin == 1.0
    assert TripletLoss(margin=0.0).margin == 0.0


def test_gradcheck():
    torch.manual_seed(0)
    q = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    p = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    n = torch.randn(3, 2, 4, dtype=torch.float64, requires_grad=True)
    for distance in ("cosine", "euclidean", "dot"):
        loss_fn = TripletLoss(margin=5.0, distance=distance)  # large margin: every hinge active

        def f(q, p, n, loss_fn=loss_fn):
            return loss_fn(query=q, positive=p, negatives=n)

        assert torch.autograd.gradcheck(f, (q, p, n))


def test_batch_of_one_and_all_equal_embeddings():
    x = torch.ones(1, 3, requires_grad=True)
    loss = TripletLoss(margin=0.3, distance="euclidean")(
        query=x, positive=x, negatives=x[:, None, :]
    )
    loss.backward()
    assert loss.item() == pytest.approx(0.3)  # every distance 0: the hinge is the margin
    assert torch.isfinite(x.grad).all()
    z = torch.zeros(2, 3)
    loss = TripletLoss()(query=z, positive=z, negatives=z[:, None, :])
    assert not math.isnan(loss.item())


def test_shapes_are_checked():
    with pytest.raises(LossError, match=r"query \(2, 4\) and positive \(2, 3\)"):
        TripletLoss()(
            query=torch.zeros(2, 4), positive=torch.zeros(2, 3), negatives=torch.zeros(2, 1, 4)
        )
    with pytest.raises(
        ValueError, match=r"negatives must be \(batch, n_negatives, dim\), got shape \(2, 4\)"
    ):
        TripletLoss()(
            query=torch.zeros(2, 4), positive=torch.zeros(2, 4), negatives=torch.zeros(2, 4)
        )
    with pytest.raises(LossError, match=r"negatives \(2, 1, 5\) do not match query \(2, 4\)"):
        TripletLoss()(
            query=torch.zeros(2, 4), positive=torch.zeros(2, 4), negatives=torch.zeros(2, 1, 5)
        )
    with pytest.raises(LossError, match="unknown distance 'manhattan'"):
        TripletLoss(distance="manhattan")  # type: ignore[arg-type]


def test_declares_its_inputs():
    assert TripletLoss.inputs == ("query", "positive", "negatives")
