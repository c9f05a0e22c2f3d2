"""How a CPU training process hands memory back and forth with the C library (glibc).

Why: PyTorch's CPU tensors come from malloc. glibc serves blocks above its mmap threshold (at
most 32 MiB) with a fresh ``mmap`` and unmaps them on free, so every large activation of every
step (a batch of 32 x 256 tokens makes many 50-100 MB tensors, the L x L attention
probabilities of the math path among them) is page-faulted in again, one 4 KiB page at a time.
Measured on a 2-core EPYC: a softmax over a 100 MB tensor took 34.3 ms that way and 8.0 ms
with the memory reused (benchmarks/cpu_kernels.py); a MiniLM training step with the model's
dropout ran 1.75x faster, dropout off 1.07x (BENCHMARKS.md, section 1).

Who sets it: a policy changes the whole process, so no library call does it on its own. The
``train`` and ``demo`` commands enter :func:`cpu_memory_policy` with ``TrainConfig.cpu_memory``
around a CPU run; from Python, opt in the same way::

    with cpu_memory_policy("reuse"):
        train(cfg)

A run on another device (``device="cuda"``) leaves malloc alone: its activations are not
malloc's.

Policies (``TrainConfig.cpu_memory``):

- ``reuse`` (the commands' default): no mmap for large blocks and no trimming while training,
  so freed activations are reused by the next step. glibc's policy is restored, and the free memory
  returned to the OS, when training ends.
- ``release``: a fixed 1 MiB mmap threshold, so freed blocks always go back to the OS: the lowest
  peak memory and the slowest steps (every large block page-faults). For GradCache when memory
  is what limits a run: under ``reuse`` a kept block only serves requests that fit in it, so a
  heap that sees many shapes (GradCache's mini-batches) grows past what is live at once.
- ``system``: leave glibc's own policy alone.

Elsewhere than glibc (macOS, Windows, musl) nothing is changed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

CpuMemory = Literal["reuse", "release", "system"]
CPU_MEMORY_POLICIES: tuple[str, ...] = ("reuse", "release", "system")

# glibc's mallopt parameter numbers and defaults (malloc.h, mallopt(3))
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4
# After any mallopt call glibc stops adapting its thresholds, so "restoring" sets them where its
# own adaptation ends up once large blocks have been freed: mmap threshold 32 MiB (its maximum on
# 64-bit), trim threshold twice that. glibc's start values (128 KiB), fixed, would mmap and
# page-fault every later block above 128 KiB.
_ADAPTED_MMAP_THRESHOLD = 32 * 1024 * 1024
_ADAPTED_TRIM_THRESHOLD = 2 * _ADAPTED_MMAP_THRESHOLD
_DEFAULT_MMAP_MAX = 65536
_KEEP_ALL = 2**31 - 1
DEFAULT_THRESHOLD = 1 << 20


def _libc() -> Any | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.malloc_trim.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


def adjustable() -> bool:
    """Whether this process's C library takes these policies (glibc on Linux)."""
    return _libc() is not None


def return_large_blocks_to_os(threshold: int = DEFAULT_THRESHOLD) -> bool:
    """Serve blocks of ``threshold`` bytes or more with mmap, so freeing them unmaps them.

    A fixed threshold also stops glibc from raising it. Returns False where this is not glibc.
    """
    libc = _libc()
    return bool(libc and libc.mallopt(_M_MMAP_THRESHOLD, int(threshold)))


def keep_freed_blocks() -> bool:
    """Serve every block from the heap and never trim it, so freed memory is reused in place."""
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_MAX, 0) and libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_ALL))


def restore_system_policy() -> bool:
    """glibc's thresholds as its own policy leaves them, and the heap's free memory to the OS."""
    libc = _libc()
    if libc is None:
        return False
    ok = all(
        libc.mallopt(param, value)
        for param, value in (
            (_M_MMAP_MAX, _DEFAULT_MMAP_MAX),
            (_M_MMAP_THRESHOLD, _ADAPTED_MMAP_THRESHOLD),
            (_M_TRIM_THRESHOLD, _ADAPTED_TRIM_THRESHOLD),
        )
    )
    libc.malloc_trim(0)
    return ok


def _check(policy: str) -> None:
    if policy not in CPU_MEMORY_POLICIES:
        choices = ", ".join(CPU_MEMORY_POLICIES)
        raise ValueError(f"cpu_memory must be one of {choices}, not {policy!r}")


def apply_policy(policy: str) -> bool:
    """Switch to ``policy`` for this process; returns whether anything was changed."""
    _check(policy)
    if policy == "reuse":
        return keep_freed_blocks()
    if policy == "release":
        return return_large_blocks_to_os()
    return False


@contextmanager
def cpu_memory_policy(policy: str, *, device: str = "cpu") -> Iterator[bool]:
    """Run a block under ``policy``; glibc's policy is restored afterwards if it was changed.

    Yields whether anything was changed. ``device`` is the type of the device the block trains
    on: only ``"cpu"`` applies the policy (an unknown policy is refused either way).
    """
    _check(policy)
    changed = apply_policy(policy) if device == "cpu" else False
    try:
        yield changed
    finally:
        if changed:
            restore_system_policy()
