"""The label-free pipeline: pseudo-queries from a folder, a consistency filter, a split by file,
then training, evaluation and an index (``ragtune tune``)."""

from ragtune.tune.config import ALL_GENERATORS, TuneConfig
from ragtune.tune.pipeline import TuneResult, run_tune

__all__ = ["ALL_GENERATORS", "TuneConfig", "TuneResult", "run_tune"]
