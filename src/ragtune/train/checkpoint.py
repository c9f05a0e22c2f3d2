"""Crash-safe checkpoints: model, optimizer, scheduler, RNG states, the data position and the run.

Each checkpoint is a folder written atomically by :func:`ragtune.io.atomic_dir` (temporary
folder, then rename), whose last file is the completion marker holding every file's size; the
files' sha256 are recorded beside them. Only a checkpoint that verifies is a candidate for
``--resume``: a truncated, emptied, missing or altered file makes resume fall back to the newest
intact checkpoint.
The model weights are safetensors; optimizer and RNG states are tensors and plain values loaded
with ``weights_only=True`` (no arbitrary pickles). A run that trains LoRA adapters
(``adapter: lora``) checkpoints the adapter alone (``adapter.safetensors``, what trains; the
frozen base weights are the run's ``model``, read again on resume): MiniLM-L6 with rank 16 is
2.5 MiB instead of 87 MiB, and the optimizer state shrinks by the same factor.

Each checkpoint also records the settings that decide which examples form each batch and how
they are tokenized (:func:`run_identity`); resuming with any of them changed is refused, because
the saved data position and optimizer state would silently belong to another run.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model

from ragtune.errors import RagtuneError
from ragtune.io import atomic_dir, clean_leftovers, read_marker
from ragtune.model.adapters import adapter_state_dict, is_adapted, load_adapter_state_dict
from ragtune.progress import console
from ragtune.train.config import TrainConfig
from ragtune.train.state import TrainerState

PREFIX = "step-"
KIND = "checkpoint"  # the kind in ragtune.io's completion marker
HASHES = "sha256.json"
FINGERPRINT = "data fingerprint"
WEIGHTS = "model.safetensors"  # every weight of the model (full fine-tuning)
ADAPTER = "adapter.safetensors"  # the adapter's weights only (adapter: lora)
_UNRECORDED = {"adapter": "none", "group_by_query": False}
"""What a checkpoint written before a setting was recorded had: checkpoints without "adapter"
were full fine-tuning runs, so they still resume as such; without "group_by_query" their epochs
were over pairs."""


def run_identity(
    cfg: TrainConfig,
    fingerprint: str,
    *,
    processes: int,
    num_negatives: int,
    max_seq_length: int,
    query_prompt: str,
    document_prompt: str,
) -> dict[str, Any]:
    """The settings a resumed run must share with the checkpoint's run, by config name.

    The training examples (their fingerprint), the batch order and size (``seed``,
    ``group_by_length``, ``group_by_query``, ``batch_size``, the number of processes,
    ``grad_accumulation``), what a row holds (``num_negatives``), how texts become tokens
    (``max_seq_length`` and the prompts, as resolved with the model's own) and how a batch is
    split for the loss (``loss.name``, ``loss.cache_mini_batch_size``), and which weights train
    (``adapter``; with LoRA its ``lora_rank``, ``lora_alpha`` and ``lora_targets``, which decide
    the adapter's shapes and scale). Settings that only change the schedule's end (``epochs``,
    ``max_steps``) or the optimizer's step (the learning rate, ``lora_dropout`` like the model's
    dropout) may change on resume.
    """
    lora = (
        {
            "lora_rank": cfg.lora_rank,
            "lora_alpha": cfg.lora_alpha,
            "lora_targets": list(cfg.lora_targets),  # as JSON reads it back
        }
        if cfg.adapter == "lora"
        else {}
    )
    return {
        FINGERPRINT: fingerprint,
        "batch_size": cfg.batch_size,
        "processes": processes,
        "grad_accumulation": cfg.grad_accumulation,
        "seed": cfg.seed,
        "group_by_length": cfg.group_by_length,
        "group_by_query": cfg.group_by_query,
        "num_negatives": num_negatives,
        "max_seq_length": max_seq_length,
        "query_prompt": query_prompt,
        "document_prompt": document_prompt,
        "loss.name": cfg.loss.name,
        "loss.cache_mini_batch_size": cfg.loss.cache_mini_batch_size,
        "adapter": cfg.adapter,
        **lora,
    }


def rng_state() -> dict[str, Any]:
    np_state: Any = np.random.get_state()
    state: dict[str, Any] = {
        "python": json.dumps(random.getstate()),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = json.loads(state["python"])
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    folder: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: TrainerState,
    identity: dict[str, Any],
    keep: int,
) -> Path:
    """Write ``folder/step-XXXXXXXX`` atomically and keep only the newest ``keep`` checkpoints."""
    target = folder / f"{PREFIX}{state.step:08d}"
    # overwrite: a damaged checkpoint of the same step (resume fell back past it) is replaced
    with atomic_dir(target, KIND, overwrite=True) as tmp:
        if is_adapted_model(model):
            save_file(adapter_state_dict(model), str(tmp / ADAPTER))
        else:
            save_model(model, str(tmp / WEIGHTS))
        torch.save(
            {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": rng_state(),
            },
            tmp / "training_state.pt",
        )
        (tmp / "trainer_state.json").write_text(json.dumps(asdict(state), indent=2))
        (tmp / "run.json").write_text(json.dumps(identity, indent=2))
        hashes = {p.name: _sha256(p) for p in sorted(tmp.iterdir())}
        (tmp / HASHES).write_text(json.dumps(hashes, indent=2))
        # atomic_dir writes the completion marker (with every file's size) last
    for old in list_checkpoints(folder)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    # Temporary folders of a killed save of another step: the shared rule (ragtune's own naming,
    # a process that no longer runs) decides, never a bare name match.
    for name in {p.name.split(".ragtune-", 1)[0][1:] for p in folder.glob(f".{PREFIX}*")}:
        clean_leftovers(folder / name)
    return target


def list_checkpoints(folder: Path) -> list[Path]:
    """Checkpoint folders, oldest first, intact or not (temporary folders start with a dot)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith(PREFIX))


def damage(path: Path) -> str | None:
    """What is wrong with the checkpoint at ``path``, or None when it is complete and unchanged.

    Complete: the completion marker says so. Unchanged: every file it lists has the size it
    had, and the content hashes recorded beside the files still match.
    """
    marker = read_marker(path)
    if marker is None:
        return "no completion marker: the save did not finish (or an earlier ragtune wrote it)"
    sizes = marker.get("files")
    if marker.get("kind") != KIND or not marker.get("complete") or not isinstance(sizes, dict):
        return "its completion marker is not valid"
    for name, size in sorted(sizes.items()):
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        if file.stat().st_size != size:
            return f"{name} has {file.stat().st_size} bytes, {size} were written"
    try:
        hashes = json.loads((path / HASHES).read_text())
    except (OSError, ValueError):
        return f"{HASHES} is not valid"
    for name, digest in sorted(hashes.items()):
        if not (path / name).is_file() or _sha256(path / name) != digest:
            return f"{name} differs from what was written"
    return None


def resume(
    folder: Path,
    identity: dict[str, Any],
    force: bool,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    announce: bool = True,
) -> tuple[TrainerState, list[str]]:
    """Load the newest intact checkpoint of the same run; the state and the settings forced.

    Refuses (:class:`RagtuneError`) a checkpoint whose run had other data or batch settings
    unless ``force``; a forced resume keeps the weights, optimizer, schedule and step count.
    """
    latest = latest_intact(folder, announce)
    forced = changed_settings(latest, identity, force)
    state = load_checkpoint(latest, model, optimizer, scheduler)
    if forced:
        carry_position(state, read_identity(latest), identity)
    if announce:
        console.print(f"resumed from {latest.name} (step {state.step}, epoch {state.epoch})")
    return state, forced


def latest_intact(folder: Path, announce: bool = True) -> Path:
    """The newest checkpoint that verifies; says in one line which newer ones were skipped.

    Raises :class:`RagtuneError` naming every checkpoint and its damage when none is intact.
    """
    skipped: list[str] = []
    for path in reversed(list_checkpoints(folder)):
        problem = damage(path)
        if problem is None:
            if skipped and announce:
                damaged = "checkpoints " if len(skipped) > 1 else "checkpoint "
                verb = " are" if len(skipped) > 1 else " is"
                console.print(
                    f"{damaged}{', '.join(skipped)}{verb} damaged: resuming from {path.name}",
                    style="yellow",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )
            return path
        skipped.append(f"{path.name} ({problem})")
    raise RagtuneError(
        f"--resume: no intact checkpoint in {folder}: {', '.join(skipped)}; "
        "delete that folder to train from the start, or choose another --output"
    )


def changed_settings(path: Path, identity: dict[str, Any], force: bool) -> list[str]:
    """What differs between the checkpoint's run and this one, as ``name old -> new``.

    Raises :class:`RagtuneError` listing the changes unless ``force`` (``resume_force=true``).
    """
    saved = read_identity(path)
    saved = {**_UNRECORDED, **saved}
    changes = [
        f"{key} {_show(key, saved.get(key))} -> {_show(key, value)}"
        for key, value in identity.items()
        if saved.get(key) != value
    ]
    if changes and not force:
        raise RagtuneError(
            f"--resume: {path.name} belongs to a run with other settings ({'; '.join(changes)}); "
            "pass --set resume_force=true to continue it anyway, or choose another --output"
        )
    return changes


def carry_position(state: TrainerState, saved: dict[str, Any], identity: dict[str, Any]) -> None:
    """Keep the share of the epoch already trained on when a forced resume changes the batch."""
    before = saved["batch_size"] * saved["processes"]
    now = identity["batch_size"] * identity["processes"]
    state.batch_in_epoch = state.batch_in_epoch * before // now


def read_identity(path: Path) -> dict[str, Any]:
    """The :func:`run_identity` saved with the checkpoint at ``path``."""
    saved: dict[str, Any] = json.loads((path / "run.json").read_text())
    return saved


def load_checkpoint(
    path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any
) -> TrainerState:
    """Restore everything saved by :func:`save_checkpoint` and return the trainer state."""
    load_weights(path, model)
    blob = torch.load(path / "training_state.pt", weights_only=True)
    optimizer.load_state_dict(blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    set_rng_state(blob["rng"])
    return TrainerState(**json.loads((path / "trainer_state.json").read_text()))


def is_adapted_model(model: torch.nn.Module) -> bool:
    """Whether ``model`` (an Encoder) trains adapters, so that its checkpoints hold them alone."""
    backbone = getattr(model, "backbone", None)
    return backbone is not None and is_adapted(backbone)


def load_weights(path: Path, model: torch.nn.Module) -> None:
    """The checkpoint's weights into ``model``: the adapter alone, or every weight.

    A checkpoint of the other kind (reachable only through ``resume_force``) is refused in one
    line: full weights cannot become an adapter, nor an adapter a whole model.
    """
    adapted = is_adapted_model(model)
    wanted, other = (ADAPTER, WEIGHTS) if adapted else (WEIGHTS, ADAPTER)
    if not (path / wanted).is_file() and (path / other).is_file():
        held = "LoRA adapter weights only" if adapted is False else "every weight of a model"
        runs = "trains LoRA adapters" if adapted else "trains every weight"
        raise RagtuneError(
            f"{path / other}: this checkpoint holds {held}, but this run {runs}; resume with "
            "the run's own adapter setting, or choose another --output"
        )
    device = str(next(model.parameters()).device)
    if adapted:
        try:
            tensors = load_file(str(path / ADAPTER), device=device)
        except (OSError, SafetensorError) as exc:
            raise RagtuneError(f"{path / ADAPTER}: unreadable ({exc})") from None
        load_adapter_state_dict(model, tensors, str(path / ADAPTER))
    else:
        load_model(model, str(path / WEIGHTS), device=device)


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _show(key: str, value: Any) -> str:
    if value is None:
        return "(not recorded)"
    if key == FINGERPRINT:
        return str(value)[:12]
    return repr(value) if isinstance(value, str) else str(value)
