"""InfoNCE against values worked out by hand: plain floats and math, no matrix code from ragtune."""

from __future__ import annotations

import math

import pytest
import torch

from ragtune.losses import InfoNCELoss, LossError


def cos(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def hand_row(
    q: list[float], candidates: list[list[float]], target: int, scale: float, masked=()
) -> float:
    """-log softmax of the target among the unmasked candidates, cosine similarity."""
    logits = [scale * cos(q, c) for k, c in enumerate(candidates) if k not in masked]
    return -scale * cos(q, candidates[target]) + math.log(sum(math.exp(x) for x in logits))


Q = [[1.0, 0.0, 0.5], [0.2, 1.0, 0.0], [0.0, 0.3, 1.0]]
P = [[0.9, 0.1, 0.4], [0.1, 0.8, 0.3], [0.2, 0.2, 0.9]]
N = [[[0.5, 0.5, 0.0]], [[1.0, 0.2, 0.2]], [[0.0, 1.0, 0.7]]]  # (3, 1, 3)


def t(x) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64)


def test_dot_two_by_two_loss_and_gradient_by_hand():
    # q1=(1,0), q2=(0,1), p1=(.6,.8), p2=(.8,.6): q.p = [[.6,.8],[.8,.6]]; scale 2 gives logits
    # [[1.2,1.6],[1.6,1.2]], so each row's loss is log(1 + e^0.4).
    # softmax row 1 = [a, 1-a], a = 1/(1+e^0.4); row 2 = [1-a, a]. With L = mean_i loss_i:
    #   dL/dq_i = s/B * (sum_j softmax_ij p_j - p_i)        -> dq1 = (1-a)(p2-p1), dq2 = -dq1
    #   dL/dp_j = s/B * sum_i (softmax_ij - [i=j]) q_i      -> dp1 = (1-a)(q2-q1), dp2 = -dp1
    q = t([[1.0, 0.0], [0.0, 1.0]]).requires_grad_()
    p = t([[0.6, 0.8], [0.8, 0.6]]).requires_grad_()
    loss = InfoNCELoss(scale=2.0, similarity="dot")(query=q, positive=p)
    loss.backward()
    a = 1 / (1 + math.exp(0.4))
    assert loss.item() == pytest.approx(math.log(1 + math.exp(0.4)), rel=1e-12)
    dq1 = [(1 - a) * 0.2, (1 - a) * -0.2]
    dp1 = [(1 - a) * -1.0, (1 - a) * 1.0]
    torch.testing.assert_close(q.grad, t([dq1, [-x for x in dq1]]))
    torch.testing.assert_close(p.grad, t([dp1, [-x for x in dp1]]))


def test_cosine_with_hard_negatives_shares_every_negative_across_the_batch():
    # Candidates for every query: p1, p2, p3, n1, n2, n3 (targets 0, 1, 2).
    candidates = P + [n[0] for n in N]
    expected = sum(hand_row(Q[i], candidates, i, 20.0) for i in range(3)) / 3
    loss_fn = InfoNCELoss()  # scale 20 = temperature 0.05, cosine
    loss = loss_fn(query=t(Q), positive=t(P), negatives=t(N))
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    assert loss_fn.temperature == pytest.approx(0.05)
    assert loss_fn.last_stats == {
        "masked_false_negatives": 0.0,
        "masked_by_margin": 0.0,
        "candidates": 6.0,
    }


def test_duplicate_positive_ids_are_masked_and_counted():
    # Examples 0 and 2 have the same positive text (id 7): each must not count the other's copy
    # as a negative, so row 0 drops candidate 2 and row 2 drops candidate 0.
    ids = torch.tensor([7, 8, 7])
    loss_fn = InfoNCELoss(scale=10.0)
    loss = loss_fn(query=t(Q), positive=t(P), positive_ids=ids)
    expected = (
        hand_row(Q[0], P, 0, 10.0, masked={2})
        + hand_row(Q[1], P, 1, 10.0)
        + hand_row(Q[2], P, 2, 10.0, masked={0})
    ) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    assert loss_fn.last_stats["masked_false_negatives"] == 2.0


def test_same_query_id_masks_the_other_examples_positive_but_not_its_hard_negative():
    # Examples 0 and 1 are two relevant documents of the same query (id 3): p2 is not a negative
    # of q1 and vice versa. Their hard negatives stay negatives (same query, still irrelevant).
    candidates = P + [n[0] for n in N]
    loss_fn = InfoNCELoss(scale=10.0)
    loss = loss_fn(query=t(Q), positive=t(P), negatives=t(N), query_ids=torch.tensor([3, 3, 4]))
    expected = (
        hand_row(Q[0], candidates, 0, 10.0, masked={1})
        + hand_row(Q[1], candidates, 1, 10.0, masked={0})
        + hand_row(Q[2], candidates, 2, 10.0)
    ) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    assert loss_fn.last_stats["masked_false_negatives"] == 2.0


def test_mask_duplicates_off_keeps_every_candidate():
    loss_fn = InfoNCELoss(scale=10.0, mask_duplicates=False)
    loss = loss_fn(query=t(Q), positive=t(P), positive_ids=torch.tensor([7, 8, 7]))
    expected = sum(hand_row(Q[i], P, i, 10.0) for i in range(3)) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    assert loss_fn.last_stats["masked_false_negatives"] == 0.0


def test_false_negative_margin_masks_negatives_scoring_above_the_positive():
    # q=(1,0): cos with its positive (0.6,0.8) is 0.6; the hard negative (1,0) scores 1.0 > 0.6+0.1
    # and is masked; the other example's positive (0,1) scores 0 and stays.
    q = t([[1.0, 0.0], [0.0, 1.0]])
    p = t([[0.6, 0.8], [0.0, 1.0]])
    n = t([[[1.0, 0.0]], [[1.0, 0.0]]])
    loss_fn = InfoNCELoss(scale=5.0, false_negative_margin=0.1)
    loss = loss_fn(query=q, positive=p, negatives=n)
    cands = [[0.6, 0.8], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]]
    # row 0: candidates 2 and 3 (both (1,0), cos 1.0) are masked. row 1: target cos 1.0, nothing
    # exceeds 1.1.
    expected = (
        hand_row([1.0, 0.0], cands, 0, 5.0, masked={2, 3}) + hand_row([0.0, 1.0], cands, 1, 5.0)
    ) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    assert loss_fn.last_stats["masked_by_margin"] == 2.0
    assert loss_fn.last_stats["masked_false_negatives"] == 0.0


def test_symmetric_adds_the_document_to_query_term_and_averages():
    loss = InfoNCELoss(scale=10.0, symmetric=True)(query=t(Q), positive=t(P))
    forward = sum(hand_row(Q[i], P, i, 10.0) for i in range(3)) / 3
    backward = (
        sum(hand_row(P[j], Q, j, 10.0) for j in range(3)) / 3
    )  # each positive picks its query
    assert loss.item() == pytest.approx((forward + backward) / 2, rel=1e-10)


def test_symmetric_term_masks_duplicates_too():
    loss_fn = InfoNCELoss(scale=10.0, symmetric=True)
    loss = loss_fn(query=t(Q), positive=t(P), positive_ids=torch.tensor([7, 8, 7]))
    forward = (
        hand_row(Q[0], P, 0, 10.0, masked={2})
        + hand_row(Q[1], P, 1, 10.0)
        + hand_row(Q[2], P, 2, 10.0, masked={0})
    ) / 3
    backward = (
        hand_row(P[0], Q, 0, 10.0, masked={2})
        + hand_row(P[1], Q, 1, 10.0)
        + hand_row(P[2], Q, 2, 10.0, masked={0})
    ) / 3
    assert loss.item() == pytest.approx((forward + backward) / 2, rel=1e-10)
    assert loss_fn.last_stats["masked_false_negatives"] == 4.0  # 2 per direction


def test_gradcheck_cosine_with_negatives_symmetric_and_masks():
    torch.manual_seed(0)
    q = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    p = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    n = torch.randn(4, 2, 5, dtype=torch.float64, requires_grad=True)
    loss_fn = InfoNCELoss(scale=3.0, symmetric=True, false_negative_margin=0.2)
    ids = torch.tensor([0, 1, 0, 2])

    def f(q, p, n):
        return loss_fn(query=q, positive=p, negatives=n, positive_ids=ids)

    assert torch.autograd.gradcheck(f, (q, p, n))


def test_batch_of_one():
    q, p = t([[1.0, 2.0]]), t([[2.0, 1.0]])
    assert InfoNCELoss()(query=q, positive=p).item() == 0.0  # the only candidate is the target
    n = t([[[0.0, 1.0]]])
    loss = InfoNCELoss(scale=2.0)(query=q, positive=p, negatives=n)
    assert loss.item() == pytest.approx(hand_row([1, 2], [[2, 1], [0, 1]], 0, 2.0), rel=1e-10)


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_all_equal_embeddings_give_log_of_candidates_and_finite_gradients(value):
    # Every candidate scores the same (zero vectors normalise to 0, not NaN), so loss = log(C).
    q = torch.full((3, 4), value, requires_grad=True)
    p = torch.full((3, 4), value, requires_grad=True)
    n = torch.full((3, 2, 4), value, requires_grad=True)
    loss = InfoNCELoss(symmetric=True)(query=q, positive=p, negatives=n)
    loss.backward()
    # forward term: 9 candidates, backward term: 3 queries
    assert loss.item() == pytest.approx((math.log(9) + math.log(3)) / 2, rel=1e-6)
    for x in (q, p, n):
        assert torch.isfinite(x.grad).all()


def test_mismatched_shapes_raise_naming_the_shapes():
    with pytest.raises(ValueError, match=r"query \(2, 4\) and positive \(3, 4\)"):
        InfoNCELoss()(query=torch.zeros(2, 4), positive=torch.zeros(3, 4))
    with pytest.raises(LossError, match=r"query \(2, 4\) and positive \(2, 5\)"):
        InfoNCELoss()(query=torch.zeros(2, 4), positive=torch.zeros(2, 5))
    with pytest.raises(LossError, match=r"expected \(2, n_negatives, 4\)"):
        InfoNCELoss()(
            query=torch.zeros(2, 4), positive=torch.zeros(2, 4), negatives=torch.zeros(3, 1, 4)
        )
    with pytest.raises(LossError, match=r"negatives must be \(batch, n_negatives, dim\)"):
        InfoNCELoss()(
            query=torch.zeros(2, 4), positive=torch.zeros(2, 4), negatives=torch.zeros(2, 4)
        )
    with pytest.raises(LossError, match=r"positive_ids must have shape \(2,\), got \(3,\)"):
        InfoNCELoss()(
            query=torch.zeros(2, 4),
            positive=torch.zeros(2, 4),
            positive_ids=torch.tensor([1, 2, 3]),
        )
    with pytest.raises(LossError, match="integer tensor"):
        InfoNCELoss()(
            query=torch.zeros(2, 4), positive=torch.zeros(2, 4), query_ids=torch.tensor([1.0, 2.0])
        )


def test_bad_settings_raise():
    with pytest.raises(LossError, match="unknown similarity 'l2'; choose one of 'cosine', 'dot'"):
        InfoNCELoss(similarity="l2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scale must be > 0"):
        InfoNCELoss(scale=0.0)


def test_declares_its_inputs():
    assert InfoNCELoss.inputs == ("query", "positive")
    assert InfoNCELoss.optional_inputs == (
        "negatives",
        "query_ids",
        "positive_ids",
        "negative_ids",
        "known_positive_ids",
    )
