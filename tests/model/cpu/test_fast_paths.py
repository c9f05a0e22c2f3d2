"""The CPU speed paths are off until asked for, say what they switched on, and switch back off."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ragtune.model import CpuFastPaths, enable_cpu_fast_paths
from ragtune.model.cpu.attention import NAME, bf16_attention_pays
from ragtune.model.cpu.dropout import CpuDropout
from ragtune.model.cpu.fused import FusedForward, unsupported_reason
from tests.conftest import make_tiny_encoder, tiny_bert

TEXTS = ["a short text", "a somewhat longer text about rivers, glaciers and harbors"]

needs_fused = pytest.mark.skipif(
    unsupported_reason(tiny_bert()) is not None,
    reason="this PyTorch build has no oneDNN fused linear",
)


def _attention(encoder) -> str:
    return encoder.backbone.config._attn_implementation


def _dropout_classes(encoder) -> set[type]:
    return {type(m) for m in encoder.backbone.modules() if isinstance(m, nn.Dropout)}


def test_a_new_encoder_is_the_plain_hugging_face_model(tokenizer):
    encoder = make_tiny_encoder(tokenizer)
    assert encoder.cpu_fast_paths is None
    assert _attention(encoder) == "sdpa"
    assert _dropout_classes(encoder) == {nn.Dropout}


@needs_fused
def test_training_switches_on_every_path_and_reports_it(tokenizer):
    encoder = make_tiny_encoder(tokenizer)
    dropouts = sum(type(m) is nn.Dropout for m in encoder.backbone.modules())
    paths = enable_cpu_fast_paths(encoder, training=True)
    assert encoder.cpu_fast_paths is paths
    assert (paths.attention, paths.dropout_modules) == (True, dropouts)
    assert paths.fused is not None and paths.fused_reason is None
    amx = "; dropout path in bf16 (AMX)" if bf16_attention_pays() else ""
    assert paths.describe() == {
        "attention": "fp32 sdpa under bf16 autocast" + amx,
        "dropout": f"{dropouts} modules with cheap CPU masks",
        "fused_inference": "yes",
    }
    assert _attention(encoder) == NAME
    assert _dropout_classes(encoder) == {CpuDropout}
    assert enable_cpu_fast_paths(encoder, training=True) is paths  # a second call changes nothing
    assert paths.dropout_modules == dropouts


def test_encoding_leaves_dropout_alone(tokenizer):
    encoder = make_tiny_encoder(tokenizer)
    paths = enable_cpu_fast_paths(encoder, training=False, fused=False)
    assert paths.dropout_modules == 0 and _dropout_classes(encoder) == {nn.Dropout}
    assert paths.describe()["fused_inference"] == "no: not asked for"
    enable_cpu_fast_paths(encoder, training=True)  # a training call later adds it
    assert _dropout_classes(encoder) == {CpuDropout}


def test_the_first_cpu_encode_switches_the_paths_on(tokenizer):
    encoder = make_tiny_encoder(tokenizer)
    encoder.encode(TEXTS)
    assert isinstance(encoder.cpu_fast_paths, CpuFastPaths)
    assert _attention(encoder) == NAME
    assert _dropout_classes(encoder) == {nn.Dropout}  # encoding runs no dropout


def test_the_fused_check_draws_no_random_numbers(tokenizer):
    encoder = make_tiny_encoder(tokenizer).train()
    before = torch.get_rng_state()
    enable_cpu_fast_paths(encoder, training=True)
    assert torch.equal(torch.get_rng_state(), before)
    assert encoder.training  # its mode is given back


def test_disable_gives_back_the_hugging_face_model_and_stays_off(tokenizer):
    plain = make_tiny_encoder(tokenizer)
    encoder = make_tiny_encoder(tokenizer)
    weights = {k: v.clone() for k, v in encoder.state_dict().items()}
    paths = enable_cpu_fast_paths(encoder, training=True)
    paths.disable()
    assert _attention(encoder) == "sdpa" and _dropout_classes(encoder) == {nn.Dropout}
    assert paths.describe() == {
        "attention": "unchanged",
        "dropout": "unchanged",
        "fused_inference": "no: disabled",
    }
    after = encoder.state_dict()
    assert after.keys() == weights.keys()
    assert all(torch.equal(after[k], weights[k]) for k in weights)
    features = encoder.tokenize(TEXTS)
    with torch.no_grad():
        assert torch.equal(encoder(features), plain(features))
    encoder.encode(TEXTS)  # encode does not switch a disabled record back on
    assert encoder.cpu_fast_paths is paths and _attention(encoder) == "sdpa"


def test_a_model_off_the_cpu_is_left_as_it_is(tokenizer):
    encoder = make_tiny_encoder(tokenizer).to("meta")
    paths = enable_cpu_fast_paths(encoder, training=True)
    assert paths.describe() == {
        "attention": "unchanged",
        "dropout": "unchanged",
        "fused_inference": "no: the model is on meta, not the CPU",
    }
    assert encoder.cpu_fast_paths is None
    assert _attention(encoder) == "sdpa" and _dropout_classes(encoder) == {nn.Dropout}


def test_evaluation_during_training_still_gets_the_fused_path(tokenizer):
    encoder = make_tiny_encoder(tokenizer)
    enable_cpu_fast_paths(encoder, training=True, fused=False)  # what train/prepare.py does
    assert encoder.cpu_fast_paths.describe()["fused_inference"] == "no: not asked for"
    encoder.encode(["a dev query"])  # the first evaluation
    assert isinstance(encoder.cpu_fast_paths.fused, FusedForward)
    assert encoder.cpu_fast_paths.dropout_modules > 0  # training's paths are kept
