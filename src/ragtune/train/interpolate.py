"""Weight interpolation with the base model, and the dev rule that picks the mixing weight.

:func:`interpolate` sets ``theta = a * tuned + (1 - a) * base`` for every floating-point
parameter and buffer (integer buffers such as position ids are the same in both and kept);
:class:`WeightMixer` does it in place on one working copy of the tuned encoder, on its device,
so trying a grid of weights costs one extra model in memory, not one per weight.
:func:`choose_mix` picks the weight from the dev scores of the grid.

Why: Wortsman et al., "Robust fine-tuning of zero-shot models" (WiSE-FT, CVPR 2022) show that
interpolating fine-tuned and pre-trained weights keeps most of the in-domain gain while recovering
much of what fine-tuning lost out of domain; the same holds for models fine-tuned from one
initialisation, whose interpolations stay in one low-loss basin (Neyshabur et al., "What is
being transferred in transfer learning?", NeurIPS 2020).

The rule (:func:`choose_mix`): the smallest ``a`` whose dev score is within a tolerance of the
best grid score, where the tolerance is the smaller of one paired standard error of the
per-query difference to the best weight (dev cannot tell the two apart: the one-standard-error
rule of Breiman et al., "Classification and Regression Trees", 1984, with "simpler" read as
"closer to the base model") and :data:`GAIN_SHARE` of the best weight's gain over the base model
(a bound on what the preference may cost in-domain, however noisy dev is).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch

from ragtune.errors import RagtuneError
from ragtune.evaluation.significance import paired_differences, standard_error
from ragtune.model.adapters import is_adapted, merged_backbone
from ragtune.model.encoder import Encoder

GAIN_SHARE = 0.1
"""The preference for a smaller weight may cost at most this share of the best dev gain."""


def interpolate(
    target: torch.nn.Module,
    tuned: Mapping[str, torch.Tensor],
    base: Mapping[str, torch.Tensor],
    a: float,
) -> None:
    """Set ``target``'s floating tensors to ``a * tuned + (1 - a) * base``, in place.

    ``a == 1`` copies ``tuned`` and ``a == 0`` copies ``base`` exactly (no rounding through the
    formula); non-floating tensors are copied from ``tuned``. Every name of ``target``'s state
    dict must be in both, with the same shape.
    """
    with torch.no_grad():
        for name, t in target.state_dict(keep_vars=True).items():
            if name not in tuned or name not in base:
                raise ValueError(
                    f"interpolate: {name!r} is missing from a model (architectures differ)"
                )
            tw, bw = tuned[name], base[name]
            if tw.shape != bw.shape or tw.shape != t.shape:
                raise ValueError(
                    f"interpolate: {name!r} has shapes {tuple(tw.shape)} and {tuple(bw.shape)}"
                )
            if not t.is_floating_point() or a == 1:
                t.copy_(tw)
            elif a == 0:
                t.copy_(bw)
            else:
                t.copy_(a * tw.to(t.device, t.dtype) + (1 - a) * bw.to(t.device, t.dtype))


class WeightMixer:
    """One working copy of ``tuned`` whose weights :meth:`mix` sets to any interpolation.

    Both endpoints are taken in the form :meth:`Encoder.save` writes (LoRA adapters merged, the
    layers above a pooling ``layer`` dropped: :func:`plain_form`), so an adapted or truncated
    tuned model lines up with its base. The endpoints' tensors are referenced, not copied, and
    never written: memory is the two models plus the working copy, on ``tuned``'s device.
    """

    def __init__(self, tuned: Encoder, base: Encoder) -> None:
        tuned_plain, base_plain = plain_form(tuned), plain_form(base.to(tuned.device))
        self.tuned = {k: v.detach() for k, v in tuned_plain.state_dict().items()}
        self.base = {k: v.detach() for k, v in base_plain.state_dict().items()}
        if set(self.tuned) != set(self.base):
            odd = sorted(set(self.tuned) ^ set(self.base))[:3]
            raise RagtuneError(
                "cannot interpolate the tuned model with the base model: their weights differ "
                f"(e.g. {', '.join(odd)}); set mix_grid to [1.0]"
            )
        self.model: Encoder = copy.deepcopy(tuned_plain).eval()

    def mix(self, a: float) -> Encoder:
        """The working copy with ``theta = a * tuned + (1 - a) * base`` (the same object)."""
        interpolate(self.model, self.tuned, self.base, a)
        return self.model


def plain_form(encoder: Encoder) -> Encoder:
    """``encoder`` as :meth:`Encoder.save` would write it: adapters merged (on a copy),
    truncated to its pooling layer; ``encoder`` itself when it is already plain."""
    model = encoder
    if is_adapted(model.backbone):
        model = Encoder(merged_backbone(model.backbone), model.tokenizer, model.config)
    layer = model.config.layer
    if layer is not None and layer < model.num_layers:
        model = model.truncate(layer)
    return model


def choose_mix(
    base: Mapping[str, float],
    by_weight: Mapping[float, Mapping[str, float]],
    gain_share: float = GAIN_SHARE,
) -> tuple[float, str]:
    """The chosen weight and why, from per-query dev scores of the base and of each weight.

    See the module docstring for the rule. Ties on the dev mean go to the smaller weight.
    """
    if not by_weight:
        raise ValueError("choose_mix: no weight was scored")
    means = {a: _mean(scores) for a, scores in by_weight.items()}
    best = max(sorted(means), key=lambda a: means[a])  # the smallest among equal bests
    gain = means[best] - _mean(base)
    for a in sorted(means):
        if a >= best:
            break
        _, diff = paired_differences(by_weight[a], by_weight[best])
        tolerance = min(standard_error(diff), gain_share * max(gain, 0.0))
        if means[best] - means[a] <= tolerance:
            return a, (
                f"a = {a:g}: dev {means[a]:.4f} is within {tolerance:.4f} of the best weight's "
                f"(a = {best:g}, {means[best]:.4f}; one paired standard error, at most "
                f"{gain_share:g} of its gain)"
            )
    return best, f"a = {best:g}: the best dev score of the grid ({means[best]:.4f})"


def _mean(scores: Mapping[str, float]) -> float:
    return sum(scores.values()) / len(scores) if scores else 0.0


def grid_scores(
    by_weight: Mapping[float, Mapping[str, float]], weights: Sequence[float]
) -> list[tuple[float, float]]:
    """``[(a, mean dev score)]`` in grid order, for the result and the card."""
    return [(a, _mean(by_weight[a])) for a in weights if a in by_weight]
