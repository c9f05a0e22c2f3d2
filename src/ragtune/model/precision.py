"""Which autocast dtype a run uses: one rule for encoding and training.

Why one place: "auto" means bf16 wherever the hardware runs it fast, and the hardware check
(native bf16 on this CPU? :mod:`ragtune.model.cpu.bf16`) must not be answered differently by
encoding and training. Training takes bf16 on a CPU with native bf16 (bf16 matmuls 2.2x faster
on an AVX512-BF16 EPYC, 5-6x on AMX; a MiniLM step ~1.7x, equal score) once a step of the run's own
pairs was measured faster in it (:func:`training_autocast`): on an Intel Xeon with avx512_bf16 and
no AMX it ran 0.65x fp32. Encoding takes it only after the
model's own texts agree in both precisions and bf16 was measured faster
(:mod:`ragtune.model.cpu.encode_precision`, which :meth:`ragtune.model.Encoder.encode` asks
before calling :func:`autocast_dtype`); here, without that check, "auto" encodes in fp32 on CPU.
An index records what its vectors were encoded in (:func:`encoding_precision`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, get_args

import torch

from ragtune.errors import RagtuneError
from ragtune.model.cpu.bf16 import cpu_supports_bf16
from ragtune.progress import console

Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)


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


def training_autocast(
    precision: str, encoder: Any, queries: Sequence[str], documents: Sequence[str]
) -> tuple[torch.dtype | None, str]:
    """The autocast dtype a run trains ``encoder`` in, and why (empty: no measurement was made).

    :func:`autocast_dtype` gives the hardware's answer; for ``"auto"`` on a CPU with native bf16
    a forward and backward pass of the run's own pairs is then timed in both precisions
    (:mod:`ragtune.model.cpu.train_precision`), and bf16 is kept only where it ran faster.
    """
    dtype = autocast_dtype(precision, encoder.device, training=True)
    if precision != "auto" or dtype is None or encoder.device.type != "cpu":
        return dtype, ""
    from ragtune.model.cpu.train_precision import choose_train_precision

    check = choose_train_precision(encoder, queries, documents)
    return (torch.bfloat16 if check.precision == "bf16" else None), check.reason


def precision_name(dtype: torch.dtype | None) -> str:
    """How logs and run files name it: "fp32" or "bfloat16 autocast"."""
    return "fp32" if dtype is None else f"{str(dtype).removeprefix('torch.')} autocast"


def set_encode_precision(model: Any, precision: str) -> None:
    """Make ``precision`` the default of ``model``'s encode calls (``--precision`` of the CLI).

    A PyTorch :class:`~ragtune.model.Encoder` keeps it as ``encoder.precision``. An ONNX export
    runs at the precision it was exported with: it takes ``auto`` and ``fp32`` and refuses bf16.
    """
    if precision not in PRECISIONS:
        raise RagtuneError(f"unknown precision {precision!r}; choose {', '.join(PRECISIONS)}")
    if hasattr(model, "precision"):
        model.precision = precision
    elif precision == "bf16":
        quantization = getattr(model, "quantization", "none")
        raise RagtuneError(
            "precision bf16 is not available for an ONNX model: it runs at the precision it was "
            f"exported with ({'fp32' if quantization == 'none' else quantization}); "
            "choose auto or fp32"
        )


def encoding_precision(model: Any) -> str:
    """What ``model``'s last encode ran in: "fp32", "bf16", an ONNX "int8"/"int8-all", or
    "auto" for a PyTorch model that has not encoded yet (its first large call decides)."""
    if hasattr(model, "encode_precision"):
        return str(model.encode_precision or getattr(model, "precision", "auto"))
    quantization = getattr(model, "quantization", "none")
    return "fp32" if quantization == "none" else str(quantization)
