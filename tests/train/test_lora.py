"""LoRA adapters (``adapter: lora``): merged == adapted, adapter-only checkpoints, resume,
GradCache and two processes give what the plain paths give."""

from __future__ import annotations

import json
import os

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from ragtune.config import load_config
from ragtune.errors import RagtuneError
from ragtune.losses import InfoNCELoss
from ragtune.losses.gradcache import GradCache
from ragtune.model import Encoder
from ragtune.model.adapters import (
    LoraSettings,
    adapter_state_dict,
    add_lora,
    is_adapted,
    load_adapter,
    trainable_parameters,
)
from ragtune.train import TrainConfig, train
from tests.conftest import make_tiny_encoder
from tests.train.test_distributed import free_port

pytest.importorskip("peft")

TEXTS = ["what is a glacier", "rivers run to the sea", "a compiler turns code into machine code"]
LORA = {"adapter": "lora", "lora_rank": 4, "lora_alpha": 8.0, "lora_dropout": 0.0}


def adapted_tiny_encoder(tokenizer, **settings) -> Encoder:
    """A tiny random BERT with LoRA whose B matrices are random too (trained-looking)."""
    encoder = make_tiny_encoder(tokenizer)
    torch.manual_seed(1)
    add_lora(encoder, LoraSettings(rank=4, alpha=8.0, dropout=0.0, **settings))
    with torch.no_grad():
        for name, param in encoder.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.2)  # B starts at 0: without this, merged == base trivially
    return encoder.eval()


def common(tmp_path, tiny_model_dir, pairs_file, **extra) -> dict:
    return {
        "model": str(tiny_model_dir),
        "data": str(pairs_file),
        "epochs": 1,
        "learning_rate": 1e-3,
        "warmup_ratio": 0.0,
        "dev_fraction": 0.0,
        "threads": 1,
        "precision": "fp32",
        "recipe": "fixed",  # these tests are about the fixed run's mechanics
        **LORA,
        **extra,
    }


def published_state(path) -> dict[str, torch.Tensor]:
    return Encoder.load(path, device="cpu").backbone.state_dict()


def assert_same_weights(got: dict, want: dict, **tol) -> None:
    assert set(got) == set(want)
    for name, tensor in want.items():
        torch.testing.assert_close(got[name], tensor, msg=name, **tol)


# ---------------------------------------------------------------- merging and saving


def test_only_the_adapter_trains_and_it_starts_as_the_base_model(tokenizer):
    base = make_tiny_encoder(tokenizer)
    want = base.encode(TEXTS)
    add_lora(base, LoraSettings(rank=4, alpha=8.0))
    trainable, total = trainable_parameters(base)
    # rank 4 on q, k, v, attention-out (32x32) and the two FFN linears (32x64): 2 layers
    assert trainable == 2 * (4 * (4 * 32 + 4 * 32) + 2 * (4 * 32 + 4 * 64))
    assert 0 < trainable < total
    assert all(".lora_" in n for n, p in base.named_parameters() if p.requires_grad)
    assert abs(base.encode(TEXTS) - want).max() == 0  # B = 0: the base model exactly


def test_saved_model_is_merged_plain_and_embeds_like_the_adapted_encoder(tmp_path, tokenizer):
    encoder = adapted_tiny_encoder(tokenizer)
    want = encoder.encode(TEXTS)
    saved = encoder.save(tmp_path / "merged")

    loaded = Encoder.load(saved, device="cpu")
    assert not is_adapted(loaded.backbone)
    assert not any("lora" in k for k in load_file(saved / "model.safetensors"))
    assert abs(loaded.encode(TEXTS) - want).max() < 1e-5
    assert is_adapted(encoder.backbone)  # the merge ran on a copy
    assert abs(encoder.encode(TEXTS) - want).max() == 0


def test_adapter_alone_round_trips_onto_the_base_model(tmp_path, tokenizer):
    encoder = adapted_tiny_encoder(tokenizer)
    base_dir = make_tiny_encoder(tokenizer).save(tmp_path / "base")
    folder = encoder.save_adapter(tmp_path / "adapter")
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    config = json.loads((folder / "adapter_config.json").read_text())
    assert (config["peft_type"], config["r"]) == ("LORA", 4)

    again = Encoder.load(base_dir, device="cpu")
    load_adapter(again, folder)
    assert abs(again.encode(TEXTS) - encoder.encode(TEXTS)).max() < 1e-6


def test_bad_targets_and_a_second_adapter_are_one_line_errors(tokenizer):
    with pytest.raises(RagtuneError, match="train.lora_targets: no module"):
        add_lora(make_tiny_encoder(tokenizer), LoraSettings(targets=("q_proj",)))
    encoder = adapted_tiny_encoder(tokenizer)
    with pytest.raises(RagtuneError, match="already has adapters"):
        add_lora(encoder, LoraSettings())
    with pytest.raises(RagtuneError, match="lora_targets"):
        TrainConfig(adapter="lora", lora_targets=())


def test_without_peft_the_error_names_the_extra(tokenizer, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "peft", None)
    with pytest.raises(RagtuneError, match=r"ragtune\[lora\]"):
        add_lora(make_tiny_encoder(tokenizer), LoraSettings())


# ---------------------------------------------------------------- GradCache


def test_grad_cache_gives_the_plain_loss_and_adapter_gradients(tokenizer):
    encoder = adapted_tiny_encoder(tokenizer).train()
    encoder.set_attention_dropout(0.0)  # no random masks: the two paths see the same model
    encoder.set_hidden_dropout(0.0)
    queries = [f"query about topic {i} " * (1 + i % 3) for i in range(6)]
    docs = [f"a document on topic {i}" for i in range(6)]
    texts = {"query": encoder.tokenize(queries), "positive": encoder.tokenize(docs)}
    loss_fn = InfoNCELoss()

    want_loss = loss_fn(**{name: encoder(f) for name, f in texts.items()})
    want_loss.backward()
    want = {n: p.grad.clone() for n, p in encoder.named_parameters() if p.grad is not None}
    encoder.zero_grad(set_to_none=True)
    got_loss = GradCache(loss_fn, mini_batch_size=4).forward_backward(encoder.forward, texts)
    got = {n: p.grad.clone() for n, p in encoder.named_parameters() if p.grad is not None}

    torch.testing.assert_close(got_loss, want_loss.detach(), rtol=1e-5, atol=0)
    assert set(got) == set(want) == set(adapter_state_dict(encoder))  # no base weight gets one
    for name, grad in want.items():
        torch.testing.assert_close(got[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_training_with_grad_cache_equals_training_without(tmp_path, tiny_model_dir, pairs_file):
    values = common(tmp_path, tiny_model_dir, pairs_file, batch_size=16)
    train(load_config(TrainConfig, None, (), **values, output=str(tmp_path / "plain")))
    cached = {**values, "loss": {"name": "infonce", "cache_mini_batch_size": 4}}
    train(load_config(TrainConfig, None, (), **cached, output=str(tmp_path / "cached")))
    want = published_state(tmp_path / "plain")
    assert_same_weights(published_state(tmp_path / "cached"), want, rtol=1e-4, atol=2e-6)
    base = published_state(tiny_model_dir)
    assert any(not torch.equal(want[k], base[k]) for k in base)  # the adapter did train


# ---------------------------------------------------------------- checkpoints and resume


def test_checkpoints_hold_only_the_adapter(tmp_path, tiny_model_dir, pairs_file):
    values = common(tmp_path, tiny_model_dir, pairs_file, batch_size=16)
    train(load_config(TrainConfig, None, (), **values, output=str(tmp_path / "out")))
    (ckpt,) = sorted((tmp_path / "out" / "run" / "checkpoints").iterdir())
    assert not (ckpt / "model.safetensors").exists()
    tensors = load_file(ckpt / "adapter.safetensors")
    assert tensors and all(".lora_" in name for name in tensors)
    full = (tiny_model_dir / "model.safetensors").stat().st_size
    assert (ckpt / "adapter.safetensors").stat().st_size < full / 5
    run = json.loads((ckpt / "run.json").read_text())
    assert (run["adapter"], run["lora_rank"], run["lora_targets"]) == (
        "lora",
        4,
        ["query", "key", "value", "dense"],
    )


def test_resume_with_adapters_gives_the_uninterrupted_weights(tmp_path, tiny_model_dir, pairs_file):
    # constant schedule: stopping at max_steps and resuming sees the same learning rates
    values = common(tmp_path, tiny_model_dir, pairs_file, batch_size=16, epochs=2)
    values.update(schedule="constant", save_steps=100, lora_dropout=0.1)
    train(load_config(TrainConfig, None, (), **values, output=str(tmp_path / "straight")))
    part = {**values, "output": str(tmp_path / "resumed")}
    first = train(load_config(TrainConfig, None, (), **part, max_steps=4))
    assert first.steps == 4
    rest = train(load_config(TrainConfig, None, (), **part, resume=True))
    assert rest.steps == 12  # 96 pairs / 16 = 6 steps per epoch, 2 epochs
    assert_same_weights(
        published_state(tmp_path / "resumed"),
        published_state(tmp_path / "straight"),
        rtol=0,
        atol=1e-7,
    )


def test_resume_with_other_adapter_settings_is_refused(tmp_path, tiny_model_dir, pairs_file):
    values = common(tmp_path, tiny_model_dir, pairs_file, batch_size=16, max_steps=2)
    values["output"] = str(tmp_path / "out")
    train(load_config(TrainConfig, None, (), **values))
    with pytest.raises(RagtuneError, match=r"lora_rank 4 -> 8"):
        train(load_config(TrainConfig, None, (), **{**values, "lora_rank": 8}, resume=True))
    with pytest.raises(RagtuneError, match=r"adapter 'lora' -> 'none'"):
        train(load_config(TrainConfig, None, (), **{**values, "adapter": "none"}, resume=True))
    forced = {**values, "adapter": "none", "resume_force": True}
    with pytest.raises(RagtuneError, match="holds LoRA adapter weights only"):
        train(load_config(TrainConfig, None, (), **forced, resume=True))


# ---------------------------------------------------------------- two processes


def run_rank(rank: int, world: int, port: int, values: dict) -> None:
    os.environ.update(
        {
            "RANK": str(rank),
            "WORLD_SIZE": str(world),
            "LOCAL_RANK": str(rank),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RAGTUNE_PROGRESS": "0",
        }
    )
    torch.set_num_threads(1)
    train(load_config(TrainConfig, None, (), **values))
    os._exit(0)  # gloo's threads can abort the interpreter's shutdown (test_distributed.py)


@pytest.mark.slow
def test_two_processes_with_adapters_match_one_process(tmp_path, tiny_model_dir, pairs_file):
    values = common(tmp_path, tiny_model_dir, pairs_file)
    train(load_config(TrainConfig, None, (), **values, batch_size=16, output=str(tmp_path / "one")))
    ddp = {**values, "batch_size": 8, "output": str(tmp_path / "ddp")}
    mp.start_processes(
        run_rank, args=(2, free_port(), ddp), nprocs=2, join=True, start_method="spawn"
    )
    assert_same_weights(
        published_state(tmp_path / "ddp"), published_state(tmp_path / "one"), rtol=1e-4, atol=2e-6
    )
