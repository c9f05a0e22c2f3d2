"""``recipe: auto``: a small dev-driven search over training recipes within a time budget.

:func:`train_auto` loads the data once, holds out a larger dev set than the fixed recipe
(:func:`ragtune.train.recipe.auto_dev_queries`), measures this machine's speed on the data
(:func:`ragtune.train.probe.measure_throughput`, a few seconds), plans the candidates that fit
the budget (:func:`ragtune.train.recipe.plan_search`), mines hard negatives for the mined
candidate when the plan has one (train/mined_negatives.py) and runs successive halving over them
(train/halving.py) with real runs (train/candidate_runs.py): every candidate trains to the first
rung, is scored on dev, the better half continues, until one has trained to its planned end.
After the first rung the survivors' length is re-planned from the measured speed of their real
steps (:func:`replanner`). Only the dev set chooses. The winner is then published like any run
(:func:`ragtune.train.finish.finish_run`): interpolated, gated against the base model, which is
published instead when the tuned model is not better on dev.

Every candidate's settings, dev score at each rung, training time and fate are in
``run/auto.json`` (and in the model card, train/search_report.py). Settings the user gave (a
flag, ``--set`` or the config file, as :func:`ragtune.config.given_keys` records them; for a
config built in Python, every searched field that differs from its default) stay fixed in the
search. Data too small to search, and plans of a single candidate, train as one plain run and
say why.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from ragtune.config import given_keys
from ragtune.data.schema import EvalSet, Example, LabelledPair
from ragtune.errors import RagtuneError
from ragtune.io import atomic_write_json
from ragtune.model.encoder import Encoder
from ragtune.model.precision import precision_name
from ragtune.progress import console
from ragtune.train.candidate_runs import TrainingRunner, dev_scores
from ragtune.train.config import TrainConfig, parse_budget
from ragtune.train.data import MAX_DEV_QUERIES, MIN_DEV_QUERIES, carve_dev_set, load_run_data
from ragtune.train.halving import Replan, Trial, successive_halving
from ragtune.train.logs import plot_curves
from ragtune.train.mined_negatives import mine_negatives, mining_corpus
from ragtune.train.prepare import prepare
from ragtune.train.probe import measure_throughput
from ragtune.train.recipe import (
    Candidate,
    DataShape,
    SearchPlan,
    Throughput,
    auto_dev_queries,
    batch_sizes,
    measured_throughput,
    plan_search,
    replan_epochs,
    survivors,
)
from ragtune.train.search_report import (
    AUTO_JSON,
    plan_table,
    search_evidence,
    trials_table,
)
from ragtune.train.state import Run, TrainResult, improvement

PROBE_SHARE = 0.03
"""Share of the budget the throughput probe may spend (54 s of 30 min)."""

__all__ = [
    "AUTO_JSON",
    "TrainingRunner",
    "Trial",
    "explicit_settings",
    "measure_throughput",
    "replanner",
    "search_evidence",
    "successive_halving",
    "too_small_to_search",
    "train_auto",
    "trials_table",
]


def explicit_settings(cfg: TrainConfig) -> dict[str, Any]:
    """The searched settings the user fixed, ``{dotted key: value}``.

    From :func:`ragtune.config.given_keys` when the config came from ``load_config`` (a flag,
    ``--set`` or the file); otherwise every searched field that differs from its default.
    """
    defaults = TrainConfig()

    def values(c: TrainConfig) -> dict[str, Any]:
        return {
            "batch_size": c.batch_size,
            "learning_rate": c.learning_rate,
            "epochs": c.epochs,
            "max_steps": c.max_steps,
            "loss.cache_mini_batch_size": c.loss.cache_mini_batch_size,
            "num_negatives": c.num_negatives,
            "dev_fraction": c.dev_fraction,
        }

    given, mine, default = given_keys(cfg), values(cfg), values(defaults)
    if given is not None:
        return {k: v for k, v in mine.items() if k in given}
    return {k: v for k, v in mine.items() if v != default[k]}


def train_auto(
    cfg: TrainConfig,
    *,
    examples: list[Example] | list[LabelledPair] | None = None,
    dev: EvalSet | None = None,
    encoder: Encoder | None = None,
) -> TrainResult:
    """Search the recipe within ``cfg.budget`` on dev, then finish and publish the winner.

    Returns the winner's :class:`TrainResult` as :func:`ragtune.train.finish.finish_run` completed
    it (interpolation, significance gate, general checks); ``seconds`` is the whole search. Data
    too small to search (:func:`too_small_to_search`) train exactly as ``recipe: fixed`` would;
    a plan of one candidate trains it as one plain run; both say why.
    """
    started = time.perf_counter()
    budget = parse_budget(cfg.budget)
    fixed = explicit_settings(cfg)
    out = Path(cfg.output)
    _check_output(cfg)  # what prepare() would refuse, refused before any data loads
    if cfg.general_checks:  # a bad folder fails before any training
        from ragtune.evaluation.forgetting import check_specs

        check_specs(cfg.general_checks)
    notes: list[str] = []  # printed once the model has loaded: a refusal stays the only line
    rows: list[Any] = list(examples) if examples is not None else []
    loaded_dev = dev
    if examples is None:
        rows, loaded_dev = load_run_data(replace(cfg, dev_fraction=0.0), notes)
    small = too_small_to_search(rows, loaded_dev, cfg, fixed)
    if small:
        return _train_as_fixed(cfg, examples, dev, encoder, small, budget)
    dev = loaded_dev
    if cfg.resume:
        raise RagtuneError(
            "recipe auto cannot resume a search; pass --recipe fixed with the chosen settings "
            f"(see {out / 'run' / AUTO_JSON}) to continue training"
        )
    if dev is None and not cfg.eval_data:
        rows, dev = _carve(rows, cfg, fixed, notes)
    examples = rows
    if encoder is None:
        encoder = _load_base(cfg)
    for note in notes:
        console.print(note, soft_wrap=True)
    shape = DataShape(
        train_queries=len({e.query for e in examples}) if cfg.group_by_query else len(examples),
        train_examples=len(examples),
        dev_queries=len(dev.queries) if dev is not None else 0,
        dev_corpus=len(dev.corpus) if dev is not None else 0,
        mining_corpus=mining_corpus(examples, cfg, fixed),
    )
    reserve = 1 + len(cfg.mix_grid)  # the base model's and the interpolation grid's evaluations
    speed = Throughput(1.0, 1.0)
    if _searchable(shape, fixed):
        speed = measure_throughput(encoder, examples, cfg, max_seconds=PROBE_SHARE * budget)
    plan = plan_search(
        shape,
        speed,
        budget - (time.perf_counter() - started),
        device=encoder.device.type,
        fixed=fixed,
        reserve_evals=reserve,
    )
    if len(plan.candidates) == 1:
        one = plan.candidates[0]
        record = _record(cfg, budget, started, shape, speed, fixed, plan, one.name, [Trial(one)])
        run = prepare(one.config(cfg), examples=examples, dev=dev, encoder=encoder)
        return _train_one(run, record, plan.reason)
    console.print(plan_table(plan, speed))
    if plan.reason:
        console.print(f"recipe auto: {plan.reason}", soft_wrap=True, markup=False)
    mined: list[Example] | None = None
    mining: dict[str, Any] = {}
    if plan.mining_seconds:
        mined, mining = mine_negatives(encoder, examples, cfg)
        console.print(f"recipe auto: {mining['note']}", soft_wrap=True, markup=False)
        if mined is None:
            plan = plan.without_mined(mining["note"])
    base_mean, base_per_query = None, None
    if dev is not None:
        base_mean, base_per_query = dev_scores(encoder, dev, cfg)
        console.print(f"base model {cfg.eval_metric} on {dev.name}: {base_mean:.4f}")
    runner = TrainingRunner(cfg, examples, dev, encoder, out / "run" / "candidates", mined)
    eval_s = speed.eval_seconds(shape) if dev is not None else 0.0
    winner, trials = successive_halving(
        plan,
        runner,
        budget - (time.perf_counter() - started) - (reserve - 1) * eval_s,
        step_seconds=lambda c: speed.step_seconds(c.batch_size, c.cost),
        replan=replanner(plan, shape, speed, fixed),
    )
    if winner is None:  # successive_halving always trains its first candidate
        raise RagtuneError("recipe auto: no candidate trained")
    record = _record(cfg, budget, started, shape, speed, fixed, plan, winner.candidate.name, trials)
    record["base_dev_score"] = base_mean
    record["mining"] = mining
    atomic_write_json(out / "run" / AUTO_JSON, record)
    console.print(trials_table(record))
    return _finish(cfg, runner, winner, encoder, base_per_query, started)


def too_small_to_search(
    rows: list[Any], dev: EvalSet | None, cfg: TrainConfig, fixed: Mapping[str, Any]
) -> str:
    """Why the data are too small for any search ('' when they are not).

    Too small: no dev set can be held out (fewer than 80 queries, see
    :func:`~ragtune.train.recipe.auto_dev_queries`, or a ``dev_fraction`` given that holds out
    none, and no ``eval_data``), or what remains for
    training is under two batches of the smallest batch size searched (32): every candidate
    would then train the same few steps and dev could not tell them apart. Such data train
    exactly as ``recipe: fixed`` does, at once (no probe, no search).
    """
    queries = len({e.query for e in rows})
    smallest = int(fixed.get("batch_size", min(batch_sizes(10**9))))
    if dev is not None or cfg.eval_data:
        held_out = 0
    elif "dev_fraction" in fixed:  # as carve_dev_set counts it
        held_out = min(MAX_DEV_QUERIES, int(queries * cfg.dev_fraction))
        held_out = held_out if held_out >= MIN_DEV_QUERIES else 0
    else:
        held_out = auto_dev_queries(queries)
    if dev is None and not cfg.eval_data and held_out == 0:
        return (
            f"no dev set ({queries} distinct queries, dev_fraction "
            f"{cfg.dev_fraction if 'dev_fraction' in fixed else 'auto'}): too few to hold out "
            "a dev set and compare candidates"
        )
    if queries - held_out < 2 * smallest:
        return (
            f"{queries - held_out} training queries: under two batches of {smallest}, too few "
            "for candidates to differ"
        )
    return ""


def replanner(
    plan: SearchPlan, shape: DataShape, probe: Throughput, fixed: Mapping[str, Any]
) -> Replan:
    """The re-plan after the first rung: the survivors' length from the real steps' speed."""
    keep = survivors(len(plan.candidates))

    def replan(
        trials: list[Trial], alive: list[Trial], rung: int, seconds_left: float
    ) -> dict[str, Candidate]:
        measured = measured_throughput(
            [(t.candidate, t.steps, t.seconds) for t in trials if t.steps],
            sum(len(t.scores) for t in trials),
            sum(t.eval_seconds for t in trials),
            shape,
            probe,
        )
        epochs = replan_epochs(
            [t.candidate for t in alive],
            [t.steps for t in alive],
            plan.rungs[rung + 1 :],
            keep[rung + 1 :],
            shape,
            measured,
            seconds_left,
            fixed,
        )
        console.print(
            f"recipe auto: measured {measured.pairs_per_second:.1f} pairs/s in the first rung "
            f"(probe {probe.pairs_per_second:.1f})"
            + (f"; survivors re-planned to {epochs} epochs" if epochs else ""),
            markup=False,
            highlight=False,
        )
        if epochs is None:
            return {}
        return {t.candidate.name: t.candidate.with_epochs(epochs) for t in alive}

    return replan


def _searchable(shape: DataShape, fixed: Mapping[str, Any]) -> bool:
    """Whether more than one candidate can exist (else no probe is worth its seconds); the mined
    candidate only joins a search of two or more."""
    varies = {"batch_size", "learning_rate", "epochs"} - set(fixed)
    return shape.dev_queries > 0 and bool(varies)


def _record(
    cfg: TrainConfig,
    budget: float,
    started: float,
    shape: DataShape,
    speed: Throughput,
    fixed: Mapping[str, Any],
    plan: SearchPlan,
    chosen: str,
    trials: list[Trial],
) -> dict[str, Any]:
    """What ``run/auto.json`` holds."""
    return {
        "budget_seconds": budget,
        "search_seconds": round(time.perf_counter() - started, 1),
        "metric": cfg.eval_metric,
        "data": asdict(shape),
        "throughput": asdict(speed),
        "fixed": dict(fixed),
        "plan": plan.to_dict(),
        "base_dev_score": None,
        "chosen": chosen,
        "candidates": [t.to_dict() for t in trials],
    }


def _train_one(run: Run, record: dict[str, Any], reason: str) -> TrainResult:
    """No search: one plain run (recipe fixed) of a prepared ``run``, with ``record`` in
    ``run/auto.json``. It evaluates on dev every epoch and keeps its best checkpoint, as a
    fixed run does. The reason is printed after prepare(), so a refusal stays the only line."""
    from ragtune.train.loop import run_loop

    cfg = run.cfg
    console.print(f"recipe auto: {reason}; no search", soft_wrap=True, markup=False)
    record["candidates"][0]["status"] = "trained as one run"
    record["chosen_config"] = {
        "batch_size": cfg.batch_size,
        "learning_rate": cfg.learning_rate,
        "epochs": cfg.epochs,
        "loss.cache_mini_batch_size": cfg.loss.cache_mini_batch_size,
    }
    if run.is_main:  # published with the run folder, shown in the model card
        atomic_write_json(run.run_dir / AUTO_JSON, record)
    return run_loop(run)


def _train_as_fixed(
    cfg: TrainConfig,
    examples: list[Any] | None,
    dev: EvalSet | None,
    encoder: Encoder | None,
    why: str,
    budget: float,
) -> TrainResult:
    """Data too small to search: exactly ``recipe: fixed`` on the user's settings (prepare()
    loads and carves the data as a fixed run does; ``examples``/``dev`` as the caller gave)."""
    run = prepare(replace(cfg, recipe="fixed"), examples=examples, dev=dev, encoder=encoder)
    one = Candidate(
        "fixed",
        cfg.batch_size,
        cfg.learning_rate,
        cfg.epochs,
        cfg.loss.cache_mini_batch_size,
    )
    reason = (
        f"{why}: trained as recipe fixed (batch {one.batch_size}, lr {one.learning_rate:g}, "
        f"{one.epochs} epoch(s))"
    )
    plan = SearchPlan([one], [1.0], 0.0, budget, reason)
    record = {
        "budget_seconds": budget,
        "metric": cfg.eval_metric,
        "data": {
            "train_examples": len(run.data.rows),
            "dev_queries": len(run.dev.queries) if run.dev is not None else 0,
        },
        "fixed": {},
        "plan": plan.to_dict(),
        "base_dev_score": None,
        "chosen": one.name,
        "candidates": [Trial(one).to_dict()],
    }
    return _train_one(run, record, reason)


def _finish(
    cfg: TrainConfig,
    runner: TrainingRunner,
    winner: Trial,
    base: Encoder,
    base_per_query: dict[str, float] | None,
    started: float,
) -> TrainResult:
    """The winner's run becomes the run: its files in ``run/``, then ``finish_run`` publishes."""
    from ragtune.train.finish import finish_run
    from ragtune.train.publish import write_run_files

    run = runner.runs[winner.candidate.name]
    final_cfg = winner.candidate.config(cfg)
    run_dir = Path(cfg.output) / "run"
    log = runner.folder(winner.candidate) / "run" / "log.jsonl"
    if log.is_file():
        shutil.copyfile(log, run_dir / "log.jsonl")
        plot_curves(run_dir / "log.jsonl", run_dir / "curves.png", cfg.eval_metric)
    write_run_files(
        run_dir, final_cfg, runner.examples, run.encoder, run.data, precision_name(run.autocast)
    )
    metric = cfg.eval_metric
    base_score = None if base_per_query is None else _mean(base_per_query)
    best = winner.last_score if runner.dev is not None else None
    history = [] if base_score is None else [{"step": 0, metric: base_score}]
    history += [{"step": s["step"], metric: s["dev"]} for s in winner.scores if runner.dev]
    result = TrainResult(
        output=Path(cfg.output),
        steps=winner.steps,
        seconds=time.perf_counter() - started,
        pairs_per_second=winner.steps * winner.candidate.batch_size / max(winner.seconds, 1e-9),
        metric=metric,
        base_score=base_score,
        best_score=best,
        best_step=winner.steps,
        improved=False,
        history=history,
        precision=precision_name(run.autocast),
        improvement=improvement(base_score, best),
    )
    for name in [n for n in runner.runs if n != winner.candidate.name]:
        runner.runs.pop(name)
    tuned = run.encoder
    shutil.rmtree(runner.work, ignore_errors=True)  # candidates' checkpoints: the search's own
    return finish_run(
        final_cfg,
        tuned=tuned,
        base=base,
        dev=runner.dev,
        base_per_query=base_per_query,
        run_dir=run_dir,
        result=result,
        tuned_per_query=runner.per_query.get(winner.candidate.name),
    )


def _mean(scores: Mapping[str, float]) -> float:
    return sum(scores.values()) / len(scores) if scores else 0.0


def _carve(
    examples: list[Any], cfg: TrainConfig, fixed: Mapping[str, Any], notes: list[str]
) -> tuple[list[Any], EvalSet | None]:
    """The dev set: ``dev_fraction`` when given, else :func:`auto_dev_queries` of the queries."""
    if "dev_fraction" in fixed:
        return carve_dev_set(examples, cfg.dev_fraction, cfg.seed, notes)
    queries = len({e.query for e in examples})
    n = auto_dev_queries(queries)
    if n == 0:
        notes.append(
            f"[yellow]only {queries} distinct queries: too few to hold out a dev set; "
            "recipe auto trains one candidate and cannot compare it with the base model"
        )
        return examples, None
    return carve_dev_set(examples, (n + 0.5) / queries, cfg.seed, notes)


def _check_output(cfg: TrainConfig) -> None:
    """What prepare() refuses for one run, refused before the search starts."""
    from ragtune.io import check_output

    check_output(Path(cfg.output), "model", sources=cfg.local_sources(), flag="output")


def _load_base(cfg: TrainConfig) -> Encoder:
    from ragtune.train import distributed as dist_utils

    return Encoder.load(
        cfg.model,
        pooling=cfg.pooling,
        normalize=cfg.normalize,
        layer=cfg.layer,
        max_seq_length=cfg.max_seq_length,
        query_prompt=cfg.query_prompt,
        document_prompt=cfg.document_prompt,
        device=dist_utils.device_for(0),
    )
