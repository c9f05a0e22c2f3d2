"""People-facing views of a mining run: a rich table, score statistics and a histogram PNG.

The score histograms show what the filters did: every removed candidate scored close to or above
its own query's positive (a likely unlabelled relevant document); the negatives written sit below.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from rich.table import Table

from ragtune.io import atomic_write_bytes
from ragtune.mining.result import COUNT_KEYS, MiningSummary

_COUNT_LABELS = {
    "retrieved": "retrieved (distinct, all sources)",
    "positive_id": "  positives (same id)",
    "positive_text": "  copies of positives (same text)",
    "above_range_min": "  ranked above range_min",
    "beyond_range_max": "  ranked beyond range_max",
    "in_window": "  in the rank window",
    "duplicate_text": "    duplicate texts",
    "margin": "    removed by margin",
    "relative_margin": "    removed by relative_margin",
    "max_score": "    removed by max_score",
    "kept": "    kept",
    "selected": "      written as negatives",
}


def score_stats(values: Sequence[float] | np.ndarray, bins: int = 20) -> dict[str, Any]:
    """Count, mean, quantiles and a ``bins``-bin histogram; only ``count`` when there are none."""
    if len(values) == 0:
        return {"count": 0}
    x = np.asarray(values, dtype=np.float64)
    q = np.quantile(x, [0.05, 0.25, 0.5, 0.75, 0.95])
    counts, edges = np.histogram(x, bins=bins)
    return {
        "count": int(x.size),
        "mean": float(x.mean()),
        "min": float(x.min()),
        "p5": float(q[0]),
        "p25": float(q[1]),
        "median": float(q[2]),
        "p75": float(q[3]),
        "p95": float(q[4]),
        "max": float(x.max()),
        "histogram": {"edges": edges.round(6).tolist(), "counts": counts.tolist()},
    }


def summary_table(summary: MiningSummary) -> Table:
    """Candidate counts by step, example outcomes and score quartiles, as one table."""
    cfg = summary.config
    table = Table(
        title=f"hard-negative mining ({cfg['source']}, ranks "
        f"{cfg['range_min']}..{cfg['range_max'] - 1}, {cfg['sampling']} "
        f"{cfg['num_negatives']})"
    )
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("corpus documents", f"{summary.corpus_size:,}")
    table.add_row("queries / examples", f"{summary.queries:,} / {summary.examples:,}")
    if summary.queries_without_positives:
        table.add_row(
            "queries without positives (skipped)", f"{summary.queries_without_positives:,}"
        )
    table.add_section()
    for key in COUNT_KEYS:
        off = key in ("margin", "relative_margin", "max_score") and cfg.get(key) is None
        table.add_row(_COUNT_LABELS[key], "off" if off else f"{summary.counts[key]:,}")
    table.add_section()
    table.add_row(f"examples short of {cfg['num_negatives']} negatives", f"{summary.short:,}")
    table.add_row("examples with no negative", f"{summary.empty:,}")
    table.add_row("examples written", f"{summary.written:,}")
    table.add_section()
    for name, values in (
        ("positive", summary.positive_scores),
        ("negatives written", summary.kept_scores),
        ("removed by the filters", summary.removed_scores),
    ):
        stats = score_stats(values)
        if stats["count"]:
            table.add_row(
                f"{name}: score p25 / median / p75",
                f"{stats['p25']:.3f} / {stats['median']:.3f} / {stats['p75']:.3f}",
            )
    steps = ", ".join(f"{k} {v:.1f}s" for k, v in summary.seconds.items() if k != "total")
    table.add_row(f"seconds ({steps})", f"{summary.seconds.get('total', 0.0):.1f}")
    return table


def save_histogram(summary: MiningSummary, path: str | os.PathLike[str]) -> None:
    """Overlaid score densities of positives, negatives written and removed candidates (PNG)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = [
        ("positives", summary.positive_scores, "tab:green"),
        ("negatives written", summary.kept_scores, "tab:blue"),
        ("removed by the filters", summary.removed_scores, "tab:red"),
    ]
    present = [s for s in series if len(s[1])]
    fig, ax = plt.subplots(figsize=(7, 4))
    if present:
        everything = np.concatenate([np.asarray(v, dtype=np.float64) for _, v, _ in present])
        bins = np.histogram_bin_edges(everything, bins=40)
        for label, values, color in present:
            label = f"{label} ({len(values):,})"
            # density: the three groups differ in size by orders of magnitude; compare shapes
            ax.hist(values, bins=bins.tolist(), density=True, alpha=0.5, label=label, color=color)
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no teacher scores (BM25 without a model)", ha="center", va="center")
    ax.set_xlabel("teacher score")
    ax.set_ylabel("density")
    ax.set_title("hard-negative mining: score distributions")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
