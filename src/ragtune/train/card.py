"""The model card: a README in the output folder saying what was trained, on what, how well."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from ragtune.io import atomic_write_text


def write_model_card(out: Path, result: Any, run: Path | None = None) -> Path:
    """Write ``out/README.md`` from the run's files (``run``, by default ``out/run``)."""
    run = out / "run" if run is None else run
    config = (
        yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").is_file() else {}
    )
    data = json.loads((run / "data.json").read_text()) if (run / "data.json").is_file() else {}
    enc = config.get("resolved_encoder", {})
    lines = [
        "---",
        "library_name: sentence-transformers",
        "tags: [ragtune, sentence-transformers, feature-extraction, sentence-similarity]",
        f"base_model: {enc.get('base_model') or config.get('model', '')}",
        "---",
        "",
        "# Fine-tuned embedding model",
        "",
        f"Trained with ragtune from `{enc.get('base_model') or config.get('model', '')}` on "
        f"`{config.get('data', '')}` ({data.get('examples', '?')} examples, data sha256 "
        f"`{str(data.get('fingerprint', ''))[:16]}`), loss `{config.get('loss', {}).get('name')}`, "
        f"{result.steps} steps in {result.seconds:.0f} s "
        f"({result.pairs_per_second:.1f} pairs/s).",
        "",
        f"Embeddings: {enc.get('pooling')} pooling, normalised: {enc.get('normalize')}, "
        f"max length {enc.get('max_seq_length')}, query prompt {enc.get('query_prompt')!r}, "
        f"document prompt {enc.get('document_prompt')!r}.",
        "",
    ]
    if result.best_score is not None:
        verdict = "better than" if result.improved else "NOT better than"
        lines += [
            f"## Dev set ({result.metric})",
            "",
            "| model | step | " + result.metric + " |",
            "|---|---|---|",
            f"| base | 0 | {result.base_score:.4f} |" if result.base_score is not None else "",
            f"| published (best) | {result.best_step} | {result.best_score:.4f} |",
            "",
            f"The published model is {verdict} the base model on the dev set.",
            "",
        ]
    lines += [
        "## Use",
        "",
        "```python",
        "from ragtune.model import Encoder  # or sentence_transformers.SentenceTransformer",
        "model = Encoder.load('PATH_TO_THIS_FOLDER')",
        "vectors = model.encode_documents(['some text'])",
        "```",
        "",
        "The resolved training configuration is in `run/config.yaml`; the log in `run/log.jsonl`.",
        "",
    ]
    path = out / "README.md"
    atomic_write_text(path, "\n".join(line for line in lines if line is not None))
    return path
