"""The training loop: pairs -> embeddings -> loss -> backprop -> weights, and everything around it.

Read top to bottom: load the model and data, tokenize once, evaluate the base model, then for each
optimizer step encode the batch, compute the loss, backpropagate (through GradCache when the batch
is larger than memory allows), clip, step, log, evaluate, checkpoint. The best model by the dev
metric is published at the end, and the base model's score is part of that comparison: a run
that never beats the base model says so instead of saving a worse model as "best".
"""

from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ragtune.data.schema import EvalSet, Example, LabelledPair
from ragtune.errors import RagtuneError
from ragtune.losses import GradCache, build_from_config, wrap_grad_cache
from ragtune.model.encoder import Encoder
from ragtune.model.precision import autocast_dtype, precision_name
from ragtune.progress import console, make_progress, progress_enabled
from ragtune.train import distributed as dist_utils
from ragtune.train.batching import build_training_set, collate, epoch_batches
from ragtune.train.checkpoint import (
    TrainerState,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from ragtune.train.config import TrainConfig
from ragtune.train.data import load_run_data
from ragtune.train.logs import RunLogger
from ragtune.train.memory import cpu_memory_policy
from ragtune.train.publish import publish, write_run_files
from ragtune.train.schedule import build_optimizer, build_scheduler
from ragtune.train.subbatch import embed_by_length


class TrainingDiverged(RagtuneError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    output: Path
    steps: int
    seconds: float
    pairs_per_second: float
    metric: str
    base_score: float | None
    best_score: float | None
    best_step: int
    improved: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    precision: str = "fp32"
    """What the run trained in ("fp32" or "bfloat16 autocast"): what precision="auto" became."""


def train(
    cfg: TrainConfig,
    *,
    examples: list[Example] | list[LabelledPair] | None = None,
    dev: EvalSet | None = None,
    encoder: Encoder | None = None,
) -> TrainResult:
    """Run one training job as configured; returns where the model went and how it scored.

    On CPU the process's malloc policy is ``cfg.cpu_memory`` while it runs (train/memory.py).
    """
    on_cpu = encoder.device.type == "cpu" if encoder is not None else not torch.cuda.is_available()
    with cpu_memory_policy(cfg.cpu_memory if on_cpu else "system"):
        return _train(cfg, examples=examples, dev=dev, encoder=encoder)


def _train(
    cfg: TrainConfig,
    *,
    examples: list[Example] | list[LabelledPair] | None,
    dev: EvalSet | None,
    encoder: Encoder | None,
) -> TrainResult:
    rank, world = dist_utils.setup()
    is_main = rank == 0
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.output)
    run_dir = out / "run"
    ckpt_dir = run_dir / "checkpoints"
    if is_main and out.exists() and not cfg.resume and list_checkpoints(ckpt_dir):
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
    if cfg.attention_dropout is not None:
        encoder.set_attention_dropout(cfg.attention_dropout)
    if cfg.hidden_dropout is not None:
        encoder.set_hidden_dropout(cfg.hidden_dropout)
    if cfg.gradient_checkpointing:
        encoder.backbone.gradient_checkpointing_enable()
    device = encoder.device
    autocast = autocast_dtype(cfg.precision, device, training=True)

    # ---- data: tokenized once for the whole run
    if examples is None:
        examples, loaded_dev = load_run_data(cfg)
        dev = dev or loaded_dev
    data = build_training_set(
        examples,
        encoder.tokenizer,
        encoder.config.max_seq_length,
        encoder.config.query_prompt,
        encoder.config.document_prompt,
        cfg.num_negatives,
    )
    loss_fn = build_from_config(cfg.loss)
    _check_loss_matches_data(loss_fn, data.labelled)
    grad_cache = wrap_grad_cache(loss_fn, cfg.loss)
    if grad_cache is not None and world > 1:
        raise RagtuneError(
            "GradCache with several processes is not supported yet: use one "
            "process with a large batch, or several without cache_mini_batch_size"
        )
    pad_id = encoder.tokenizer.pad_token_id or 0

    model: torch.nn.Module = encoder
    if world > 1:
        # static_graph: each step runs the encoder once per text column before one backward.
        model = torch.nn.parallel.DistributedDataParallel(encoder, static_graph=True)
    global_batch = cfg.batch_size * world
    min_fill = 1.0 if world > 1 else 0.5  # every rank needs an equal, full slice
    # Every epoch's batches are fixed by (seed, epoch): built once, used for the step count,
    # the loop and resuming at the saved position.
    schedule_of_batches = [
        epoch_batches(data, global_batch, cfg.seed, e, cfg.group_by_length, min_fill)
        for e in range(cfg.epochs)
    ]
    batches_per_epoch = [len(b) for b in schedule_of_batches]
    total_steps = sum(math.ceil(n / cfg.grad_accumulation) for n in batches_per_epoch)
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    if total_steps == 0:
        raise RagtuneError("no training steps: the data is smaller than one batch")
    optimizer = build_optimizer(encoder, cfg.learning_rate, cfg.weight_decay)
    scheduler = build_scheduler(
        optimizer, cfg.schedule, int(cfg.warmup_ratio * total_steps), total_steps
    )

    # ---- resume or start
    state = TrainerState()
    if cfg.resume and list_checkpoints(ckpt_dir):
        latest = list_checkpoints(ckpt_dir)[-1]
        state = load_checkpoint(latest, encoder, optimizer, scheduler)
        if is_main:
            console.print(f"resumed from {latest.name} (step {state.step}, epoch {state.epoch})")
    logger = RunLogger(run_dir, enabled=is_main, tensorboard=cfg.tensorboard)
    if is_main and state.step == 0:
        write_run_files(run_dir, cfg, examples, encoder, data, precision_name(autocast))
    if is_main:
        console.print(f"training precision: {precision_name(autocast)} ({cfg.precision})")

    def evaluate(step: int) -> float | None:
        score = _evaluate(encoder, dev, cfg, is_main)
        if score is None:
            return None
        state.history.append({"step": step, cfg.eval_metric: score})
        logger.log({"step": step, "eval": {cfg.eval_metric: score}})
        if state.best_metric is None or score > state.best_metric:
            state.best_metric, state.best_step = score, step
            state.evals_without_improvement = 0
            if is_main:
                encoder.save(run_dir / "best")  # the base model (step 0) is a candidate too
        else:
            state.evals_without_improvement += 1
        return score

    if state.step == 0 and dev is not None and is_main:
        base = evaluate(0)
        console.print(f"base model {cfg.eval_metric} on {dev.name}: {base:.4f}")

    # ---- the loop
    model.train()
    started = time.perf_counter()
    pairs_seen = 0
    stop = state.step >= total_steps
    window: list[float] = []
    show = progress_enabled(None, default=is_main)
    with make_progress("pairs", enabled=show) as bar:
        task = bar.add_task(
            "training",
            total=total_steps * global_batch * cfg.grad_accumulation,
            completed=state.step * global_batch * cfg.grad_accumulation,
        )
        while not stop and state.epoch < cfg.epochs:
            batches = schedule_of_batches[state.epoch]
            while state.batch_in_epoch < len(batches) and not stop:
                group = batches[state.batch_in_epoch : state.batch_in_epoch + cfg.grad_accumulation]
                loss_value = 0.0
                for i, rows in enumerate(group):
                    local = rows[rank * cfg.batch_size : (rank + 1) * cfg.batch_size]
                    batch = collate(data, local, pad_id)
                    sync = i == len(group) - 1
                    with dist_utils.maybe_no_sync(model, sync):
                        loss_value += _forward_backward(
                            model,
                            loss_fn,
                            grad_cache,
                            batch,
                            device,
                            autocast,
                            1 / len(group),
                            split=world == 1,  # DDP's static graph wants one call per column
                        )
                    pairs_seen += len(rows)
                if not math.isfinite(loss_value):
                    raise TrainingDiverged(
                        f"loss became {loss_value} at step {state.step + 1}; the last good "
                        f"checkpoint is kept in {ckpt_dir} (lower the learning rate or check "
                        "the data for empty texts)"
                    )
                grad_norm = torch.nn.utils.clip_grad_norm_(
                    encoder.parameters(), cfg.max_grad_norm or float("inf")
                )
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                state.step += 1
                state.batch_in_epoch += len(group)
                window.append(loss_value)
                bar.update(
                    task,
                    advance=len(group) * global_batch,
                    description=f"training loss {loss_value:.4f}",
                )
                if state.step % cfg.log_steps == 0 or state.step == total_steps:
                    elapsed = time.perf_counter() - started
                    logger.log(
                        {
                            "step": state.step,
                            "epoch": state.epoch,
                            "loss": sum(window) / len(window),
                            "lr": scheduler.get_last_lr()[0],
                            "grad_norm": float(grad_norm),
                            "pairs_per_second": pairs_seen / elapsed,
                            **{k: float(v) for k, v in getattr(loss_fn, "last_stats", {}).items()},
                        }
                    )
                    window.clear()
                if cfg.eval_steps and state.step % cfg.eval_steps == 0:
                    evaluate(state.step)
                    stop = _early_stop(cfg, state)
                if state.step >= total_steps:
                    stop = True
                if is_main and (state.step % cfg.save_steps == 0 or stop):
                    save_checkpoint(
                        ckpt_dir, encoder, optimizer, scheduler, state, cfg.keep_checkpoints
                    )
                stop = dist_utils.agree(stop)
            if state.batch_in_epoch >= len(batches):
                state.epoch += 1
                state.batch_in_epoch = 0
                if not cfg.eval_steps:
                    evaluate(state.step)
                    stop = dist_utils.agree(stop or _early_stop(cfg, state))
                if is_main:
                    save_checkpoint(
                        ckpt_dir, encoder, optimizer, scheduler, state, cfg.keep_checkpoints
                    )
    seconds = time.perf_counter() - started
    if dev is not None and (not state.history or state.history[-1]["step"] != state.step):
        evaluate(state.step)

    # ---- publish: the best model by the dev metric (the base model counts as a candidate)
    result = TrainResult(
        output=out,
        steps=state.step,
        seconds=seconds,
        pairs_per_second=pairs_seen / seconds if seconds > 0 else 0.0,
        metric=cfg.eval_metric,
        base_score=next((h[cfg.eval_metric] for h in state.history if h["step"] == 0), None),
        best_score=state.best_metric,
        best_step=state.best_step,
        improved=state.best_step > 0 if state.best_metric is not None else True,
        history=list(state.history),
        precision=precision_name(autocast),
    )
    if is_main:
        publish(encoder, run_dir, out, result)
        logger.finish(result)
    dist_utils.teardown()
    return result


def _forward_backward(
    model: torch.nn.Module,
    loss_fn: torch.nn.Module,
    grad_cache: GradCache | None,
    batch: dict[str, Any],
    device: torch.device,
    autocast: torch.dtype | None,
    scale: float,
    split: bool = True,
) -> float:
    """Encode every text column, compute the loss and backpropagate ``loss * scale``."""
    extra = {k: v.to(device) for k, v in batch["extra"].items()}
    extra = _accepted(loss_fn, extra)

    def amp() -> torch.autocast:
        return torch.autocast(device.type, dtype=autocast or torch.float32, enabled=bool(autocast))

    def embed(features: dict[str, torch.Tensor]) -> torch.Tensor:
        features = {k: v.to(device) for k, v in features.items()}
        with amp():
            return model(features).float()  # (rows, D)

    if grad_cache is not None:
        value = grad_cache.forward_backward(
            embed, batch["texts"], extra=extra, reshape=batch["reshape"], loss_scale=scale
        )
        return float(value)
    with amp():  # one region for every column: the bf16 copies of the weights are made once
        embeddings = {
            name: embed_by_length(embed, features) if split else embed(features)
            for name, features in batch["texts"].items()
        }
    for name, (rows, n) in batch["reshape"].items():
        embeddings[name] = embeddings[name].view(rows, n, -1)  # (B * N, D) -> (B, N, D)
    loss = loss_fn(**embeddings, **extra)
    (loss * scale).backward()
    return float(loss.detach())


def _accepted(loss_fn: torch.nn.Module, extra: dict[str, Any]) -> dict[str, Any]:
    """Pass only the extras (labels, text ids) that this loss's forward takes."""
    params = inspect.signature(loss_fn.forward).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return extra
    return {k: v for k, v in extra.items() if k in params}


def _check_loss_matches_data(loss_fn: torch.nn.Module, labelled: bool) -> None:
    needs = tuple(getattr(loss_fn, "inputs", ()))
    if labelled and "label" not in needs:
        raise RagtuneError(
            f"the loss needs {needs} but the data are labelled pairs "
            "(query, document, label): use --loss contrastive or cosine"
        )
    if not labelled and "label" in needs:
        raise RagtuneError(
            f"the loss needs {needs} but the data have no labels: use "
            "--loss infonce or triplet, or convert pairs with pairs_to_labelled"
        )


def _evaluate(
    encoder: Encoder, dev: EvalSet | None, cfg: TrainConfig, is_main: bool
) -> float | None:
    if dev is None or not is_main:
        return None
    from ragtune.evaluation.evaluate import evaluate_encoder

    result = evaluate_encoder(encoder, dev, batch_size=cfg.eval_batch_size, show_progress=False)
    key = cfg.eval_metric.lower()
    metrics = {k.lower(): v for k, v in result.metrics.items()}
    if key not in metrics:
        raise RagtuneError(
            f"unknown eval_metric {cfg.eval_metric!r}; available: "
            f"{', '.join(sorted(result.metrics))}"
        )
    return float(metrics[key])


def _early_stop(cfg: TrainConfig, state: TrainerState) -> bool:
    return bool(
        cfg.early_stopping_patience
        and state.evals_without_improvement >= cfg.early_stopping_patience
    )
