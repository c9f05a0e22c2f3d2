"""Known positives are never negatives: InfoNCE and the triplet loss against hand-written sums.

A query's known positives (``known_positive_ids``, rows padded with -1) are masked wherever they
appear as its candidates: another example's in-batch positive, or any hard negative in the batch,
its own or another example's. The hand computations below write the loss out as a log-sum-exp
over the unmasked columns, in plain Python floats.
"""

from __future__ import annotations

import math

import pytest
import torch

from ragtune.losses import GradCache, InfoNCELoss, LossError, MatryoshkaLoss, TripletLoss
from ragtune.losses.known_positives import known_positive_mask
from tests.conftest import tiny_bert

B, N, D = 3, 2, 4
SCALE = 20.0
POSITIVE_IDS = torch.tensor([10, 11, 12])
NEGATIVE_IDS = torch.tensor([[20, 11], [21, 22], [10, 23]])
KNOWN = torch.tensor([[10, 11, 21], [11, -1, -1], [12, 23, -1]])
# Candidates of every query, in the loss's order:
#   column  0   1   2   3    4    5    6    7    8
#   text    p0  p1  p2  n00  n01  n10  n11  n20  n21
#   id      10  11  12  20   11   21   22   10   23
# Masked, by the known positives of each query (the target column never):
#   q0 knows 10, 11, 21: p1 (in-batch), n01 (a copy of p1), n10 (another row's negative), n20
#   q1 knows 11:         n01 (q0's hard negative is a copy of q1's positive)
#   q2 knows 12, 23:     n21 (q2's own hard negative: a false negative in the data)
MASKED = {0: {1, 4, 5, 7}, 1: {4}, 2: {8}}


def embeddings(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random float64 query (B, D), positive (B, D) and negatives (B, N, D)."""
    g = torch.Generator().manual_seed(seed)
    q, p, n = (
        torch.randn(*s, generator=g, dtype=torch.float64) for s in ((B, D), (B, D), (B, N, D))
    )
    return q, p, n


def cos(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def hand_loss(rows: list[list[float]], columns: list[list[float]], masked: dict) -> float:
    """mean_i [ -s cos(r_i, c_i) + log sum_{c not masked for i} exp(s cos(r_i, c)) ]."""
    total = 0.0
    for i, r in enumerate(rows):
        kept = [c for k, c in enumerate(columns) if k not in masked.get(i, set())]
        total += -SCALE * cos(r, columns[i]) + math.log(
            sum(math.exp(SCALE * cos(r, c)) for c in kept)
        )
    return total / len(rows)


def test_known_positives_are_masked_in_batch_and_among_hard_negatives():
    q, p, n = embeddings()
    candidates = p.tolist() + n.flatten(0, 1).tolist()
    loss_fn = InfoNCELoss(scale=SCALE)
    loss = loss_fn(
        query=q,
        positive=p,
        negatives=n,
        positive_ids=POSITIVE_IDS,
        negative_ids=NEGATIVE_IDS,
        known_positive_ids=KNOWN,
    )
    assert loss.item() == pytest.approx(hand_loss(q.tolist(), candidates, MASKED), rel=1e-12)
    assert loss_fn.last_stats == {
        "masked_false_negatives": 6.0,
        "masked_known_positives": 6.0,
        "masked_known_hard_negatives": 5.0,
        "masked_by_margin": 0.0,
        "candidates": 9.0,
    }
    unmasked = InfoNCELoss(scale=SCALE)(query=q, positive=p, negatives=n)
    assert unmasked.item() == pytest.approx(hand_loss(q.tolist(), candidates, {}), rel=1e-12)


def test_the_symmetric_term_does_not_push_a_positive_from_a_query_that_knows_it():
    q, p, n = embeddings(1)
    candidates = p.tolist() + n.flatten(0, 1).tolist()
    loss_fn = InfoNCELoss(scale=SCALE, symmetric=True)
    loss = loss_fn(
        query=q,
        positive=p,
        negatives=n,
        positive_ids=POSITIVE_IDS,
        negative_ids=NEGATIVE_IDS,
        known_positive_ids=KNOWN,
    )
    # p1 (id 11) against q0, q1, q2: q0 knows 11, so for p1 the column q0 is masked.
    reverse = hand_loss(p.tolist(), q.tolist(), {1: {0}})
    forward = hand_loss(q.tolist(), candidates, MASKED)
    assert loss.item() == pytest.approx((forward + reverse) / 2, rel=1e-12)
    assert loss_fn.last_stats["masked_known_positives"] == 7.0  # 6 forward, 1 reverse


def test_the_gradient_is_that_of_the_log_sum_exp_over_the_unmasked_columns():
    q, p, n = (t.requires_grad_() for t in embeddings(2))
    InfoNCELoss(scale=SCALE)(
        query=q,
        positive=p,
        negatives=n,
        positive_ids=POSITIVE_IDS,
        negative_ids=NEGATIVE_IDS,
        known_positive_ids=KNOWN,
    ).backward()
    got = [t.grad.clone() for t in (q, p, n)]

    q2, p2, n2 = (t.detach().clone().requires_grad_() for t in (q, p, n))
    columns = torch.cat([p2, n2.flatten(0, 1)])  # (9, D)
    sims = (
        SCALE
        * torch.nn.functional.normalize(q2, dim=-1)
        @ torch.nn.functional.normalize(columns, dim=-1).T
    )  # (3, 9)
    rows = [
        -sims[i, i] + torch.logsumexp(sims[i, [c for c in range(9) if c not in MASKED[i]]], 0)
        for i in range(B)
    ]
    (sum(rows) / B).backward()
    for a, b in zip(got, (q2.grad, p2.grad, n2.grad), strict=True):
        torch.testing.assert_close(a, b)
    assert n2.grad[2, 1].abs().sum() > 0  # n21 is masked for q2 only: q0 and q1 still push it


def test_the_own_positive_is_never_masked_and_known_own_positive_alone_changes_nothing():
    q, p, n = embeddings(3)
    own = POSITIVE_IDS[:, None]  # (B, 1): each query knows only its own positive
    loss_fn = InfoNCELoss(scale=SCALE)
    with_own = loss_fn(
        query=q,
        positive=p,
        negatives=n,
        positive_ids=POSITIVE_IDS,
        negative_ids=torch.tensor([[30, 31], [32, 33], [34, 35]]),
        known_positive_ids=own,
    )
    assert loss_fn.last_stats["masked_known_positives"] == 0.0
    plain = InfoNCELoss(scale=SCALE)(query=q, positive=p, negatives=n, positive_ids=POSITIVE_IDS)
    torch.testing.assert_close(with_own, plain, rtol=0, atol=0)


def test_mask_duplicates_off_turns_the_known_positive_mask_off_too():
    q, p, n = embeddings(4)
    loss_fn = InfoNCELoss(scale=SCALE, mask_duplicates=False)
    masked_off = loss_fn(
        query=q,
        positive=p,
        negatives=n,
        positive_ids=POSITIVE_IDS,
        negative_ids=NEGATIVE_IDS,
        known_positive_ids=KNOWN,
    )
    candidates = p.tolist() + n.flatten(0, 1).tolist()
    assert masked_off.item() == pytest.approx(hand_loss(q.tolist(), candidates, {}), rel=1e-12)


def test_bad_id_shapes_are_refused_with_the_shape():
    q, p, n = embeddings()
    with pytest.raises(LossError, match=r"negative_ids must have shape \(3, 2\)"):
        InfoNCELoss()(query=q, positive=p, negatives=n, negative_ids=torch.tensor([1, 2, 3]))
    with pytest.raises(LossError, match="known_positive_ids must be an integer tensor"):
        InfoNCELoss()(query=q, positive=p, known_positive_ids=torch.zeros(3, 2))


def test_the_membership_mask_equals_a_python_set_lookup():
    g = torch.Generator().manual_seed(0)
    known = torch.randint(-1, 30, (17, 6), generator=g)  # -1: padding
    ids = torch.randint(-1, 30, (41,), generator=g)  # -1: a column without an id
    want = [[int(c) >= 0 and int(c) in set(row.tolist()) for c in ids] for row in known]
    assert known_positive_mask(known, ids).tolist() == want
    assert known_positive_mask(torch.empty(3, 0, dtype=torch.long), ids).shape == (3, 41)


def test_triplet_drops_a_negative_that_its_own_query_knows_as_relevant():
    q, p, n = embeddings(5)
    loss_fn = TripletLoss(margin=0.5)  # cosine distance 1 - cos
    loss = loss_fn(
        query=q, positive=p, negatives=n, negative_ids=NEGATIVE_IDS, known_positive_ids=KNOWN
    )
    # A row's own negatives that its own query knows: n01 (id 11, known to q0) and n21 (id 23,
    # known to q2). Kept: n00, n10, n11, n20, and the mean runs over those four.
    kept = [(0, 0), (1, 0), (1, 1), (2, 0)]
    qs, ps, ns = q.tolist(), p.tolist(), n.tolist()
    hinges = [max(0.0, (1 - cos(qs[i], ps[i])) - (1 - cos(qs[i], ns[i][k])) + 0.5) for i, k in kept]
    assert loss.item() == pytest.approx(sum(hinges) / len(hinges), rel=1e-12)
    assert loss_fn.last_stats["masked_known_positives"] == 2.0
    every = loss_fn(
        query=q,
        positive=p,
        negatives=n,
        negative_ids=NEGATIVE_IDS,
        known_positive_ids=torch.tensor([[20, 11], [21, 22], [10, 23]]),
    )
    assert every.item() == 0.0 and loss_fn.last_stats["masked_known_positives"] == 6.0


def test_matryoshka_passes_the_ids_to_infonce_and_only_what_triplet_takes():
    q, p, n = (t.float() for t in embeddings(6))
    ids = {"positive_ids": POSITIVE_IDS, "negative_ids": NEGATIVE_IDS, "known_positive_ids": KNOWN}
    inner = InfoNCELoss(scale=SCALE)
    wrapped = MatryoshkaLoss(inner, dims=(4, 2))
    got = wrapped(query=q, positive=p, negatives=n, **ids)
    want = inner(query=q, positive=p, negatives=n, **ids) + inner(
        query=q[:, :2], positive=p[:, :2], negatives=n[..., :2], **ids
    )
    torch.testing.assert_close(got, want)
    assert wrapped.last_stats["masked_known_positives@2"] == 6.0
    triplet = MatryoshkaLoss(TripletLoss(), dims=(4, 2))
    triplet(query=q, positive=p, negatives=n, query_ids=torch.arange(3), **ids)  # no TypeError
    assert triplet.last_stats["masked_known_positives"] == 2.0


# ---- GradCache: the same loss and gradients as the plain computation, with the mask


def fake_tokens(rows: int, seed: int, width: int = 12) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, width, (rows,), generator=g)
    input_ids = torch.randint(1, 100, (rows, width), generator=g)
    mask = (torch.arange(width)[None, :] < lengths[:, None]).long()  # (rows, T)
    return {"input_ids": input_ids * mask, "attention_mask": mask}


def mean_pool(model):
    def embed(features: dict[str, torch.Tensor]) -> torch.Tensor:
        tokens = model(**features).last_hidden_state  # (rows, T, H)
        mask = features["attention_mask"].unsqueeze(-1).float()  # (rows, T, 1)
        return (tokens * mask).sum(1) / mask.sum(1)  # (rows, H)

    return embed


@pytest.mark.parametrize("symmetric", [False, True])
def test_gradcache_equals_the_plain_masked_loss_and_gradients(symmetric):
    texts = {"query": fake_tokens(B, 1), "positive": fake_tokens(B, 2)}
    texts["negatives"] = fake_tokens(B * N, 3)
    extra = {
        "positive_ids": POSITIVE_IDS,
        "negative_ids": NEGATIVE_IDS,
        "known_positive_ids": KNOWN,
    }
    loss_fn = InfoNCELoss(symmetric=symmetric)
    model = tiny_bert(
        100, max_position_embeddings=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )
    embed = mean_pool(model)

    emb = {name: embed(features) for name, features in texts.items()}
    emb["negatives"] = emb["negatives"].view(B, N, -1)  # (B*N, H) -> (B, N, H)
    want_loss = loss_fn(**emb, **extra)
    want_loss.backward()
    want_stats = dict(loss_fn.last_stats)
    want = {k: v.grad.clone() for k, v in model.named_parameters() if v.grad is not None}
    model.zero_grad()

    gc = GradCache(loss_fn, mini_batch_size=2)
    got_loss = gc.forward_backward(embed, texts, extra=extra, reshape={"negatives": (B, N)})
    torch.testing.assert_close(got_loss, want_loss.detach(), rtol=1e-5, atol=0)
    assert gc.last_stats == want_stats and want_stats["masked_known_positives"] > 0
    for name, grad in want.items():
        got = dict(model.named_parameters())[name].grad
        assert (got - grad).norm() <= 1e-4 * grad.norm() + 1e-8, name
