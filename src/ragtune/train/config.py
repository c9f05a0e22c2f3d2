"""The training run's configuration: one dataclass, saved resolved with the model.

Every field is checked when the config is built (``__post_init__``), so a bad value fails with one
line before a model loads or a folder is created. Where 0 or None has a meaning, the field's
docstring says it and the check allows it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import ClassVar, Literal, get_args

from ragtune.config import ConfigValueError, check_choice, check_int, check_number, check_text
from ragtune.losses.config import LossConfig
from ragtune.model.cpu.memory import CpuMemory
from ragtune.model.pooling import POOLING_MODES, PoolingMode
from ragtune.model.precision import Precision
from ragtune.model.resolve import DEFAULT_MODEL
from ragtune.train.schedule import ScheduleName

RecipeName = Literal["auto", "fixed"]
AdapterName = Literal["none", "lora"]
_BUDGET = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$", re.IGNORECASE)


def parse_budget(text: str) -> float:
    """Seconds in a time budget: ``"30m"``, ``"1.5h"``, ``"90s"`` or a bare number of seconds."""
    match = _BUDGET.match(str(text))
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a time budget; give e.g. 30m, 1h or 900s")
    unit = (match.group(2) or "s").lower()
    return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[unit]


MAX_SEED = 2**32 - 1
"""Seeds reach numpy too, whose generators take 0 .. 2**32 - 1."""
COLUMN_FIELDS = (
    "query_column",
    "positive_column",
    "negative_column",
    "document_column",
    "label_column",
)


@dataclass
class TrainConfig:
    """Everything `ragtune train` needs; build it with ``load_config(TrainConfig, ...)``."""

    SECTION: ClassVar[str] = "train"
    """The prefix of this config's keys in error messages (``train.batch_size``)."""

    # --- what to train and on what
    model: str = DEFAULT_MODEL
    data: str = ""
    """Training data: a JSONL/CSV/TSV/Parquet file, or a BEIR folder (its ``train_split``)."""
    train_split: str = "train"
    eval_data: str = ""
    """A BEIR folder evaluated with nDCG@10 while training; empty: a dev split is carved out."""
    eval_split: str = "dev"
    dev_fraction: float = 0.05
    """Share of training queries held out as dev set when no eval_data is given (max 500)."""
    output: str = "runs/model"
    query_column: str = "query"
    positive_column: str = "positive"
    negative_column: str = "negative"
    document_column: str = "document"
    label_column: str = "label"
    skip_invalid: bool = False

    # --- how the recipe is chosen (issue 17)
    recipe: RecipeName = "auto"
    """auto (the default): choose batch size, learning rate, epochs and mined hard negatives by a
    small dev-driven search within ``budget`` (train/auto.py); settings you give stay fixed, and
    data too small to search train as fixed would. fixed: train exactly the settings given."""
    budget: str = "30m"
    """Wall-time budget of ``recipe: auto``'s search (``30m``, ``1h``, ``900s``)."""
    group_by_query: bool = True
    """An epoch is a pass over queries (one positive per query per epoch, every positive used
    over the epochs), and each query's known positives (all positives of its group, by text
    identity) are masked wherever they would be its negatives, in-batch or hard. False: epochs
    over pairs, and only copies of a text are masked. Why: with ~40 positives per query a batch
    is full of other queries' relevant documents used as negatives (train/query_groups.py)."""

    # --- publishing: the significance gate and the forgetting guard (issue 17)
    publish_min_gain: float = 0.0
    """Publish the tuned model only if its mean dev gain over the base model exceeds this."""
    publish_p: float = 0.05
    """... and a paired test on the dev queries gives p below this (1: no test)."""
    mix_grid: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    """Weights a of theta = a * tuned + (1 - a) * base tried on dev after training ((1.0,): off)."""
    general_checks: tuple[str, ...] = ()
    """BEIR folders (``path`` or ``path:split``, default split test) scored before and after
    tuning, to show what the tuning cost elsewhere; never used to choose anything."""

    # --- parameter-efficient training (issue 21)
    adapter: AdapterName = "none"
    """lora: train LoRA adapters (peft) instead of every weight; published merged."""
    lora_rank: int = 16
    lora_alpha: float = 32.0
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = ("query", "key", "value", "dense")
    """Module-name suffixes that get adapters (BERT-style names by default)."""

    # --- model recipe (None keeps what the model folder says)
    pooling: PoolingMode | None = None
    normalize: bool | None = None
    layer: int | None = None
    """Pool from this hidden layer (1 = the first transformer layer)."""
    max_seq_length: int | None = None
    query_prompt: str | None = None
    document_prompt: str | None = None
    attention_dropout: float | None = None
    """Attention-probability dropout; None (the default) keeps the model's (0.1 for MiniLM). On CPU
    it runs through ragtune's math attention with cheap masks (model/cpu/attention.py); 0 lets
    PyTorch use fused attention instead: a MiniLM bf16 step ~1.2x faster (BENCHMARKS.md 1)."""
    hidden_dropout: float | None = None
    """Every other dropout; None (the default) keeps the model's. 0 with attention_dropout 0 turns
    dropout off: a step ~1.3x faster on CPU, at the same one-epoch SciFact quality within seed
    noise (BENCHMARKS.md 1b). The model's dropout stays the default because it is the recipe the
    model was trained with and the one sentence-transformers users compare against."""

    # --- the loss
    loss: LossConfig = field(default_factory=LossConfig)
    num_negatives: int | None = None
    """Negatives per example used from the data; None: the smallest count present; 0: none (the
    loss sees in-batch negatives only; the triplet loss needs at least 1)."""

    # --- optimisation
    epochs: int = 1
    max_steps: int = 0
    """Stop after this many optimizer steps (0: run all epochs, however many steps they take)."""
    batch_size: int = 32
    grad_accumulation: int = 1
    learning_rate: float = 2e-5
    weight_decay: float = 0.01
    schedule: ScheduleName = "linear"
    warmup_ratio: float = 0.1
    """Share of the steps over which the learning rate rises linearly from 0 (0 to 1)."""
    max_grad_norm: float = 1.0
    """Clip the gradient norm to this (0: no clipping)."""
    precision: Precision = "auto"
    """auto: bf16 autocast on CUDA, and on CPUs with native bf16 (AVX512-BF16 or AMX) where a
    timed step of the run's own pairs ran faster in it (model/cpu/train_precision.py: a MiniLM
    step ~1.7x faster on an AVX512-BF16 EPYC at equal quality, 0.65x on a Xeon with AVX512-BF16
    and no AMX, which keeps fp32); fp32 on other CPUs, where bf16 is emulated and several times
    slower. A resumed run keeps the precision it recorded. Encoding and evaluation stay fp32 on
    CPU unless their own check takes bf16."""
    cpu_memory: CpuMemory = "reuse"
    """What a CPU run does with freed activation memory (glibc; model/cpu/memory.py). reuse: keep it
    for the next step instead of unmapping it (no page faults: a MiniLM step 1.07x faster with
    dropout off, 1.75x with the model's dropout); release: give it back at once (lowest peak,
    slowest steps; for GradCache when memory is what limits you); system: glibc's own policy."""
    gradient_checkpointing: bool = False
    group_by_length: bool = False
    seed: int = 42

    # --- evaluation, checkpoints, logs
    eval_steps: int = 0
    """Evaluate every N steps (0: at the end of every epoch)."""
    eval_metric: str = "ndcg@10"
    eval_batch_size: int = 64
    early_stopping_patience: int = 0
    """Stop after N evaluations without improvement (0: never)."""
    save_steps: int = 500
    keep_checkpoints: int = 2
    """How many of the newest checkpoints stay on disk (0: keep every one)."""
    log_steps: int = 10
    tensorboard: bool = False
    resume: bool = False
    resume_force: bool = False
    """Resume even when the data or a batch-shaping setting changed (train/checkpoint.py)."""
    threads: int = 0
    """torch CPU threads (0: torch's default)."""

    def local_sources(self) -> list[str]:
        """What the run reads from disk (data, eval data, a local model folder): the output path
        may be none of these nor a folder above one, so ``--overwrite`` cannot wipe an input."""
        paths = [s for s in (self.data, self.eval_data) if s and not s.startswith("hf:")]
        if self.model and os.path.isdir(self.model):
            paths.append(self.model)
        return paths

    def __post_init__(self) -> None:
        self._check_inputs()
        self._check_recipe()
        self._check_optimisation()
        self._check_evaluation()
        self._check_publishing()

    def _check_inputs(self) -> None:
        """Names must not be blank: '' as a model or output would mean "here" or nothing."""
        check_text(
            "train.model", self.model, f"give a model folder or hub id, e.g. model={DEFAULT_MODEL}"
        )
        check_text(
            "train.output",
            self.output,
            "give the folder to write the model to, e.g. output=runs/model",
        )
        check_text(
            "train.train_split", self.train_split, "give a split name, e.g. train_split=train"
        )
        check_text(
            "train.eval_split", self.eval_split, "give a qrels split name, e.g. eval_split=dev"
        )
        for key in COLUMN_FIELDS:
            example = key.removesuffix("_column")
            check_text(
                f"train.{key}", getattr(self, key), f"give a column name, e.g. {key}={example}"
            )
        check_number(
            "train.dev_fraction",
            self.dev_fraction,
            low=0,
            high=1,
            high_open=True,
            meaning="0: no dev set",
        )

    def _check_recipe(self) -> None:
        """The model recipe (None keeps what the model folder says) and the loss."""
        if self.pooling is not None:
            check_choice("train.pooling", self.pooling, POOLING_MODES)
        if self.layer is not None:
            check_int("train.layer", self.layer, 1, meaning="1 = the first transformer layer")
        if self.max_seq_length is not None:
            check_int("train.max_seq_length", self.max_seq_length, 1)
        for key in ("attention_dropout", "hidden_dropout"):
            if getattr(self, key) is not None:
                check_number(
                    f"train.{key}",
                    getattr(self, key),
                    low=0,
                    high=1,
                    high_open=True,
                    meaning="0: off",
                )
        if not isinstance(self.loss, LossConfig):
            raise TypeError(f"train.loss must be a LossConfig, got {self.loss!r}")
        if self.num_negatives is None:
            return
        if self.loss.name == "triplet":
            check_int(
                "train.num_negatives",
                self.num_negatives,
                1,
                meaning="the triplet loss needs one per example",
            )
        else:
            check_int(
                "train.num_negatives", self.num_negatives, 0, meaning="0: in-batch negatives only"
            )

    def _check_optimisation(self) -> None:
        check_int("train.epochs", self.epochs, 1)
        check_int("train.max_steps", self.max_steps, 0, meaning="0: run all epochs")
        check_int("train.batch_size", self.batch_size, 1)
        check_int("train.grad_accumulation", self.grad_accumulation, 1, meaning="1: none")
        check_number("train.learning_rate", self.learning_rate, low=0, low_open=True)
        check_number("train.weight_decay", self.weight_decay, low=0, meaning="0: none")
        check_choice("train.schedule", self.schedule, get_args(ScheduleName))
        check_number("train.warmup_ratio", self.warmup_ratio, low=0, high=1, meaning="0: no warmup")
        check_number("train.max_grad_norm", self.max_grad_norm, low=0, meaning="0: no clipping")
        check_choice("train.precision", self.precision, get_args(Precision))
        check_choice("train.cpu_memory", self.cpu_memory, get_args(CpuMemory))
        check_int("train.seed", self.seed, 0, MAX_SEED)
        check_int("train.threads", self.threads, 0, meaning="0: torch's default")

    def _check_evaluation(self) -> None:
        from ragtune.evaluation.metrics import metric_names  # what evaluation reports, by name

        names = metric_names()
        by_lower = {n.lower(): n for n in names}  # the metric is matched case-insensitively
        check_choice(
            "train.eval_metric",
            by_lower.get(str(self.eval_metric).lower(), self.eval_metric),
            names,
        )
        check_int("train.eval_steps", self.eval_steps, 0, meaning="0: at the end of every epoch")
        check_int("train.eval_batch_size", self.eval_batch_size, 1)
        check_int(
            "train.early_stopping_patience",
            self.early_stopping_patience,
            0,
            meaning="0: never stop early",
        )
        check_int("train.save_steps", self.save_steps, 1)
        check_int("train.keep_checkpoints", self.keep_checkpoints, 0, meaning="0: keep every one")
        check_int("train.log_steps", self.log_steps, 1)

    def _check_publishing(self) -> None:
        check_choice("train.recipe", self.recipe, get_args(RecipeName))
        try:
            parse_budget(self.budget)
        except ValueError as exc:
            raise ConfigValueError(f"train.budget: {exc}") from None
        check_number("train.publish_min_gain", self.publish_min_gain, low=-1, high=1)
        check_number("train.publish_p", self.publish_p, low=0, high=1, low_open=True)
        if not self.mix_grid:
            raise ConfigValueError("train.mix_grid: give at least one weight, e.g. 1.0")
        for a in self.mix_grid:
            check_number("train.mix_grid", a, low=0, high=1, low_open=True)
        check_choice("train.adapter", self.adapter, get_args(AdapterName))
        check_int("train.lora_rank", self.lora_rank, 1)
        check_number("train.lora_alpha", self.lora_alpha, low=0, low_open=True)
        check_number("train.lora_dropout", self.lora_dropout, low=0, high=1, high_open=True)
        if not self.lora_targets or not all(str(t).strip() for t in self.lora_targets):
            raise ConfigValueError(
                "train.lora_targets: give module-name suffixes, e.g. lora_targets=query,value"
            )
