"""Online contrastive loss: only the hard pairs count, selected as worked out by hand."""

from __future__ import annotations

import pytest
import torch

from ragtune.losses import ContrastiveLoss, OnlineContrastiveLoss


def t(x) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64)


def pairs_at(distances: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Queries at the origin and documents on the x axis: euclidean distance = the given value."""
    q = torch.zeros(len(distances), 2, dtype=torch.float64)
    d = t([[x, 0.0] for x in distances])
    return q, d


def test_selects_hard_positives_and_negatives():
    # relevant at 0.2 and 0.9; irrelevant at 0.5 and 1.5.
    # closest irrelevant = 0.5 -> hard relevant: 0.9 only. farthest relevant = 0.9 -> hard
    # irrelevant: 0.5 only. margin 1: loss = 1/4 * (1/2 0.9^2 + 1/2 (1 - 0.5)^2)
    q, d = pairs_at([0.2, 0.5, 0.9, 1.5])
    label = t([1.0, 0.0, 1.0, 0.0])
    loss_fn = OnlineContrastiveLoss(margin=1.0, distance="euclidean")
    loss = loss_fn(query=q, document=d, label=label)
    assert loss.item() == pytest.approx((0.5 * 0.81 + 0.5 * 0.25) / 4, rel=1e-12)
    assert loss_fn.last_stats == {"hard_positives": 1.0, "hard_negatives": 1.0}


def test_well_separated_batch_has_zero_loss():
    q, d = pairs_at([0.1, 0.2, 0.8, 0.9])
    loss_fn = OnlineContrastiveLoss(margin=1.0, distance="euclidean")
    loss = loss_fn(query=q, document=d, label=t([1.0, 1.0, 0.0, 0.0]))
    assert loss.item() == 0.0
    assert loss_fn.last_stats == {"hard_positives": 0.0, "hard_negatives": 0.0}


def test_single_class_batch_falls_back_to_the_plain_contrastive_loss():
    q, d = pairs_at([0.2, 0.7])
    label = t([1.0, 1.0])
    online = OnlineContrastiveLoss(distance="euclidean")(query=q, document=d, label=label)
    assert online.item() == pytest.approx((0.5 * 0.04 + 0.5 * 0.49) / 2, rel=1e-12)
    plain = ContrastiveLoss(distance="euclidean")(query=q, document=d, label=label)
    assert online.item() == pytest.approx(plain.item())


def test_batch_of_one_and_bad_labels():
    q, d = pairs_at([0.3])
    loss = OnlineContrastiveLoss(margin=1.0, distance="euclidean")(
        query=q, document=d, label=t([0.0])
    )
    assert loss.item() == pytest.approx(0.5 * 0.7**2)
    with pytest.raises(ValueError, match=r"label must be in \{0, 1\}, got 0.3"):
        OnlineContrastiveLoss()(query=q, document=d, label=t([0.3]))
    with pytest.raises(ValueError, match=r"query \(1, 2\) and document \(2, 2\)"):
        OnlineContrastiveLoss()(query=q, document=torch.zeros(2, 2), label=t([1.0]))


def test_declares_its_inputs():
    assert OnlineContrastiveLoss.inputs == ("query", "document", "label")
