"""The training loop: pairs -> embeddings -> loss -> backprop -> weights, and everything around it.

Read top to bottom: :func:`prepare` (train/prepare.py) loads the model and the data (tokenized
once), builds the loss, every epoch's batches, the optimizer and the schedule, and resumes from
the newest intact checkpoint; :func:`run_loop` scores the base model, then for each optimizer
step encodes the batch, computes the loss, backpropagates (through GradCache when the batch is
larger than memory allows), clips, steps and logs, and ends the step in one block: evaluate,
checkpoint, stop.

The best checkpoint by the dev metric is kept in ``run/best``, and the base model is the first
candidate. After training, :func:`ragtune.train.finish.finish_run` interpolates it with the base
model, gates it against the base model on the dev queries (a paired significance test) and
publishes what the gate chose; a run that never beats the base model significantly publishes the
base model and says so, and a run without a dev set says its improvement was not measured.
"""

from __future__ import annotations

import copy
import inspect
import math
import time
from typing import Any

import torch

from ragtune.data.schema import EvalSet, Example, LabelledPair
from ragtune.errors import RagtuneError
from ragtune.model.encoder import Encoder
from ragtune.model.precision import precision_name
from ragtune.progress import console, make_progress, progress_enabled
from ragtune.train import distributed as dist_utils
from ragtune.train.batching import collate
from ragtune.train.checkpoint import save_checkpoint
from ragtune.train.config import TrainConfig
from ragtune.train.prepare import prepare
from ragtune.train.state import Run, TrainerState, TrainResult, improvement, remaining_steps
from ragtune.train.subbatch import embed_by_length

__all__ = ["Run", "TrainResult", "TrainingDiverged", "prepare", "run_loop", "train"]


class TrainingDiverged(RagtuneError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def train(
    cfg: TrainConfig,
    *,
    examples: list[Example] | list[LabelledPair] | None = None,
    dev: EvalSet | None = None,
    encoder: Encoder | None = None,
) -> TrainResult:
    """Run one training job as configured; returns where the model went and how it scored.

    The process's malloc policy is left as it is: the ``train`` command enters
    :func:`ragtune.model.cpu.cpu_memory_policy` with ``cfg.cpu_memory`` around this call.
    ``cfg.recipe == "auto"`` hands the run to :func:`ragtune.train.auto.train_auto`, a search
    over recipes that trains each candidate with :func:`run_loop`.
    """
    if cfg.recipe == "auto":
        from ragtune.train.auto import train_auto

        return train_auto(cfg, examples=examples, dev=dev, encoder=encoder)
    if cfg.general_checks:  # a bad folder fails before the model loads, not after training
        from ragtune.evaluation.forgetting import check_specs

        check_specs(cfg.general_checks)
    return run_loop(prepare(cfg, examples=examples, dev=dev, encoder=encoder))


def run_loop(run: Run, *, finish: bool = True) -> TrainResult:
    """Train from the run's position to its last step, then finish and publish.

    With ``finish=False`` the result is returned right after training: the best model is in
    ``run.run_dir / "best"`` (absent without a dev set: then ``run.encoder`` is the model), the
    base model's per-query dev scores are in ``result.history[0]["per_query"]``, and nothing is
    interpolated, gated, checked or published; call
    :func:`ragtune.train.finish.finish_run` on the candidate kept.
    """
    cfg, state, model = run.cfg, run.state, run.model
    base: Encoder | str = cfg.model  # a resumed run reloads the base model from its folder
    if state.step == 0 and run.dev is not None and run.is_main:
        _evaluate(run, 0, keep_per_query=True)  # the base model is the first candidate for "best"
        run.encoder.save(run.run_dir / "best")
        console.print(f"base model {cfg.eval_metric} on {run.dev.name}: {state.best_metric:.4f}")
        if finish:  # the base as saved (merged, truncated), like every later best: mixable
            base = Encoder.load(run.run_dir / "best", device="cpu")
    elif state.step == 0 and run.is_main and finish and cfg.general_checks:
        base = copy.deepcopy(run.encoder).to("cpu")  # only scored by the general checks

    plan = remaining_steps(
        state, [len(b) for b in run.batches], cfg.grad_accumulation, run.total_steps
    )
    pad_id = run.encoder.tokenizer.pad_token_id or 0
    pairs_per_step = run.global_batch * cfg.grad_accumulation
    model.train()
    started = time.perf_counter()
    pairs_seen = 0
    window: list[float] = []
    with make_progress("pairs", enabled=progress_enabled(None, default=run.is_main)) as bar:
        task = bar.add_task(
            "training",
            total=run.total_steps * pairs_per_step,
            completed=state.step * pairs_per_step,
        )
        for epoch, start in plan:
            group = run.batches[epoch][start : start + cfg.grad_accumulation]
            loss_value = 0.0
            for i, rows in enumerate(group):
                local = rows[run.rank * cfg.batch_size : (run.rank + 1) * cfg.batch_size]
                with dist_utils.maybe_no_sync(model, sync=i == len(group) - 1):
                    batch = collate(run.data, local, pad_id, cfg.group_by_query)
                    loss_value += _forward_backward(run, batch, scale=1 / len(group))
                pairs_seen += len(rows)
            if not math.isfinite(loss_value):
                raise TrainingDiverged(
                    f"loss became {loss_value} at step {state.step + 1}; the last good "
                    f"checkpoint is kept in {run.checkpoints} (lower the learning rate or "
                    "check the data for empty texts)"
                )
            grad_norm = torch.nn.utils.clip_grad_norm_(
                run.encoder.parameters(), cfg.max_grad_norm or float("inf")
            )
            run.optimizer.step()
            run.scheduler.step()
            run.optimizer.zero_grad(set_to_none=True)
            state.step += 1
            state.epoch, state.batch_in_epoch = epoch, start + len(group)
            end_of_epoch = state.batch_in_epoch >= len(run.batches[epoch])
            if end_of_epoch:
                state.epoch, state.batch_in_epoch = epoch + 1, 0
            window.append(loss_value)
            bar.update(
                task,
                advance=len(group) * run.global_batch,
                description=f"training loss {loss_value:.4f}",
            )
            if state.step % cfg.log_steps == 0 or state.step == run.total_steps:
                run.logger.log(
                    {
                        "step": state.step,
                        "epoch": epoch,
                        "loss": sum(window) / len(window),
                        "lr": run.scheduler.get_last_lr()[0],
                        "grad_norm": float(grad_norm),
                        "pairs_per_second": pairs_seen / (time.perf_counter() - started),
                        **{k: float(v) for k, v in getattr(run.loss_fn, "last_stats", {}).items()},
                    }
                )
                window.clear()

            # ---- end of step: evaluate, checkpoint, stop (a checkpoint holds its evaluation)
            last = state.step >= run.total_steps or state.epoch >= cfg.epochs
            eval_due = state.step % cfg.eval_steps == 0 if cfg.eval_steps else end_of_epoch
            if (eval_due or last) and _evaluate(run, state.step) and run.is_main:
                run.encoder.save(run.run_dir / "best")
            stop = dist_utils.agree(last or _early_stop(cfg, state))
            if run.is_main and (state.step % cfg.save_steps == 0 or end_of_epoch or stop):
                save_checkpoint(
                    run.checkpoints,
                    run.encoder,
                    run.optimizer,
                    run.scheduler,
                    state,
                    run.identity,
                    cfg.keep_checkpoints,
                )
            if stop:
                break
    seconds = time.perf_counter() - started

    # ---- the result of training: the best model by the dev metric (the base model counts)
    base_entry = next((h for h in state.history if h["step"] == 0), None)
    base_score = None if base_entry is None else base_entry[cfg.eval_metric]
    verdict = improvement(base_score, state.best_metric)
    result = TrainResult(
        output=run.out,
        steps=state.step,
        seconds=seconds,
        pairs_per_second=pairs_seen / seconds if seconds > 0 else 0.0,
        metric=cfg.eval_metric,
        base_score=base_score,
        best_score=state.best_metric,
        best_step=state.best_step,
        improved=verdict == "improved",
        history=list(state.history),
        precision=precision_name(run.autocast),
        improvement=verdict,
    )
    if run.is_main and finish:
        # ---- finish: interpolate with the base model, gate, general checks, publish
        from ragtune.train.finish import finish_run

        best_dir = run.run_dir / "best"  # the best as saved, the same form as the base above
        tuned = (
            Encoder.load(best_dir, device=run.encoder.device)
            if run.dev is not None and best_dir.is_dir()
            else run.encoder
        )
        result = finish_run(
            cfg,
            tuned=tuned,
            base=base,
            dev=run.dev,
            base_per_query=None if base_entry is None else base_entry.get("per_query"),
            run_dir=run.run_dir,
            result=result,
            tuned_per_query=state.best_per_query,
        )
    if run.is_main:
        run.logger.finish(result)
    dist_utils.teardown()
    return result


def _forward_backward(run: Run, batch: dict[str, Any], scale: float) -> float:
    """Encode every text column, compute the loss and backpropagate ``loss * scale``."""
    device, autocast = run.encoder.device, run.autocast
    extra = _accepted(run.loss_fn, {k: v.to(device) for k, v in batch["extra"].items()})

    def amp() -> torch.autocast:
        return torch.autocast(device.type, dtype=autocast or torch.float32, enabled=bool(autocast))

    def embed(features: dict[str, torch.Tensor]) -> torch.Tensor:
        features = {k: v.to(device) for k, v in features.items()}
        with amp():
            return run.model(features).float()  # (rows, D)

    if run.grad_cache is not None:
        value = run.grad_cache.forward_backward(
            embed, batch["texts"], extra=extra, reshape=batch["reshape"], loss_scale=scale
        )
        return float(value)
    split = run.world == 1  # DDP's static graph wants one encoder call per column
    with amp():  # one region for every column: the bf16 copies of the weights are made once
        embeddings = {
            name: embed_by_length(embed, features) if split else embed(features)
            for name, features in batch["texts"].items()
        }
    for name, (rows, n) in batch["reshape"].items():
        embeddings[name] = embeddings[name].view(rows, n, -1)  # (B * N, D) -> (B, N, D)
    loss = run.loss_fn(**embeddings, **extra)
    (loss * scale).backward()
    return float(loss.detach())


def _accepted(loss_fn: torch.nn.Module, extra: dict[str, Any]) -> dict[str, Any]:
    """Pass only the extras (labels, text ids) that this loss's forward takes."""
    params = inspect.signature(loss_fn.forward).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return extra
    return {k: v for k, v in extra.items() if k in params}


def _evaluate(run: Run, step: int, keep_per_query: bool = False) -> bool:
    """Score the model on the dev set, log it, update the best; True when it is a new best.

    Only the main process evaluates; the others (and runs without a dev set) return False.
    The per-query scores of the best go to the state (the gate compares them with the base
    model's); ``keep_per_query`` also puts them in this evaluation's history entry.
    """
    if run.dev is None or not run.is_main:
        return False
    from ragtune.evaluation.evaluate import evaluate_encoder
    from ragtune.evaluation.significance import scores_of

    cfg, state = run.cfg, run.state
    result = evaluate_encoder(
        run.encoder, run.dev, batch_size=cfg.eval_batch_size, show_progress=False
    )
    metrics = {k.lower(): v for k, v in result.metrics.items()}
    if cfg.eval_metric.lower() not in metrics:
        raise RagtuneError(
            f"unknown eval_metric {cfg.eval_metric!r}; available: "
            f"{', '.join(sorted(result.metrics))}"
        )
    score = float(metrics[cfg.eval_metric.lower()])
    per_query = scores_of(result.per_query, cfg.eval_metric)
    entry: dict[str, Any] = {"step": step, cfg.eval_metric: score}
    if keep_per_query:
        entry["per_query"] = per_query
    state.history.append(entry)
    run.logger.log({"step": step, "eval": {cfg.eval_metric: score}})
    if state.best_metric is None or score > state.best_metric:
        state.best_metric, state.best_step = score, step
        state.best_per_query = per_query
        state.evals_without_improvement = 0
        return True
    state.evals_without_improvement += 1
    return False


def _early_stop(cfg: TrainConfig, state: TrainerState) -> bool:
    return bool(
        cfg.early_stopping_patience
        and state.evals_without_improvement >= cfg.early_stopping_patience
    )
