"""What ``precision="auto"`` trains in on a CPU: bf16 only where a training step ran faster in it.

Rule, per model architecture and machine:

1. A CPU without native bf16 (:func:`~ragtune.model.cpu.bf16.bf16_kind` is ``"none"``) trains in
   fp32 with no check: emulated bf16 is 5-14x slower there.
2. On a CPU with AMX or AVX512-BF16, :func:`choose_train_precision` times a forward and backward
   pass of :data:`SAMPLE_PAIRS` of the run's own (query, document) pairs in fp32 and in bf16
   autocast, after one warm-up pass of each, in the order fp32, bf16, bf16, fp32 (a change of load
   falls on both). bf16 is taken only when it ran at least :data:`MIN_SPEEDUP` times faster.
3. The decision is cached in memory per (machine, architecture, dropout, trainable parameters).
   A resumed run keeps the precision its run files recorded, and several processes take rank 0's
   decision (:mod:`ragtune.train.prepare`), so one run never mixes precisions.

Why measure instead of trusting the flag: the flag says the CPU has bf16 dot products, not that this
PyTorch build's kernels make a training step faster with them. ``benchmarks/train_throughput.py
../shared/data/scifact --systems ragtune --dropout none --max-length 128 --steps 6``, run twice
per precision on a 2-core Intel Xeon with avx512_bf16 and no AMX: fp32 16.4 and 15.4 pairs/s,
bf16 autocast 10.2 and 10.7 (0.65x). There the flag alone made every run 1.5x slower. On a 2-core
AVX512-BF16 EPYC a MiniLM step ran ~1.7x faster in bf16, and AMX runs bf16 GEMMs 5-6x fp32
(BENCHMARKS.md): the check keeps bf16 there. It costs six passes of 8 pairs (3.0 s for MiniLM
at 128 tokens on two cores), once per process and architecture.

The check does not change the model: no optimizer step runs, gradients are restored as they were,
and the random state (dropout masks) is forked, so a run draws the same masks with or without it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ragtune.model.cpu.bf16 import Bf16Kind, bf16_kind
from ragtune.model.cpu.encode_precision import EncodePrecision, PrecisionCheck, machine_key

SAMPLE_PAIRS = 8
MIN_SPEEDUP = 1.05
"""bf16 must be at least this much faster: below it the two are within a step's timing noise."""

Step = Callable[[EncodePrecision], None]
"""One forward and backward pass of the sample in the given precision."""


_decisions: dict[tuple[Any, ...], PrecisionCheck] = {}


def clear_train_precision_cache() -> None:
    """Forget every decision (tests; a process that changed its thread count)."""
    _decisions.clear()


def check_train_bf16(
    step: Step, cpu: Bf16Kind, pairs: int, *, clock: Callable[[], float] = time.perf_counter
) -> PrecisionCheck:
    """Time ``step`` in both precisions (see the module docstring) and apply the rule."""
    step("bf16")  # oneDNN builds its bf16 kernels on the first call
    step("fp32")
    seconds = {"fp32": 0.0, "bf16": 0.0}
    order: tuple[EncodePrecision, ...] = ("fp32", "bf16", "bf16", "fp32")
    for which in order:
        start = clock()
        step(which)
        seconds[which] += clock() - start
    speedup = seconds["fp32"] / max(seconds["bf16"], 1e-9)
    if speedup < MIN_SPEEDUP:
        why = f"a bf16 training step was not faster here ({speedup:.2f}x fp32)"
        return PrecisionCheck("fp32", why, cpu, speedup=speedup, sample=pairs)
    why = f"a bf16 training step ran {speedup:.2f}x faster than fp32"
    return PrecisionCheck("bf16", why, cpu, speedup=speedup, sample=pairs)


def choose_train_precision(
    encoder: Any,
    queries: Sequence[str],
    documents: Sequence[str],
    *,
    clock: Callable[[], float] = time.perf_counter,
) -> PrecisionCheck:
    """The precision a CPU run with ``precision="auto"`` trains ``encoder`` in, as the
    :class:`PrecisionCheck` encoding also answers with (``sample``: pairs per timed pass).

    ``queries`` and ``documents`` are the run's own texts (the first :data:`SAMPLE_PAIRS` pairs
    are timed, at the lengths the run trains at). Call it after the run's dropout, adapter and
    CPU fast paths are set on ``encoder``: they change what a step costs.
    """
    cpu = bf16_kind()
    if cpu == "none":
        return PrecisionCheck("fp32", "this CPU has no native bf16", cpu)
    n = min(SAMPLE_PAIRS, len(queries), len(documents))
    if n < 2:
        return PrecisionCheck("fp32", "too few pairs to time a bf16 step", cpu, cached=False)
    key = (machine_key(), *_architecture(encoder))
    known = _decisions.get(key)
    if known is not None:
        return known
    run = pair_step(encoder, pair_tokens(encoder, queries[:n], documents[:n]))

    def step(which: EncodePrecision) -> None:
        run(torch.bfloat16 if which == "bf16" else None)

    params = [p for p in encoder.parameters() if p.requires_grad]
    saved = [p.grad for p in params]
    was_training = encoder.training
    encoder.train()
    try:
        with torch.random.fork_rng(devices=[]):  # the check's dropout masks are not the run's
            check = check_train_bf16(step, cpu, n, clock=clock)
    finally:
        encoder.train(was_training)
        for p, grad in zip(params, saved, strict=True):
            p.grad = grad
    _decisions[key] = check
    return check


def pair_tokens(
    encoder: Any, queries: Sequence[str], documents: Sequence[str]
) -> list[dict[str, torch.Tensor]]:
    """The queries and the documents tokenized as a run tokenizes them, prompts included."""
    spec = encoder.config
    return [
        {k: v.to(encoder.device) for k, v in encoder.tokenize(list(texts), prompt).items()}
        for texts, prompt in ((queries, spec.query_prompt), (documents, spec.document_prompt))
    ]


def pair_step(
    encoder: Any, tokens: list[dict[str, torch.Tensor]]
) -> Callable[[torch.dtype | None], None]:
    """One in-batch InfoNCE forward and backward pass of ``tokens`` (:func:`pair_tokens`) in
    autocast ``dtype`` (None: fp32), gradients cleared after: the step this check and the
    throughput probe (:mod:`ragtune.train.probe`) time. It never updates a weight."""
    labels = torch.arange(tokens[0]["input_ids"].shape[0], device=encoder.device)

    def step(dtype: torch.dtype | None) -> None:
        with torch.autocast(encoder.device.type, dtype=dtype or torch.float32, enabled=bool(dtype)):
            q, d = (encoder(t).float() for t in tokens)  # (pairs, D) each
        torch.nn.functional.cross_entropy(20 * q @ d.T, labels).backward()
        for p in encoder.parameters():
            p.grad = None

    return step


def _architecture(encoder: Any) -> tuple[Any, ...]:
    """What a step's cost depends on besides the machine: the backbone, its dropout, what trains."""
    backbone = encoder.backbone
    dropout = tuple(
        float(p)
        for module in backbone.modules()
        for p in (getattr(module, "p", None), getattr(module, "dropout_prob", None))
        if isinstance(p, float)
    )
    trainable = sum(p.numel() for p in encoder.parameters() if p.requires_grad)
    return (
        type(backbone).__name__,
        backbone.config.to_json_string(),
        dropout,
        trainable,
        encoder.config.max_seq_length,
    )
