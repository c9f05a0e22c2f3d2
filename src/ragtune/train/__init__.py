"""Training: the loop, schedules, batching, checkpoints, several processes."""

from ragtune.train.config import TrainConfig
from ragtune.train.loop import TrainingDiverged, TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "TrainingDiverged", "train"]
