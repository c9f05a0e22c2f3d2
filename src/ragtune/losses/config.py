"""LossConfig: the loss section of a training config (one dataclass, plain values)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from ragtune.losses.checks import LossError, check_choice
from ragtune.losses.cosine_similarity import LABEL_RANGES, LabelRange
from ragtune.losses.similarity import DISTANCES, SIMILARITIES, Distance, Similarity

LossName = Literal["infonce", "contrastive", "online_contrastive", "triplet", "cosine"]
LOSS_NAMES: tuple[str, ...] = get_args(LossName)


@dataclass
class LossConfig:
    """Which loss to train with and its settings; fields a loss does not use must stay default.

    ``scale``, ``similarity``, ``symmetric``, ``false_negative_margin`` and ``mask_duplicates``
    are InfoNCE's; ``margin`` and ``distance`` are the triplet and (online) contrastive losses'
    (``margin=None`` takes the loss's default for the distance); ``label_range`` is the cosine
    loss's. ``matryoshka_dims`` (empty = off) wraps any loss in
    :class:`~ragtune.losses.matryoshka.MatryoshkaLoss` (``matryoshka_weights`` empty = all 1).
    ``cache_mini_batch_size`` > 0 turns on GradCache with that many rows per encoder pass.
    """

    name: LossName = "infonce"
    scale: float = 20.0
    similarity: Similarity = "cosine"
    symmetric: bool = False
    margin: float | None = None
    distance: Distance = "cosine"
    false_negative_margin: float | None = None
    mask_duplicates: bool = True
    label_range: LabelRange = "[0,1]"
    matryoshka_dims: tuple[int, ...] = ()
    matryoshka_weights: tuple[float, ...] = ()
    cache_mini_batch_size: int = 0

    def __post_init__(self) -> None:
        check_choice("loss", self.name, LOSS_NAMES)
        check_choice("similarity", self.similarity, SIMILARITIES)
        check_choice("distance", self.distance, DISTANCES)
        check_choice("label_range", self.label_range, LABEL_RANGES)
        if self.cache_mini_batch_size < 0:
            raise LossError(
                f"cache_mini_batch_size must be >= 0 (0 = no GradCache), "
                f"got {self.cache_mini_batch_size}"
            )
        if self.matryoshka_weights and len(self.matryoshka_weights) != len(self.matryoshka_dims):
            raise LossError(
                f"matryoshka_weights {self.matryoshka_weights} must have one entry per "
                f"matryoshka_dims {self.matryoshka_dims} (or be empty for all 1)"
            )
