"""ragtune: train, fine-tune, evaluate and serve text embedding models for RAG.

The public API is importable from here; submodules load lazily so that ``import ragtune`` (and
``ragtune --help``) stay fast and have no side effects.

    from ragtune import Encoder, TrainConfig, train, load_beir, evaluate_encoder
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Encoder": "ragtune.model",
    "EncoderConfig": "ragtune.model",
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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ragtune' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
