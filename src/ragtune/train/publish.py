"""Writing a run's results: the resolved config and data fingerprint, then the best model."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ragtune.config import to_dict
from ragtune.io import atomic_write_json, atomic_write_text
from ragtune.model.encoder import Encoder
from ragtune.progress import console
from ragtune.train.config import TrainConfig
from ragtune.train.data import data_fingerprint


def write_run_files(
    run_dir: Path,
    cfg: TrainConfig,
    examples: Any,
    encoder: Encoder,
    data: Any,
    precision: str = "fp32",
) -> None:
    import yaml

    resolved = to_dict(cfg)
    resolved["resolved_encoder"] = encoder.config.to_dict()
    resolved["resolved_precision"] = precision  # what "auto" became on this machine
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(resolved, sort_keys=False))
    atomic_write_json(
        run_dir / "data.json",
        {
            "fingerprint": data_fingerprint(examples),
            "examples": len(examples),
            "distinct_texts": data.num_texts,
            "negatives_per_example": data.num_negatives,
            "labelled": data.labelled,
        },
    )


def publish(encoder: Encoder, run_dir: Path, out: Path, result: Any) -> None:
    """Write the best model into ``out`` (model files land first, modules.json last)."""
    best = run_dir / "best"
    staging = out / ".publish-tmp"
    shutil.rmtree(staging, ignore_errors=True)
    if best.is_dir():
        shutil.copytree(best, staging)
        if not result.improved:
            console.print(
                "[bold red]training did not beat the base model on the dev set: "
                "the published model is the base model, unchanged"
            )
    else:
        encoder.save(staging)
    modules = out / "modules.json"
    modules.unlink(missing_ok=True)  # the folder stops loading as a model until we are done
    for item in sorted(staging.iterdir(), key=lambda p: p.name == "modules.json"):
        target = out / item.name
        if target.is_dir():
            shutil.rmtree(target)
        item.replace(target)
    staging.rmdir()
    from ragtune.train.card import write_model_card

    write_model_card(out, result)
    summary = {k: v for k, v in result.__dict__.items() if k != "output"}
    atomic_write_json(run_dir / "summary.json", {"output": str(out), **summary})
