"""Cosine similarity regression: the cosine of a pair should equal its label."""

from __future__ import annotations

from typing import ClassVar, Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from ragtune.losses.checks import check_choice, check_labels, check_pair
from ragtune.losses.similarity import cosine

LabelRange = Literal["[0,1]", "[-1,1]"]
LABEL_RANGES: tuple[str, ...] = get_args(LabelRange)
_BOUNDS: dict[str, tuple[float, float]] = {"[0,1]": (0.0, 1.0), "[-1,1]": (-1.0, 1.0)}


class CosineSimilarityLoss(nn.Module):
    r"""Mean squared error between cos(query, document) and a graded label.

    Formula::

        loss = mean over pairs of (cos(q, d) - label)^2

    Labels are used as they are (no rescaling): with ``label_range="[0,1]"`` an irrelevant pair
    is pushed towards orthogonal (cos 0), with ``"[-1,1]"`` it may be pushed to opposite (cos -1).
    A label outside the declared range is a data error and raises, naming the range and value.

    Inputs:
        query (B, D), document (B, D), label (B,) float in the declared range.

    Reference:
        Reimers and Gurevych 2019, "Sentence-BERT: Sentence Embeddings using Siamese
        BERT-Networks" (arXiv 1908.10084), the regression objective.

    Example:
        >>> loss_fn = CosineSimilarityLoss(label_range="[0,1]")
        >>> q, d = torch.randn(3, 8), torch.randn(3, 8)
        >>> loss = loss_fn(query=q, document=d, label=torch.tensor([0.9, 0.1, 0.5]))
    """

    inputs: ClassVar[tuple[str, ...]] = ("query", "document", "label")
    optional_inputs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, label_range: LabelRange = "[0,1]") -> None:
        super().__init__()
        check_choice("label_range", label_range, LABEL_RANGES)
        self.label_range: LabelRange = label_range
        self.last_stats: dict[str, float] = {}

    def forward(
        self, query: torch.Tensor, document: torch.Tensor, label: torch.Tensor
    ) -> torch.Tensor:
        check_pair("query", query, "document", document)
        low, high = _BOUNDS[self.label_range]
        check_labels(label, query.size(0), low=low, high=high)
        cos = cosine(query, document)  # (B,)
        self.last_stats = {}
        return F.mse_loss(cos, label.to(cos.dtype))
