"""Resumable stages: each writes its output atomically and records the key it was made with.

A stage is redone when its key (a hash of the settings it depends on and the keys of the stages
before it) differs from the recorded one or its output is missing; otherwise a rerun after a
kill reads the output back. ``stages.json`` is rewritten atomically after every stage, so a kill
at any point leaves either the old record or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ragtune.io import atomic_write_json, atomic_write_text


def stage_key(*parts: Any) -> str:
    """A short hash of JSON-serialisable parts."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Stages:
    """The record of finished stages in ``stages/stages.json``."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.path = work / "stages.json"
        self.done: dict[str, str] = {}
        if self.path.is_file():
            try:
                loaded = json.loads(self.path.read_text(encoding="utf-8"))
                self.done = {str(k): str(v) for k, v in loaded.items()}
            except (OSError, ValueError, AttributeError):
                self.done = {}  # a damaged record: every stage is redone
        self.reused: list[str] = []

    def fresh(self, name: str, key: str, *outputs: Path) -> bool:
        ok = self.done.get(name) == key and all(p.exists() for p in outputs)
        if ok:
            self.reused.append(name)
        return ok

    def finish(self, name: str, key: str) -> None:
        self.done[name] = key
        atomic_write_json(self.path, self.done)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


__all__ = ["Stages", "read_jsonl", "stage_key", "write_jsonl"]
