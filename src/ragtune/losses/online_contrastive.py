"""Online contrastive loss: the contrastive loss on the hard pairs of the batch only."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ragtune.losses.checks import check_choice, check_labels, check_pair
from ragtune.losses.contrastive import (
    DEFAULT_CONTRASTIVE_MARGINS,
    PAIR_DISTANCES,
    PairDistance,
    contrastive_terms,
)
from ragtune.losses.similarity import distance


class OnlineContrastiveLoss(nn.Module):
    r""":class:`ContrastiveLoss` restricted to the pairs the batch still gets wrong.

    A positive pair is hard when it is farther apart than the closest negative pair of the batch;
    a negative pair is hard when it is closer than the farthest positive pair. Easy pairs add
    nothing, so the gradient is spent where the ranking is violated::

        hard positives = {i : y_i = 1, d_i > min_{j: y_j = 0} d_j}
        hard negatives = {i : y_i = 0, d_i < max_{j: y_j = 1} d_j}
        loss = 1/B * sum over hard pairs of 1/2 * ( y d^2 + (1 - y) max(0, margin - d)^2 )

    Dividing by the batch size B (not by the number of hard pairs) makes this the plain
    contrastive loss with the easy pairs' terms set to zero. A batch with only one class has no
    pair to compare against, so all its pairs count (the plain contrastive loss).
    ``last_stats`` reports ``hard_positives`` and ``hard_negatives``.

    Inputs:
        query (B, D), document (B, D), label (B,) float in {0, 1}.

    Reference:
        Hadsell, Chopra and LeCun 2006 (the contrastive loss); hard-pair selection within the
        batch as in online hard example mining (Shrivastava et al. 2016, arXiv 1604.03540).

    Example:
        >>> loss_fn = OnlineContrastiveLoss(margin=0.5)
        >>> q, d = torch.randn(4, 8), torch.randn(4, 8)
        >>> loss = loss_fn(query=q, document=d, label=torch.tensor([1.0, 0.0, 1.0, 0.0]))
    """

    inputs: ClassVar[tuple[str, ...]] = ("query", "document", "label")
    optional_inputs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, margin: float | None = None, distance: PairDistance = "cosine") -> None:
        super().__init__()
        check_choice("distance", distance, PAIR_DISTANCES)
        self.distance: PairDistance = distance
        self.margin = DEFAULT_CONTRASTIVE_MARGINS[distance] if margin is None else margin
        self.last_stats: dict[str, float] = {}

    def forward(
        self, query: torch.Tensor, document: torch.Tensor, label: torch.Tensor
    ) -> torch.Tensor:
        check_pair("query", query, "document", document)
        check_labels(label, query.size(0), low=0.0, high=1.0, binary=True)
        d = distance(query, document, self.distance)  # (B,)
        is_pos = label == 1  # (B,)
        is_neg = ~is_pos
        hard_pos, hard_neg = is_pos, is_neg
        if bool(is_pos.any()) and bool(is_neg.any()):
            with torch.no_grad():
                hard_pos = is_pos & (d > d[is_neg].min())
                hard_neg = is_neg & (d < d[is_pos].max())
        attract, repel = contrastive_terms(d, label.to(d.dtype), self.margin)
        per_pair = torch.where(hard_pos, attract, 0.0) + torch.where(hard_neg, repel, 0.0)  # (B,)
        self.last_stats = {
            "hard_positives": float(hard_pos.sum()),
            "hard_negatives": float(hard_neg.sum()),
        }
        return per_pair.sum() / query.size(0)
