"""The encoder's attention: Hugging Face sdpa in fp32, kept fp32 on CPU under bf16 autocast."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import BertModel

from ragtune.model import enable_cpu_fast_paths
from ragtune.model.cpu.attention import NAME, use_fp32_cpu_attention
from tests.conftest import make_tiny_encoder, tiny_bert

TEXTS = ["a short query", "a much longer passage about proteins, cells and the immune response"]


def _bert() -> BertModel:
    return tiny_bert(200).eval()


def _inputs() -> dict[str, torch.Tensor]:
    ids = torch.tensor([[5, 6, 7, 8, 0, 0], [9, 10, 11, 12, 13, 14]])
    return {"input_ids": ids, "attention_mask": (ids > 0).long()}


def test_encoder_switches_sdpa_models_and_fp32_output_is_unchanged(tokenizer):
    encoder = make_tiny_encoder(tokenizer)
    assert encoder.backbone.config._attn_implementation == "sdpa"  # construction changes nothing
    enable_cpu_fast_paths(encoder, training=False)
    assert encoder.backbone.config._attn_implementation == NAME

    plain = _bert()
    switched = _bert()
    assert use_fp32_cpu_attention(switched)
    with torch.no_grad():
        a = plain(**_inputs()).last_hidden_state
        b = switched(**_inputs()).last_hidden_state
    assert torch.equal(a, b)  # same kernel, same padding mask


def test_attention_runs_in_fp32_under_cpu_bf16_autocast():
    switched = _bert()
    use_fp32_cpu_attention(switched)
    seen: list[torch.dtype] = []

    def record(module, args, kwargs, output):  # the attention output projection's input
        seen.append(args[0].dtype)

    hook = switched.encoder.layer[0].attention.output.dense.register_forward_hook(
        record, with_kwargs=True
    )
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = switched(**_inputs()).last_hidden_state
    hook.remove()
    assert seen == [torch.bfloat16]  # handed back in the autocast dtype
    with torch.no_grad():
        reference = switched(**_inputs()).last_hidden_state
    # bf16 matmuls around an fp32 attention stay close to the fp32 model
    assert torch.allclose(out.float(), reference, atol=5e-2)


def test_other_attention_implementations_are_left_alone():
    model = _bert()
    model.set_attn_implementation("eager")
    assert not use_fp32_cpu_attention(model)
    assert model.config._attn_implementation == "eager"


def test_saved_folder_does_not_name_the_runtime_attention(tokenizer, tmp_path):
    encoder = make_tiny_encoder(tokenizer)
    assert enable_cpu_fast_paths(encoder, training=True).attention
    encoder.save(tmp_path / "m")
    text = json.dumps(json.loads((tmp_path / "m" / "config.json").read_text()))
    assert NAME not in text


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_gradients_flow_through_the_attention(tokenizer, precision):
    encoder = make_tiny_encoder(tokenizer).train()
    enable_cpu_fast_paths(encoder, training=True)
    features = encoder.tokenize(TEXTS)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        emb = encoder(features)
    assert emb.dtype == torch.float32  # pooled in fp32
    emb.sum().backward()
    grad = encoder.backbone.encoder.layer[0].attention.self.query.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
