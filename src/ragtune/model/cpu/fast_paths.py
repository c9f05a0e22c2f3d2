"""ragtune's CPU speed paths behind one explicit call, with a record of what it switched on.

Three changes make CPU encoding and training faster without changing what the model computes
(each module says why and what was measured):

- attention (:mod:`.attention`): Hugging Face's ``sdpa``, kept fp32 under CPU bf16 autocast,
  with cheap dropout masks when attention dropout trains;
- dropout (:mod:`.dropout`): every plain ``nn.Dropout`` draws its masks 2.7x faster; training
  only, since evaluation runs no dropout;
- fused inference (:mod:`.fused`): fp32 encoding through oneDNN-fused linears, checked once
  against the Hugging Face forward before it is trusted.

Why explicit: these change a model in place (its attention setting, its dropout modules' class,
and a process-wide registration with transformers on the first switch), so constructing an
:class:`~ragtune.model.Encoder` does none of it. Training calls
``enable_cpu_fast_paths(encoder, training=True)``; :meth:`Encoder.encode` calls it with
``training=False`` on its first CPU call. The returned :class:`CpuFastPaths` says what is on
(``ragtune info`` prints it) and :meth:`CpuFastPaths.disable` takes it all back. Weights, state
dicts and saved folders are the same either way.

Example::

    paths = enable_cpu_fast_paths(encoder, training=True)
    paths.describe()  # {"attention": "fp32 sdpa ...", "dropout": "12 modules ...", ...}
    paths.disable()   # the plain Hugging Face model again
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ragtune.model.cpu.attention import (
    NAME,
    bf16_attention_pays,
    restore_sdpa,
    use_fp32_cpu_attention,
)
from ragtune.model.cpu.dropout import CpuDropout, restore_plain_dropout, use_fast_cpu_dropout
from ragtune.model.cpu.fused import FusedForward, unsupported_reason

if TYPE_CHECKING:
    from ragtune.model.encoder import Encoder

# Two texts of different lengths, so that the fused path's check covers padding too.
_PROBE_TEXTS = ["a short probe", "a longer probe text about rivers, glaciers and old harbors"]


NOT_ASKED = "not asked for"  # the fused path was never requested (training sets up the rest)


@dataclass
class CpuFastPaths:
    """What :func:`enable_cpu_fast_paths` switched on for one model."""

    backbone: Any = field(repr=False)
    attention: bool = False
    """Attention runs through ragtune's fp32 ``sdpa`` (:data:`.attention.NAME`)."""
    dropout_modules: int = 0
    """How many dropout modules draw cheap CPU masks (0 until a training call)."""
    fused: FusedForward | None = field(default=None, repr=False)
    """The verified fused fp32 inference forward, or None."""
    fused_reason: str | None = NOT_ASKED
    """Why there is no fused forward (None when there is one)."""

    def describe(self) -> dict[str, str]:
        """One line per path, as ``ragtune info`` and logs show them."""
        return {
            "attention": (
                "fp32 sdpa under bf16 autocast"
                + ("; dropout path in bf16 (AMX)" if bf16_attention_pays() else "")
                if self.attention
                else "unchanged"
            ),
            "dropout": (
                f"{self.dropout_modules} modules with cheap CPU masks"
                if self.dropout_modules
                else "unchanged"
            ),
            "fused_inference": "yes" if self.fused is not None else f"no: {self.fused_reason}",
        }

    def disable(self) -> None:
        """Give the model back its Hugging Face attention, dropout and forward."""
        restore_sdpa(self.backbone)
        restore_plain_dropout(self.backbone)
        self.attention, self.dropout_modules = False, 0
        self.fused, self.fused_reason = None, "disabled"


def enable_cpu_fast_paths(encoder: Encoder, *, training: bool, fused: bool = True) -> CpuFastPaths:
    """Switch on the CPU paths for ``encoder`` (idempotent) and return what is on.

    ``training`` adds the cheap dropout masks; ``fused`` asks for the fused inference forward
    (built and checked here, on two short probe texts, without touching the RNG). A model on
    another device gets an empty record and is left as it is; on the CPU the record is kept as
    ``encoder.cpu_fast_paths``, so a later call extends it instead of starting again.
    """
    if encoder.device.type != "cpu":
        return CpuFastPaths(
            encoder.backbone, fused_reason=f"the model is on {encoder.device.type}, not the CPU"
        )
    paths = encoder.cpu_fast_paths
    if paths is None:
        paths = encoder.cpu_fast_paths = CpuFastPaths(encoder.backbone)
    backbone = encoder.backbone
    if not paths.attention:
        already = getattr(backbone.config, "_attn_implementation", None) == NAME
        paths.attention = already or use_fp32_cpu_attention(backbone)
    if fused and paths.fused is None:
        paths.fused, paths.fused_reason = _checked_fused(encoder)
    if training and not paths.dropout_modules:
        use_fast_cpu_dropout(backbone)
        paths.dropout_modules = sum(isinstance(m, CpuDropout) for m in backbone.modules())
    return paths


def _checked_fused(encoder: Encoder) -> tuple[FusedForward | None, str | None]:
    """The fused forward if it runs this model and matches the Hugging Face forward."""
    reason = unsupported_reason(encoder.backbone)
    if reason is not None:
        return None, reason
    candidate = FusedForward(encoder.backbone)
    probe = encoder.tokenize(_PROBE_TEXTS)
    was_training = encoder.training
    encoder.eval()  # no dropout: the check draws no random numbers
    try:
        with torch.inference_mode():
            diff = candidate.verify(probe)
    finally:
        encoder.train(was_training)
    if diff is None:
        return None, "differs from the Hugging Face forward on this model"
    return candidate, None
