"""The candidates of ``recipe: auto`` as plain training runs, rung by rung.

Each candidate is a run (:func:`ragtune.train.prepare.prepare`) in ``run/candidates/<name>``,
driven through :func:`ragtune.train.loop.run_loop` with ``finish=False``: its schedule is built
for the candidate's full length, and a rung only moves the point where the loop stops, so a
survivor continues exactly where it stopped. Survivors stay in memory between rungs (a MiniLM
run with its optimizer is ~0.4 GB); eliminated ones are freed and their folders removed. A
re-planned candidate resumes from the checkpoint its rung ended with, with a schedule for its
new length (``epochs`` may change on resume: train/checkpoint.py).
"""

from __future__ import annotations

import copy
import gc
import shutil
from pathlib import Path
from typing import Any

from ragtune.data.schema import EvalSet, Example
from ragtune.errors import RagtuneError
from ragtune.model.encoder import Encoder
from ragtune.train.config import TrainConfig
from ragtune.train.logs import RunLogger
from ragtune.train.recipe import Candidate
from ragtune.train.state import Run


class CandidateLogger(RunLogger):
    """A candidate's log: written like a run's, without a curves plot at every rung's end
    (matplotlib: ~1 s each); :func:`_finish` plots the winner's log once."""

    def finish(self, result: Any) -> None:
        return None


class TrainingRunner:
    """Candidates as plain training runs in ``<output>/run/candidates/<name>`` (see module doc)."""

    def __init__(
        self,
        cfg: TrainConfig,
        examples: list[Any],
        dev: EvalSet | None,
        base: Encoder,
        work: Path,
        mined: list[Example] | None = None,
    ) -> None:
        self.cfg, self.examples, self.dev, self.base, self.work = cfg, examples, dev, base, work
        self.mined = mined
        """The training examples with mined hard negatives (the mined candidate's data)."""
        self.runs: dict[str, Run] = {}
        self.folders: dict[str, Path] = {}
        self.per_query: dict[str, dict[str, float]] = {}
        """Each candidate's per-query dev scores at its last evaluation (the gate's input)."""

    def folder(self, candidate: Candidate) -> Path:
        return self.folders.get(candidate.name, self.work / candidate.name)

    def data_of(self, candidate: Candidate) -> list[Any]:
        if candidate.hard_negatives:
            if self.mined is None:
                raise RagtuneError(f"recipe auto: {candidate.name} needs mined negatives")
            return self.mined
        return self.examples

    def _prepare(self, candidate: Candidate, folder: Path, resume: bool) -> int:
        from ragtune.train.prepare import prepare

        cfg = candidate.config(
            self.cfg,
            output=str(folder),
            eval_data="",
            resume=resume,
            eval_steps=0,
            early_stopping_patience=0,
            keep_checkpoints=1,
            save_steps=10**9,
            general_checks=(),
            tensorboard=False,
        )
        run = prepare(
            cfg, examples=self.data_of(candidate), dev=None, encoder=copy.deepcopy(self.base)
        )
        run.logger.__class__ = CandidateLogger  # no curves per rung: the winner's are drawn once
        self.runs[candidate.name], self.folders[candidate.name] = run, folder
        return int(run.total_steps)

    def start(self, candidate: Candidate) -> int:
        return self._prepare(candidate, self.work / candidate.name, resume=False)

    def extend(self, candidate: Candidate, planned: Candidate) -> int:
        # The rung ended with a checkpoint (the loop saves when it stops); resuming it with the
        # new length rebuilds the schedule for that length at the step reached.
        folder = self.folders.pop(candidate.name)
        self.runs.pop(candidate.name)
        gc.collect()
        if candidate.name in self.per_query:
            self.per_query[planned.name] = self.per_query.pop(candidate.name)
        steps = self._prepare(planned, folder, resume=True)
        # The checkpoint's optimizer holds the old schedule's rate for the next step; the new
        # schedule's rate at the step reached takes its place (LambdaLR keeps the new lambda).
        scheduler = self.runs[planned.name].scheduler
        for group, base, factor in zip(
            scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=True
        ):
            group["lr"] = base * factor(scheduler.last_epoch)
        return steps

    def advance(self, candidate: Candidate, step: int) -> int:
        from ragtune.train.loop import run_loop

        run = self.runs[candidate.name]
        planned = run.total_steps
        run.total_steps = step  # the schedule was built for `planned` steps; only the stop moves
        try:
            run_loop(run, finish=False)
        finally:
            run.total_steps = planned
        return int(run.state.step)

    def score(self, candidate: Candidate) -> float:
        if self.dev is None:
            return float("nan")
        mean, self.per_query[candidate.name] = dev_scores(
            self.runs[candidate.name].encoder, self.dev, self.cfg
        )
        return mean

    def release(self, candidate: Candidate) -> None:
        folder = self.folder(candidate)
        self.runs.pop(candidate.name, None)
        gc.collect()
        shutil.rmtree(folder, ignore_errors=True)  # only what the search wrote


def dev_scores(encoder: Encoder, dev: EvalSet, cfg: TrainConfig) -> tuple[float, dict[str, float]]:
    """The dev metric's mean and per-query scores."""
    from ragtune.evaluation.evaluate import evaluate_encoder
    from ragtune.evaluation.significance import scores_of

    result = evaluate_encoder(encoder, dev, batch_size=cfg.eval_batch_size, show_progress=False)
    metrics = {k.lower(): v for k, v in result.metrics.items()}
    return float(metrics[cfg.eval_metric.lower()]), scores_of(result.per_query, cfg.eval_metric)
