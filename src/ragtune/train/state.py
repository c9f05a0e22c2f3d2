"""Where a training run is, what it holds and what it produced: state, run and result types.

:class:`TrainerState` is what a checkpoint saves besides tensors (the step count, the data
position and the dev history); :class:`Run` is everything the loop needs, as
:func:`ragtune.train.prepare.prepare` builds it; :class:`TrainResult` is what
:func:`ragtune.train.train` returns.
:func:`remaining_steps` turns a saved position into the list of optimizer steps still to run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch

    from ragtune.data.schema import EvalSet
    from ragtune.evaluation.forgetting import GeneralCheck
    from ragtune.losses import GradCache
    from ragtune.model.encoder import Encoder
    from ragtune.train.batching import TrainingSet
    from ragtune.train.config import TrainConfig
    from ragtune.train.gate import GateDecision
    from ragtune.train.logs import RunLogger

Improvement = Literal["improved", "not improved", "not measured"]
"""How the published model compares with the base model on the dev set."""
Published = Literal["tuned", "base"]
"""Which model the output folder holds: the tuned (possibly interpolated) one or the base."""


@dataclass
class TrainerState:
    """Where training is: what resume needs besides tensors."""

    step: int = 0  # optimizer steps done
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of `epoch` already consumed
    best_metric: float | None = None
    best_step: int = -1
    evals_without_improvement: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    """``{"step", <metric>}`` per dev evaluation; the base model's entry (step 0) also holds
    ``"per_query"``: ``{query id: score}``, what the significance gate compares against."""
    best_per_query: dict[str, float] | None = None
    """Per-query dev scores of the best evaluation, so the gate need not score it again."""


@dataclass
class TrainResult:
    """Where the model went, how long it took and how it scored against the base model."""

    output: Path
    steps: int
    seconds: float
    pairs_per_second: float
    metric: str
    base_score: float | None
    best_score: float | None
    best_step: int
    improved: bool
    """True only when the tuned model is published because the significance gate said so
    (train/gate.py): its dev gain is above publish_min_gain with p below publish_p."""
    history: list[dict[str, Any]] = field(default_factory=list)
    precision: str = "fp32"
    """What the run trained in ("fp32" or "bfloat16 autocast"): what precision="auto" became."""
    improvement: Improvement = "not measured"
    """"improved" / "not improved" on the dev set; "not measured" when no dev set scored both
    models (``improved`` is then False: no claim is made)."""
    published: Published = "tuned"
    """What the output folder holds (the base model when the gate refused the tuned one)."""
    published_score: float | None = None
    """Dev score of the published model (the chosen interpolation, or the base model)."""
    mix_weight: float | None = None
    """The chosen a of theta = a * tuned + (1 - a) * base (None: no interpolation ran)."""
    mix_scores: list[tuple[float, float]] = field(default_factory=list)
    """``[(a, dev score)]`` of every weight tried, in grid order."""
    gate: GateDecision | None = None
    """The significance gate's decision and the dev evidence (None: not run yet)."""
    general_checks: list[GeneralCheck] = field(default_factory=list)
    """The general-domain checks, base before vs published after (never used to choose)."""

    def to_dict(self) -> dict[str, Any]:
        """``{field name: value}`` with nested results as plain dicts (for JSON)."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


@dataclass
class Run:
    """Everything the loop needs, built once by :func:`ragtune.train.prepare.prepare`."""

    cfg: TrainConfig
    rank: int
    world: int
    encoder: Encoder
    model: torch.nn.Module  # the encoder, wrapped in DDP when several processes train
    autocast: torch.dtype | None
    data: TrainingSet
    dev: EvalSet | None
    loss_fn: torch.nn.Module
    grad_cache: GradCache | None
    batches: list[list[list[int]]]  # epoch -> batch -> example indices of the global batch
    total_steps: int
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    identity: dict[str, Any]  # what a resumed run must share with this one (checkpoint.py)
    state: TrainerState
    logger: RunLogger

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def global_batch(self) -> int:
        return self.cfg.batch_size * self.world

    @property
    def out(self) -> Path:
        return Path(self.cfg.output)

    @property
    def run_dir(self) -> Path:
        return self.out / "run"

    @property
    def checkpoints(self) -> Path:
        return self.run_dir / "checkpoints"


def improvement(base_score: float | None, best_score: float | None) -> Improvement:
    """Compare the best dev score with the base model's; equal scores are no improvement."""
    if base_score is None or best_score is None:
        return "not measured"
    return "improved" if best_score > base_score else "not improved"


def _plain(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def remaining_steps(
    state: TrainerState, batches_per_epoch: Sequence[int], accumulation: int, total_steps: int
) -> list[tuple[int, int]]:
    """``(epoch, first batch)`` of every optimizer step still to run, from the saved position.

    Each step takes up to ``accumulation`` batches of its epoch (fewer at an epoch's end). A
    position past its epoch's end (a forced resume onto fewer batches) moves to the next epoch.
    """
    plan: list[tuple[int, int]] = []
    step, epoch, start = state.step, state.epoch, state.batch_in_epoch
    while step < total_steps and epoch < len(batches_per_epoch):
        if start >= batches_per_epoch[epoch]:
            epoch, start = epoch + 1, 0
            continue
        plan.append((epoch, start))
        step, start = step + 1, start + accumulation
    return plan
