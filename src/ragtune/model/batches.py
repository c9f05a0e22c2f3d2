"""Padding and length sorting: how texts become batches with little padding.

One module for the three places that shape batches by length:

- :func:`length_sorted_batches`: inference batches of texts of similar length (the PyTorch and
  ONNX encoders);
- :func:`pad`: token id lists right-padded into ``input_ids`` and ``attention_mask`` (training
  batches, ``train/batching.py``);
- :func:`length_groups`: a padded training column cut into a few sub-batches of similar length
  (``train/subbatch.py``).

Trimming trailing padding from a tokenized batch is
:func:`ragtune.losses.gradcache.trim_padding`: GradCache trims each mini-batch with it, and the
losses stage may import nothing from the model stage, so the pure tensor helper lives there and
training code imports it from there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

Features = dict[str, torch.Tensor]
"""Tokenized texts: input_ids, attention_mask, ... each with first dim = rows."""

CALL_COST = 0.03
"""In :func:`length_groups`, each extra encoder call is charged as this share of the column's
padded tokens."""


def length_sorted_batches(
    tokenizer: Any, texts: Sequence[str], max_length: int, batch_size: int
) -> tuple[list[list[int]], list[list[int]]]:
    """Tokenize every text once; return the token ids and batches of indices, longest first.

    Texts of similar length share a batch, so little compute goes to padding; callers write
    each result back at its index, which restores the input order.
    """
    ids = tokenizer(
        list(texts),
        truncation=True,
        max_length=max_length,
        add_special_tokens=True,
        return_attention_mask=False,
    )["input_ids"]
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    return ids, [order[s : s + batch_size] for s in range(0, len(order), batch_size)]


def pad(sequences: Sequence[list[int]], pad_id: int) -> Features:
    """Right-pad token id lists into input_ids and attention_mask (B, T), T the longest."""
    longest = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), longest), pad_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(sequences), longest), dtype=torch.long)  # (B, T)
    for i, seq in enumerate(sequences):
        input_ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[i, : len(seq)] = 1
    return {"input_ids": input_ids, "attention_mask": mask}


def length_groups(lengths: torch.Tensor, max_groups: int = 4) -> list[torch.Tensor]:
    """Row indices of the sub-batches that minimise padded tokens plus a per-call charge.

    Rows are sorted by length (longest first) and cut into 1..max_groups near-equal parts.
    """
    n = int(lengths.numel())
    order = torch.argsort(lengths, descending=True, stable=True)
    ranked = lengths[order].tolist()
    best: tuple[float, list[torch.Tensor]] | None = None
    full = n * ranked[0] if n else 0
    for k in range(1, min(max_groups, n) + 1):
        bounds = [round(i * n / k) for i in range(k + 1)]
        padded = sum((bounds[i + 1] - bounds[i]) * ranked[bounds[i]] for i in range(k))
        cost = padded + CALL_COST * full * (k - 1)
        if best is None or cost < best[0]:
            best = (cost, [order[bounds[i] : bounds[i + 1]] for i in range(k)])
    return best[1] if best else [order]
