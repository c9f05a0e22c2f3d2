"""GradCache: the gradient of a large-batch contrastive loss in the memory of a small batch."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from torch import nn

from ragtune.losses.checks import LossError

Features = dict[str, torch.Tensor]
"""Tokenized texts: input_ids, attention_mask, ... each with first dim = rows."""


@dataclass
class _Chunk:
    column: str
    start: int
    stop: int
    features: Features
    cpu_rng: torch.Tensor
    cuda_rng: dict[torch.device, torch.Tensor]


class GradCache:
    r"""Exact full-batch gradients of any loss here, encoding in mini-batches.

    In-batch-negative losses get better with the batch size, but encoding a batch of 1024
    passages with gradients does not fit in memory. The loss is a function of the embeddings
    only, so its gradient splits by the chain rule::

        dL/dtheta = sum over rows r of (dL/de_r) . (de_r/dtheta)

    :meth:`forward_backward` does this in three steps:

    1. encode every text column in mini-batches of ``mini_batch_size`` rows without a graph,
       saving each mini-batch's RNG state (CPU, and CUDA for tensors on CUDA);
    2. turn the cached embeddings into leaf tensors, compute the loss on the full batch and
       backpropagate to the embeddings only (cheap: no encoder graph);
    3. re-encode each mini-batch with a graph, restoring its RNG state so that dropout masks
       replay and the embeddings are bit-identical to step 1, and backpropagate the surrogate
       ``sum(e_r . g_r)`` whose parameter gradient is exactly the second factor above.

    Parameter ``.grad`` therefore accumulates the full-batch gradient times ``loss_scale``
    (pass ``1/accumulation_steps`` or an AMP scale). Memory is that of one mini-batch plus the
    (rows, D) embeddings; the cost is one extra no-grad forward per text.

    Trailing padding is cut per mini-batch (``trim_padding``: columns beyond the longest
    attention mask in the mini-batch are dropped from every (rows, T) feature), the same way in
    steps 1 and 3; with an attention mask the real tokens' embeddings do not change. The kept
    length is rounded up to ``pad_multiple`` tokens (64): every distinct mini-batch shape leaves
    activation blocks of its own size behind, and on CPU, where freed blocks are kept for reuse
    (``TrainConfig.cpu_memory``), a few shapes instead of one per mini-batch lowered the peak
    memory of a batch-1024 MiniLM step by 12% (BENCHMARKS.md, section 5).
    Under DDP pass ``no_sync=ddp_model.no_sync`` so that only the last mini-batch's backward
    all-reduces.

    Reference:
        Gao, Zhang, Han and Callan 2021, "Scaling Deep Contrastive Learning Batch Size under
        Memory Limited Setup" (arXiv 2101.06983).

    Example:
        >>> gc = GradCache(InfoNCELoss(), mini_batch_size=32)
        >>> loss = gc.forward_backward(
        ...     encoder.forward,
        ...     {"query": encoder.tokenize(queries), "positive": encoder.tokenize(passages)},
        ... )
        >>> optimizer.step()
    """

    def __init__(
        self,
        loss: nn.Module,
        mini_batch_size: int,
        trim_padding: bool = True,
        pad_multiple: int = 64,
    ) -> None:
        if mini_batch_size < 1:
            raise LossError(f"mini_batch_size must be >= 1, got {mini_batch_size}")
        if pad_multiple < 1:
            raise LossError(f"pad_multiple must be >= 1, got {pad_multiple}")
        self.loss = loss
        self.mini_batch_size = mini_batch_size
        self.trim_padding = trim_padding
        self.pad_multiple = pad_multiple
        self.last_stats: dict[str, float] = {}

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(getattr(self.loss, "inputs", ()))

    @property
    def optional_inputs(self) -> tuple[str, ...]:
        return tuple(getattr(self.loss, "optional_inputs", ()))

    def forward_backward(
        self,
        embed: Callable[[Features], torch.Tensor],
        texts: Mapping[str, Features],
        extra: Mapping[str, torch.Tensor] | None = None,
        reshape: Mapping[str, tuple[int, int]] | None = None,
        loss_scale: float = 1.0,
        no_sync: Callable[[], AbstractContextManager[object]] | None = None,
    ) -> torch.Tensor:
        """Accumulate the full-batch gradient into the parameters; return the loss (detached).

        ``texts`` maps loss input names to tokenized columns; ``reshape[name] = (B, N)`` views
        that column's (B*N, D) embeddings as (B, N, D) (e.g. ``negatives``); ``extra`` holds the
        non-text loss inputs (labels, ids).
        """
        extra = dict(extra or {})
        reshape = dict(reshape or {})
        unknown = set(reshape) - set(texts)
        if unknown:
            raise LossError(f"reshape names {sorted(unknown)} are not text columns {sorted(texts)}")

        # Step 1: embed without a graph, remembering each mini-batch's RNG state.
        chunks = list(self._chunks(texts))
        cached: dict[str, list[torch.Tensor]] = {name: [] for name in texts}
        with torch.no_grad():
            for chunk in chunks:
                chunk.cpu_rng = torch.get_rng_state()
                chunk.cuda_rng = {d: torch.cuda.get_rng_state(d) for d in _cuda_devices(chunk)}
                cached[chunk.column].append(embed(chunk.features))

        # Step 2: the loss on the full batch, backpropagated to the embeddings only.
        leaves = {name: torch.cat(parts).requires_grad_() for name, parts in cached.items()}
        inputs: dict[str, torch.Tensor] = {}
        for name, leaf in leaves.items():  # leaf (rows, D)
            if name in reshape:
                b, n = reshape[name]
                if b * n != leaf.size(0):
                    raise LossError(
                        f"cannot view {name!r} with {leaf.size(0)} rows as ({b}, {n}, D)"
                    )
                inputs[name] = leaf.view(b, n, -1)  # (B, N, D)
            else:
                inputs[name] = leaf
        loss = self.loss(**inputs, **extra)
        (loss * loss_scale).backward()
        self.last_stats = dict(getattr(self.loss, "last_stats", {}))

        # Step 3: re-encode with a graph under the replayed RNG and push dL/de into the encoder.
        todo = [c for c in chunks if leaves[c.column].grad is not None]
        devices = sorted({d for c in todo for d in c.cuda_rng}, key=str)
        with torch.random.fork_rng(devices=devices):  # leave the caller's RNG as step 1 left it
            for i, chunk in enumerate(todo):
                torch.set_rng_state(chunk.cpu_rng)
                for device, state in chunk.cuda_rng.items():
                    torch.cuda.set_rng_state(state, device)
                grad = leaves[chunk.column].grad[chunk.start : chunk.stop]  # type: ignore[index]
                last = i == len(todo) - 1
                sync = no_sync() if (no_sync is not None and not last) else contextlib.nullcontext()
                with sync:
                    embeddings = embed(chunk.features)  # (rows, D), with a graph
                    if not embeddings.requires_grad:
                        raise LossError(
                            "embed returned embeddings without a graph; GradCache needs "
                            "trainable parameters behind them"
                        )
                    # d/dtheta of sum(e . g) = sum_r g_r . de_r/dtheta, the chain-rule term.
                    embeddings.backward(gradient=grad)
        return loss.detach()

    def _chunks(self, texts: Mapping[str, Features]) -> Iterator[_Chunk]:
        for column, features in texts.items():
            if not features:
                raise LossError(f"text column {column!r} has no features")
            rows = {t.size(0) for t in features.values()}
            if len(rows) != 1:
                raise LossError(f"features of {column!r} disagree on the number of rows: {rows}")
            n = rows.pop()
            for start in range(0, n, self.mini_batch_size):
                stop = min(start + self.mini_batch_size, n)
                part = {k: v[start:stop] for k, v in features.items()}
                if self.trim_padding:
                    part = trim_padding(part, self.pad_multiple)
                yield _Chunk(column, start, stop, part, torch.empty(0), {})


def trim_padding(features: Features, multiple: int = 1) -> Features:
    """Drop trailing columns where the attention mask is 0 for every row.

    The kept length is rounded up to ``multiple`` (at most the original length): fewer distinct
    shapes let an allocator reuse freed activation blocks instead of growing the heap.
    """
    mask = features.get("attention_mask")
    if mask is None or mask.dim() != 2:
        return features
    t = mask.size(1)
    used = mask.bool().any(dim=0).nonzero()  # (n_used, 1)
    length = int(used.max()) + 1 if used.numel() else t
    length = min(t, -(-length // multiple) * multiple)
    if length == t:
        return features
    # every (rows, T) feature is cut: input_ids, attention_mask, token_type_ids, position_ids
    return {
        k: (v[:, :length] if v.dim() >= 2 and v.size(1) == t else v) for k, v in features.items()
    }


def _cuda_devices(chunk: _Chunk) -> list[torch.device]:
    return sorted({t.device for t in chunk.features.values() if t.is_cuda}, key=str)
