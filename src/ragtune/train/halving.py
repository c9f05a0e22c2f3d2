"""Successive halving over training candidates, on dev, within a time budget.

Jamieson & Talwalkar, "Non-stochastic Best Arm Identification and Hyperparameter Optimization"
(AISTATS 2016); Li et al., "Hyperband" (JMLR 2018). :func:`successive_halving` knows nothing of
models: a :class:`Runner` starts, trains, scores and lets go of candidates
(:class:`ragtune.train.candidate_runs.TrainingRunner` with real runs, a fake in the tests), and
a clock tells the time, so the budget logic is tested with a fake clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from ragtune.train.recipe import Candidate, SearchPlan, survivors


@dataclass
class Trial:
    """One candidate's record: what it is, how it scored at each rung, how long it trained."""

    candidate: Candidate
    planned_steps: int = 0
    steps: int = 0
    seconds: float = 0.0
    """Training time (steps and checkpoints), without the dev evaluations."""
    eval_seconds: float = 0.0
    scores: list[dict[str, Any]] = field(default_factory=list)
    """``{"rung": fraction, "step": n, "dev": score}`` per rung reached."""
    status: str = "planned"
    """planned, training, stopped at rung N (halving), stopped (budget), finished, chosen."""
    replanned: str = ""
    """``"1 -> 5 epochs after rung 1"`` when the re-plan changed its length."""

    @property
    def last_score(self) -> float:
        return float(self.scores[-1]["dev"]) if self.scores else float("-inf")

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self.candidate),
            "planned_steps": self.planned_steps,
            "steps": self.steps,
            "train_seconds": round(self.seconds, 1),
            "eval_seconds": round(self.eval_seconds, 1),
            "dev_scores": self.scores,
            "status": self.status,
            "replanned": self.replanned,
        }


class Runner(Protocol):
    """What the search needs from training: start, train up to a step, score, let go."""

    def start(self, candidate: Candidate) -> int:
        """Set the candidate up; its planned number of optimizer steps."""
        ...

    def advance(self, candidate: Candidate, step: int) -> int:
        """Train the candidate up to optimizer step ``step``; the step it reached."""
        ...

    def extend(self, candidate: Candidate, planned: Candidate) -> int:
        """Re-plan a trained candidate as ``planned`` (another length), continuing from the step
        it reached; its new planned number of steps."""
        ...

    def score(self, candidate: Candidate) -> float:
        """Its dev score now."""
        ...

    def release(self, candidate: Candidate) -> None: ...


Replan = Callable[[list[Trial], list[Trial], int, float], Mapping[str, Candidate]]
"""``(all trials, survivors, rung index, seconds left) -> {name: re-planned candidate}``."""


def successive_halving(
    plan: SearchPlan,
    runner: Runner,
    budget_seconds: float,
    *,
    step_seconds: Callable[[Candidate], float] = lambda c: 0.0,
    clock: Callable[[], float] = time.perf_counter,
    replan: Replan | None = None,
) -> tuple[Trial | None, list[Trial]]:
    """Run ``plan``: the winning trial (None when nothing trained) and every trial.

    At each rung the alive candidates train to that fraction of their planned steps and are scored
    on dev; the best :func:`~ragtune.train.recipe.survivors` continue. Before each training leg
    its time is estimated from the candidate's own measured seconds per step (before its first
    leg: ``step_seconds``); a leg that would end past the budget is not started once some
    candidate has a dev score to fall back on, and the search ends at that rung. The best
    candidate of the last rung reached wins.

    After the first rung, ``replan`` (when given) may change the survivors' planned length from
    what their real steps took (:func:`ragtune.train.recipe.replan_epochs`); each changed one is
    continued through ``runner.extend`` and the later rungs are fractions of its new length.
    """
    started = clock()
    trials = [Trial(c) for c in plan.candidates]
    keep = survivors(len(trials))
    alive, winner = list(trials), None
    for rung, fraction in enumerate(plan.rungs):
        scored: list[Trial] = []
        out_of_time = False
        for trial in alive:
            if not trial.planned_steps:
                trial.planned_steps = runner.start(trial.candidate)
            target = min(
                trial.planned_steps, max(trial.steps + 1, round(fraction * trial.planned_steps))
            )
            per_step = trial.seconds / trial.steps if trial.steps else step_seconds(trial.candidate)
            evals = trial.eval_seconds / len(trial.scores) if trial.scores else 0.0
            needed = (target - trial.steps) * per_step + evals
            has_fallback = bool(scored) or winner is not None
            if has_fallback and clock() - started + needed > budget_seconds:
                out_of_time = True
                trial.status = "stopped (budget)"
                continue
            t0 = clock()
            trial.steps = runner.advance(trial.candidate, target)
            trial.seconds += clock() - t0
            t0 = clock()
            score = runner.score(trial.candidate)
            trial.eval_seconds += clock() - t0
            trial.scores.append({"rung": fraction, "step": trial.steps, "dev": score})
            scored.append(trial)
        if scored:
            scored.sort(key=lambda t: t.last_score, reverse=True)
            winner = scored[0]
        n_next = 0 if out_of_time or rung + 1 >= len(keep) else keep[rung + 1]
        for trial in alive:
            if trial is winner or trial in scored[:n_next]:
                continue
            if trial.status != "stopped (budget)":
                trial.status = f"stopped at rung {rung + 1}"
            runner.release(trial.candidate)
        alive = scored[:n_next]
        if not alive:
            break
        if rung == 0 and replan is not None:
            changes = replan(trials, alive, rung, budget_seconds - (clock() - started))
            for trial in alive:
                planned = changes.get(trial.candidate.name)
                if planned is None or planned == trial.candidate:
                    continue
                trial.planned_steps = runner.extend(trial.candidate, planned)
                trial.replanned = (
                    f"{trial.candidate.epochs} -> {planned.epochs} epochs after rung {rung + 1}"
                )
                trial.candidate = planned
    if winner is not None:
        done = winner.steps >= winner.planned_steps
        winner.status = "chosen" if done else "chosen (budget)"
    return winner, trials
