"""Compare evaluation results: a table, a plain verdict, and the queries that changed.

:func:`compare` takes the :class:`EvalResult` of several systems on one evaluation set and
builds a :class:`Report`: a table (best value per column highlighted), a verdict comparing a
*candidate* (say the tuned model) with a *baseline* (the base model) that says plainly when the
candidate is worse, and a per-query comparison for error analysis: which queries the candidate
wins and loses by nDCG@10, with the query text and both systems' top documents.

The verdict's p-value comes from a paired sign-flip (randomisation) test on the per-query
differences: under "no difference" each query's difference is as likely negative as positive
(Smucker, Allan & Carterette, "A Comparison of Statistical Significance Tests for Information
Retrieval Evaluation", CIKM 2007). The statistics live in
:mod:`ragtune.evaluation.significance`; ``sign_flip_p_value`` is re-exported here.

Example::

    report = compare([base, tuned], evalset)   # baseline = first, candidate = last
    print(report.verdict)   # tuned is better than base by +0.0312 nDCG@10 (41 wins / 17 losses ...)
    report.save("runs/eval")
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from ragtune.data.schema import EvalSet
from ragtune.errors import RagtuneError
from ragtune.evaluation.evaluate import EvalResult
from ragtune.evaluation.significance import (  # noqa: F401 - re-exported for older imports
    TIE_TOLERANCE,
    sign_flip_p_value,
)
from ragtune.io import atomic_write_bytes, atomic_write_json, atomic_write_text

SIGNIFICANCE = 0.05


@dataclass
class QueryComparison:
    """One query under the baseline and the candidate."""

    query_id: str
    query: str
    baseline: float
    candidate: float
    relevant: list[str]
    baseline_top: list[dict[str, Any]]
    """``[{"id", "title", "relevant"}]`` for the baseline's first documents."""
    candidate_top: list[dict[str, Any]]

    @property
    def delta(self) -> float:
        return self.candidate - self.baseline


@dataclass
class Comparison:
    """Candidate minus baseline on one metric, over the same queries."""

    baseline: str
    candidate: str
    metric: str
    delta: float
    wins: int
    losses: int
    ties: int
    p_value: float
    queries: list[QueryComparison] = field(repr=False)
    """Every judged query, biggest win first, biggest loss last."""

    @property
    def verdict(self) -> str:
        counts = f"{self.wins} wins / {self.losses} losses / {self.ties} ties"
        if abs(self.delta) < TIE_TOLERANCE:
            return f"{self.candidate} and {self.baseline} score the same {self.metric} ({counts})"
        direction = "better" if self.delta > 0 else "WORSE"
        text = (
            f"{self.candidate} is {direction} than {self.baseline} by {self.delta:+.4f} "
            f"{self.metric} ({counts}; p = {self.p_value:.3g}, paired sign-flip test)"
        )
        if self.p_value >= SIGNIFICANCE:
            text += "; the difference is not significant"
        return text

    def wins_and_losses(self, n: int = 10) -> tuple[list[QueryComparison], list[QueryComparison]]:
        """The ``n`` biggest wins and the ``n`` biggest losses of the candidate."""
        wins = [q for q in self.queries if q.delta > TIE_TOLERANCE][:n]
        losses = [q for q in reversed(self.queries) if q.delta < -TIE_TOLERANCE][:n]
        return wins, losses


@dataclass
class Report:
    """Everything :func:`compare` found; render with :meth:`table`, :meth:`to_markdown`..."""

    evalset: str
    num_queries: int
    num_docs: int
    results: list[EvalResult]
    columns: list[str]
    comparison: Comparison | None

    @property
    def verdict(self) -> str | None:
        return None if self.comparison is None else self.comparison.verdict

    def best(self, column: str) -> set[str]:
        """Systems with the highest value in ``column`` (several when tied)."""
        top = max(r.metrics[column] for r in self.results)
        return {r.system for r in self.results if r.metrics[column] >= top - TIE_TOLERANCE}

    def table(self) -> Table:
        """Rows = systems, columns = metrics; the best value of each column in bold green.

        Timing goes in the caption, so that the table fits an 80-column terminal.
        """
        title = f"{self.evalset}: {self.num_queries:,} queries, {self.num_docs:,} documents"
        timing = "; ".join(f"{r.system} {_timing(r)}" for r in self.results)
        table = Table(title=title, caption=f"time: {timing}", caption_justify="left")
        table.add_column("system", style="bold", overflow="fold")
        for column in self.columns:
            table.add_column(column, justify="right", no_wrap=True)
        for r in self.results:
            cells = [
                f"[bold green]{r.metrics[c]:.4f}[/]"
                if r.system in self.best(c)
                else f"{r.metrics[c]:.4f}"
                for c in self.columns
            ]
            table.add_row(r.system, *cells)
        return table

    def to_json(self) -> dict[str, Any]:
        """Metrics and timing of every system plus the comparison summary (no per-query data)."""
        out: dict[str, Any] = {
            "evalset": self.evalset,
            "num_queries": self.num_queries,
            "num_docs": self.num_docs,
            "systems": [
                {k: v for k, v in r.to_dict().items() if k != "per_query"} for r in self.results
            ],
            "verdict": self.verdict,
        }
        if self.comparison is not None:
            c = self.comparison
            out["comparison"] = {k: v for k, v in asdict(c).items() if k != "queries"}
        return out

    def to_markdown(self, n_examples: int = 10) -> str:
        """The table (best in bold), the verdict, and the biggest wins and losses."""
        lines = [f"# Retrieval evaluation: {self.evalset}", ""]
        lines.append(f"{self.num_queries:,} queries, {self.num_docs:,} documents.")
        lines += ["", "| system | " + " | ".join(self.columns) + " | docs/s | time |"]
        lines.append("|---|" + "---:|" * (len(self.columns) + 2))
        for r in self.results:
            cells = [
                f"**{r.metrics[c]:.4f}**" if r.system in self.best(c) else f"{r.metrics[c]:.4f}"
                for c in self.columns
            ]
            rate = "cached" if r.docs_per_second is None else f"{r.docs_per_second:,.1f}"
            lines.append(
                f"| {_md(r.system)} | " + " | ".join(cells) + f" | {rate} | {r.seconds:.1f}s |"
            )
        sources = [f"- {_md(r.system)}: {_md(r.source)}" for r in self.results if r.source]
        if sources:
            lines += ["", *sources]
        if self.comparison is None:
            return "\n".join(lines) + "\n"
        c = self.comparison
        lines += ["", f"**Verdict:** {c.verdict}.", ""]
        wins, losses = c.wins_and_losses(n_examples)
        for heading, group in (("wins", wins), ("losses", losses)):
            lines += [f"## Biggest {heading} of {_md(c.candidate)} over {_md(c.baseline)}", ""]
            if not group:
                lines += ["None.", ""]
            for q in group:
                lines.append(
                    f"- **{q.query_id}** ({q.baseline:.3f} -> {q.candidate:.3f}, "
                    f"{q.delta:+.3f}): {_md(q.query)}"
                )
                lines.append(f"  - relevant: {', '.join(q.relevant)}")
                for system, top in ((c.baseline, q.baseline_top), (c.candidate, q.candidate_top)):
                    docs = "; ".join(
                        f"{'✓ ' if d['relevant'] else ''}{d['id']} {_md(d['title'])}" for d in top
                    )
                    lines.append(f"  - {_md(system)}: {docs}")
            lines.append("")
        return "\n".join(lines)

    def plot_png(self) -> bytes:
        """A grouped bar chart of the table's columns, as PNG bytes."""
        from matplotlib.figure import Figure  # lazy: matplotlib is slow to import

        fig = Figure(figsize=(1.6 + 1.3 * len(self.columns), 4.2), layout="constrained")
        ax = fig.subplots()
        x = np.arange(len(self.columns))
        width = 0.8 / len(self.results)
        for i, r in enumerate(self.results):
            values = [r.metrics[c] for c in self.columns]
            bars = ax.bar(
                x + (i - (len(self.results) - 1) / 2) * width, values, width, label=r.system
            )
            ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=1)
        ax.set_xticks(x, self.columns)
        ax.set_ylim(0, 1.08)
        ax.set_title(self.evalset)
        ax.legend(fontsize=8, loc="upper left")
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=120)
        return buffer.getvalue()

    def per_query_jsonl(self) -> str:
        """One line per query, biggest win first: every system's value of the compared metric,
        the candidate-minus-baseline difference, the relevant ids and both top documents."""
        if self.comparison is None:
            return ""
        c = self.comparison
        by_system = {r.system: r.per_query for r in self.results}
        rows = []
        for q in c.queries:
            row = {
                "query_id": q.query_id,
                "query": q.query,
                c.metric: {s: pq.get(q.query_id, {}).get(c.metric) for s, pq in by_system.items()},
                "delta": q.delta,
                "relevant": q.relevant,
                "top": {c.baseline: q.baseline_top, c.candidate: q.candidate_top},
            }
            rows.append(json.dumps(row, ensure_ascii=False) + "\n")
        return "".join(rows)

    def save(self, folder: str | Path) -> list[Path]:
        """Write report.json, report.md, metrics.png and, when two systems are compared,
        per_query.jsonl into ``folder``; return the paths written.

        Each file is written atomically and replaced on its own; other files in ``folder`` are
        left alone.
        """
        folder = Path(folder)
        written = [folder / "report.json", folder / "report.md", folder / "metrics.png"]
        atomic_write_json(written[0], self.to_json())
        atomic_write_text(written[1], self.to_markdown())
        atomic_write_bytes(written[2], self.plot_png())
        if self.comparison is not None:
            written.append(folder / "per_query.jsonl")
            atomic_write_text(written[3], self.per_query_jsonl())
        return written


def default_columns(metric_names: Sequence[str]) -> list[str]:
    """nDCG, MRR, MAP and Recall at k=10 (at the largest k when 10 is absent), plus Recall at
    the largest k. P@k stays in the JSON: with few relevant documents per query it is small
    for every system and says little that Recall@k does not."""
    ks = sorted({int(name.split("@")[1]) for name in metric_names if "@" in name})
    if not ks:
        return []
    main = 10 if 10 in ks else ks[-1]
    columns = [f"{family}@{main}" for family in ("nDCG", "MRR", "MAP", "Recall")]
    if ks[-1] != main:
        columns.append(f"Recall@{ks[-1]}")
    return [c for c in columns if c in metric_names]


def compare(
    results: Sequence[EvalResult],
    evalset: EvalSet,
    *,
    baseline: str | None = None,
    candidate: str | None = None,
    metric: str | None = None,
    columns: Sequence[str] | None = None,
    top_docs: int = 3,
) -> Report:
    """Build a :class:`Report` over ``results`` (one per system, all on ``evalset``).

    Args:
        baseline, candidate: system names to compare (default: the first and the last result;
            no comparison when there is only one system).
        metric: per-query metric for wins/losses and the verdict (default nDCG@10, or nDCG at
            the largest k when 10 was not computed).
        columns: table columns (default: :func:`default_columns`).
        top_docs: documents shown per system in the per-query comparison.
    """
    if not results:
        raise RagtuneError("nothing to compare: no evaluation results")
    names = [r.system for r in results]
    if len(set(names)) != len(names):
        raise RagtuneError(f"system names must be unique, got {names}")
    shared = set.intersection(*(set(r.metrics) for r in results))
    columns = (
        list(columns)
        if columns is not None
        else default_columns([m for m in results[0].metrics if m in shared])
    )
    for column in columns:
        if column not in shared:
            raise RagtuneError(f"metric {column!r} is not in every result; have {sorted(shared)}")
    comparison = None
    if len(results) > 1 or baseline is not None or candidate is not None:
        by_name = {r.system: r for r in results}
        base_name = baseline or names[0]
        cand_name = candidate or names[-1]
        for n in (base_name, cand_name):
            if n not in by_name:
                raise RagtuneError(f"unknown system {n!r}; systems: {', '.join(names)}")
        if metric is None:
            ndcg = [m for m in shared if m.startswith("nDCG@")]
            metric = "nDCG@10" if "nDCG@10" in shared else max(ndcg, key=lambda m: int(m[5:]))
        elif metric not in shared:
            raise RagtuneError(f"metric {metric!r} is not in every result; have {sorted(shared)}")
        comparison = _compare_pair(
            by_name[base_name], by_name[cand_name], evalset, metric, top_docs
        )
    return Report(
        evalset=evalset.name,
        num_queries=results[0].num_queries,
        num_docs=results[0].num_docs,
        results=list(results),
        columns=columns,
        comparison=comparison,
    )


def _compare_pair(
    base: EvalResult, cand: EvalResult, evalset: EvalSet, metric: str, top_docs: int
) -> Comparison:
    qids = sorted(set(base.per_query) | set(cand.per_query))
    queries = []
    for qid in qids:
        relevant = {d for d, rel in evalset.qrels.get(qid, {}).items() if rel > 0}
        queries.append(
            QueryComparison(
                query_id=qid,
                query=evalset.queries.get(qid, ""),
                baseline=base.per_query.get(qid, {}).get(metric, 0.0),
                candidate=cand.per_query.get(qid, {}).get(metric, 0.0),
                relevant=sorted(relevant),
                baseline_top=_top(base, qid, evalset, relevant, top_docs),
                candidate_top=_top(cand, qid, evalset, relevant, top_docs),
            )
        )
    queries.sort(key=lambda q: (-q.delta, q.query_id))
    deltas = np.array([q.delta for q in queries])
    return Comparison(
        baseline=base.system,
        candidate=cand.system,
        metric=metric,
        delta=cand.metrics[metric] - base.metrics[metric],
        wins=int(np.sum(deltas > TIE_TOLERANCE)),
        losses=int(np.sum(deltas < -TIE_TOLERANCE)),
        ties=int(np.sum(np.abs(deltas) <= TIE_TOLERANCE)),
        p_value=sign_flip_p_value(deltas),
        queries=queries,
    )


def _top(
    result: EvalResult, qid: str, evalset: EvalSet, relevant: set[str], n: int
) -> list[dict[str, Any]]:
    ranked = sorted(result.run.get(qid, {}).items(), key=lambda item: -item[1])[:n]
    out = []
    for doc_id, _ in ranked:
        doc = evalset.corpus.get(doc_id)
        title = "" if doc is None else (doc.title or doc.text[:80])
        out.append({"id": doc_id, "title": title, "relevant": doc_id in relevant})
    return out


def _timing(r: EvalResult) -> str:
    if r.docs_per_second is None:
        return f"{r.seconds:.1f}s (corpus embeddings cached)"
    return f"{r.seconds:.1f}s ({r.docs_per_second:,.1f} docs/s)"


def _md(text: str) -> str:
    """Text safe inside a Markdown table cell or list item."""
    return " ".join(text.split()).replace("|", "\\|")
