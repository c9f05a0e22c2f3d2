"""Matryoshka wrapper: train the leading dimensions to work on their own."""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
from torch import nn

from ragtune.losses.checks import EMBEDDING_INPUTS, LossError


class MatryoshkaLoss(nn.Module):
    r"""Weighted sum of an inner loss applied to prefixes of the embeddings.

    Formula, for truncation sizes m_1..m_K with weights w_1..w_K::

        loss = sum_k w_k * inner(query[..., :m_k], positive[..., :m_k], ..., label, ids)

    Every embedding input (``query``, ``positive``, ``negatives``, ``document``) is cut to its
    first m_k dimensions; labels and ids pass through unchanged. Cosine-based inner losses
    renormalise each prefix, so a truncated embedding is scored as it would be at search time
    (after truncating and normalising). Dot-product losses (``similarity="dot"``,
    ``distance="dot"`` or ``"euclidean"``) see the raw, un-normalised prefixes, whose norms shrink
    with the size.

    ``last_stats`` carries the inner loss's stats for the first size under their own keys (so a
    trainer reading ``masked_false_negatives`` still finds it), every size's stats as
    ``"<key>@<size>"``, and each size's unweighted loss as ``"loss@<size>"``.

    Inputs:
        whatever the inner loss takes (``inputs`` is forwarded from it).

    Reference:
        Kusupati et al. 2022, "Matryoshka Representation Learning" (arXiv 2205.13147).

    Example:
        >>> loss_fn = MatryoshkaLoss(InfoNCELoss(), dims=(384, 256, 128, 64))
        >>> q, p = torch.randn(8, 384), torch.randn(8, 384)
        >>> loss = loss_fn(query=q, positive=p)
    """

    def __init__(
        self,
        loss: nn.Module,
        dims: Sequence[int] = (384, 256, 128, 64),
        weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if not dims:
            raise LossError("MatryoshkaLoss needs at least one dimension in dims")
        if any(d <= 0 for d in dims):
            raise LossError(f"Matryoshka dims must be positive, got {tuple(dims)}")
        if weights is None or len(weights) == 0:
            weights = [1.0] * len(dims)
        if len(weights) != len(dims):
            raise LossError(
                f"Matryoshka weights {tuple(weights)} must have one entry per dim {tuple(dims)}"
            )
        self.loss = loss
        self.dims = tuple(int(d) for d in dims)
        self.weights = tuple(float(w) for w in weights)
        self.last_stats: dict[str, float] = {}

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(getattr(self.loss, "inputs", ()))

    @property
    def optional_inputs(self) -> tuple[str, ...]:
        return tuple(getattr(self.loss, "optional_inputs", ()))

    def forward(self, **inputs: torch.Tensor | None) -> torch.Tensor:
        embeddings = {k: v for k, v in inputs.items() if k in EMBEDDING_INPUTS and v is not None}
        if not embeddings:
            raise LossError(
                "MatryoshkaLoss got no embedding input; "
                f"expected some of {', '.join(sorted(EMBEDDING_INPUTS))}"
            )
        full = min(t.size(-1) for t in embeddings.values())
        too_big = [d for d in self.dims if d > full]
        if too_big:
            raise LossError(
                f"Matryoshka dims {tuple(too_big)} exceed the embedding size {full}; "
                f"use dims <= {full}"
            )

        # the trainer passes every id it has; the inner loss gets the ones it takes
        params = inspect.signature(self.loss.forward).parameters
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            inputs = {k: v for k, v in inputs.items() if k in params}
        total: torch.Tensor | None = None
        stats: dict[str, float] = {}
        for i, (dim, weight) in enumerate(zip(self.dims, self.weights, strict=True)):
            truncated = {
                k: (embeddings[k][..., :dim] if k in embeddings else v)  # (..., D) -> (..., dim)
                for k, v in inputs.items()
            }
            value = self.loss(**truncated)
            total = weight * value if total is None else total + weight * value
            inner = dict(getattr(self.loss, "last_stats", {}))
            if i == 0:
                stats.update(inner)
            stats.update({f"{k}@{dim}": v for k, v in inner.items()})
            stats[f"loss@{dim}"] = float(value.detach())
        self.last_stats = stats
        assert total is not None
        return total
