"""Triplet loss (FaceNet): the positive must be closer than every negative by a margin."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ragtune.losses.checks import check_choice, check_negatives, check_pair
from ragtune.losses.similarity import DISTANCES, Distance, distance

DEFAULT_TRIPLET_MARGINS: dict[str, float] = {"cosine": 0.5, "euclidean": 1.0, "dot": 1.0}
"""Margin used when none is given, per distance: 1 - cos lies in [0, 2]; the other two are
unbounded, and 1.0 suits unit-normalised embeddings (euclidean distance in [0, 2])."""


class TripletLoss(nn.Module):
    r"""Hinge on the gap between the positive distance and each negative distance.

    Formula, for query q with positive p and negatives n_1..n_N::

        loss = mean over the batch and the N negatives of max(0, d(q, p) - d(q, n_k) + margin)

    ``distance`` is ``"cosine"`` (1 - cos), ``"euclidean"`` (L2) or ``"dot"`` (negative dot
    product). ``margin`` defaults per distance (:data:`DEFAULT_TRIPLET_MARGINS`). A single
    negative per query is passed as shape (B, 1, D); there is one input shape, not two.
    ``last_stats["active_triplets"]`` counts the (query, negative) pairs inside the margin,
    the only ones that produce a gradient.

    Inputs:
        query (B, D), positive (B, D), negatives (B, N, D).

    Reference:
        Schroff, Kalenichenko and Philbin 2015, "FaceNet: A Unified Embedding for Face
        Recognition and Clustering" (arXiv 1503.03832).

    Example:
        >>> loss_fn = TripletLoss(distance="cosine", margin=0.2)
        >>> q, p, n = torch.randn(4, 8), torch.randn(4, 8), torch.randn(4, 3, 8)
        >>> loss = loss_fn(query=q, positive=p, negatives=n)
    """

    inputs: ClassVar[tuple[str, ...]] = ("query", "positive", "negatives")
    optional_inputs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, margin: float | None = None, distance: Distance = "cosine") -> None:
        super().__init__()
        check_choice("distance", distance, DISTANCES)
        self.distance: Distance = distance
        self.margin = DEFAULT_TRIPLET_MARGINS[distance] if margin is None else margin
        self.last_stats: dict[str, float] = {}

    def forward(
        self, query: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor
    ) -> torch.Tensor:
        check_pair("query", query, "positive", positive)
        check_negatives(query, negatives)
        d_pos = distance(query, positive, self.distance)  # (B,)
        d_neg = distance(query[:, None, :], negatives, self.distance)  # (B, N)
        hinge = F.relu(d_pos[:, None] - d_neg + self.margin)  # (B, N)
        self.last_stats = {"active_triplets": float((hinge > 0).sum())}
        return hinge.mean()
