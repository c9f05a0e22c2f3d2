"""``tune --budget`` bounds the whole run: training gets what the stages around it leave."""

from __future__ import annotations

import pytest

from ragtune.tune.budget import MIN_STEPS, SAFETY, TrainingPlan, plan_training


def test_every_step_trains_when_the_budget_has_room():
    plan = plan_training(
        budget=1800,
        spent=300,
        full_steps=100,
        step_seconds=5.0,
        encode_seconds=1000 / 100,  # 1,000 texts at 100 texts/s
    )
    assert plan.max_steps == 100 and not plan.shortened and not plan.over_budget
    assert plan.reserve == pytest.approx(10 * SAFETY)
    assert plan.describe().startswith("all 100 training steps fit the 30.0 min budget")


def test_a_tight_budget_shortens_the_schedule_to_the_steps_that_fit():
    # 1200 s budget - 300 s spent - 100 texts/s x 10,000 texts x 1.25 = 775 s left: 77 steps of 10 s
    plan = plan_training(
        budget=1200,
        spent=300,
        full_steps=375,
        step_seconds=10.0,
        encode_seconds=10_000 / 100,
    )
    assert plan.max_steps == 77 and plan.shortened and not plan.over_budget
    assert plan.spent + plan.reserve + plan.max_steps * plan.step <= plan.budget
    assert plan.describe().startswith("77 of 375 training steps fit the 20.0 min budget")


def test_a_spent_budget_still_trains_the_minimum_and_says_it_will_end_late():
    plan = plan_training(
        budget=60,
        spent=90,
        full_steps=500,
        step_seconds=2.0,
        encode_seconds=0.0,
    )
    assert plan.max_steps == MIN_STEPS and plan.over_budget
    assert "the budget is too small" in plan.describe()
    small = plan_training(budget=60, spent=90, full_steps=3, step_seconds=2.0, encode_seconds=0.0)
    assert small.max_steps == 3 and not small.shortened


def test_the_plan_survives_its_json_so_a_resumed_run_keeps_its_schedule():
    plan = plan_training(
        budget=1200,
        spent=300,
        full_steps=375,
        step_seconds=10.0,
        encode_seconds=10_000 / 100,
    )
    assert TrainingPlan.from_json(plan.to_json()).max_steps == plan.max_steps == 77
