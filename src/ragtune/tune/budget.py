"""How many training steps fit in ``tune --budget``: the budget bounds the whole run.

Why: ``train``'s budget bounds only ``recipe: auto``'s search, and ``tune`` trains with the fixed
recipe by default, so its ``--budget`` bounded nothing: a run trained every sampled pair however
long that took (12,000 pairs with one mined negative each is ~2 hours on 2 CPU cores at 256
tokens, 1.6 pairs/s in ``benchmarks/label_free.py``'s SciFact run). Here the training stage gets
what the budget has left once the stages before it have run and the stages after it are paid for:

    left      = budget - seconds spent so far in this invocation - reserve
    reserve   = predicted seconds of the encoding after training x ``SAFETY``
    max_steps = min(steps of the full schedule, floor(left / (probe's seconds a step x
                    ``STEP_SAFETY``)))

The texts encoded after training: the gate's dev evaluations (the base model and each mix of
``mix_grid``, :mod:`ragtune.train.finish`), the report's evaluation of the tuned model on the
held-out chunks and queries, and the index of every chunk. The step time comes from
:func:`ragtune.train.probe.measure_throughput` (~15 s) at the data's own lengths; documents are
planned at the speed the round-trip filter measured over every chunk, queries at the probe's
(``tune``'s ``_plan``). A shortened schedule is a shorter linear decay, not a cut one: the
learning rate reaches zero at the last step. The plan is kept in ``stages/plan.json``, so a
resumed run trains to the step count its checkpoints were scheduled for instead of re-planning
from a partly spent clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SAFETY = 1.25
"""Margin on the predicted time of the stages after training (their encoding runs at other batch
shapes than the probe's)."""
STEP_SAFETY = 1.25
"""Margin on the probe's seconds a step: a run's steps also load batches, step the optimizer,
log and evaluate the dev set at the start and end. Measured: on the standard library (2-core
Xeon, 128 tokens, one hard negative a pair) the probe said 4.9 s a step and 82 steps took
502 s (6.1 s each), so that run ended 61 s past its 20-minute budget."""
MIN_STEPS = 10
"""Training never plans fewer steps (unless the data have fewer): below that a run is noise, and
the report says the budget was too small instead."""


@dataclass(frozen=True)
class TrainingPlan:
    """The step count training runs to, and the figures it was planned from (all seconds)."""

    budget: float
    spent: float
    reserve: float
    step: float
    full_steps: int
    max_steps: int

    @property
    def shortened(self) -> bool:
        return self.max_steps < self.full_steps

    @property
    def over_budget(self) -> bool:
        """Even the minimal schedule does not fit: the run will end late, and says so."""
        return self.spent + self.reserve + self.max_steps * self.step > self.budget

    def describe(self) -> str:
        fit = (
            f"{self.max_steps} of {self.full_steps} training steps fit"
            if self.shortened
            else f"all {self.full_steps} training steps fit"
        )
        text = (
            f"{fit} the {_minutes(self.budget)} budget ({_minutes(self.spent)} spent, "
            f"{self.step:.1f} s a step, {_minutes(self.reserve)} kept for the gate, report and "
            "index)"
        )
        if self.over_budget:
            text += f"; the budget is too small: training runs its minimum, {self.max_steps} steps"
        return text

    def to_json(self) -> dict[str, float | int | bool]:
        return {
            "budget_seconds": round(self.budget, 3),
            "spent_seconds": round(self.spent, 3),
            "reserve_seconds": round(self.reserve, 3),
            "step_seconds": round(self.step, 3),
            "full_steps": self.full_steps,
            "max_steps": self.max_steps,
            "shortened": self.shortened,
            "over_budget": self.over_budget,
        }

    @classmethod
    def from_json(cls, row: dict[str, float]) -> TrainingPlan:
        return cls(
            budget=float(row["budget_seconds"]),
            spent=float(row["spent_seconds"]),
            reserve=float(row["reserve_seconds"]),
            step=float(row["step_seconds"]),
            full_steps=int(row["full_steps"]),
            max_steps=int(row["max_steps"]),
        )


def plan_training(
    *,
    budget: float,
    spent: float,
    full_steps: int,
    step_seconds: float,
    encode_seconds: float,
) -> TrainingPlan:
    """The plan for ``full_steps`` steps of ``step_seconds`` each, ``spent`` seconds into a
    ``budget``, with ``encode_seconds`` of predicted encoding after training (before ``SAFETY``)."""
    reserve = encode_seconds * SAFETY
    left = budget - spent - reserve
    fit = math.floor(left / step_seconds) if step_seconds > 0 else full_steps
    steps = max(min(full_steps, MIN_STEPS), min(full_steps, fit))
    return TrainingPlan(budget, spent, reserve, step_seconds, full_steps, steps)


def _minutes(seconds: float) -> str:
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.2g} s"


__all__ = ["MIN_STEPS", "SAFETY", "STEP_SAFETY", "TrainingPlan", "plan_training"]
