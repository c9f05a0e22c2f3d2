"""Pooling: token-level embeddings -> one vector per text.

Pure functions of ``(token_embeddings, attention_mask)`` so they can be tested against values
worked out by hand. Padding never contributes: mean and weighted mean divide by the number of
real tokens, max sets padded positions to -inf before the max, last_token finds the last real
token whether the batch is padded on the left or on the right.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch

PoolingMode = Literal["mean", "cls", "max", "weighted_mean", "last_token"]
POOLING_MODES: tuple[str, ...] = get_args(PoolingMode)


def check_pooling_mode(mode: str) -> PoolingMode:
    """Return ``mode`` if it is a known pooling mode, else raise listing the valid ones."""
    if mode not in POOLING_MODES:
        raise ValueError(f"unknown pooling mode {mode!r}; choose one of {', '.join(POOLING_MODES)}")
    return mode  # type: ignore[return-value]


def mean_pool(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of the real tokens. tokens (B, T, D), mask (B, T) -> (B, D)."""
    m = mask.unsqueeze(-1).to(tokens.dtype)  # (B, T, 1)
    summed = (tokens * m).sum(dim=1)  # (B, D)
    counts = m.sum(dim=1).clamp(min=1e-9)  # (B, 1)
    return summed / counts


def cls_pool(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The first token's vector ([CLS] for BERT-style models). -> (B, D)"""
    del mask  # the first position is real for right-padded encoders
    return tokens[:, 0]


def max_pool(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-dimension max over the real tokens; padding is set to -inf first. -> (B, D)"""
    m = mask.unsqueeze(-1).bool()  # (B, T, 1)
    filled = tokens.masked_fill(~m, torch.finfo(tokens.dtype).min)
    return filled.max(dim=1).values


def weighted_mean_pool(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Position-weighted mean (SGPT): token i of the real tokens gets weight i (1-based).

    Later tokens have seen more context in causal models, so they count more.
    """
    m = mask.to(tokens.dtype)  # (B, T)
    positions = torch.cumsum(m, dim=1) * m  # (B, T): 1..n on real tokens, 0 on padding
    w = positions.unsqueeze(-1)  # (B, T, 1)
    return (tokens * w).sum(dim=1) / w.sum(dim=1).clamp(min=1e-9)


def last_token_pool(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The last real token of each row, for decoder models; works for left and right padding."""
    batch, length = mask.shape
    # Index of the last position whose mask is 1: argmax over positions weighted by the mask.
    positions = torch.arange(length, device=mask.device).expand(batch, length)  # (B, T)
    last = (positions * mask.long()).max(dim=1).values  # (B,)
    return tokens[torch.arange(batch, device=tokens.device), last]


_POOLERS = {
    "mean": mean_pool,
    "cls": cls_pool,
    "max": max_pool,
    "weighted_mean": weighted_mean_pool,
    "last_token": last_token_pool,
}


def pool(tokens: torch.Tensor, mask: torch.Tensor, mode: PoolingMode) -> torch.Tensor:
    """Pool token embeddings (B, T, D) with attention mask (B, T) into (B, D)."""
    if tokens.dim() != 3 or mask.shape != tokens.shape[:2]:
        raise ValueError(
            f"pool expects tokens (B, T, D) and mask (B, T); got {tuple(tokens.shape)} "
            f"and {tuple(mask.shape)}"
        )
    return _POOLERS[check_pooling_mode(mode)](tokens, mask)
