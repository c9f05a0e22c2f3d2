"""Losses: functions of embeddings, plus the two wrappers (Matryoshka, GradCache).

Every loss is an ``nn.Module`` called with keyword arguments named after batch columns
(``query``, ``positive``, ``negatives``, ``document``, ``label``, ``query_ids``,
``positive_ids``), returns a scalar, lists the columns it needs in ``inputs`` (and the ones it
can use in ``optional_inputs``) and leaves counts for the trainer in ``last_stats``.
"""

from ragtune.losses.checks import EMBEDDING_INPUTS, LossError
from ragtune.losses.config import LOSS_NAMES, LossConfig, LossName
from ragtune.losses.contrastive import ContrastiveLoss, PairDistance
from ragtune.losses.cosine_similarity import CosineSimilarityLoss, LabelRange
from ragtune.losses.distributed import gather, gather_with_grad, rank_and_world_size
from ragtune.losses.gradcache import GradCache
from ragtune.losses.infonce import InfoNCELoss
from ragtune.losses.matryoshka import MatryoshkaLoss
from ragtune.losses.online_contrastive import OnlineContrastiveLoss
from ragtune.losses.registry import LOSSES, build_from_config, build_loss, wrap_grad_cache
from ragtune.losses.similarity import Distance, Similarity
from ragtune.losses.triplet import TripletLoss

__all__ = [
    "EMBEDDING_INPUTS",
    "LOSSES",
    "LOSS_NAMES",
    "ContrastiveLoss",
    "CosineSimilarityLoss",
    "Distance",
    "GradCache",
    "InfoNCELoss",
    "LabelRange",
    "LossConfig",
    "LossError",
    "LossName",
    "MatryoshkaLoss",
    "OnlineContrastiveLoss",
    "PairDistance",
    "Similarity",
    "TripletLoss",
    "build_from_config",
    "build_loss",
    "gather",
    "gather_with_grad",
    "rank_and_world_size",
    "wrap_grad_cache",
]
