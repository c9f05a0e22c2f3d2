"""Which autocast dtype a run uses: one rule for encoding and training.

Why one place: "auto" means bf16 wherever the hardware runs it fast, and the hardware check
(native bf16 on this CPU?) must not be answered differently by encoding and training. Encoding
stays fp32 on CPU even with native bf16, so that embeddings and indexes do not depend on the
machine; training takes bf16 there (bf16 matmuls 2-3x faster, a MiniLM step ~1.7x, equal score).
"""

from __future__ import annotations

from typing import Literal

import torch

from ragtune.errors import RagtuneError
from ragtune.model.cpu.bf16 import cpu_supports_bf16
from ragtune.progress import console

Precision = Literal["auto", "fp32", "bf16"]


def autocast_dtype(
    precision: str, device: torch.device, *, training: bool = False
) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None: plain fp32)."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        if device.type == "cpu" and not cpu_supports_bf16():
            console.print(
                "[yellow]warning: this CPU has no native bf16; bf16 autocast is "
                "emulated and several times slower than fp32"
            )
        return torch.bfloat16
    if precision != "auto":
        raise RagtuneError(f"unknown precision {precision!r}; choose auto, fp32 or bf16")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if training and device.type == "cpu" and cpu_supports_bf16():
        return torch.bfloat16
    return None


def precision_name(dtype: torch.dtype | None) -> str:
    """How logs and run files name it: "fp32" or "bfloat16 autocast"."""
    return "fp32" if dtype is None else f"{str(dtype).removeprefix('torch.')} autocast"
