"""Contrastive loss (Hadsell, Chopra and LeCun 2006) on labelled (query, document) pairs."""

from __future__ import annotations

from typing import ClassVar, Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from ragtune.losses.checks import check_choice, check_labels, check_pair
from ragtune.losses.similarity import distance

PairDistance = Literal["cosine", "euclidean"]
PAIR_DISTANCES: tuple[str, ...] = get_args(PairDistance)

DEFAULT_CONTRASTIVE_MARGINS: dict[str, float] = {"cosine": 0.5, "euclidean": 1.0}
"""Margin used when none is given, per distance (1 - cos lies in [0, 2])."""


def contrastive_terms(
    d: torch.Tensor, label: torch.Tensor, margin: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pair attraction and repulsion terms, each (B,), with the paper's factor 1/2."""
    attract = 0.5 * label * d.pow(2)  # (B,)
    repel = 0.5 * (1 - label) * F.relu(margin - d).pow(2)  # (B,)
    return attract, repel


class ContrastiveLoss(nn.Module):
    r"""Pull relevant pairs together, push irrelevant pairs apart until they are ``margin`` away.

    Formula, with d the distance between query and document and label y in {0, 1}
    (1 = relevant)::

        loss = mean over pairs of 1/2 * ( y * d^2 + (1 - y) * max(0, margin - d)^2 )

    The factor 1/2 is the paper's (its Y is our 1 - y). ``distance`` is ``"cosine"`` (1 - cos)
    or ``"euclidean"``; ``margin`` defaults per distance (:data:`DEFAULT_CONTRASTIVE_MARGINS`).

    Inputs:
        query (B, D), document (B, D), label (B,) float in {0, 1}.

    Reference:
        Hadsell, Chopra and LeCun 2006, "Dimensionality Reduction by Learning an Invariant
        Mapping" (CVPR 2006).

    Example:
        >>> loss_fn = ContrastiveLoss(distance="cosine", margin=0.5)
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
        attract, repel = contrastive_terms(d, label.to(d.dtype), self.margin)
        self.last_stats = {"positive_pairs": float(label.sum())}
        return (attract + repel).mean()
