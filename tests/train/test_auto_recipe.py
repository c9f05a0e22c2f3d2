"""recipe: auto: the candidates a budget allows, the dev-driven halving, and a whole tiny search."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragtune.config import load_config
from ragtune.train import TrainConfig
from ragtune.train.auto import (
    Trial,
    explicit_settings,
    measure_throughput,
    replanner,
    successive_halving,
    too_small_to_search,
    train_auto,
)
from ragtune.train.recipe import (
    Candidate,
    DataShape,
    SearchPlan,
    Throughput,
    auto_dev_queries,
    batch_sizes,
    halving_rungs,
    plan_search,
    replan_epochs,
    survivors,
)
from tests.train.conftest import synthetic_pairs, write_jsonl

SCIFACT_LIKE = DataShape(train_queries=688, train_examples=788, dev_queries=121, dev_corpus=900)
CPU = Throughput(pairs_per_second=8.0, texts_per_second=30.0)


def test_scifact_sized_data_on_cpu_searches_large_batches_for_five_epochs():
    plan = plan_search(SCIFACT_LIKE, CPU, 30 * 60, reserve_evals=5)
    assert plan.estimated_seconds <= 30 * 60
    assert {c.epochs for c in plan.candidates} == {5}
    assert plan.candidates[0].batch_size == 256  # the largest the 688 queries allow
    assert plan.candidates[0].cache_mini_batch_size == 32  # through GradCache on CPU
    assert {c.batch_size for c in plan.candidates} >= {256, 128}
    assert plan.rungs[-1] == 1.0 and len(plan.rungs) == len(survivors(len(plan.candidates)))


def test_batch_is_capped_at_half_the_training_queries():
    assert batch_sizes(100) == [32]
    assert batch_sizes(300) == [128, 64, 32]
    assert batch_sizes(40) == [20]
    assert max(batch_sizes(100_000)) == 512


def test_large_data_and_a_small_budget_shorten_the_runs_before_the_width():
    big = DataShape(train_queries=50_000, train_examples=50_000, dev_queries=500, dev_corpus=5000)
    fast = Throughput(pairs_per_second=60.0, texts_per_second=600.0)
    plan = plan_search(big, fast, 60 * 60)
    assert plan.candidates[0].epochs < 5
    assert plan.estimated_seconds <= 60 * 60


def test_a_budget_that_fits_no_search_trains_one_candidate_and_says_why():
    plan = plan_search(SCIFACT_LIKE, CPU, 60)
    assert len(plan.candidates) == 1 and plan.rungs == [1.0]
    assert "budget" in plan.reason


def test_no_dev_set_means_one_candidate_and_a_reason():
    no_dev = DataShape(train_queries=60, train_examples=60)
    plan = plan_search(no_dev, CPU, 30 * 60)
    assert len(plan.candidates) == 1
    assert plan.reason.startswith("no dev set")


def test_explicit_settings_stay_fixed_in_every_candidate():
    plan = plan_search(SCIFACT_LIKE, CPU, 3600, fixed={"batch_size": 64, "epochs": 2})
    assert {c.batch_size for c in plan.candidates} == {64}
    assert {c.epochs for c in plan.candidates} == {2}
    assert len({c.learning_rate for c in plan.candidates}) == 2  # only the rate is searched
    all_fixed = {"batch_size": 64, "epochs": 2, "learning_rate": 3e-5}
    single = plan_search(SCIFACT_LIKE, CPU, 3600, fixed=all_fixed)
    assert [(c.batch_size, c.learning_rate, c.epochs) for c in single.candidates] == [(64, 3e-5, 2)]
    assert "fixed" in single.reason


def test_load_config_records_what_the_user_gave(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("epochs: 3\nloss:\n  cache_mini_batch_size: 16\n")
    cfg = load_config(TrainConfig, path, ["learning_rate=1e-4"], batch_size=32)
    # batch 32 equals the default but was given, so it is held fixed too
    assert explicit_settings(cfg) == {
        "batch_size": 32,
        "learning_rate": 1e-4,
        "epochs": 3,
        "loss.cache_mini_batch_size": 16,
    }
    assert explicit_settings(TrainConfig(epochs=2)) == {"epochs": 2}  # built in Python


def test_dev_set_of_auto_is_larger_than_the_fixed_recipes():
    assert auto_dev_queries(807) == 121  # SciFact train: 15%
    assert auto_dev_queries(300) == 75  # a quarter of small data, at least
    assert auto_dev_queries(100_000) == 500
    assert auto_dev_queries(60) == 0


class FakeRunner:
    """Training without a model: each candidate's dev score is fixed, each step costs 1 s.

    Scores are looked up by the name's first part, so a re-planned candidate keeps its score.
    """

    def __init__(
        self, scores: dict[str, float], clock: list[float], epoch_pairs: int | None = None
    ) -> None:
        self.scores, self.clock, self.epoch_pairs = scores, clock, epoch_pairs
        self.steps: dict[str, int] = {}
        self.released: list[str] = []

    def start(self, c: Candidate) -> int:
        self.steps[c.name] = 0
        return c.steps(self.epoch_pairs) if self.epoch_pairs else 8

    def advance(self, c: Candidate, step: int) -> int:
        self.clock[0] += step - self.steps[c.name]
        self.steps[c.name] = step
        return step

    def extend(self, c: Candidate, planned: Candidate) -> int:
        self.steps[planned.name] = self.steps.pop(c.name)
        assert self.epoch_pairs
        return planned.steps(self.epoch_pairs)

    def score(self, c: Candidate) -> float:
        return self.scores[c.name.split("-")[0]] + 0.01 * self.steps[c.name]

    def release(self, c: Candidate) -> None:
        self.released.append(c.name)


def _plan(names: list[str], epochs: int = 1) -> SearchPlan:
    cands = [Candidate(f"{n}-{epochs}ep", 32, 2e-5, epochs) for n in names]
    return SearchPlan(cands, halving_rungs(len(cands)), 0.0, 100.0)


def test_halving_keeps_the_better_half_and_picks_the_best_dev_score():
    clock = [0.0]
    runner = FakeRunner({"a": 0.5, "b": 0.7, "c": 0.6, "d": 0.4}, clock)
    winner, trials = successive_halving(_plan(list("abcd")), runner, 1000, clock=lambda: clock[0])
    assert isinstance(winner, Trial) and winner.candidate.name == "b-1ep"
    assert winner.status == "chosen" and winner.steps == 8
    by_name = {t.candidate.name.split("-")[0]: t for t in trials}
    assert [s["step"] for s in by_name["b"].scores] == [2, 4, 8]  # rungs 0.25, 0.5, 1
    assert by_name["a"].status == by_name["d"].status == "stopped at rung 1"
    assert by_name["c"].status == "stopped at rung 2"
    assert sorted(runner.released) == ["a-1ep", "c-1ep", "d-1ep"]  # the winner is kept


def test_halving_stops_at_the_budget_with_the_best_so_far():
    clock = [0.0]
    runner = FakeRunner({"a": 0.5, "b": 0.7, "c": 0.6, "d": 0.4}, clock)
    plan = _plan(list("abcd"))
    winner, trials = successive_halving(
        plan, runner, 10, step_seconds=lambda c: 1.0, clock=lambda: clock[0]
    )
    assert clock[0] <= 10  # 4 x 2 steps at rung 1, then 2 more steps fit; 4 for rung 3 do not
    assert winner is not None and winner.candidate.name == "b-1ep"
    assert winner.status == "chosen (budget)"
    assert any(t.status == "stopped (budget)" for t in trials)


@pytest.fixture
def auto_cfg(tmp_path, tiny_model_dir, monkeypatch) -> TrainConfig:
    """160 pairs: 40 dev queries, 120 training queries -> batch 32 at two learning rates, plus
    the mined candidate; 1 epoch, given (so held fixed), keeps the search to a few steps."""
    import ragtune.train.auto as auto
    import ragtune.train.mined_negatives as mined_negatives

    # a fixed probe (the plan is then the same on any machine) ...
    monkeypatch.setattr(auto, "measure_throughput", lambda *a, **k: Throughput(1e3, 1e3))
    # ... and a random model's scores sit so close together that the false-negative filter
    # removes most candidates: let the mined candidate train on the third that is left
    monkeypatch.setattr(mined_negatives, "MIN_MINED_SHARE", 0.3)
    data = write_jsonl(tmp_path / "pairs.jsonl", synthetic_pairs(160))
    values = {
        "model": str(tiny_model_dir),
        "data": str(data),
        "output": str(tmp_path / "out"),
        "budget": "10m",
        "epochs": 1,
        "precision": "fp32",
        "log_steps": 1000,
        "mix_grid": (1.0,),
        "publish_p": 1.0,
    }
    return load_config(TrainConfig, None, [], **values)


def test_a_tiny_search_writes_every_candidate_to_auto_json_and_publishes(auto_cfg):
    from ragtune.train import train

    result = train(auto_cfg)
    out = Path(auto_cfg.output)
    record = json.loads((out / "run" / "auto.json").read_text())
    assert record["data"]["dev_queries"] == 40  # a quarter of 160 queries
    names = [c["name"] for c in record["candidates"]]
    assert record["chosen"] in names and len(names) == 3
    assert {c["epochs"] for c in record["candidates"]} == {1}  # given: held fixed
    mined = [c for c in record["candidates"] if c["hard_negatives"]]
    assert len(mined) == 1 and record["mining"]["mined"] >= 0.3 * 120
    chosen = next(c for c in record["candidates"] if c["name"] == record["chosen"])
    assert chosen["status"].startswith("chosen")
    assert all(c["dev_scores"] for c in record["candidates"])
    best = max(
        c["dev_scores"][-1]["dev"] for c in record["candidates"] if c["steps"] == chosen["steps"]
    )
    assert chosen["dev_scores"][-1]["dev"] == best
    assert result.best_score == pytest.approx(chosen["dev_scores"][-1]["dev"])
    assert (out / "model.safetensors").is_file() or any(out.glob("*.safetensors"))
    assert not (out / "run" / "candidates").exists()  # checkpoints of the search are removed
    assert "## Recipe search" in (out / "README.md").read_text()  # the card shows the table


def test_too_little_data_trains_exactly_as_recipe_fixed_and_says_why(tmp_path, tiny_model_dir):
    data = write_jsonl(tmp_path / "few.jsonl", synthetic_pairs(48))
    cfg = TrainConfig(
        model=str(tiny_model_dir),
        data=str(data),
        output=str(tmp_path / "out"),
        recipe="auto",
        precision="fp32",
    )
    result = train_auto(cfg)
    record = json.loads((tmp_path / "out" / "run" / "auto.json").read_text())
    assert len(record["candidates"]) == 1
    assert "too few to hold out a dev set" in record["plan"]["reason"]
    assert "trained as recipe fixed" in record["plan"]["reason"]  # printed, and in the card
    assert result.improvement == "not measured"
    assert record["chosen_config"] == {  # the fixed recipe's settings, untouched
        "batch_size": 32,
        "learning_rate": 2e-5,
        "epochs": 1,
        "loss.cache_mini_batch_size": 0,
    }


def test_what_counts_as_too_small_to_search():
    from ragtune.data.schema import Example

    rows = [Example(f"query {i}", f"doc {i}") for i in range(200)]
    cfg = TrainConfig()
    assert "too few to hold out" in too_small_to_search(rows[:79], None, cfg, {})
    assert "under two batches of 32" in too_small_to_search(rows[:84], None, cfg, {})  # 84 - 21
    assert too_small_to_search(rows[:84] * 2, None, cfg, {}) != ""  # a query counts once
    assert too_small_to_search(rows, None, cfg, {}) == ""


# ---------------------------------------------------------------- robust planning (fake clocks)


def test_the_probe_drops_its_warm_up_step_and_takes_the_median(tokenizer):
    from ragtune.data.schema import Example
    from tests.conftest import make_tiny_encoder

    encoder = make_tiny_encoder(tokenizer)
    rows = [Example(f"what is {i}", f"doc {i}") for i in range(8)]
    # each train step reads the clock twice; warm-up 100 s, then 2 s, 9 s (a load spike), 2 s
    ticks = iter([0, 100, 0, 2, 0, 9, 0, 2, 0, 1])
    speed = measure_throughput(
        encoder, rows, TrainConfig(precision="fp32"), pairs=8, clock=lambda: next(ticks)
    )
    assert speed.pairs_per_second == pytest.approx(8 / 2)  # not 8 / 100, not the mean 8 / 4.3
    assert speed.texts_per_second == pytest.approx(16 / 1)


def test_a_pessimistic_probe_is_corrected_after_the_first_rung():
    shape = DataShape(train_queries=320, train_examples=320, dev_queries=100, dev_corpus=100)
    probe = Throughput(pairs_per_second=3.2, texts_per_second=1e6)  # 10 s a step; really 1 s
    plan = _plan(list("abcd"), epochs=1)  # what the probe allowed: 4 candidates, 1 epoch
    clock = [0.0]
    runner = FakeRunner({"a": 0.5, "b": 0.7, "c": 0.6, "d": 0.4}, clock, shape.epoch_pairs)
    winner, trials = successive_halving(
        plan,
        runner,
        400,
        step_seconds=lambda c: probe.step_seconds(c.batch_size),
        clock=lambda: clock[0],
        replan=replanner(plan, shape, probe, {}),
    )
    assert winner is not None and winner.candidate.name == "b-5ep"
    assert winner.replanned == "1 -> 5 epochs after rung 1"
    assert winner.steps == winner.planned_steps == 50  # trained to its new planned end
    assert winner.status == "chosen"
    assert clock[0] <= 400


def test_replanning_keeps_what_the_budget_or_the_user_decides():
    shape = DataShape(train_queries=320, train_examples=320, dev_queries=100, dev_corpus=100)
    real = Throughput(pairs_per_second=32.0, texts_per_second=1e6)  # 1 s a step
    two = [Candidate("a-1ep", 32, 2e-5, 1), Candidate("b-1ep", 32, 4e-5, 1)]
    args = ([2, 2], [1.0], [1], shape, real)
    assert replan_epochs(two, *args, seconds_left=1000) == 5
    assert replan_epochs(two, *args, seconds_left=10) == 1  # 8 more steps; 2 epochs need 18
    assert replan_epochs(two, *args, seconds_left=5) is None  # not even the current length
    assert replan_epochs(two, *args, seconds_left=1000, fixed={"epochs": 1}) is None


def test_a_single_candidate_of_three_epochs_beats_a_search_of_short_runs():
    shape = DataShape(train_queries=320, train_examples=320, dev_queries=100, dev_corpus=100)
    speed = Throughput(pairs_per_second=3.2, texts_per_second=1e6)  # 100 s an epoch, plain
    # two candidates of 3 epochs need >= 680 s (batch 128 and 64 go through GradCache, x4/3);
    # six candidates of 1 epoch would fit in 315 s; alone, batch 32 fits 4 epochs (400 s)
    plan = plan_search(shape, speed, 450)
    assert [(c.batch_size, c.epochs) for c in plan.candidates] == [(32, 4)]  # length first
    assert "3+ epochs" in plan.reason


def test_no_candidate_is_compared_before_one_epoch_of_training():
    # measured on a 2-core AVX2 CPU on SciFact: 3.4 plain pairs/s. Before the floor, three
    # candidates of 3 epochs were compared at a quarter (0.75 epoch: batch 256 two steps into
    # its warm-up) and batch 32 won; now the first rung comes after 1.5 epochs
    slow = Throughput(pairs_per_second=3.4, texts_per_second=25.0)
    plan = plan_search(SCIFACT_LIKE, slow, 1745, reserve_evals=5)
    assert all(plan.rungs[0] * c.epochs >= 1 for c in plan.candidates)
    assert plan.candidates[0].batch_size == 256
    assert 32 not in {c.batch_size for c in plan.candidates}
    # and on a fast machine six candidates of 5 epochs (first rung 0.625 epoch) become four
    wide = plan_search(SCIFACT_LIKE, Throughput(1000.0, 1000.0), 30 * 60)
    assert len(wide.candidates) == 4 and wide.rungs[0] * 5 == 1.25


# ---------------------------------------------------------------- the mined candidate


def test_a_mined_candidate_joins_the_search_when_mining_fits():
    shape = DataShape(**{**SCIFACT_LIKE.__dict__, "mining_corpus": 700})
    plan = plan_search(shape, CPU, 45 * 60, reserve_evals=5)
    mined = [c for c in plan.candidates if c.hard_negatives]
    assert len(mined) == 1 and mined[0].hard_negatives == 1
    first = plan.candidates[0]  # the best-looking batch and rate, with one mined negative
    assert (mined[0].batch_size, mined[0].learning_rate) == (first.batch_size, first.learning_rate)
    assert plan.mining_seconds == pytest.approx((700 + 688) / CPU.texts_per_second)
    assert plan.estimated_seconds <= 45 * 60


def test_the_mined_candidate_is_skipped_with_a_note_when_mining_does_not_fit():
    shape = DataShape(**{**SCIFACT_LIKE.__dict__, "mining_corpus": 700})
    # 30 min fit 4 candidates of 5 epochs; a 5th, mined (1.5x the texts), does not, nor in
    # place of the 4th (the estimate assumes the slowest, the mined one, survives to the end)
    plan = plan_search(shape, CPU, 30 * 60, reserve_evals=5)
    assert len(plan.candidates) == 4 and {c.epochs for c in plan.candidates} == {5}
    assert not any(c.hard_negatives for c in plan.candidates)
    assert "mined hard negatives skipped" in plan.reason


def test_a_re_planned_candidate_continues_with_the_schedule_of_its_new_length(
    tmp_path, tiny_model_dir
):
    from ragtune.data.schema import Example
    from ragtune.model.encoder import Encoder
    from ragtune.train.candidate_runs import TrainingRunner
    from ragtune.train.schedule import lr_lambda

    examples = [Example(r["query"], r["positive"]) for r in synthetic_pairs(96)]
    cfg = TrainConfig(model=str(tiny_model_dir), precision="fp32", log_steps=1000)
    runner = TrainingRunner(cfg, examples, None, Encoder.load(tiny_model_dir), tmp_path / "c")
    short = Candidate("b32-lr2.0e-05-1ep", 32, 2e-5, 1)
    assert runner.start(short) == 3  # 96 queries, batch 32
    assert runner.advance(short, 1) == 1
    longer = short.with_epochs(2)
    assert runner.extend(short, longer) == 6  # resumed from the rung's checkpoint
    run = runner.runs[longer.name]
    assert run.state.step == 1
    # the learning rate is the 2-epoch schedule's at step 1, not the 1-epoch one's
    next_lr = run.optimizer.param_groups[0]["lr"]
    assert next_lr == pytest.approx(2e-5 * lr_lambda("linear", 0, 6)(1))
    assert runner.advance(longer, 6) == 6
    runner.release(longer)
    assert not (tmp_path / "c" / short.name).exists()
