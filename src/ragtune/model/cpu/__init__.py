"""How ragtune runs models fast on a CPU: attention, dropout, fused inference, bf16, malloc.

Nothing here switches itself on. :func:`enable_cpu_fast_paths` changes one model (training and
encoding call it); :func:`cpu_memory_policy` changes the process's malloc policy for a block
(the ``train`` and ``demo`` commands enter it); :func:`cpu_supports_bf16` and :func:`bf16_kind`
only ask; :func:`choose_encode_precision` is what ``encode(precision="auto")`` asks on a CPU.
"""

from ragtune.model.cpu.bf16 import bf16_kind, cpu_supports_bf16
from ragtune.model.cpu.encode_precision import PrecisionCheck, choose_encode_precision
from ragtune.model.cpu.fast_paths import CpuFastPaths, enable_cpu_fast_paths
from ragtune.model.cpu.memory import CPU_MEMORY_POLICIES, CpuMemory, cpu_memory_policy

__all__ = [
    "CPU_MEMORY_POLICIES",
    "CpuFastPaths",
    "CpuMemory",
    "PrecisionCheck",
    "bf16_kind",
    "choose_encode_precision",
    "cpu_memory_policy",
    "cpu_supports_bf16",
    "enable_cpu_fast_paths",
]
