"""Give freed activation memory back to the operating system during CPU training.

Why: PyTorch's CPU tensors come from the C library's malloc. glibc serves a large block from
its heap once a block of that size has been freed (its mmap threshold grows up to 32 MiB), and
memory freed inside the heap mostly stays with the process. GradCache encodes many mini-batches
of different shapes, so the heap fragments and peak RSS creeps up with the number of
mini-batches although nothing GradCache holds grows. Measured on MiniLM (batch 1024 in
mini-batches of 32 against a plain batch of 32, benchmarks/gradcache_memory.py): 1.28x the peak
with glibc's policy, 1.07x with a fixed 1 MiB threshold, but the GradCache step took 170 s
instead of 105 s (freed blocks are unmapped, so every new one page-faults). Hence opt-in:
``TrainConfig.release_memory``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
DEFAULT_THRESHOLD = 1 << 20


def return_large_blocks_to_os(threshold: int = DEFAULT_THRESHOLD) -> bool:
    """Serve blocks of ``threshold`` bytes or more with mmap, so freeing them unmaps them.

    A fixed threshold also stops glibc from raising it. Returns False where this is not glibc
    (macOS, Windows, musl): there it does nothing.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, int(threshold)))
