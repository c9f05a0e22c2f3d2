"""What ``precision="auto"`` encodes in on a CPU: bf16 only after the model's own texts agree.

Rule, per model and machine:

1. A CPU without native bf16 (:func:`~ragtune.model.cpu.bf16.bf16_kind` is ``"none"``, e.g.
   AVX2 only) encodes in fp32 with no check at all: emulated bf16 is 5-14x slower there, and the
   check itself would cost time.
2. On a CPU with AMX or AVX512-BF16, the first call that encodes at least :data:`CHECK_FROM`
   texts encodes its first :data:`SAMPLE_TEXTS` texts in fp32 and in bf16 autocast. bf16 is taken
   when every vector agrees with its fp32 twin (cosine >= :data:`MIN_COSINE`) *and* bf16 was
   measured at least :data:`MIN_SPEEDUP` times faster; otherwise fp32.
3. The decision is cached in memory per (model fingerprint, machine), and per encoder object
   while its weights are unchanged (training invalidates it). Calls smaller than
   :data:`CHECK_FROM` (a query, a serve request) use a cached decision or fp32: never the check.

Why check instead of trusting the flags: bf16 keeps 8 bits of mantissa, so how far a model's
vectors move is the model's property, not the CPU's (all-MiniLM-L6-v2 on SciFact abstracts: min
cosine 0.99997, max abs difference 1.4e-3); and whether bf16 is faster depends on the kernels this
PyTorch build has for this CPU (bf16 autocast over fp32: 1.48x on a 2-core AVX512-BF16 EPYC,
2.15x on an AMX Xeon; ragtune's fused bf16 forward 1.39-1.60x fp32 on the EPYC, shared; a loaded
machine can make either look slower). Why :data:`CHECK_FROM`: the check encodes about 2.3x
:data:`SAMPLE_TEXTS` texts (two precisions and a warm-up), which a 1.5x faster bf16 earns back
only after about 400 texts.

The sample is timed ABBA (fp32, bf16 on the first half; bf16, fp32 on the second), so a change of
load on a shared machine falls on both precisions.
"""

from __future__ import annotations

import platform
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from ragtune.model.cpu.bf16 import Bf16Kind, bf16_kind

EncodePrecision = Literal["fp32", "bf16"]
SAMPLE_TEXTS = 64
MIN_COSINE = 0.9999
MIN_SPEEDUP = 1.05
CHECK_FROM = 512
_WARMUP_TEXTS = 8

Encode = Callable[[list[str], EncodePrecision], np.ndarray]
"""(texts, precision) -> unit-normalised vectors (N, D)."""


@dataclass(frozen=True)
class PrecisionCheck:
    """What ``precision="auto"`` chose for one model on this CPU, and why."""

    precision: EncodePrecision
    reason: str
    cpu: Bf16Kind
    min_cosine: float | None = None
    """Smallest cosine between a sample text's fp32 and bf16 vectors (None: not checked)."""
    speedup: float | None = None
    """fp32 seconds / bf16 seconds on the sample (None: not checked)."""
    sample: int = 0
    """How many texts were checked."""
    cached: bool = True
    """False for an answer that is not remembered (a call too small to check)."""


_by_model: dict[tuple[str, str], PrecisionCheck] = {}
_by_encoder: weakref.WeakKeyDictionary[Any, tuple[tuple[tuple[int, int], ...], PrecisionCheck]]
_by_encoder = weakref.WeakKeyDictionary()


def machine_key() -> str:
    """What makes a decision this machine's: CPU model, bf16 kind, torch build and threads."""
    model = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next(
                (ln.partition(":")[2].strip() for ln in f if ln.startswith("model name")), model
            )
    except OSError:
        pass
    return f"{model}|{bf16_kind()}|torch {torch.__version__}|{torch.get_num_threads()} threads"


def clear_precision_cache() -> None:
    """Forget every decision (tests; a process that changed its thread count)."""
    _by_model.clear()
    _by_encoder.clear()


def check_bf16(
    encode: Encode,
    texts: Sequence[str],
    cpu: Bf16Kind,
    *,
    clock: Callable[[], float] = time.perf_counter,
) -> PrecisionCheck:
    """Encode ``texts[:SAMPLE_TEXTS]`` in both precisions and apply the rule of this module."""
    sample = list(texts[:SAMPLE_TEXTS])
    if len(sample) < 2:
        return PrecisionCheck("fp32", "too few texts to check bf16 on", cpu, cached=False)
    warm = sample[:_WARMUP_TEXTS]
    encode(warm, "bf16")  # oneDNN builds its bf16 kernels on the first call
    encode(warm, "fp32")
    half = len(sample) // 2
    seconds = {"fp32": 0.0, "bf16": 0.0}
    vectors: dict[str, list[np.ndarray]] = {"fp32": [], "bf16": []}
    order: tuple[EncodePrecision, ...]
    for part, order in ((sample[:half], ("fp32", "bf16")), (sample[half:], ("bf16", "fp32"))):
        for which in order:
            start = clock()
            vectors[which].append(np.asarray(encode(part, which), dtype=np.float32))
            seconds[which] += clock() - start
    ref, low = np.concatenate(vectors["fp32"]), np.concatenate(vectors["bf16"])  # (S, D) each
    min_cos = float(_cosines(ref, low).min())
    speedup = seconds["fp32"] / max(seconds["bf16"], 1e-9)
    precision: EncodePrecision = "fp32"
    if min_cos < MIN_COSINE:
        why = f"bf16 vectors differ from fp32 (min cosine {min_cos:.6f} < {MIN_COSINE})"
    elif speedup < MIN_SPEEDUP:
        why = f"bf16 was not faster here ({speedup:.2f}x fp32; needs {MIN_SPEEDUP}x)"
    else:
        precision = "bf16"
        why = f"bf16 agrees (min cosine {min_cos:.6f}) and ran {speedup:.2f}x faster"
    return PrecisionCheck(precision, why, cpu, min_cos, speedup, len(sample))


def choose_encode_precision(
    encoder: Any, texts: Sequence[str], *, batch_size: int = 32, force: bool = False
) -> PrecisionCheck:
    """The precision ``encoder.encode(texts, precision="auto")`` runs in on this CPU.

    ``encoder`` is a CPU :class:`~ragtune.model.Encoder`; ``texts`` are the call's texts, prompt
    included. See the module docstring for the rule and the caches. ``force`` runs the check
    even for fewer than :data:`CHECK_FROM` texts (a benchmark, or a caller that knows more texts
    follow); its decision is cached like any other.
    """
    cpu = bf16_kind()
    if cpu == "none":
        return PrecisionCheck("fp32", "this CPU has no native bf16", cpu)
    version = _weights_version(encoder)
    known = _by_encoder.get(encoder)
    if known is not None and known[0] == version:
        return known[1]
    if len(texts) < CHECK_FROM and not force:
        why = f"not checked yet (a call needs {CHECK_FROM}+ texts to run the bf16 check)"
        return PrecisionCheck("fp32", why, cpu, cached=False)
    key = (encoder.fingerprint(), machine_key())
    check = _by_model.get(key)
    if check is None:

        def encode(part: list[str], precision: EncodePrecision) -> np.ndarray:
            return np.asarray(
                encoder.encode(
                    part,
                    batch_size=batch_size,
                    normalize=True,
                    precision=precision,
                    show_progress=False,
                )
            )

        check = check_bf16(encode, texts, cpu)
        if check.cached:
            _by_model[key] = check
    if check.cached:
        _by_encoder[encoder] = (version, check)
    return check


def last_check(encoder: Any) -> PrecisionCheck | None:
    """The decision remembered for ``encoder`` with its current weights, if any."""
    known = _by_encoder.get(encoder)
    return known[1] if known is not None and known[0] == _weights_version(encoder) else None


def _weights_version(encoder: Any) -> tuple[tuple[int, int], ...]:
    """Changes when any weight is replaced or updated in place (an optimizer step, a load)."""
    return tuple((p.data_ptr(), p._version) for p in encoder.backbone.parameters())


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    na = np.linalg.norm(a, axis=1).clip(min=1e-12)
    nb = np.linalg.norm(b, axis=1).clip(min=1e-12)
    return (a * b).sum(axis=1) / (na * nb)  # (S,)
