"""Every config value is checked when the config is built, before any work.

A bad value must cost nothing: ``ragtune train`` stops with one line that names the field by its
dotted key and says what is allowed, before a model loads, and leaves the folder as it was.
Values with a documented meaning (``max_steps=0``: all epochs) keep working.
"""

from __future__ import annotations

import math
import subprocess
import sys
import types
from pathlib import Path

import pytest

from ragtune.config import load_config, toml_parser
from ragtune.errors import RagtuneError
from ragtune.losses import LossConfig
from ragtune.mining import MiningConfig
from ragtune.model import EncoderConfig
from ragtune.train import TrainConfig

POOLINGS = "choose one of mean, cls, max, weighted_mean, last_token"

# (override as --set takes it, the fragment the one-line error must contain)
BAD_OVERRIDES = [
    ("learning_rate=0", "train.learning_rate must be a finite number > 0, got 0.0"),
    ("learning_rate=-1e-5", "train.learning_rate must be a finite number > 0, got -1e-05"),
    ("learning_rate=nan", "train.learning_rate must be a finite number > 0, got nan"),
    ("learning_rate=inf", "train.learning_rate must be a finite number > 0, got inf"),
    ("batch_size=0", "train.batch_size must be >= 1, got 0"),
    ("batch_size=-4", "train.batch_size must be >= 1, got -4"),
    ("grad_accumulation=0", "train.grad_accumulation must be >= 1 (1: none), got 0"),
    ("epochs=0", "train.epochs must be >= 1, got 0"),
    ("max_steps=-5", "train.max_steps must be >= 0 (0: run all epochs), got -5"),
    ("save_steps=0", "train.save_steps must be >= 1, got 0"),
    ("eval_steps=-1", "train.eval_steps must be >= 0 (0: at the end of every epoch), got -1"),
    ("log_steps=0", "train.log_steps must be >= 1, got 0"),
    ("eval_batch_size=0", "train.eval_batch_size must be >= 1, got 0"),
    ("warmup_ratio=1.5", "train.warmup_ratio must be a finite number in [0, 1] (0: no warmup)"),
    ("warmup_ratio=-0.1", "train.warmup_ratio must be a finite number in [0, 1]"),
    ("weight_decay=-0.01", "train.weight_decay must be a finite number >= 0 (0: none)"),
    ("weight_decay=nan", "train.weight_decay must be a finite number >= 0 (0: none), got nan"),
    ("max_grad_norm=-1", "train.max_grad_norm must be a finite number >= 0 (0: no clipping)"),
    ("dev_fraction=1", "train.dev_fraction must be a finite number in [0, 1) (0: no dev set)"),
    ("threads=-1", "train.threads must be >= 0 (0: torch's default), got -1"),
    ("num_negatives=-1", "train.num_negatives must be >= 0 (0: in-batch negatives only), got -1"),
    (
        "hidden_dropout=2",
        "train.hidden_dropout must be a finite number in [0, 1) (0: off), got 2.0",
    ),
    (
        "hidden_dropout=1",
        "train.hidden_dropout must be a finite number in [0, 1) (0: off), got 1.0",
    ),
    ("attention_dropout=-0.1", "train.attention_dropout must be a finite number in [0, 1)"),
    ("pooling=avg", f"train.pooling: 'avg' is not valid; {POOLINGS}"),
    ("max_seq_length=0", "train.max_seq_length must be >= 1, got 0"),
    ("layer=0", "train.layer must be >= 1 (1 = the first transformer layer), got 0"),
    ("keep_checkpoints=-1", "train.keep_checkpoints must be >= 0 (0: keep every one), got -1"),
    ("early_stopping_patience=-2", "train.early_stopping_patience must be >= 0"),
    ("seed=-1", "train.seed must be in [0, 4294967295], got -1"),
    ("seed=4294967296", "train.seed must be in [0, 4294967295], got 4294967296"),
    ("precision=fp16", "train.precision: 'fp16' is not valid; choose one of auto, fp32, bf16"),
    ("cpu_memory=keep", "train.cpu_memory: 'keep' is not valid; choose one of reuse, release"),
    ("eval_metric=ndcg@20", "train.eval_metric: 'ndcg@20' is not valid; choose one of nDCG@1,"),
    ("output=", "train.output must not be empty: give the folder to write the model to"),
    ("output='  '", "train.output must not be empty"),
    ("model=", "train.model must not be empty: give a model folder or hub id"),
    ("eval_split=", "train.eval_split must not be empty: give a qrels split name"),
    ("query_column=", "train.query_column must not be empty: give a column name"),
    ("loss.scale=0", "loss.scale must be a finite number > 0, got 0.0"),
    ("loss.scale=-20", "loss.scale must be a finite number > 0, got -20.0"),
    ("loss.scale=inf", "loss.scale must be a finite number > 0, got inf"),
    ("loss.margin=-0.5", "loss.margin must be a finite number > 0, got -0.5"),
    ("loss.margin=0", "loss.margin must be a finite number > 0, got 0.0"),
    ("loss.false_negative_margin=nan", "loss.false_negative_margin must be a finite number >= 0"),
    ("loss.matryoshka_dims=64,0", "loss.matryoshka_dims must be distinct integers >= 1"),
    ("loss.matryoshka_dims=-32", "loss.matryoshka_dims must be distinct integers >= 1"),
    ("loss.matryoshka_dims=64,64", "loss.matryoshka_dims must be distinct integers >= 1"),
    ("loss.matryoshka_dims=64,,32", "loss.matryoshka_dims: empty item in '64,,32'"),
    ("loss.matryoshka_weights=1,-1", "loss.matryoshka_weights must be finite numbers > 0"),
    ("loss.cache_mini_batch_size=-1", "loss.cache_mini_batch_size must be >= 0 (0 = no GradCache)"),
]


@pytest.mark.parametrize(("override", "message"), BAD_OVERRIDES, ids=[o for o, _ in BAD_OVERRIDES])
def test_a_bad_value_names_its_key_and_what_is_allowed(override, message):
    with pytest.raises(RagtuneError) as caught:
        load_config(TrainConfig, None, ["data=pairs.jsonl", override])
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_triplet_loss_needs_a_negative_per_example():
    with pytest.raises(RagtuneError) as caught:
        load_config(TrainConfig, None, ["loss.name=triplet", "num_negatives=0"])
    assert str(caught.value) == (
        "train.num_negatives must be >= 1 (the triplet loss needs one per example), got 0"
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TrainConfig(learning_rate=math.nan), "train.learning_rate must be a finite"),
        (lambda: TrainConfig(batch_size=True), "train.batch_size must be an integer, got True"),
        (lambda: LossConfig(scale=0.0), "loss.scale must be a finite number > 0, got 0.0"),
        (lambda: LossConfig(matryoshka_dims=(32, 0)), "loss.matryoshka_dims must be distinct"),
        (lambda: MiningConfig(num_negatives=-1), "mining.num_negatives must be >= 1, got -1"),
        (lambda: MiningConfig(batch_size=0), "mining.batch_size must be >= 1, got 0"),
        (lambda: MiningConfig(margin=-0.1), "mining.margin must be a finite number >= 0"),
        (lambda: MiningConfig(relative_margin=1.5), "mining.relative_margin must be a finite"),
        (lambda: MiningConfig(max_score=math.inf), "mining.max_score must be a finite number"),
        (lambda: MiningConfig(seed=-3), "mining.seed must be in [0, 4294967295], got -3"),
        (lambda: MiningConfig(cache_dir=""), "mining.cache_dir must not be empty: give a folder"),
        (lambda: MiningConfig(cross_encoder=" "), "mining.cross_encoder must not be empty"),
        (lambda: EncoderConfig(pooling="avg"), f"encoder.pooling: 'avg' is not valid; {POOLINGS}"),
        (lambda: EncoderConfig(max_seq_length=0), "encoder.max_seq_length must be >= 1, got 0"),
        (lambda: EncoderConfig(layer=0), "encoder.layer must be >= 1"),
        (lambda: EncoderConfig(similarity="l2"), "encoder.similarity: 'l2' is not valid"),
    ],
)
def test_python_callers_get_the_same_checks(make, message):
    with pytest.raises(RagtuneError) as caught:
        make()
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "override",
    [
        "max_steps=0",  # run all epochs
        "eval_steps=0",  # evaluate at the end of every epoch
        "threads=0",  # torch's default
        "keep_checkpoints=0",  # keep every checkpoint
        "num_negatives=0",  # in-batch negatives only
        "warmup_ratio=0",
        "max_grad_norm=0",  # no clipping
        "dev_fraction=0",  # no dev set
        "hidden_dropout=0",
        "eval_metric=NDCG@10",  # metric names match case-insensitively
        "loss.matryoshka_dims=",  # empty: Matryoshka off
        "resume_force=true",
    ],
)
def test_values_with_a_documented_meaning_are_accepted(override):
    cfg = load_config(TrainConfig, None, [override])
    assert isinstance(cfg, TrainConfig)


def test_a_bad_value_in_a_config_file_is_caught_too(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data: pairs.jsonl\nloss:\n  name: infonce\n  scale: 0\n")
    with pytest.raises(RagtuneError, match="loss.scale must be a finite number > 0, got 0.0"):
        load_config(TrainConfig, path)


# ---- Python 3.10: TOML through tomli


def test_toml_falls_back_to_tomli_without_tomllib(tmp_path, monkeypatch):
    real = toml_parser()
    calls: list[str] = []
    tomli = types.ModuleType("tomli")
    tomli.loads = lambda text: calls.append(text) or real.loads(text)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tomllib", None)  # what Python 3.10 looks like
    monkeypatch.setitem(sys.modules, "tomli", tomli)
    path = tmp_path / "run.toml"
    path.write_text('data = "x.jsonl"\nepochs = 2\n')

    cfg = load_config(TrainConfig, path)

    assert (cfg.data, cfg.epochs) == ("x.jsonl", 2)
    assert calls == ['data = "x.jsonl"\nepochs = 2\n']


def test_toml_without_either_parser_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tomllib", None)
    monkeypatch.setitem(sys.modules, "tomli", None)
    path = tmp_path / "run.toml"
    path.write_text("epochs = 2\n")
    with pytest.raises(RagtuneError, match="needs tomli: pip install tomli"):
        load_config(TrainConfig, path)


# ---- the CLI: one line, exit 1, nothing created, no model loaded


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty-but-for-the-data folder as cwd; training itself must never start."""
    (tmp_path / "pairs.jsonl").write_text('{"query": "q", "positive": "p"}\n')
    monkeypatch.chdir(tmp_path)

    def refuse(*args, **kwargs):
        raise AssertionError("training started although the config was invalid")

    monkeypatch.setattr("ragtune.train.train", refuse)
    return tmp_path


def run_cli(args: list[str], monkeypatch, capsys) -> tuple[int, str]:
    from ragtune.cli.main import main

    monkeypatch.setattr(sys, "argv", ["ragtune", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    return int(exited.value.code or 0), capsys.readouterr().err


CLI_CASES = [
    (["--batch-size", "0"], "train.batch_size must be >= 1, got 0"),
    (["--batch-size", "-3"], "train.batch_size must be >= 1, got -3"),
    (["--lr", "0"], "train.learning_rate must be a finite number > 0, got 0.0"),
    (["--lr", "nan"], "train.learning_rate must be a finite number > 0, got nan"),
    (["--max-steps", "-5"], "train.max_steps must be >= 0 (0: run all epochs), got -5"),
    (["--epochs", "0"], "train.epochs must be >= 1, got 0"),
    (["--output", ""], "train.output must not be empty"),
    (["--set", "grad_accumulation=0"], "train.grad_accumulation must be >= 1"),
    (["--set", "save_steps=0"], "train.save_steps must be >= 1, got 0"),
    (["--set", "loss.scale=0"], "loss.scale must be a finite number > 0, got 0.0"),
    (["--set", "threads=-1"], "train.threads must be >= 0"),
    (["--set", "pooling=avg"], f"train.pooling: 'avg' is not valid; {POOLINGS}"),
    (["--set", "hidden_dropout=2"], "train.hidden_dropout must be a finite number in [0, 1)"),
    (["--set", "num_negatives=-1"], "train.num_negatives must be >= 0"),
    (["--loss", "mnrl"], "loss.name: 'mnrl' is not valid; choose one of infonce, contrastive"),
]


@pytest.mark.parametrize(("args", "message"), CLI_CASES, ids=[" ".join(a) for a, _ in CLI_CASES])
def test_train_refuses_a_bad_value_before_any_work(args, message, workdir, monkeypatch, capsys):
    before = listing(workdir)

    code, err = run_cli(["train", "--data", "pairs.jsonl", *args], monkeypatch, capsys)

    assert code == 1
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert listing(workdir) == before


def test_train_refuses_a_bad_value_in_its_config_file(workdir, monkeypatch, capsys):
    (workdir / "run.yaml").write_text("data: pairs.jsonl\nbatch_size: 0\noutput: runs/x\n")
    before = listing(workdir)

    code, err = run_cli(["train", "--config", "run.yaml"], monkeypatch, capsys)

    assert (code, err) == (1, "error: run.yaml: train.batch_size must be >= 1, got 0\n")
    assert listing(workdir) == before


@pytest.mark.slow
def test_the_console_script_refuses_before_loading_a_model(tmp_path):
    (tmp_path / "pairs.jsonl").write_text('{"query": "q", "positive": "p"}\n')
    before = listing(tmp_path)

    result = subprocess.run(
        [sys.executable, "-m", "ragtune.cli.main", "train", "--data", "pairs.jsonl"]
        + ["--model", "no/such-model", "--lr", "-1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )

    # an unknown model would fail later with a different line: the value is checked first
    assert result.returncode == 1
    assert result.stderr == "error: train.learning_rate must be a finite number > 0, got -1.0\n"
    assert listing(tmp_path) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epochs", "0"], "error: train.epochs must be >= 1, got 0\n"),
        (["--max-seq-length", "0"], "error: train.max_seq_length must be >= 1, got 0\n"),
    ],
)
def test_demo_refuses_a_bad_value_before_building_its_data(
    args, message, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("ragtune.demo.run_demo", lambda cfg: pytest.fail("the demo started"))

    code, err = run_cli(["demo", "--out", "demo-out", *args], monkeypatch, capsys)

    assert (code, err) == (1, message)
    assert listing(tmp_path) == []
