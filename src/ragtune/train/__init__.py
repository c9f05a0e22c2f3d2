"""Training: the loop, schedules, batching, checkpoints, several processes.

This package is also callable: ``ragtune.train(cfg)`` runs :func:`ragtune.train.loop.train`.
The top-level API exports a function named ``train`` (``from ragtune import train``), and Python
binds every imported subpackage as an attribute of its parent, so after the first
``import ragtune.train.<anything>`` the name ``ragtune.train`` *is* this package whatever
``ragtune/__init__.py`` says. Rather than rename the stage (the tree names stages after what they
do) or depend on import order, the package object itself runs training when called, so every
spelling gives something that does what the README shows: ``train(cfg)``.
"""

import inspect
import sys
import types
from typing import Any

from ragtune.train.config import TrainConfig
from ragtune.train.loop import TrainingDiverged, TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "TrainingDiverged", "train"]


class _CallableTrainPackage(types.ModuleType):
    """The ``ragtune.train`` package object; calling it is calling :func:`train`."""

    def __call__(self, *args: Any, **kwargs: Any) -> TrainResult:
        return train(*args, **kwargs)


# help(), inspect.signature() and editors show the function's signature, not (*args, **kwargs).
__signature__ = inspect.signature(train)
sys.modules[__name__].__class__ = _CallableTrainPackage
