"""Triplet loss (FaceNet): the positive must be closer than every negative by a margin."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ragtune.losses.checks import check_choice, check_id_rows, check_negatives, check_pair
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

    Given ``negative_ids`` and ``known_positive_ids``, a negative that is a known positive of its
    own query (a false negative: the data say it is relevant) is dropped from the mean, which
    then runs over the kept pairs; ``last_stats["masked_known_positives"]`` counts them. Without
    any, the loss is the plain mean above.

    Inputs:
        query (B, D), positive (B, D), negatives (B, N, D); optional negative_ids (B, N) and
        known_positive_ids (B, K) integer text ids (equal id = equal text, -1 = padding).

    Reference:
        Schroff, Kalenichenko and Philbin 2015, "FaceNet: A Unified Embedding for Face
        Recognition and Clustering" (arXiv 1503.03832).

    Example:
        >>> loss_fn = TripletLoss(distance="cosine", margin=0.2)
        >>> q, p, n = torch.randn(4, 8), torch.randn(4, 8), torch.randn(4, 3, 8)
        >>> loss = loss_fn(query=q, positive=p, negatives=n)
    """

    inputs: ClassVar[tuple[str, ...]] = ("query", "positive", "negatives")
    optional_inputs: ClassVar[tuple[str, ...]] = ("negative_ids", "known_positive_ids")

    def __init__(self, margin: float | None = None, distance: Distance = "cosine") -> None:
        super().__init__()
        check_choice("distance", distance, DISTANCES)
        self.distance: Distance = distance
        self.margin = DEFAULT_TRIPLET_MARGINS[distance] if margin is None else margin
        self.last_stats: dict[str, float] = {}

    def forward(
        self,
        query: torch.Tensor,
        positive: torch.Tensor,
        negatives: torch.Tensor,
        negative_ids: torch.Tensor | None = None,
        known_positive_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        check_pair("query", query, "positive", positive)
        check_negatives(query, negatives)
        b, n = negatives.shape[:2]
        d_pos = distance(query, positive, self.distance)  # (B,)
        d_neg = distance(query[:, None, :], negatives, self.distance)  # (B, N)
        hinge = F.relu(d_pos[:, None] - d_neg + self.margin)  # (B, N)
        if negative_ids is None or known_positive_ids is None:
            self.last_stats = {"active_triplets": float((hinge > 0).sum())}
            return hinge.mean()
        check_id_rows("negative_ids", negative_ids, b, n)
        check_id_rows("known_positive_ids", known_positive_ids, b)
        # negative k of row i against row i's known positives only: (B, N, K) -> (B, N)
        ids = negative_ids.to(known_positive_ids.device)
        masked = (ids[:, :, None] == known_positive_ids[:, None, :]).any(-1) & (ids >= 0)
        keep = ~masked
        self.last_stats = {
            "active_triplets": float(((hinge > 0) & keep).sum()),
            "masked_known_positives": float(masked.sum()),
        }
        return (hinge * keep).sum() / keep.sum().clamp(min=1)
