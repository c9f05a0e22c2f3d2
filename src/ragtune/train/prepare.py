"""Setting up a training run: everything the loop needs, built once, before any step.

:func:`prepare` loads the model and the data (tokenized once), builds the loss, every epoch's
batches, the optimizer and the schedule, and resumes from the newest intact checkpoint of the same
run. Every refusal happens here, so a bad setting costs no training and leaves no run files.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ragtune.data.schema import EvalSet, Example, LabelledPair
from ragtune.errors import RagtuneError
from ragtune.io import check_output
from ragtune.losses import build_from_config, wrap_grad_cache
from ragtune.model.adapters import apply_adapter
from ragtune.model.cpu import enable_cpu_fast_paths
from ragtune.model.cpu.train_precision import SAMPLE_PAIRS
from ragtune.model.encoder import Encoder
from ragtune.model.precision import precision_name, training_autocast
from ragtune.progress import console
from ragtune.train import distributed as dist_utils
from ragtune.train.batching import build_training_set, epoch_batches
from ragtune.train.checkpoint import list_checkpoints, resume, run_identity
from ragtune.train.config import TrainConfig
from ragtune.train.data import check_loss_matches_data, data_fingerprint, load_run_data
from ragtune.train.logs import RunLogger
from ragtune.train.publish import write_run_files
from ragtune.train.schedule import build_optimizer, build_scheduler
from ragtune.train.state import Run, TrainerState


def prepare(
    cfg: TrainConfig,
    *,
    examples: list[Example] | list[LabelledPair] | None = None,
    dev: EvalSet | None = None,
    encoder: Encoder | None = None,
) -> Run:
    """Set up one run: model, data, loss, batches, optimizer, schedule, run folder, resume.

    Every refusal (an existing run without ``--resume``, changed data or batch settings on
    resume, no intact checkpoint) is raised here, before any step and before any run file.
    """
    rank, world = dist_utils.setup()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.output)
    ckpt_dir = out / "run" / "checkpoints"
    if rank == 0:  # a library call gets the CLI's output policy too, before the model loads
        sources = cfg.local_sources()
        check_output(out, "model", sources=sources, flag="output")
    if rank == 0 and out.exists() and not cfg.resume and list_checkpoints(ckpt_dir):
        raise RagtuneError(
            f"{out} already holds a training run; pass --resume to continue it "
            "or choose another --output"
        )

    # ---- model
    if encoder is None:
        encoder = Encoder.load(
            cfg.model,
            pooling=cfg.pooling,
            normalize=cfg.normalize,
            layer=cfg.layer,
            max_seq_length=cfg.max_seq_length,
            query_prompt=cfg.query_prompt,
            document_prompt=cfg.document_prompt,
            device=dist_utils.device_for(rank),
        )
    if not isinstance(encoder, Encoder):
        raise RagtuneError(f"{cfg.model} is an ONNX export: train the PyTorch model instead")
    apply_run_dropout(encoder, cfg)
    if cfg.gradient_checkpointing:
        encoder.backbone.gradient_checkpointing_enable()
    apply_adapter(encoder, cfg)  # LoRA (adapter: lora): only the adapter trains from here
    # Cheap dropout masks and fp32 attention under bf16 autocast (model/cpu/); the fused
    # inference path is checked lazily by the first evaluation's encode().
    enable_cpu_fast_paths(encoder, training=True, fused=False)
    model: torch.nn.Module = encoder
    if world > 1:
        # static_graph: each step runs the encoder once per text column before one backward.
        model = torch.nn.parallel.DistributedDataParallel(encoder, static_graph=True)

    # ---- data, tokenized once for the whole run, and the loss it feeds
    notes: list[str] = []  # printed after the resume checks, so a refusal is the only line
    if examples is None:
        examples, loaded_dev = load_run_data(cfg, notes)
        dev = dev or loaded_dev
    spec = encoder.config
    data = build_training_set(
        examples,
        encoder.tokenizer,
        spec.max_seq_length,
        spec.query_prompt,
        spec.document_prompt,
        cfg.num_negatives,
        notes,
    )
    loss_fn = build_from_config(cfg.loss)
    check_loss_matches_data(loss_fn, data.labelled)
    grad_cache = wrap_grad_cache(loss_fn, cfg.loss)
    if grad_cache is not None and world > 1:
        raise RagtuneError(
            "GradCache with several processes is not supported yet: use one "
            "process with a large batch, or several without cache_mini_batch_size"
        )

    # ---- batches, optimizer, schedule. Every epoch's batches are fixed by (seed, epoch): built
    # once, used for the step count, the loop and resuming at the saved position.
    min_fill = 1.0 if world > 1 else 0.5  # every rank needs an equal, full slice
    # group_by_query: an epoch is one row per query, so multi-positive data has fewer steps
    # per epoch; the step count, the schedule and resume all read these same batches.
    batches = [
        epoch_batches(
            data,
            cfg.batch_size * world,
            cfg.seed,
            e,
            cfg.group_by_length,
            min_fill,
            group_by_query=cfg.group_by_query,
        )
        for e in range(cfg.epochs)
    ]
    grouping = data.groups.summary(len(data.rows), cfg.group_by_query)
    if grouping:
        notes.append(grouping)
    total_steps = sum(math.ceil(len(b) / cfg.grad_accumulation) for b in batches)
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    if total_steps == 0:
        raise RagtuneError("no training steps: the data is smaller than one batch")
    optimizer = build_optimizer(encoder, cfg.learning_rate, cfg.weight_decay)
    scheduler = build_scheduler(
        optimizer, cfg.schedule, int(cfg.warmup_ratio * total_steps), total_steps
    )

    # ---- resume from the newest intact checkpoint of the same run, or start
    identity = run_identity(
        cfg,
        data_fingerprint(examples),
        processes=world,
        num_negatives=data.num_negatives,
        max_seq_length=spec.max_seq_length,
        query_prompt=spec.query_prompt,
        document_prompt=spec.document_prompt,
    )
    resuming = bool(cfg.resume and list_checkpoints(ckpt_dir))
    state, forced = TrainerState(), list[str]()
    if resuming:
        state, forced = resume(
            ckpt_dir, identity, cfg.resume_force, encoder, optimizer, scheduler, rank == 0
        )
    elif cfg.resume:
        notes.insert(
            0, f"--resume: no checkpoint in {ckpt_dir}; training starts from the beginning"
        )
    if rank == 0:
        for note in notes:
            console.print(note, soft_wrap=True)
    # timed after every refusal (resume's checks): a refused run costs no measurement
    autocast, why = run_autocast(cfg, encoder, examples, out / "run", resuming, rank, world)
    logger = RunLogger(out / "run", enabled=rank == 0, tensorboard=cfg.tensorboard)
    if rank == 0 and (state.step == 0 or forced):  # the run files describe the run that trains
        write_run_files(out / "run", cfg, examples, encoder, data, precision_name(autocast))
    if rank == 0 and forced:
        logger.log({"step": state.step, "resume_forced": forced})
        console.print(
            f"resume forced (resume_force=true): {'; '.join(forced)}; "
            "run/config.yaml and run/data.json now describe this run",
            style="yellow",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if rank == 0:
        how = f"{cfg.precision}: {why}" if why else cfg.precision
        console.print(f"training precision: {precision_name(autocast)} ({how})", soft_wrap=True)
    return Run(
        cfg=cfg,
        rank=rank,
        world=world,
        encoder=encoder,
        model=model,
        autocast=autocast,
        data=data,
        dev=dev,
        loss_fn=loss_fn,
        grad_cache=grad_cache,
        batches=batches,
        total_steps=total_steps,
        optimizer=optimizer,
        scheduler=scheduler,
        identity=identity,
        state=state,
        logger=logger,
    )


def run_autocast(
    cfg: TrainConfig,
    encoder: Encoder,
    examples: list[Example] | list[LabelledPair],
    run_dir: Path,
    resuming: bool,
    rank: int,
    world: int,
) -> tuple[torch.dtype | None, str]:
    """The precision this run trains in, and why when ``precision="auto"`` measured it.

    A resumed run keeps what its run files recorded (a measurement on a loaded machine must not
    switch a run's precision halfway); with several processes, rank 0 measures and every rank
    takes its answer.
    """
    if resuming and cfg.precision == "auto":
        saved = saved_precision(run_dir)
        if saved is not None:
            return (torch.bfloat16 if saved == "bf16" else None), "kept from the run being resumed"
    dtype, why = None, ""
    if rank == 0 or encoder.device.type != "cpu":
        rows = examples[:: max(1, len(examples) // SAMPLE_PAIRS)][:SAMPLE_PAIRS]  # spread out
        queries = [r.query for r in rows]
        docs = [r.positive if isinstance(r, Example) else r.document for r in rows]
        dtype, why = training_autocast(cfg.precision, encoder, queries, docs)
    if world > 1 and encoder.device.type == "cpu":
        dtype = torch.bfloat16 if dist_utils.agree(dtype is not None) else None
    return dtype, why


def saved_precision(run_dir: Path) -> str | None:
    """ "fp32" or "bf16" as ``run_dir/config.yaml`` recorded it (None: not recorded)."""
    import yaml

    try:
        resolved = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    name = resolved.get("resolved_precision") if isinstance(resolved, dict) else None
    if name == "fp32":
        return "fp32"
    return "bf16" if isinstance(name, str) and name.startswith("bfloat16") else None


def apply_run_dropout(encoder: Encoder, cfg: TrainConfig) -> None:
    """The run's ``attention_dropout`` / ``hidden_dropout`` on ``encoder``'s modules only.

    The saved config.json keeps the model's own dropout, so a model trained without dropout
    still trains with its dropout when fine-tuned again. Also used by the throughput probe
    (train/probe.py), which must time the steps a run will take.
    """
    own = {k: v for k, v in vars(encoder.backbone.config).items() if _is_dropout_field(k, v)}
    if cfg.attention_dropout is not None:
        encoder.set_attention_dropout(cfg.attention_dropout)
    if cfg.hidden_dropout is not None:
        encoder.set_hidden_dropout(cfg.hidden_dropout)
    for key, value in own.items():
        setattr(encoder.backbone.config, key, value)


def _is_dropout_field(key: str, value: object) -> bool:
    """A dropout probability of a transformers config (``hidden_dropout_prob``, ``attn_pdrop``)."""
    return isinstance(value, float) and ("dropout" in key or key.endswith("pdrop"))
