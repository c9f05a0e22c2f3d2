"""Scaled-dot-product attention that stays in fp32 on CPU when the rest runs in bf16.

Why: under CPU bf16 autocast the matmuls get 2-3x faster on CPUs with native bf16, but PyTorch's
CPU flash-attention kernels are not: measured on a 2-core AVX512-BF16 EPYC (MiniLM, batch 32 x
256 tokens), the attention backward took 0.72 s in bf16 against 0.44 s in fp32. Running attention
in fp32 also keeps the softmax at full precision. On CUDA, and whenever the inputs are already
fp32, this is exactly Hugging Face's ``sdpa`` attention.

With attention-probability dropout in training on CPU, PyTorch's SDPA takes its unfused math path
and draws the mask with ``bernoulli_``; here the same math runs with
:mod:`ragtune.model.cpu.dropout`'s cheaper masks, and the 1/(1-p) rescaling is applied to the
values (L x head_dim) rather than to the L x L probabilities. On AMX CPUs that math stays in bf16
(:func:`bf16_attention_pays`): one attention layer forward + backward with dropout 0.1 on bf16
inputs took 143 ms in bf16 against 186 ms upcast to fp32 on a 2-core AMX Xeon, while fused SDPA
without dropout was slower in bf16 (110 ms) than in fp32 (75 ms), so that one stays fp32
(``benchmarks/cpu_kernels.py``, ``cpu_memory: reuse``).

The function is registered with transformers' attention interface under :data:`NAME` (once per
process, on the first switch); the padding mask is built the same way as for ``sdpa``. Only the
in-memory config changes: saved folders keep no attention setting, so any loader reads them as
before. :func:`ragtune.model.cpu.enable_cpu_fast_paths` makes the switch; :func:`restore_sdpa`
undoes it.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

NAME = "ragtune_sdpa"
_registered = False


def _attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs: Any,
) -> tuple[torch.Tensor, Any]:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if _takes_dropout_path(module, query, kwargs):
        return _attention_with_dropout(
            query, key, value, attention_mask, keep_bf16=bf16_attention_pays(), **kwargs
        )
    if query.device.type != "cpu" or query.dtype == torch.float32:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    dtype = query.dtype
    if attention_mask is not None and attention_mask.is_floating_point():
        attention_mask = attention_mask.float()
    with torch.autocast("cpu", enabled=False):
        out, weights = sdpa_attention_forward(
            module, query.float(), key.float(), value.float(), attention_mask, **kwargs
        )
    return out.to(dtype), weights


def _takes_dropout_path(module: torch.nn.Module, query: torch.Tensor, kwargs: Any) -> bool:
    """CPU training with dropout on a plain encoder attention (no GQA, bias, cache or causality)."""
    if query.device.type != "cpu" or not kwargs.get("dropout"):
        return False
    if kwargs.get("is_causal") or getattr(module, "is_causal", False):
        return False
    if getattr(module, "num_key_value_groups", 1) > 1:
        return False
    plain = {"dropout", "scaling", "is_causal"}
    return all(v is None or v is False for k, v in kwargs.items() if k not in plain)


@functools.cache
def bf16_attention_pays() -> bool:
    """Whether the dropout path keeps bf16 inputs in bf16: on AMX CPUs only (asked once).

    Why: on AMX the two attention matmuls run several times faster in bf16, and every L x L pass
    (mask, softmax, dropout, and their backward) moves half the bytes. On AVX512-BF16 without
    AMX the fp32 path was the faster one (see the module docstring), and without native bf16
    bf16 is emulated. The softmax accumulates in fp32 inside PyTorch's kernel either way.
    """
    from .bf16 import bf16_kind

    return bf16_kind() == "amx"


def _attention_with_dropout(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float,
    scaling: float | None = None,
    keep_bf16: bool = False,
    **_: Any,
) -> tuple[torch.Tensor, None]:
    """softmax(q k^T * scaling + mask) with dropout, times v: SDPA's math path.

    In fp32, unless ``keep_bf16`` and the inputs are bf16 (autocast): then every step stays bf16.
    """
    from .dropout import drop_unscaled, keep_scale

    dtype = query.dtype
    work = dtype if keep_bf16 and dtype == torch.bfloat16 else torch.float32
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    with torch.autocast("cpu", enabled=False):
        scores = torch.matmul(query.to(work) * scaling, key.to(work).transpose(-1, -2))
        if attention_mask is not None:
            # added in place: its backward is the identity, so no pass over L x L in backward
            scores.add_(_additive(attention_mask, work))
        probs = drop_unscaled(torch.softmax(scores, dim=-1), dropout)
        out = torch.matmul(probs, value.to(work) * keep_scale(dropout))
    return out.transpose(1, 2).contiguous().to(dtype), None


def _additive(mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A mask to add to the scores: 0 where attending, else the dtype's minimum (bool masks)."""
    if mask.dtype != torch.bool:
        return mask.to(dtype)
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(
        ~mask, torch.finfo(dtype).min
    )


def _register() -> None:
    global _registered
    if _registered:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, _attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    _registered = True


def use_fp32_cpu_attention(backbone: Any) -> bool:
    """Switch a Hugging Face model that uses ``sdpa`` attention to :data:`NAME`.

    Models on another attention implementation (eager, flash-attention, remote code) are left
    alone; returns whether the switch was made.
    """
    config = getattr(backbone, "config", None)
    if getattr(config, "_attn_implementation", None) != "sdpa":
        return False
    if not hasattr(backbone, "set_attn_implementation"):
        return False
    _register()
    try:
        backbone.set_attn_implementation(NAME)
    except (ValueError, TypeError):  # a model class that refuses custom attention
        return False
    return True


def restore_sdpa(backbone: Any) -> bool:
    """Switch a model on :data:`NAME` back to Hugging Face's ``sdpa``; returns whether it was on."""
    config = getattr(backbone, "config", None)
    if getattr(config, "_attn_implementation", None) != NAME:
        return False
    backbone.set_attn_implementation("sdpa")
    return True
