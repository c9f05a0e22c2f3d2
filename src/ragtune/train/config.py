"""The training run's configuration: one dataclass, saved resolved with the model."""

from __future__ import annotations

from dataclasses import dataclass, field

from ragtune.losses.config import LossConfig
from ragtune.model.precision import Precision
from ragtune.model.resolve import DEFAULT_MODEL
from ragtune.train.memory import CpuMemory
from ragtune.train.schedule import ScheduleName


@dataclass
class TrainConfig:
    """Everything `ragtune train` needs; build it with ``load_config(TrainConfig, ...)``."""

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

    # --- model recipe (None keeps what the model folder says)
    pooling: str | None = None
    normalize: bool | None = None
    layer: int | None = None
    max_seq_length: int | None = None
    query_prompt: str | None = None
    document_prompt: str | None = None
    attention_dropout: float | None = None
    """Attention-probability dropout; None (the default) keeps the model's (0.1 for MiniLM). On CPU
    it runs through ragtune's math attention with cheap masks (model/attention.py); 0 lets PyTorch
    use fused attention instead: a MiniLM bf16 step ~1.2x faster (BENCHMARKS.md 1)."""
    hidden_dropout: float | None = None
    """Every other dropout; None (the default) keeps the model's. 0 with attention_dropout 0 turns
    dropout off: a step ~1.3x faster on CPU, at the same one-epoch SciFact quality within seed
    noise (BENCHMARKS.md 1b). The model's dropout stays the default because it is the recipe the
    model was trained with and the one sentence-transformers users compare against."""

    # --- the loss
    loss: LossConfig = field(default_factory=LossConfig)
    num_negatives: int | None = None
    """Negatives per example used from the data; None: the smallest count present."""

    # --- optimisation
    epochs: int = 1
    max_steps: int = 0
    """Stop after this many optimizer steps (0: run all epochs)."""
    batch_size: int = 32
    grad_accumulation: int = 1
    learning_rate: float = 2e-5
    weight_decay: float = 0.01
    schedule: ScheduleName = "linear"
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    precision: Precision = "auto"
    """auto: bf16 autocast on CUDA and on CPUs with native bf16 (AVX512-BF16 or AMX), where a
    MiniLM step runs ~1.7x faster at equal quality (BENCHMARKS.md); fp32 on other CPUs, where bf16
    is emulated and several times slower. Encoding and evaluation stay fp32 on CPU."""
    cpu_memory: CpuMemory = "reuse"
    """What a CPU run does with freed activation memory (glibc; train/memory.py). reuse: keep it
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
    log_steps: int = 10
    tensorboard: bool = False
    resume: bool = False
    threads: int = 0
    """torch CPU threads (0: torch's default)."""
