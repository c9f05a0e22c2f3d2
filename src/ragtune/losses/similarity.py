"""Similarities and distances between embeddings, shared by the losses.

Pure functions so the losses read as their formulas. ``cosine`` normalises first (a zero vector
has cosine 0 with everything rather than NaN); ``dot`` uses the raw vectors.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F

Similarity = Literal["cosine", "dot"]
SIMILARITIES: tuple[str, ...] = get_args(Similarity)

Distance = Literal["cosine", "euclidean", "dot"]
DISTANCES: tuple[str, ...] = get_args(Distance)


def score_matrix(a: torch.Tensor, b: torch.Tensor, similarity: Similarity) -> torch.Tensor:
    """Every row of ``a`` against every row of ``b``: (A, D), (C, D) -> (A, C)."""
    if similarity == "cosine":
        a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    return a @ b.T


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity along the last dim, broadcasting the others: (..., D) -> (...)."""
    return (F.normalize(a, dim=-1) * F.normalize(b, dim=-1)).sum(dim=-1)


def distance(a: torch.Tensor, b: torch.Tensor, kind: Distance) -> torch.Tensor:
    """Distance along the last dim, broadcasting the others: (..., D) -> (...).

    ``cosine`` is 1 - cos (in [0, 2]); ``euclidean`` is the L2 norm of the difference (its
    gradient at zero distance is 0, not NaN); ``dot`` is the negative dot product, so that a
    larger similarity is a smaller distance.
    """
    if kind == "cosine":
        return 1.0 - cosine(a, b)
    if kind == "euclidean":
        return torch.linalg.vector_norm(a - b, dim=-1)
    return -(a * b).sum(dim=-1)
