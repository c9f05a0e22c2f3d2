"""Progress bars shared by every long-running stage (encoding, training, indexing, mining)."""

from __future__ import annotations

import os

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

# Progress and logs go to stderr so that stdout stays clean for data (`ragtune encode -`).
console = Console(stderr=True)


class RateColumn(ProgressColumn):
    """Items per second, e.g. ``21.4 docs/s``."""

    def __init__(self, unit: str = "it") -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text(f"  ? {self.unit}/s", style="cyan")
        return Text(f"{speed:6.1f} {self.unit}/s", style="cyan")


def progress_enabled(requested: bool | None, default: bool) -> bool:
    """Decide whether to draw a bar; RAGTUNE_PROGRESS=0 silences every bar (tests, log files)."""
    env = os.environ.get("RAGTUNE_PROGRESS")
    if env is not None and env.lower() in ("0", "false", "no"):
        return False
    return default if requested is None else requested


def make_progress(unit: str = "it", *extra: ProgressColumn, enabled: bool = True) -> Progress:
    """A rich progress bar showing count, rate and ETA (plus any extra columns)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        *extra,
        console=console,
        disable=not enabled,
    )
