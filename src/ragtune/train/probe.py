"""How fast this machine trains on these data: the throughput ``recipe: auto`` plans with."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import torch

from ragtune.data.schema import Example
from ragtune.model.encoder import Encoder
from ragtune.train.config import TrainConfig
from ragtune.train.recipe import Throughput

PROBE_PAIRS = 32
"""Pairs per probe step: one CPU GradCache mini-batch, the shape most real steps run at."""
PROBE_STEPS = 4
"""Probe steps; the first (allocations, kernel choice) is not timed, the median of the rest is."""


def measure_throughput(
    encoder: Encoder,
    examples: list[Any],
    cfg: TrainConfig,
    *,
    pairs: int = PROBE_PAIRS,
    steps: int = PROBE_STEPS,
    max_seconds: float = float("inf"),
    clock: Callable[[], float] = time.perf_counter,
) -> Throughput:
    """Training pairs and encoded texts per second on this machine, at the data's lengths.

    ``steps`` forward+backward passes of ``pairs`` (query, positive) pairs on a copy of the model
    with the training fast paths and precision a run uses; the first is a warm-up and not timed,
    and the median of the others counts (one step slowed by another process does not move it).
    Then one no-grad forward of the same texts. Once the probe has spent ``max_seconds``
    (``train_auto`` gives it 3% of the budget) it stops after the step it is in: on a slow or
    loaded machine one timed step is all it can afford, and the re-plan corrects the rest.
    ~15 s for MiniLM on two quiet CPU cores; the copy is discarded, no weight changes.

    Why several steps: a single timed step right after the warm-up measured SciFact at about
    half its real speed on a loaded machine and planned 1 epoch where 5 fit. The search
    re-plans from real steps after its first rung anyway
    (:func:`ragtune.train.recipe.replan_epochs`).
    """
    from ragtune.model.cpu import enable_cpu_fast_paths
    from ragtune.model.cpu.train_precision import pair_step, pair_tokens
    from ragtune.model.precision import training_autocast
    from ragtune.train.prepare import apply_run_dropout

    probe = copy.deepcopy(encoder)
    apply_run_dropout(probe, cfg)  # the dropout the run trains with
    enable_cpu_fast_paths(probe, training=True, fused=False)
    rows = examples[:: max(1, len(examples) // pairs)][:pairs]
    docs = [r.positive if isinstance(r, Example) else r.document for r in rows]
    queries = [r.query for r in rows]
    dtype, _ = training_autocast(cfg.precision, probe, queries, docs)
    tokens = pair_tokens(probe, queries, docs)
    step = pair_step(probe, tokens)

    def train_step() -> float:
        t0 = clock()
        step(dtype)
        return clock() - t0

    probe.train()
    spent = train_step()  # the warm-up, not timed
    timed: list[float] = []
    while len(timed) < max(1, steps - 1) and (not timed or spent < max_seconds):
        timed.append(train_step())
        spent += timed[-1]
    train_s = sorted(timed)[len(timed) // 2]
    probe.eval()
    with torch.no_grad():
        t0 = clock()
        for t in tokens:
            probe(t)
        encode_s = clock() - t0
    return Throughput(len(rows) / max(train_s, 1e-6), 2 * len(rows) / max(encode_s, 1e-6))
