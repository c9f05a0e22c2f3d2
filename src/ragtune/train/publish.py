"""Writing a run's results: the resolved config and data fingerprint, then the published model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ragtune.config import to_dict
from ragtune.io import atomic_dir, atomic_write_json, atomic_write_text, crash_point
from ragtune.model.encoder import Encoder
from ragtune.train.card import write_model_card
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


def publish(
    encoder: Encoder, run_dir: Path, out: Path, result: Any, *, overwrite: bool = False
) -> None:
    """Replace ``out`` by the complete new model folder in one step, ``run/`` moved into it.

    ``encoder`` is the model to publish, as :func:`ragtune.train.finish.finish_run` chose it
    (the tuned model, its interpolation with the base model, or the base model itself). The new
    folder (its weights, the model card and the completion marker) is built as a hidden sibling
    of ``out``; then ``out/run`` moves into it and the two folders are exchanged
    (:func:`ragtune.io.atomic_dir`). A kill at any instant leaves ``out`` as the previous model
    or as the new one, each complete, and the next write to ``out`` finishes or removes what was
    left beside it.
    """
    with atomic_dir(out, "model", overwrite=overwrite, carry=(run_dir.name,)) as tmp:
        saved = encoder.save(tmp / "model")
        for item in list(saved.iterdir()):
            item.rename(tmp / item.name)
        saved.rmdir()
        write_model_card(tmp, result, run=run_dir)
        crash_point("publish:built")
    summary = result.to_dict() if hasattr(result, "to_dict") else dict(result.__dict__)
    summary.pop("output", None)
    atomic_write_json(run_dir / "summary.json", {"output": str(out), **summary})
