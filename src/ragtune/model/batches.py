"""Length-sorted inference batches, shared by the PyTorch and ONNX encoders."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


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
