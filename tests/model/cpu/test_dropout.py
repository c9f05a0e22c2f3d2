"""CPU dropout with cheap masks: Bernoulli(1 - p) masks, exact rescaling, the same gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ragtune.model import enable_cpu_fast_paths
from ragtune.model.cpu import dropout as fast
from ragtune.model.cpu.attention import _attention_with_dropout, use_fp32_cpu_attention
from tests.conftest import make_tiny_encoder, tiny_bert


def test_masks_keep_each_element_with_probability_one_minus_p():
    torch.manual_seed(0)
    for p in (0.1, 0.3, 0.5):
        kept = fast.keep_mask((1000, 1000), p, torch.device("cpu")).float().mean().item()
        assert abs(kept - (1 - p)) < 0.002  # 1e6 draws: the standard error is below 0.0005


def test_kept_elements_are_rescaled_by_the_exact_inverse_keep_rate():
    torch.manual_seed(0)
    x = torch.rand(300, 400) + 0.5  # no zeros, so a zero in the output means dropped
    y = fast.dropout(x, 0.1)
    kept = y != 0
    scale = 65536 / (65536 - round(0.1 * 65536))
    assert fast.keep_scale(0.1) == scale
    torch.testing.assert_close(y[kept], x[kept] * scale, rtol=1e-6, atol=0)
    assert abs(fast.dropout(torch.ones(1000, 1000), 0.2).mean().item() - 1.0) < 0.003


def test_backward_passes_the_gradient_through_kept_elements_only():
    torch.manual_seed(0)
    x = (torch.rand(64, 32) + 0.5).requires_grad_()
    y = fast.dropout(x, 0.25)
    g = torch.randn(64, 32)
    y.backward(g)
    scale = fast.keep_scale(0.25)
    torch.testing.assert_close(x.grad, torch.where(y != 0, g * scale, 0.0))


def test_masks_follow_the_default_generator():
    x = torch.ones(50, 50)
    torch.manual_seed(7)
    first = fast.dropout(x, 0.5)
    torch.manual_seed(7)
    assert torch.equal(fast.dropout(x, 0.5), first)
    with torch.random.fork_rng():
        fast.dropout(x, 0.5)
    assert not torch.equal(fast.dropout(x, 0.5), fast.dropout(x, 0.5))


def test_outside_training_or_at_p_zero_the_input_comes_back_untouched():
    x = torch.randn(4, 4)
    assert fast.dropout(x, 0.5, training=False) is x
    assert fast.dropout(x, 0.0) is x
    with pytest.raises(ValueError, match=r"dropout probability must be in \[0, 1\), got 1.5"):
        fast.keep_threshold(1.5)


def test_bf16_activations_keep_their_dtype():
    y = fast.dropout(torch.ones(8, 8, dtype=torch.bfloat16), 0.5)
    assert y.dtype == torch.bfloat16
    assert set(y.unique().tolist()) <= {0.0, 2.0}


def test_models_get_fast_dropout_without_a_change_to_their_weights():
    model = tiny_bert(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    swapped = fast.use_fast_cpu_dropout(model)
    assert swapped > 0
    assert not any(type(m) is nn.Dropout for m in model.modules())
    assert all(m.p == 0.1 for m in model.modules() if isinstance(m, fast.CpuDropout))
    after = model.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)


def test_an_encoder_trains_with_fast_dropout_and_encodes_without_it(tokenizer):
    encoder = make_tiny_encoder(tokenizer)
    encoder.set_hidden_dropout(0.2)
    encoder.set_attention_dropout(0.2)
    assert not any(isinstance(m, fast.CpuDropout) for m in encoder.backbone.modules())
    enable_cpu_fast_paths(encoder, training=True)
    assert any(isinstance(m, fast.CpuDropout) for m in encoder.backbone.modules())
    features = encoder.tokenize(["a short text", "a somewhat longer text with more words"])
    encoder.train()
    a, b = encoder(features), encoder(features)
    assert not torch.equal(a, b)  # masks differ between passes
    a.sum().backward()
    assert all(p.grad is not None for p in encoder.parameters() if p.requires_grad)
    encoder.eval()
    with torch.no_grad():
        assert torch.equal(encoder(features), encoder(features))


def _reference_attention(q, k, v, mask, p, scaling, keep):
    """Hugging Face's eager formula with a given keep mask."""
    scores = torch.matmul(q, k.transpose(2, 3)) * scaling
    scores = scores.masked_fill(~mask, torch.finfo(torch.float32).min)
    probs = torch.softmax(scores, dim=-1) * keep * fast.keep_scale(p)
    return torch.matmul(probs, v).transpose(1, 2).contiguous()


def test_attention_with_dropout_is_the_eager_formula_with_the_drawn_mask():
    torch.manual_seed(0)
    b, h, length, d = 3, 2, 7, 4
    q, k, v = (torch.randn(b, h, length, d, requires_grad=True) for _ in range(3))
    lengths = torch.tensor([7, 5, 2])
    mask = (torch.arange(length)[None, :] < lengths[:, None])[:, None, None, :]
    mask = mask.expand(b, 1, length, length)
    torch.manual_seed(1)
    got, _ = _attention_with_dropout(q, k, v, mask, dropout=0.3, scaling=0.5)
    torch.manual_seed(1)
    keep = fast.keep_mask((b, h, length, length), 0.3, q.device)
    want = _reference_attention(q, k, v, mask, 0.3, 0.5, keep)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    g = torch.randn_like(got)
    got_grads = torch.autograd.grad(got, (q, k, v), g)
    want_grads = torch.autograd.grad(want, (q, k, v), g)
    for x, y in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)


def test_padding_never_leaks_into_real_tokens_under_attention_dropout():
    model = tiny_bert(attention_probs_dropout_prob=0.3, hidden_dropout_prob=0.0)
    assert use_fp32_cpu_attention(model)
    fast.use_fast_cpu_dropout(model)
    model.train()
    ids = torch.tensor([[5, 6, 7, 8, 0, 0], [9, 10, 11, 12, 13, 14]])
    mask = (ids != 0).long()
    other = ids.clone()
    other[0, 4:] = torch.tensor([42, 43])  # different ids at padded positions
    torch.manual_seed(3)
    a = model(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.manual_seed(3)
    b = model(input_ids=other, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(a[0, :4], b[0, :4], rtol=0, atol=1e-6)
    assert torch.isfinite(a).all()


def test_attention_with_dropout_kept_in_bf16_is_the_same_formula_at_bf16_precision():
    """AMX's path: bf16 inputs stay bf16 (same mask, same formula), close to the fp32 math."""
    torch.manual_seed(0)
    b, h, length, d = 3, 2, 9, 8
    q, k, v = (torch.randn(b, h, length, d) for _ in range(3))
    lengths = torch.tensor([9, 5, 2])
    mask = (torch.arange(length)[None, :] < lengths[:, None])[:, None, None, :]
    mask = mask.expand(b, 1, length, length)
    qb, kb, vb = (x.bfloat16().requires_grad_() for x in (q, k, v))
    torch.manual_seed(1)
    got, _ = _attention_with_dropout(qb, kb, vb, mask, dropout=0.3, scaling=0.5, keep_bf16=True)
    assert got.dtype == torch.bfloat16
    torch.manual_seed(1)
    keep = fast.keep_mask((b, h, length, length), 0.3, q.device)
    q32, k32, v32 = (x.detach().float().requires_grad_() for x in (qb, kb, vb))
    want = _reference_attention(q32, k32, v32, mask, 0.3, 0.5, keep)
    torch.testing.assert_close(got.float(), want, rtol=0, atol=3e-2)
    # the padded keys get exactly zero weight in bf16 too: changing them changes nothing
    kb2, vb2 = kb.detach().clone(), vb.detach().clone()
    kb2[1, :, 5:], vb2[1, :, 5:] = 7.0, -7.0
    torch.manual_seed(1)
    other, _ = _attention_with_dropout(qb, kb2, vb2, mask, dropout=0.3, scaling=0.5, keep_bf16=True)
    assert torch.equal(other[1, :5], got[1, :5].detach())
    g = torch.randn_like(want)
    got_grads = torch.autograd.grad(got, (qb, kb, vb), g.bfloat16())
    want_grads = torch.autograd.grad(want, (q32, k32, v32), g)
    for x, y in zip(got_grads, want_grads, strict=True):
        assert x.dtype == torch.bfloat16
        torch.testing.assert_close(x.float(), y, rtol=0, atol=6e-2)
    # without keep_bf16 the same bf16 inputs take the fp32 math (the default off AMX)
    torch.manual_seed(1)
    upcast, _ = _attention_with_dropout(qb, kb, vb, mask, dropout=0.3, scaling=0.5)
    torch.testing.assert_close(upcast.float(), want, rtol=0, atol=1e-2)


def test_bf16_attention_is_chosen_on_amx_only(monkeypatch):
    import ragtune.model.cpu.attention as attention
    import ragtune.model.cpu.bf16 as bf16

    for kind, expected in (("amx", True), ("avx512_bf16", False), ("none", False)):
        attention.bf16_attention_pays.cache_clear()
        monkeypatch.setattr(bf16, "bf16_kind", lambda flags=None, kind=kind: kind)
        assert attention.bf16_attention_pays() is expected
    attention.bf16_attention_pays.cache_clear()  # the real CPU's answer for later tests
