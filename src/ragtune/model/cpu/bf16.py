"""Whether this CPU runs bf16 natively: the hardware question behind ``precision="auto"``.

Without native bf16 instructions, CPU bf16 autocast is emulated and several times slower than
fp32, so :func:`ragtune.model.precision.autocast_dtype` never chooses it on such a CPU.
"""

from __future__ import annotations


def cpu_supports_bf16() -> bool:
    """True when this CPU has native bf16 instructions (AVX512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
