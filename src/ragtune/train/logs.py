"""What a run leaves behind to be read: JSONL log, TensorBoard events, loss/metric curves."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ragtune.progress import console


class RunLogger:
    """Appends one JSON object per logged step to ``run/log.jsonl`` (and TensorBoard if asked)."""

    def __init__(self, run_dir: Path, enabled: bool = True, tensorboard: bool = False) -> None:
        self.run_dir = run_dir
        self.enabled = enabled
        self.path = run_dir / "log.jsonl"
        self.writer: Any = None
        if enabled:
            run_dir.mkdir(parents=True, exist_ok=True)
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter
                except ImportError:
                    console.print(
                        "[yellow]tensorboard is not installed (pip install "
                        "'ragtune[tensorboard]'); logging to log.jsonl only"
                    )
                else:
                    self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"time": round(time.time(), 3), **record}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            step = record["step"]
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("step", "time"):
                    self.writer.add_scalar(f"train/{key}", value, step)
            for key, value in record.get("eval", {}).items():
                self.writer.add_scalar(f"dev/{key}", value, step)

    def finish(self, result: Any) -> None:
        if not self.enabled:
            return
        if self.writer is not None:
            self.writer.close()
        plot_curves(self.path, self.run_dir / "curves.png", result.metric)


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def plot_curves(log_path: Path, png: Path, metric: str) -> Path | None:
    """Training loss and dev metric against steps, side by side, as a PNG."""
    records = read_log(log_path)
    losses = [(r["step"], r["loss"]) for r in records if "loss" in r]
    evals = [(r["step"], r["eval"][metric]) for r in records if metric in r.get("eval", {})]
    if not losses and not evals:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    if losses:
        left.plot(*zip(*losses), color="tab:blue")
    left.set(title="training loss", xlabel="step", ylabel="loss")
    if evals:
        right.plot(*zip(*evals), marker="o", color="tab:green")
        right.axhline(evals[0][1], color="grey", linestyle="--", label="base model")
        right.legend()
    right.set(title=f"dev {metric}", xlabel="step", ylabel=metric)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png
