"""After training: the forgetting guard, the significance gate, the general checks, publishing.

:func:`finish_run` turns a trained model into the published one, in four visible steps:

1. **Interpolate** (train/interpolate.py): for each a in ``cfg.mix_grid``,
   ``theta = a * tuned + (1 - a) * base`` is scored on dev; the smallest a that dev cannot tell
   from the best is kept (WiSE-FT, Wortsman et al., CVPR 2022). Skipped without dev, when the
   grid is ``(1.0,)``, or when the best checkpoint is the base model itself.
2. **Gate** (train/gate.py): the chosen model against the base model on the dev queries, a
   paired sign-flip test; the tuned model is published only when its gain is above
   ``publish_min_gain`` with p below ``publish_p``, else the base model, unchanged.
3. **General checks** (evaluation/forgetting.py): nDCG@10 of the base and the published model
   on ``cfg.general_checks``, reported, never used to choose.
4. **Publish** (train/publish.py): the chosen model, its card with the dev evidence, and
   ``run/summary.json``, atomically into ``cfg.output``.

:func:`ragtune.train.loop.run_loop` calls it after training; a search over recipes that trains
several candidates with ``run_loop(run, finish=False)`` calls it once, on the candidate it keeps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from ragtune.data.schema import EvalSet
from ragtune.evaluation.evaluate import evaluate_encoder
from ragtune.evaluation.forgetting import general_checks
from ragtune.evaluation.significance import scores_of
from ragtune.model.encoder import Encoder
from ragtune.progress import console
from ragtune.train.config import TrainConfig
from ragtune.train.gate import decide
from ragtune.train.interpolate import WeightMixer, choose_mix, grid_scores
from ragtune.train.publish import publish
from ragtune.train.state import TrainResult

NO_DEV_MESSAGE = (
    "no dev set: the model is published without a comparison with the base model "
    "(improvement not measured)"
)


def finish_run(
    cfg: TrainConfig,
    *,
    tuned: Encoder,
    base: Encoder | str | Path,
    dev: EvalSet | None,
    base_per_query: Mapping[str, float] | None,
    run_dir: Path,
    result: TrainResult,
    tuned_per_query: Mapping[str, float] | None = None,
) -> TrainResult:
    """Interpolate, gate, check and publish ``tuned`` into ``cfg.output``; the completed result.

    Args:
        tuned: the best trained model (for run_loop: the weights in ``run_dir / "best"``).
        base: the model training started from, in the same form as ``tuned`` (both as
            :meth:`Encoder.save` writes them, so that their weights line up), or its folder
            (loaded with ``cfg``'s recipe overrides); it is moved to ``tuned``'s device.
        dev: the dev set; None: nothing is interpolated or gated ("not measured").
        base_per_query: the base model's ``{dev query id: score}`` of ``cfg.eval_metric``, as
            run_loop scored it at step 0; None with a dev set: scored here.
        run_dir: the run folder, moved into the published folder.
        result: what training returned; the returned copy adds the gate, the mixing weight,
            the general checks and what was published.
        tuned_per_query: ``tuned``'s per-query dev scores when already known (saves one
            evaluation); None: scored here when needed.
    """
    metric = cfg.eval_metric
    needs_base = dev is not None or bool(cfg.general_checks)
    base_encoder = _load_base(cfg, base, tuned) if needs_base else tuned

    def score(encoder: Encoder) -> dict[str, float]:
        assert dev is not None
        evaluated = evaluate_encoder(
            encoder, dev, batch_size=cfg.eval_batch_size, show_progress=False
        )
        return scores_of(evaluated.per_query, metric)

    published_model: Encoder = tuned
    mix_weight: float | None = None
    mix_scores: list[tuple[float, float]] = []
    chosen_per_query: dict[str, float] | None = None
    base_scores: dict[str, float] | None = None
    if dev is not None:
        base_scores = dict(base_per_query) if base_per_query is not None else score(base_encoder)
        grid = sorted(set(cfg.mix_grid))
        if grid != [1.0] and result.best_step != 0:  # best_step 0: the best *is* the base
            mixer = WeightMixer(tuned, base_encoder)
            by_weight: dict[float, dict[str, float]] = {}
            for a in grid:
                if a == 1.0 and tuned_per_query is not None:
                    by_weight[a] = dict(tuned_per_query)
                else:
                    by_weight[a] = score(mixer.mix(a))
            mix_weight, why = choose_mix(base_scores, by_weight)
            mix_scores = grid_scores(by_weight, grid)
            chosen_per_query = by_weight[mix_weight]
            published_model = tuned if mix_weight == 1.0 else mixer.mix(mix_weight)
            console.print(
                "weights mixed with the base model, dev "
                + ", ".join(f"a={a:g}: {s:.4f}" for a, s in mix_scores)
                + f"; chosen {why}",
                soft_wrap=True,
                highlight=False,
            )
        else:
            chosen_per_query = (
                dict(tuned_per_query) if tuned_per_query is not None else score(tuned)
            )
    gate = decide(
        base_scores,
        chosen_per_query,
        min_gain=cfg.publish_min_gain,
        max_p=cfg.publish_p,
        metric=metric,
        strata=dev.strata if dev is not None else None,
    )
    if gate.published == "base":
        published_model = base_encoder
    if dev is None:
        console.print(NO_DEV_MESSAGE, style="yellow", soft_wrap=True)
    elif gate.published == "base":
        console.print(gate.reason, style="bold red", soft_wrap=True, highlight=False)
    else:
        console.print(gate.reason, style="green", soft_wrap=True, highlight=False)
    checks = general_checks(
        cfg.general_checks,
        base_encoder,
        None if gate.published == "base" else published_model,  # without dev: tuned vs base
        batch_size=cfg.eval_batch_size,
        show_progress=False,
    )
    for c in checks:
        console.print(
            f"general check {c.name}: {c.metric} {c.before:.4f} -> {c.after:.4f} ({c.delta:+.4f})",
            highlight=False,
        )
    published_score = None
    if chosen_per_query is not None and base_scores is not None:
        kept = base_scores if gate.published == "base" else chosen_per_query
        published_score = sum(kept.values()) / len(kept) if kept else None
    final = replace(
        result,
        improved=gate.improvement == "improved",
        improvement=gate.improvement,
        published=gate.published,
        published_score=published_score,
        mix_weight=mix_weight,
        mix_scores=mix_scores,
        gate=gate,
        general_checks=checks,
    )
    publish(published_model, run_dir, Path(cfg.output), final)
    return final


def _load_base(cfg: TrainConfig, base: Encoder | str | Path, tuned: Encoder) -> Encoder:
    """The base model on ``tuned``'s device; a folder is loaded with the run's recipe overrides
    (the same architecture as the tuned model, so that the weights can be interpolated)."""
    if isinstance(base, Encoder):
        return base.to(tuned.device).eval()
    loaded = Encoder.load(
        base,
        pooling=cfg.pooling,
        normalize=cfg.normalize,
        layer=cfg.layer,
        max_seq_length=cfg.max_seq_length,
        query_prompt=cfg.query_prompt,
        document_prompt=cfg.document_prompt,
        device=tuned.device,
    ).eval()
    layer = loaded.config.layer  # saved folders are truncated to their layer (Encoder.save)
    if layer is not None and layer < loaded.num_layers:
        loaded = loaded.truncate(layer)
    return loaded
