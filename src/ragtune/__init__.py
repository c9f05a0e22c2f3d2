"""ragtune: train, fine-tune, evaluate and serve text embedding models for RAG.

The public API is importable from here; submodules load lazily so that ``import ragtune`` (and
``ragtune --help``) stay fast and have no side effects.

    from ragtune import Encoder, TrainConfig, train, load_beir, evaluate_encoder

``train`` is the ``ragtune.train`` package, which is callable: ``train(cfg)`` runs training
(``ragtune/train/__init__.py`` says why a callable package rather than a plain function).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Encoder": "ragtune.model",
    "EncoderConfig": "ragtune.model",
    "EmbeddingModel": "ragtune.model",
    "load_model": "ragtune.model",
    "DEFAULT_MODEL": "ragtune.model",
    "Example": "ragtune.data.schema",
    "LabelledPair": "ragtune.data.schema",
    "Document": "ragtune.data.schema",
    "EvalSet": "ragtune.data.schema",
    "load_beir": "ragtune.data.beir",
    "load_training_data": "ragtune.data.readers",
    "pairs_to_labelled": "ragtune.data.negatives",
    "pairs_to_triplets": "ragtune.data.negatives",
    "build_codesearch": "ragtune.data.codesearch",
    "check_data": "ragtune.data.check",
    "build_loss": "ragtune.losses",
    "LossConfig": "ragtune.losses",
    "TrainConfig": "ragtune.train",
    "train": "ragtune.train",
    "evaluate_encoder": "ragtune.evaluation.evaluate",
    "evaluate_bm25": "ragtune.evaluation.evaluate",
    "compare": "ragtune.evaluation.report",
    "load_config": "ragtune.config",
    "RagtuneError": "ragtune.errors",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # what type checkers see; at run time __getattr__ imports on first use
    from ragtune.config import load_config as load_config
    from ragtune.data.beir import load_beir as load_beir
    from ragtune.data.check import check_data as check_data
    from ragtune.data.codesearch import build_codesearch as build_codesearch
    from ragtune.data.negatives import pairs_to_labelled as pairs_to_labelled
    from ragtune.data.negatives import pairs_to_triplets as pairs_to_triplets
    from ragtune.data.readers import load_training_data as load_training_data
    from ragtune.data.schema import Document as Document
    from ragtune.data.schema import EvalSet as EvalSet
    from ragtune.data.schema import Example as Example
    from ragtune.data.schema import LabelledPair as LabelledPair
    from ragtune.errors import RagtuneError as RagtuneError
    from ragtune.evaluation.evaluate import evaluate_bm25 as evaluate_bm25
    from ragtune.evaluation.evaluate import evaluate_encoder as evaluate_encoder
    from ragtune.evaluation.report import compare as compare
    from ragtune.losses import LossConfig as LossConfig
    from ragtune.losses import build_loss as build_loss
    from ragtune.model import DEFAULT_MODEL as DEFAULT_MODEL
    from ragtune.model import EmbeddingModel as EmbeddingModel
    from ragtune.model import Encoder as Encoder
    from ragtune.model import EncoderConfig as EncoderConfig
    from ragtune.model import load_model as load_model
    from ragtune.train import TrainConfig as TrainConfig
    from ragtune.train.loop import train as train


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ragtune' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    # Importing ragtune.train binds the package itself as ragtune.train (Python does that for
    # every subpackage), and from then on that binding is what everyone gets; return it now too,
    # so the first access and every later one give the same (callable) object.
    return globals().get(name, value)
