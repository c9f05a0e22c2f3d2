"""GradCache gives the same loss and parameter gradients as the plain full-batch step."""

from __future__ import annotations

import pytest
import torch
from transformers import BertModel

from ragtune.losses import CosineSimilarityLoss, GradCache, InfoNCELoss, LossError, MatryoshkaLoss
from ragtune.losses.gradcache import trim_padding
from ragtune.model.cpu.attention import use_fp32_cpu_attention
from ragtune.model.cpu.dropout import use_fast_cpu_dropout
from tests.conftest import tiny_bert as make_bert

B, N = 6, 2  # 6 queries, 6 positives, 12 hard negatives


def tiny_bert(dropout: float = 0.0, fast_cpu: bool = False) -> BertModel:
    """``fast_cpu``: ragtune's CPU attention and dropout (cheap masks), as training sets them up."""
    model = make_bert(
        100,
        max_position_embeddings=64,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    if fast_cpu:
        assert use_fp32_cpu_attention(model)
        assert use_fast_cpu_dropout(model) > 0
    return model


def mean_pooling_embed(model: BertModel):
    def embed(features: dict[str, torch.Tensor]) -> torch.Tensor:
        tokens = model(**features).last_hidden_state  # (rows, T, H)
        mask = features["attention_mask"].unsqueeze(-1).to(tokens.dtype)  # (rows, T, 1)
        return (tokens * mask).sum(1) / mask.sum(1)  # (rows, H)

    return embed


def fake_tokens(rows: int, seed: int, width: int = 16) -> dict[str, torch.Tensor]:
    """Right-padded random token ids with lengths 3..10, so every mini-batch has padding to trim."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 11, (rows,), generator=g)
    input_ids = torch.randint(1, 100, (rows, width), generator=g)
    attention_mask = (torch.arange(width)[None, :] < lengths[:, None]).long()  # (rows, T)
    return {"input_ids": input_ids * attention_mask, "attention_mask": attention_mask}


def batch() -> dict[str, dict[str, torch.Tensor]]:
    return {
        "query": fake_tokens(B, 1),
        "positive": fake_tokens(B, 2),
        "negatives": fake_tokens(B * N, 3),
    }


def plain_step(model, loss_fn, texts, extra=None, reshape=None, chunk=None) -> torch.Tensor:
    """The reference: encode everything with a graph (optionally chunk by chunk), then backward."""
    embed = mean_pooling_embed(model)
    inputs = {}
    for name, features in texts.items():
        rows = features["input_ids"].size(0)
        size = chunk or rows
        parts = [
            embed({k: v[s : s + size] for k, v in features.items()}) for s in range(0, rows, size)
        ]
        emb = torch.cat(parts)
        inputs[name] = emb.view(*reshape[name], -1) if reshape and name in reshape else emb
    loss = loss_fn(**inputs, **(extra or {}))
    loss.backward()
    return loss.detach()


def grads(model) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def assert_same_gradients(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor], rel=1e-4):
    """Relative error < rel per parameter. The attention key biases' true gradient is exactly 0
    (adding a constant to every score of a softmax row changes nothing), so both sides hold float
    noise of ~1e-10 there: a 1e-8 absolute floor keeps that noise from counting as an error."""
    assert got.keys() == want.keys()
    for name in want:
        diff, size = (got[name] - want[name]).norm(), want[name].norm()
        assert diff <= rel * size + 1e-8, (
            f"{name}: error {diff:.2e} for a gradient of norm {size:.2e}"
        )


@pytest.mark.parametrize(
    ("loss_fn", "mini_batch_size", "pad_multiple", "masked"),
    # examples 0 and 3 share a positive: masked in each other's row (twice more if symmetric)
    [
        (InfoNCELoss(), 4, 1, 2.0),  # 4 does not divide the 6 queries; trimmed to the longest
        (InfoNCELoss(symmetric=True), 5, 4, 4.0),  # trimmed lengths rounded up to 4 tokens
        (MatryoshkaLoss(InfoNCELoss(), dims=(32, 16, 8)), 4, 64, 2.0),  # default: all kept
    ],
    ids=["infonce", "infonce-symmetric-mb5", "matryoshka-infonce"],
)
def test_equals_the_full_batch_loss_and_gradients(loss_fn, mini_batch_size, pad_multiple, masked):
    texts = batch()
    reshape = {"negatives": (B, N)}
    extra = {"positive_ids": torch.tensor([0, 1, 2, 0, 3, 4])}
    model = tiny_bert()

    want_loss = plain_step(model, loss_fn, texts, extra, reshape)
    want = grads(model)
    model.zero_grad()
    gc = GradCache(loss_fn, mini_batch_size=mini_batch_size, pad_multiple=pad_multiple)
    got_loss = gc.forward_backward(mean_pooling_embed(model), texts, extra=extra, reshape=reshape)

    assert not got_loss.requires_grad
    torch.testing.assert_close(got_loss, want_loss, rtol=1e-5, atol=0)
    assert_same_gradients(grads(model), want)
    assert gc.last_stats["masked_false_negatives"] == masked


def test_loss_scale_scales_the_gradients_and_labels_pass_through():
    texts = {"query": fake_tokens(5, 4), "document": fake_tokens(5, 5)}
    extra = {"label": torch.tensor([1.0, 0.0, 0.5, 0.25, 1.0])}
    model = tiny_bert()
    plain_step(model, CosineSimilarityLoss(), texts, extra)
    want = {k: 0.5 * v for k, v in grads(model).items()}
    model.zero_grad()
    GradCache(CosineSimilarityLoss(), mini_batch_size=2).forward_backward(
        mean_pooling_embed(model), texts, extra=extra, loss_scale=0.5
    )
    assert_same_gradients(grads(model), want)


@pytest.mark.parametrize("fast_cpu", [False, True], ids=["torch-dropout", "fast-cpu-dropout"])
def test_dropout_masks_replay_so_re_encoded_embeddings_equal_the_cached_ones(fast_cpu):
    model = tiny_bert(dropout=0.3, fast_cpu=fast_cpu).train()
    embed = mean_pooling_embed(model)
    texts = batch()
    one = {k: v[:2] for k, v in texts["query"].items()}
    assert not torch.equal(embed(one), embed(one)), "dropout should make two passes differ"

    calls: list[torch.Tensor] = []
    widths: list[int] = []

    def recording_embed(features):
        out = embed(features)
        calls.append(out.detach().clone())
        widths.append(features["input_ids"].size(1))
        return out

    gc = GradCache(InfoNCELoss(), mini_batch_size=4, pad_multiple=1)
    gc.forward_backward(recording_embed, texts, reshape={"negatives": (B, N)})
    # 2 + 2 + 3 mini-batches cached without grad, then the same 7 re-encoded with grad
    assert len(calls) == 14
    for cached, replayed in zip(calls[:7], calls[7:], strict=True):
        assert torch.equal(cached, replayed)
    assert max(widths) <= 10 < 16  # padding beyond each mini-batch's longest text was trimmed


@pytest.mark.parametrize("fast_cpu", [False, True], ids=["torch-dropout", "fast-cpu-dropout"])
def test_with_dropout_the_gradient_equals_the_plain_step_under_the_same_rng(fast_cpu):
    # The plain step encodes chunk by chunk in the same order from the same seed, so it draws
    # the same dropout masks as GradCache's first pass; equal gradients then show that the second
    # pass replayed them. trim_padding is off because a shorter tensor draws a different mask.
    texts, reshape = batch(), {"negatives": (B, N)}
    model = tiny_bert(dropout=0.3, fast_cpu=fast_cpu).train()
    torch.manual_seed(123)
    want_loss = plain_step(model, InfoNCELoss(), texts, reshape=reshape, chunk=4)
    want, rng_after_plain = grads(model), torch.get_rng_state()
    model.zero_grad()
    torch.manual_seed(123)
    gc = GradCache(InfoNCELoss(), mini_batch_size=4, trim_padding=False)
    got_loss = gc.forward_backward(mean_pooling_embed(model), texts, reshape=reshape)
    torch.testing.assert_close(got_loss, want_loss, rtol=1e-5, atol=0)
    assert_same_gradients(grads(model), want)
    # the caller's RNG continues exactly as after one encoding pass
    assert torch.equal(torch.get_rng_state(), rng_after_plain)


def test_trimmed_length_is_rounded_up_to_the_pad_multiple_but_never_past_the_input():
    mask = torch.zeros(2, 20, dtype=torch.long)
    mask[0, :5], mask[1, :9] = 1, 1  # the longest text has 9 tokens
    features = {"input_ids": torch.arange(40).view(2, 20), "attention_mask": mask}

    assert trim_padding(features)["input_ids"].shape == (2, 9)
    assert trim_padding(features, multiple=8)["attention_mask"].shape == (2, 16)
    assert trim_padding(features, multiple=64)["input_ids"].shape == (2, 20)
    rounded = trim_padding(features, multiple=8)["input_ids"]
    assert torch.equal(rounded, features["input_ids"][:, :16])


def test_bad_arguments_raise():
    model = tiny_bert()
    with pytest.raises(LossError, match="mini_batch_size must be >= 1"):
        GradCache(InfoNCELoss(), mini_batch_size=0)
    with pytest.raises(LossError, match="pad_multiple must be >= 1"):
        GradCache(InfoNCELoss(), mini_batch_size=4, pad_multiple=0)
    gc = GradCache(InfoNCELoss(), mini_batch_size=4)
    with pytest.raises(LossError, match=r"cannot view 'negatives' with 12 rows as \(6, 3, D\)"):
        gc.forward_backward(mean_pooling_embed(model), batch(), reshape={"negatives": (B, 3)})
    with pytest.raises(LossError, match="not text columns"):
        gc.forward_backward(mean_pooling_embed(model), batch(), reshape={"document": (B, 2)})
