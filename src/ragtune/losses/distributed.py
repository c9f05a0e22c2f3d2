"""Cross-device negatives: gather embeddings from every rank, keeping the gradient path.

With data parallelism each rank encodes only its local batch. Gathering the embeddings lets every
rank's queries score against the documents of all ranks (world_size x more in-batch negatives)
at the price of one all_gather per tensor.

The gradient works out as follows. Rank r computes L_r, the mean InfoNCE over its B local queries
scored against the gathered documents. ``torch.distributed.nn.functional.all_gather`` is
autograd-aware and its backward SUMS the incoming gradients over ranks and hands each rank the
slice of its own rows (reduce-scatter; all-to-all then sum on gloo). So after ``L_r.backward()``
the gradient on rank r's local embeddings x_r is

    sum_r' dL_r'/dx_r = W * dL/dx_r,   where L = (1/W) sum_r' L_r'

is the loss on the combined batch of W*B queries. DDP then AVERAGES parameter gradients over the
W ranks, which divides that factor W away again: the parameters receive exactly dL/dtheta, the
gradient of the single-process loss on the combined batch.

Every rank must pass tensors of the same shape (use ``drop_last`` in the distributed sampler);
a mismatch raises :class:`~ragtune.losses.checks.LossError` on all ranks instead of hanging.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from ragtune.losses.checks import LossError


def rank_and_world_size() -> tuple[int, int]:
    """(rank, world size) of the default process group, or (0, 1) when none is initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _check_same_shape(t: torch.Tensor, world_size: int) -> None:
    shape = torch.tensor(t.shape, dtype=torch.long, device=t.device)  # (ndim,)
    shapes = [torch.empty_like(shape) for _ in range(world_size)]
    dist.all_gather(shapes, shape)
    if any(not torch.equal(s, shape) for s in shapes):
        found = ", ".join(str(tuple(s.tolist())) for s in shapes)
        raise LossError(
            f"cannot gather tensors of different shapes across ranks: {found}; "
            "give every rank the same batch size (drop_last=True)"
        )


def gather_with_grad(t: torch.Tensor) -> torch.Tensor:
    """Concatenate ``t`` from all ranks along dim 0, differentiably: (B, ...) -> (W*B, ...).

    Returns ``t`` itself when torch.distributed is not initialised or has one rank. Rows are in
    rank order, so this rank's rows start at ``rank * B``. The backward sums gradients over ranks
    (see the module docstring for why that gives the right parameter gradient under DDP).
    """
    _, world_size = rank_and_world_size()
    if world_size == 1:
        return t
    import torch.distributed.nn.functional as dist_fn  # only importable with distributed support

    _check_same_shape(t, world_size)
    return torch.cat(dist_fn.all_gather(t), dim=0)


def gather(t: torch.Tensor) -> torch.Tensor:
    """Like :func:`gather_with_grad` without a gradient path (for ids and labels)."""
    _, world_size = rank_and_world_size()
    if world_size == 1:
        return t
    _check_same_shape(t, world_size)
    parts = [torch.empty_like(t) for _ in range(world_size)]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts, dim=0)
