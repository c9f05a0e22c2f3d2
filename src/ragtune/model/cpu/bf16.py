"""Which kind of bf16 this CPU runs natively: the hardware question behind ``precision="auto"``.

Three kinds, told apart by the flags the kernel reports in ``/proc/cpuinfo``:

- ``"amx"``: Intel AMX tiles (``amx_bf16``, Sapphire Rapids and later). bf16 GEMMs run 5-6x the
  fp32 peak (0.9-2.6 TFLOP/s against 170-410 GFLOP/s on 2 threads of a Xeon).
- ``"avx512_bf16"``: bf16 dot products in AVX-512 (``avx512_bf16``: AMD Zen 4, Cooper Lake). The
  bf16 GEMM peak is about 2.2x fp32 (403-422 against 184-191 GFLOP/s on a 2-core EPYC).
- ``"none"``: AVX2 or plain AVX-512 only. bf16 is emulated by conversions and runs 5-14x slower
  than fp32, so neither training nor encoding may pick it by itself.

Why flags and not a timing: the answer is needed before anything runs (the training recipe is
fixed at start), costs nothing, and is the same on every call. Encoding adds a measured check on
the model's own texts on top (:mod:`ragtune.model.cpu.encode_precision`). Elsewhere than Linux,
PyTorch's own CPU probes are asked instead.
"""

from __future__ import annotations

from typing import Literal

import torch

Bf16Kind = Literal["amx", "avx512_bf16", "none"]
BF16_KINDS: tuple[str, ...] = ("amx", "avx512_bf16", "none")


def cpu_flags() -> frozenset[str]:
    """The feature flags of the first CPU in ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "flags":
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def bf16_kind(flags: frozenset[str] | None = None) -> Bf16Kind:
    """``"amx"``, ``"avx512_bf16"`` or ``"none"`` for this CPU (or for the given ``flags``)."""
    if flags is None:
        flags = cpu_flags()
        if not flags:
            return _torch_kind()
    if "amx_bf16" in flags and "amx_tile" in flags:
        return "amx"
    if "avx512_bf16" in flags:
        return "avx512_bf16"
    return "none"


def _torch_kind() -> Bf16Kind:
    cpu = getattr(torch, "cpu", None)
    probe_amx = getattr(cpu, "_is_amx_tile_supported", None)
    probe_bf16 = getattr(cpu, "_is_avx512_bf16_supported", None)
    if probe_amx is not None and probe_amx():
        return "amx"
    if probe_bf16 is not None and probe_bf16():
        return "avx512_bf16"
    return "none"


def cpu_supports_bf16() -> bool:
    """True when this CPU has native bf16 instructions (AVX512-BF16 or AMX)."""
    return bf16_kind() != "none"
