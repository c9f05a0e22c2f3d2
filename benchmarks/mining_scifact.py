"""Do mined hard negatives help? SciFact: in-batch negatives vs mined, unfiltered vs filtered.

Three fine-tunings of the bundled all-MiniLM-L6-v2 that differ only in their negatives:

* ``in-batch``: (query, positive) pairs; InfoNCE uses the other positives of the batch;
* ``unfiltered``: plus the ``--negatives`` highest-ranked non-positive documents (BM25 and
  dense candidates, ranks 0..range_max-1, hardest by the base model first), no filter;
* ``filtered``: the same, after dropping candidates the base model scores above
  ``0.95 x`` the positive's score (NV-Retriever's positive-aware filter).

Everything else is identical: the same (query, positive) pairs (those that found enough
negatives in both mined sets), model, seed, batch size, learning rate and number of steps.
No dev set is used (``dev_fraction=0``): each run trains one epoch and publishes its final
weights, so nothing is tuned on any split. Each model is then scored on the SciFact TEST split
(300 queries, 5,183 abstracts) with ``evaluate_encoder``; the base model's test score comes free
from the corpus embeddings mining cached.

Cost choices for 2 CPU cores: one mined negative per example (three texts per example instead of
two) and ``max_seq_length=128`` for mining, training and evaluation alike (SciFact abstracts are
longer, so absolute nDCG is a little below the usual 256-token figures; the comparison is fair
because every system sees the same truncation). Raise both with ``--negatives`` and
``--max-seq-length`` where time allows.

Run (long: mostly corpus encoding and training; results are written after every stage):

    nohup python benchmarks/mining_scifact.py ../shared/data/scifact > mining_scifact.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ragtune.data.beir import beir_training_pairs, iter_corpus, load_beir
from ragtune.evaluation.evaluate import evaluate_encoder
from ragtune.io import atomic_write_json, atomic_write_text
from ragtune.mining import MiningConfig, MiningResult, mine_hard_negatives
from ragtune.model import DEFAULT_MODEL, Encoder
from ragtune.train import TrainConfig, train

VARIANTS = ("filtered", "unfiltered", "in-batch")  # run order: the key comparison first
TABLE_ORDER = ("base (no fine-tuning)", "in-batch", "unfiltered", "filtered")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scifact", type=Path, help="SciFact BEIR folder (train and test qrels)")
    parser.add_argument("--negatives", type=int, default=1, help="mined negatives per example")
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--source", default="both", choices=("bm25", "dense", "both"))
    parser.add_argument("--range-max", type=int, default=100)
    parser.add_argument("--relative-margin", type=float, default=0.95)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--cache-dir", type=Path, default=Path(".ragtune-cache/embeddings"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/mining_scifact.json"))
    args = parser.parse_args()

    report: dict[str, Any] = {
        "benchmark": "mining_scifact",
        "status": "running",
        "command": " ".join(sys.argv),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "mining": {},
        "systems": {},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="mining-scifact-"))
    try:
        run(args, report, work)
        report["status"] = "done"
        save(args.out, report)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(report)


def run(args: argparse.Namespace, report: dict[str, Any], work: Path) -> None:
    log(f"loading {args.scifact}")
    pairs = beir_training_pairs(args.scifact, "train")
    corpus = {doc.id: doc for _, doc in iter_corpus(args.scifact / "corpus.jsonl")}
    test = load_beir(args.scifact, "test")
    base = Encoder.load(DEFAULT_MODEL, max_seq_length=args.max_seq_length)

    # ---- mining: the unfiltered run encodes the corpus, the filtered one reads the cache
    mined: dict[str, MiningResult] = {}
    for name, margin in (("unfiltered", None), ("filtered", args.relative_margin)):
        cfg = MiningConfig(
            source=args.source,
            num_negatives=args.negatives,
            range_min=0,
            range_max=args.range_max,
            relative_margin=margin,
            seed=args.seed,
            cache_dir=str(args.cache_dir),
        )
        mined[name] = mine_hard_negatives(pairs, corpus, cfg, encoder=base)
        s = mined[name].summary
        report["mining"][name] = {
            "seconds": round(s.seconds["total"], 1),
            "embeddings_from_cache": s.embeddings_from_cache,
            "examples": s.examples,
            "written": s.written,
            "short": s.short,
            "removed_relative_margin": s.counts["relative_margin"],
            "in_window": s.counts["in_window"],
        }
        paths = mined[name].save(work / f"mined-{name}.jsonl")  # the data stays out of the repo
        shutil.copy(paths["summary"], args.out.with_name(f"mining_scifact_{name}.summary.json"))
        shutil.copy(paths["plot"], args.out.with_name(f"mining_scifact_{name}.scores.png"))
        log(f"mined {name}: {s.written} examples in {s.seconds['total']:.0f}s")
        save(args.out, report)

    # ---- the same (query, positive) pairs for all three runs
    def key(e: Any) -> tuple[str | None, str | None]:
        return (e.query_id, e.positive_id)

    common = set.intersection(*({key(e) for e in m.examples} for m in mined.values()))
    data = {"in-batch": work / "in-batch.jsonl"}
    rows = [
        {
            "query": e.query,
            "positive": e.positive,
            "query_id": e.query_id,
            "positive_id": e.positive_id,
        }
        for e in pairs
        if key(e) in common
    ]
    atomic_write_text(data["in-batch"], "".join(json.dumps(r) + "\n" for r in rows))
    for name, result in mined.items():
        data[name] = work / f"{name}.jsonl"
        lines = [json.dumps(e.to_row()) for e in result.examples if key(e) in common]
        atomic_write_text(data[name], "".join(line + "\n" for line in lines))
    report["train_pairs"] = len(rows)

    # ---- base model on the test split (embeddings cached by mining)
    evaluate(report, "base (no fine-tuning)", base, test, args, train_seconds=None, steps=0)
    del base

    for name in VARIANTS:
        cfg = TrainConfig(
            recipe="fixed",  # this recipe, not train's search (recipe: auto)
            model=DEFAULT_MODEL,
            data=str(data[name]),
            output=str(work / f"model-{name}"),
            dev_fraction=0.0,
            max_seq_length=args.max_seq_length,
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.lr,
            seed=args.seed,
            num_negatives=0 if name == "in-batch" else args.negatives,
            save_steps=10**9,
        )
        log(f"training {name} on {len(rows)} pairs")
        result = train(cfg)
        tuned = Encoder.load(result.output, max_seq_length=args.max_seq_length)
        evaluate(report, name, tuned, test, args, train_seconds=result.seconds, steps=result.steps)


def evaluate(
    report: dict[str, Any],
    name: str,
    encoder: Encoder,
    test: Any,
    args: argparse.Namespace,
    *,
    train_seconds: float | None,
    steps: int,
) -> None:
    result = evaluate_encoder(encoder, test, name=name, cache_dir=args.cache_dir, batch_size=64)
    report["systems"][name] = {
        "test_ndcg@10": round(result.metrics["nDCG@10"], 4),
        "test_recall@100": round(result.metrics["Recall@100"], 4),
        "train_seconds": None if train_seconds is None else round(train_seconds, 1),
        "steps": steps,
        "eval_seconds": round(result.seconds, 1),
    }
    log(f"{name}: test nDCG@10 {result.metrics['nDCG@10']:.4f}")
    save(args.out, report)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def save(path: Path, report: dict[str, Any]) -> None:
    atomic_write_json(path, report)


def print_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"SciFact test: negatives for fine-tuning ({report['status']})")
    for column in ("system", "nDCG@10", "Recall@100", "steps", "train s", "eval s"):
        table.add_column(column, justify="left" if column == "system" else "right")
    for name in [n for n in TABLE_ORDER if n in report["systems"]]:
        r = report["systems"][name]
        table.add_row(
            name,
            f"{r['test_ndcg@10']:.4f}",
            f"{r['test_recall@100']:.4f}",
            str(r["steps"]),
            str(r["train_seconds"] or "-"),
            str(r["eval_seconds"]),
        )
    mining = Table(title="mining (base MiniLM teacher)")
    for column in ("run", "seconds", "cached emb.", "written", "short", "dropped by filter"):
        mining.add_column(column, justify="left" if column == "run" else "right")
    for name, m in report["mining"].items():
        mining.add_row(
            name,
            str(m["seconds"]),
            str(m["embeddings_from_cache"]),
            str(m["written"]),
            str(m["short"]),
            str(m["removed_relative_margin"]),
        )
    console = Console()
    console.print(mining)
    console.print(table)
    console.print(f"train pairs per run: {report.get('train_pairs', '-')}")


if __name__ == "__main__":
    main()
