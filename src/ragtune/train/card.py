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
    lines += dev_evidence(result)
    lines += general_evidence(result)
    from ragtune.train.auto import search_evidence  # recipe: auto's candidates, if any

    lines += search_evidence(run)
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


def dev_evidence(result: Any) -> list[str]:
    """The card's dev section: base vs tuned score, the gain with its interval, p, n, the
    interpolation weight and the gate's decision (train/gate.py)."""
    gate = getattr(result, "gate", None)
    metric = getattr(result, "metric", "")
    if result.best_score is None:
        return [
            f"## Dev set ({metric})",
            "",
            "No dev set: the published model was not compared with the base model "
            "(improvement not measured).",
            "",
        ]
    lines = [
        f"## Dev set ({metric})",
        "",
        f"| model | step | {metric} |",
        "|---|---|---|",
    ]
    if result.base_score is not None:
        lines.append(f"| base | 0 | {result.base_score:.4f} |")
    lines.append(f"| best checkpoint | {result.best_step} | {result.best_score:.4f} |")
    for a, score in getattr(result, "mix_scores", []):
        lines.append(f"| a = {a:g} x tuned + {1 - a:g} x base | {result.best_step} | {score:.4f} |")
    published = getattr(result, "published", "tuned")
    if getattr(result, "published_score", None) is not None:
        lines.append(f"| **published ({published})** | | **{result.published_score:.4f}** |")
    lines.append("")
    if gate is not None and gate.gain is not None:
        mix = getattr(result, "mix_weight", None)
        lines += [
            f"- gain of the tuned model (as interpolated) over the base model: "
            f"{gate.gain:+.4f} {metric}, "
            f"95% bootstrap interval [{gate.low:+.4f}, {gate.high:+.4f}]",
            f"- paired sign-flip test: p = {gate.p_value:.3g} over n = {gate.n} dev queries",
            "- interpolation weight a (theta = a x tuned + (1 - a) x base): "
            + ("not run" if mix is None else f"{mix:g}"),
            f"- gate: publish the tuned model only when the gain is above {gate.min_gain:g}"
            + (f" with p below {gate.max_p:g}" if gate.max_p < 1 else "")
            + (", on the pooled dev queries and on every kind of them" if gate.strata else ""),
        ]
        for st in gate.strata:
            lines.append(
                f"  - {st.name}: {st.gain:+.4f} [{st.low:+.4f}, {st.high:+.4f}], "
                f"p = {st.p_value:.3g}, n = {st.n}: {st.verdict}"
            )
        lines += [
            "",
            f"Decision: {gate.reason}.",
            "",
        ]
    else:
        verdict = "better than" if result.improved else "NOT better than"
        lines += [f"The published model is {verdict} the base model on the dev set.", ""]
    return lines


def general_evidence(result: Any) -> list[str]:
    """The card's general-domain section: base before, published after, the difference."""
    checks = getattr(result, "general_checks", [])
    if not checks:
        return []
    lines = [
        "## General-domain checks (never used to choose)",
        "",
        "| data | queries | metric | base | published | difference |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for c in checks:
        lines.append(
            f"| {c.name} | {c.queries} | {c.metric} | {c.before:.4f} | {c.after:.4f} | "
            f"{c.delta:+.4f} |"
        )
    return [*lines, ""]
