"""Label-free tuning: how far pseudo-queries alone take the base model, and which generator helps.

Two corpora, no labels used to train or choose anything:

* a BEIR folder (``../shared/data/scifact``): ``ragtune tune`` runs on its ``corpus.jsonl`` only
  (titles + abstracts, never its queries or qrels); the dev set that gates publishing is the
  held-out pseudo-queries. The published model, the base model and BM25 are then scored on the
  folder's real TEST queries and qrels, which are used for nothing else. ``--ablation`` repeats
  the run with each prose generator alone.
* ``--stdlib``: ``tune`` on this interpreter's standard library minus the modules of the demo's
  dev and test splits (and the folders the demo skips), scored on the demo's test split: the
  comparison with the demo's supervised-by-docstring model, with pseudo-queries only. Scored
  twice: on the functions alone (as the demo scores them) and as the published index embeds
  them, behind their file's path (``*_as_indexed``), which is what ``tune`` trains on.

Run (long: corpus encoding and training on 2 CPU cores; JSON is written after every run):

    nohup python benchmarks/label_free.py ../shared/data/scifact > label_free.log 2>&1 &
    nohup python benchmarks/label_free.py --stdlib > label_free_stdlib.log 2>&1 &
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ragtune.data.beir import load_beir
from ragtune.data.schema import Document, EvalSet
from ragtune.evaluation.evaluate import evaluate_bm25, evaluate_encoder
from ragtune.io import atomic_write_json
from ragtune.model.encoder import Encoder
from ragtune.model.resolve import DEFAULT_MODEL
from ragtune.tune import TuneConfig, run_tune
from ragtune.tune.config import ALL_GENERATORS

RESULTS = Path(__file__).parent / "results"


def score(evalset: EvalSet, model_dir: Path | None, max_seq_length: int, cache: Path) -> dict:
    out: dict[str, Any] = {}
    if model_dir is None:
        out["BM25"] = evaluate_bm25(evalset).metrics["nDCG@10"]
        base = Encoder.load(DEFAULT_MODEL, max_seq_length=max_seq_length)
        out["base"] = evaluate_encoder(base, evalset, cache_dir=cache).metrics["nDCG@10"]
    else:
        tuned = Encoder.load(model_dir, max_seq_length=max_seq_length)
        out["tuned"] = evaluate_encoder(tuned, evalset, cache_dir=cache).metrics["nDCG@10"]
    return {k: round(v, 4) for k, v in out.items()}


def as_indexed(test: EvalSet) -> EvalSet:
    """The demo's test set as ``ragtune index`` embeds a folder: each function behind the
    ``"<path>\n"`` of its file (the demo itself scores the functions alone)."""
    corpus = {
        i: Document(i, f"{d.metadata['path']}\n{d.text}", d.title, d.metadata)
        for i, d in test.corpus.items()
    }
    return EvalSet(test.queries, corpus, test.qrels, name=f"{test.name} (as indexed)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("beir", nargs="?", help="a BEIR folder (corpus.jsonl, queries, qrels/test)")
    ap.add_argument("--stdlib", action="store_true", help="tune on the standard library instead")
    ap.add_argument("--ablation", action="store_true", help="also each generator alone")
    ap.add_argument("--max-pairs", type=int, default=0, help="0: tune's default")
    ap.add_argument("--budget", default="", help="tune's --budget (default: 20m for --stdlib)")
    ap.add_argument("--max-seq-length", type=int, default=256)
    ap.add_argument("--work", default="", help="folder for the runs (default: a temp folder)")
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="label-free-"))
    cache = work / "cache"
    if args.stdlib:
        from ragtune.data.codesearch import CodeSearchConfig, build_codesearch, stdlib_root
        from ragtune.data.funcscan import SKIP_DIRS

        data = build_codesearch(CodeSearchConfig())
        held = {d.metadata["path"] for s in (data.dev, data.test) for d in s.corpus.values()}
        exclude = tuple(f"{d}/" for d in sorted(SKIP_DIRS)) + tuple(f"/{p}" for p in sorted(held))
        source, test, name = str(stdlib_root()), data.test, "stdlib"
        runs = {"all": ALL_GENERATORS}  # what `ragtune tune` runs; the prose ones skip code
        seq = 128  # the demo's length, for a like-for-like comparison
    else:
        if not args.beir:
            sys.exit("give a BEIR folder or --stdlib")
        source, test, name = (
            str(Path(args.beir) / "corpus.jsonl"),
            load_beir(args.beir),
            Path(args.beir).name,
        )
        exclude = ()
        runs = {"all": ("title", "cloze", "keywords")}
        if args.ablation:
            runs |= {g: (g,) for g in ("title", "cloze", "keywords")}
        seq = args.max_seq_length
    settings: dict[str, Any] = {"max_seq_length": seq, "exclude": exclude}
    if args.max_pairs:
        settings["max_pairs"] = args.max_pairs
    if args.budget or args.stdlib:
        settings["budget"] = args.budget or "20m"
    # a folder is indexed at the end, and that is part of tune's wall time; a BEIR corpus is not
    settings["index"] = args.stdlib
    result: dict[str, Any] = {"corpus": name, **settings, "exclude": len(exclude)}
    out_file = RESULTS / f"label_free_{name}.json"
    result["baselines"] = score(test, None, seq, cache)
    print(f"{name}: BM25 {result['baselines']['BM25']:.4f}, base {result['baselines']['base']:.4f}")
    indexed_test = as_indexed(test) if args.stdlib else None
    if indexed_test is not None:  # what a user of the published index meets
        result["baselines_as_indexed"] = score(indexed_test, None, seq, cache)
    atomic_write_json(out_file, result)
    for run, generators in runs.items():
        started = time.perf_counter()
        tuned = run_tune(
            TuneConfig(input=source, output=str(work / run), generators=generators, **settings)
        )
        seconds = time.perf_counter() - started
        candidate = tuned.output / "model" / "run" / "best"
        refused = {}
        if not tuned.improved and candidate.is_dir():
            # for the record only: what the gate kept out, on the real test queries
            refused = score(test, candidate, seq, cache)
        row = {
            "generators": list(generators),
            "published": "tuned" if tuned.improved else "base",
            "refused_candidate_test": refused.get("tuned"),
            "seconds": round(seconds, 1),
            "budget": settings.get("budget", TuneConfig.budget),
            "test": score(test, tuned.output / "model", seq, cache),
            "held_out_pseudo": tuned.summary["test"],
            "counts": {
                "generated": {g: v["pairs"] for g, v in tuned.summary["generators"].items()},
                "round_trip_removed": tuned.summary["round_trip"]["removed"],
                "splits": tuned.summary["splits"],
                "per_generator": tuned.summary.get("counts", {}),
            },
            "held_out_per_generator": tuned.summary.get("per_generator", {}),
            "training": tuned.summary["training"],
        }
        if indexed_test is not None:
            row["test_as_indexed"] = score(indexed_test, tuned.output / "model", seq, cache)
        result.setdefault("runs", {})[run] = row
        atomic_write_json(out_file, result)
        print(f"{run:<10} tuned nDCG@10 {row['test']['tuned']:.4f} ({row['seconds']:.0f}s)")
    print(f"written to {out_file}")


if __name__ == "__main__":
    main()
