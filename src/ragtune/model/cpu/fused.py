"""A fused fp32 CPU inference path for BERT-style encoders (BERT, MiniLM, RoBERTa, ELECTRA, ...).

Why: a Hugging Face ``BertLayer`` spends a sixth of a CPU encode outside its matmuls on work
that oneDNN can do inside them. Profiled on all-MiniLM-L6-v2 (2-core EPYC, batches of 32 x 256
tokens): ``addmm`` first copies the bias into its output (6.8% of the time), GELU is a separate
pass over the (tokens, 1536) intermediate (6.9%), and each residual add is one more pass. oneDNN's
linear with post-ops adds the bias, applies GELU or adds the residual while the output tile is
still in cache. The arithmetic is the same fp32 (hidden states differ by ~1e-6), so embeddings
stay equal to the Hugging Face forward within 1e-5.

**Unpadded**: every linear, GELU, residual and LayerNorm runs on the batch's real tokens only,
(N, H) with N = the sum of the lengths, not (B x T, H); only attention sees the padded
(B, heads, T, d) layout, scattered in and gathered out around it (:func:`real_rows`). Why: a
server's batch is the queries that arrived together, of mixed lengths, and padding them to the
longest made the linears do up to twice the work (SciFact queries: 22 tokens on average, 50 at
most: 1.72x faster unpadded with 128 texts per forward pass, ``benchmarks/unpadded_encode.py``).
Only batches with enough padding take it (:data:`UNPAD_FROM`). Padding rows come back as zeros:
pooling and the token output read the real tokens only.

Only for inference (oneDNN's fused linear has no autograd), on CPU, and only for the
architectures it understands: :func:`unsupported_reason` names what stops it, and
:meth:`FusedForward.verify` compares it with the Hugging Face forward once before it is trusted.

bf16 (:meth:`FusedForward.in_bf16`, what ``precision="bf16"`` encodes with on CPU): the same
layers with bf16 copies of the linear weights, so every GEMM runs oneDNN's bf16 kernel, while the
residual stream and LayerNorm stay fp32 (as under autocast: a residual carried in bf16 moved
MiniLM's worst SciFact vector to cosine 0.99994 instead of 0.99998, for 5% more speed). Measured
on the 2-core AVX512-BF16 EPYC (shared, 32 abstracts, best of 3): 10.05 s fused fp32, 7.23 s
bf16 autocast of the Hugging Face forward, 6.30 s this path (1.60x fp32, 1.15-1.28x autocast),
min cosine to fp32 0.99998 for both bf16 paths. Autocast re-casts every weight in every batch
and leaves bias, GELU and residual as separate passes; here the weights are cast once (again
only when a weight changes) and the post-ops stay fused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ragtune.model.cpu.bf16 import cpu_supports_bf16

_SUBMODULES = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "attention.output.LayerNorm",
    "intermediate.dense",
    "output.dense",
    "output.LayerNorm",
)
_GELU = {"gelu": "none", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh"}  # oneDNN algorithm


def _get(module: nn.Module, dotted: str) -> Any:
    for part in dotted.split("."):
        module = getattr(module, part, None)  # type: ignore[assignment]
        if module is None:
            return None
    return module


def unsupported_reason(backbone: nn.Module) -> str | None:
    """Why the fused path cannot run this model, or None when it can."""
    ops = getattr(torch.ops, "mkldnn", None)
    if not torch.backends.mkldnn.is_available() or not hasattr(ops, "_linear_pointwise"):
        return "this PyTorch build has no oneDNN fused linear"
    cfg = getattr(backbone, "config", None)
    if cfg is None or getattr(cfg, "is_decoder", False) or getattr(cfg, "add_cross_attention", 0):
        return "not an encoder-only model"
    if getattr(cfg, "position_embedding_type", "absolute") != "absolute":
        return f"position embeddings {cfg.position_embedding_type!r}"
    if _GELU.get(getattr(cfg, "hidden_act", None)) is None:  # type: ignore[arg-type]
        return f"activation {getattr(cfg, 'hidden_act', None)!r}"
    if getattr(cfg, "chunk_size_feed_forward", 0):
        return "chunked feed-forward"
    layers = _get(backbone, "encoder.layer")
    if not isinstance(layers, nn.ModuleList) or _get(backbone, "embeddings") is None:
        return f"{type(backbone).__name__} is not laid out like BERT"
    for layer in layers:
        for name in _SUBMODULES:
            sub = _get(layer, name)
            want = nn.LayerNorm if name.endswith("LayerNorm") else nn.Linear
            if not isinstance(sub, want) or (want is nn.Linear and sub.bias is None):
                return f"layer part {name} is not a biased {want.__name__}"
        attention = _get(layer, "attention.self")
        if getattr(attention, "is_causal", False) or not hasattr(attention, "num_attention_heads"):
            return "attention is causal or has no head count"
    return None


class FusedForward:
    """Token embeddings after ``k`` layers, computed with oneDNN-fused linears (no autograd)."""

    def __init__(self, backbone: nn.Module) -> None:
        self.backbone: Any = backbone
        self.layers: list[Any] = list(_get(backbone, "encoder.layer"))
        self.gelu = _GELU[backbone.config.hidden_act]  # type: ignore[union-attr,index]
        self._bf16: FusedBf16Forward | None = None
        self._native_bf16: bool | None = None  # the CPU's answer, asked once

    def in_bf16(self) -> FusedBf16Forward | None:
        """The same forward with bf16 GEMMs and an fp32 residual stream (module docstring);
        None on a CPU without native bf16, where oneDNN builds no bf16 inner product (AVX2
        alone: "could not create a primitive descriptor") and bf16 is autocast instead."""
        if self._native_bf16 is None:
            self._native_bf16 = cpu_supports_bf16()
        if self._native_bf16 and self._bf16 is None:
            self._bf16 = FusedBf16Forward(self)
        return self._bf16

    def __call__(self, features: dict[str, torch.Tensor], num_layers: int) -> torch.Tensor:
        mask = features["attention_mask"]  # (B, T)
        extra = {k: features[k] for k in ("token_type_ids", "position_ids") if k in features}
        x = self.backbone.embeddings(input_ids=features["input_ids"], **extra)  # (B, T, H)
        return _run_layers(x, mask, self.layers[:num_layers], self._layer)

    def _layer(
        self,
        layer: Any,
        x: torch.Tensor,
        keep: torch.Tensor,
        b: int,
        t: int,
        rows: torch.Tensor | None,
    ) -> torch.Tensor:
        attn = layer.attention.self
        heads, size = attn.num_attention_heads, attn.attention_head_size

        def split(lin: nn.Linear) -> torch.Tensor:  # (N, H) -> (B, heads, T, d)
            y = _scatter(_linear(x, lin), rows, b * t)
            return y.view(b, t, heads, size).transpose(1, 2)

        context = F.scaled_dot_product_attention(
            split(attn.query), split(attn.key), split(attn.value), attn_mask=keep
        )  # (B, heads, T, d)
        context = _gather(context.transpose(1, 2).reshape(b * t, heads * size), rows)  # (N, H)
        out = layer.attention.output
        x = _layer_norm(_linear_add(context, x, out.dense), out.LayerNorm)
        inner = torch.ops.mkldnn._linear_pointwise(
            x, layer.intermediate.dense.weight, layer.intermediate.dense.bias, "gelu", [], self.gelu
        )
        return _layer_norm(_linear_add(inner, x, layer.output.dense), layer.output.LayerNorm)

    def verify(self, features: dict[str, torch.Tensor], tolerance: float = 1e-4) -> float | None:
        """Max |fused - Hugging Face| over the real tokens of ``features``; None if too large."""
        inputs = {k: v for k, v in features.items() if k in ("input_ids", "attention_mask")}
        reference = self.backbone(**inputs, return_dict=True).last_hidden_state
        mine = self(features, len(self.layers))
        real = features["attention_mask"].bool()
        diff = float((mine[real] - reference[real]).abs().max())
        return diff if diff <= tolerance else None


class FusedBf16Forward:
    """:class:`FusedForward` with bf16 weight copies; hidden states come back in fp32."""

    def __init__(self, fp32: FusedForward) -> None:
        self.fp32 = fp32
        self._weights: dict[int, tuple[tuple[int, int], torch.Tensor, torch.Tensor]] = {}

    def _bf16(self, lin: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
        """bf16 (weight, bias) of ``lin``, cast again only after the fp32 weight changed."""
        version = (lin.weight.data_ptr(), lin.weight._version + lin.bias._version)
        known = self._weights.get(id(lin))
        if known is None or known[0] != version:
            known = (version, lin.weight.to(torch.bfloat16), lin.bias.to(torch.bfloat16))
            self._weights[id(lin)] = known
        return known[1], known[2]

    def _linear(self, x: torch.Tensor, lin: nn.Linear, post: str = "none") -> torch.Tensor:
        weight, bias = self._bf16(lin)
        algorithm = self.fp32.gelu if post == "gelu" else ""
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, post, [], algorithm)

    def __call__(self, features: dict[str, torch.Tensor], num_layers: int) -> torch.Tensor:
        with torch.autocast("cpu", enabled=False):
            backbone = self.fp32.backbone
            mask = features["attention_mask"]  # (B, T)
            extra = {k: features[k] for k in ("token_type_ids", "position_ids") if k in features}
            x = backbone.embeddings(input_ids=features["input_ids"], **extra).float()  # (B, T, H)
            return _run_layers(x, mask, self.fp32.layers[:num_layers], self._layer)  # fp32 stream

    def _layer(
        self,
        layer: Any,
        x: torch.Tensor,
        keep: torch.Tensor,
        b: int,
        t: int,
        rows: torch.Tensor | None,
    ) -> torch.Tensor:
        attn = layer.attention.self
        heads, size = attn.num_attention_heads, attn.attention_head_size
        x16 = x.to(torch.bfloat16)  # (N, H): the GEMMs' input

        def split(lin: nn.Linear) -> torch.Tensor:  # (N, H) -> (B, heads, T, d)
            y = _scatter(self._linear(x16, lin), rows, b * t)
            return y.view(b, t, heads, size).transpose(1, 2)

        context = F.scaled_dot_product_attention(
            split(attn.query), split(attn.key), split(attn.value), attn_mask=keep
        )  # (B, heads, T, d) bf16
        context = _gather(context.transpose(1, 2).reshape(b * t, heads * size), rows)
        out = layer.attention.output
        x = _layer_norm(self._linear(context, out.dense).float().add_(x), out.LayerNorm)
        inner = self._linear(x.to(torch.bfloat16), layer.intermediate.dense, "gelu")
        down = self._linear(inner, layer.output.dense).float().add_(x)
        return _layer_norm(down, layer.output.LayerNorm)


UNPAD_FROM = 0.25
"""Skip the padding when at least this share of the batch's B x T positions is padding. Below
it the gathers and scatters cost more than the padded rows: SciFact queries, fp32, 2-core Xeon
(``benchmarks/unpadded_encode.py``), unpadded / padded time 1.11x with 8 texts per forward pass
(length-sorted, little padding) and 1.02x with 32, but 0.84x with 64 and 0.58x with 128."""


def real_rows(mask: torch.Tensor) -> torch.Tensor | None:
    """Indices (N,) of the real tokens of a (B, T) attention mask in its flattened (B*T) order,
    or None when less than :data:`UNPAD_FROM` of it is padding (run the padded batch)."""
    flat = mask.reshape(-1).bool()
    real = int(flat.sum())
    if real > (1.0 - UNPAD_FROM) * flat.numel():
        return None
    return flat.nonzero().squeeze(1)


LayerStep = Callable[
    [Any, torch.Tensor, torch.Tensor, int, int, "torch.Tensor | None"], torch.Tensor
]
"""One layer of a fused forward: ``(layer, x (N, H), keep (B, 1, 1, T), b, t, rows) -> (N, H)``."""


def _run_layers(
    x: torch.Tensor, mask: torch.Tensor, layers: list[Any], step: LayerStep
) -> torch.Tensor:
    """Embeddings (B, T, H) through ``layers`` with ``step``, on the real tokens (N, H) when the
    batch has enough padding (:func:`real_rows`); back as (B, T, H)."""
    b, t, h = x.shape
    keep = mask.bool()[:, None, None, :]  # (B, 1, 1, T): attend to real tokens only
    rows = real_rows(mask)  # (N,) or None: run the padded batch
    flat = _gather(x.reshape(b * t, h), rows)  # (N, H)
    for layer in layers:
        flat = step(layer, flat, keep, b, t, rows)
    return _scatter(flat, rows, b * t).view(b, t, h)


def _gather(x: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
    """(B*T, H) -> (N, H): the real tokens' rows."""
    return x if rows is None else x.index_select(0, rows)


def _scatter(x: torch.Tensor, rows: torch.Tensor | None, total: int) -> torch.Tensor:
    """(N, H) -> (B*T, H) with zeros at the padding (masked out of attention and pooling)."""
    if rows is None:
        return x
    out = x.new_zeros(total, x.shape[1])
    return out.index_copy_(0, rows, x)


def _linear(x: torch.Tensor, lin: nn.Linear) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, lin.weight, lin.bias, "none", [], "")


def _linear_add(x: torch.Tensor, residual: torch.Tensor, lin: nn.Linear) -> torch.Tensor:
    """x @ W^T + b + residual in one oneDNN call."""
    return torch.ops.mkldnn._linear_pointwise.binary(x, residual, lin.weight, lin.bias, "add")


def _layer_norm(x: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
    return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
