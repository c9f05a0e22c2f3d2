"""Input checks shared by every loss: shapes, labels, ids and closed choices.

A loss that silently broadcasts a (B, D) tensor against a (B', D) one trains on garbage, so each
loss validates what it is given and raises :class:`LossError` with the shapes or values at fault.
``LossError`` is both a :class:`ValueError` (what a Python caller expects) and a
:class:`~ragtune.errors.RagtuneError` (printed by the CLI as one line).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ragtune.errors import RagtuneError

EMBEDDING_INPUTS: frozenset[str] = frozenset({"query", "positive", "negatives", "document"})
"""Loss inputs that are embeddings of text (what the trainer encodes and Matryoshka truncates)."""


class LossError(RagtuneError, ValueError):
    """Bad loss input or configuration; the message names the shapes, values or valid choices."""


def check_choice(kind: str, value: str, valid: Sequence[str]) -> None:
    """Raise unless ``value`` is one of ``valid``, listing them."""
    if value not in valid:
        raise LossError(f"unknown {kind} {value!r}; choose one of {', '.join(map(repr, valid))}")


def check_pair(a_name: str, a: torch.Tensor, b_name: str, b: torch.Tensor) -> None:
    """Both must be (B, D) with the same B and D."""
    for name, t in ((a_name, a), (b_name, b)):
        if t.dim() != 2:
            raise LossError(f"{name} must be (batch, dim), got shape {tuple(t.shape)}")
    if a.shape != b.shape:
        raise LossError(
            f"{a_name} and {b_name} must have the same (batch, dim) shape, "
            f"got {a_name} {tuple(a.shape)} and {b_name} {tuple(b.shape)}"
        )


def check_negatives(query: torch.Tensor, negatives: torch.Tensor) -> None:
    """Negatives must be (B, N, D) with the query's B and D."""
    if negatives.dim() != 3:
        raise LossError(
            f"negatives must be (batch, n_negatives, dim), got shape {tuple(negatives.shape)}"
        )
    b, d = query.shape
    if negatives.size(0) != b or negatives.size(2) != d:
        raise LossError(
            f"negatives {tuple(negatives.shape)} do not match query {tuple(query.shape)}: "
            f"expected ({b}, n_negatives, {d})"
        )


def check_ids(name: str, ids: torch.Tensor, batch: int) -> None:
    """Text ids must be an integer tensor of shape (B,)."""
    if ids.shape != (batch,):
        raise LossError(f"{name} must have shape ({batch},), got {tuple(ids.shape)}")
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise LossError(f"{name} must be an integer tensor, got dtype {ids.dtype}")


def check_id_rows(name: str, ids: torch.Tensor, batch: int, width: int | None = None) -> None:
    """Rows of text ids must be an integer tensor of shape (B, width) (any width when None)."""
    if ids.dim() != 2 or ids.size(0) != batch or (width is not None and ids.size(1) != width):
        expected = f"({batch}, {width if width is not None else 'K'})"
        raise LossError(f"{name} must have shape {expected}, got {tuple(ids.shape)}")
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise LossError(f"{name} must be an integer tensor, got dtype {ids.dtype}")


def check_labels(
    labels: torch.Tensor, batch: int, *, low: float, high: float, binary: bool = False
) -> None:
    """Labels must be (B,) and lie in [low, high] (exactly low or high when ``binary``)."""
    if labels.shape != (batch,):
        raise LossError(f"label must have shape ({batch},), got {tuple(labels.shape)}")
    values = labels.detach()
    if binary:
        bad = (values != low) & (values != high)
        allowed = f"{{{low:g}, {high:g}}}"
    else:
        bad = (values < low) | (values > high) | torch.isnan(values)
        allowed = f"[{low:g}, {high:g}]"
    if bool(bad.any()):
        first = values[bad][0].item()
        raise LossError(
            f"label must be in {allowed}, got {first:g} "
            f"({int(bad.sum())} of {batch} labels out of range)"
        )
