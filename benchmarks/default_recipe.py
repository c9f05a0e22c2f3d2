"""The default command against the old fixed default: test nDCG@10 of what `ragtune train` gives.

Runs, each in its own process through the installed CLI:

- ``new default``: ``ragtune train --data DATA --out ...`` with ``recipe: auto`` and ``--budget``
  (the dev-driven search of train/auto.py, then interpolation, the significance gate, publish);
- ``old default``: the same with ``recipe: fixed``, batch 32, 1 epoch, lr 2e-5, dev fraction 0.05
  (what `ragtune train` did before ``recipe: auto``);

then scores on the test split: the base model, BM25, both published models; and the general
checks (other domains' test sets, never used to choose anything): by default the BIRCO sets and
the other of scifact / conala beside DATA. The test split is read only here, after training.

Usage::

    python benchmarks/default_recipe.py ../shared/data/scifact --budget 30m \
        --out benchmarks/results/default_recipe_scifact.json
    python benchmarks/default_recipe.py ../shared/data/scifact --max-queries 120 --budget 3m \
        --out benchmarks/results/default_recipe_smoke.json     # a quick end-to-end check
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

OLD_DEFAULT = [
    "--set",
    "recipe=fixed",
    "--batch-size",
    "32",
    "--epochs",
    "1",
    "--learning-rate",
    "2e-5",
    "--set",
    "dev_fraction=0.05",
]
OTHER_DOMAIN = {"scifact": "conala", "conala": "scifact"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("data", help="BEIR folder with train and test splits")
    p.add_argument("--budget", default="30m")
    p.add_argument(
        "--out",
        default="",
        help="JSON to write (default: benchmarks/results/default_recipe_<data>[_q<N>].json)",
    )
    p.add_argument(
        "--general-check",
        action="append",
        default=None,
        help="BEIR folder scored on test before/after (default: BIRCO sets + the other domain)",
    )
    p.add_argument("--max-queries", type=int, default=0, help="train on a slice (smoke runs)")
    p.add_argument("--systems", default="new,old", help="which trainings to run")
    p.add_argument("--work", default="", help="folder for the trained models (default: temp)")
    a = p.parse_args()

    from ragtune.data.beir import load_beir
    from ragtune.evaluation.evaluate import evaluate_bm25, evaluate_encoder
    from ragtune.model.encoder import Encoder

    data = Path(a.data)
    if not a.out:
        slice_tag = f"_q{a.max_queries}" if a.max_queries else ""
        a.out = f"benchmarks/results/default_recipe_{data.name}{slice_tag}.json"
    checks = a.general_check
    if checks is None:
        root = data.parent
        names = ["birco-arguana", "birco-clinical-trial", OTHER_DOMAIN.get(data.name, "")]
        checks = [str(root / n) for n in names if n and (root / n / "corpus.jsonl").is_file()]
    report = common.machine_report(gemm=False)
    common.print_machine(report)
    work = Path(a.work or tempfile.mkdtemp(prefix="ragtune-default-recipe-"))
    train_data = str(data) if not a.max_queries else _slice(data, a.max_queries, work)

    runs: dict[str, Any] = {}
    for system in a.systems.split(","):
        out = work / system
        cmd = [sys.executable, "-m", "ragtune.cli.main", "train", "--data", train_data]
        cmd += ["--out", str(out), "--json"]
        # --recipe auto is the default; it is spelled out so the script also measures a tree
        # where the default is still fixed
        cmd += ["--recipe", "auto", "--budget", a.budget] if system == "new" else OLD_DEFAULT
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr[-4000:])
            raise SystemExit(f"{system}: ragtune train failed ({proc.returncode})")
        result = json.loads(proc.stdout)
        auto = out / "run" / "auto.json"
        runs[system] = {
            "command": " ".join(cmd),
            "wall_seconds": round(seconds, 1),
            "result": result,
            "auto": json.loads(auto.read_text()) if auto.is_file() else None,
            "model": str(out),
        }
        common.console.print(f"{system}: {seconds:.0f} s, published {result.get('published')}")

    test = load_beir(str(data), "test")
    scores: dict[str, float] = {}
    bm25 = evaluate_bm25(test, show_progress=False)
    scores["BM25"] = float(bm25.metrics["nDCG@10"])
    models = {"base": common.minilm_path(), **{k: v["model"] for k, v in runs.items()}}
    general: dict[str, dict[str, float]] = {}
    for name, path in models.items():
        enc = Encoder.load(path, device="cpu")
        scores[name] = float(evaluate_encoder(enc, test, batch_size=64).metrics["nDCG@10"])
        for check in checks:
            evalset = load_beir(check, "test")
            value = evaluate_encoder(enc, evalset, batch_size=64, show_progress=False)
            general.setdefault(Path(check).name, {})[name] = float(value.metrics["nDCG@10"])
        common.console.print(f"{name}: test nDCG@10 {scores[name]:.4f}")

    rows = [["BM25", scores["BM25"], float("nan"), float("nan"), "-"]]
    rows.append(["base", scores["base"], float("nan"), float("nan"), "-"])
    for system, r in runs.items():
        res = r["result"]
        rows.append(
            [
                {"new": "new default (auto)", "old": "old default (fixed)"}.get(system, system),
                scores[system],
                res.get("published_score") or float("nan"),
                r["wall_seconds"],
                res.get("published", "?"),
            ]
        )
    common.console.print(
        common.table(
            f"{data.name}: the default command",
            ["system", "test nDCG@10", "dev (published)", "wall s", "published"],
            rows,
        )
    )
    if general:
        grows = [[k, *(v.get(m, float("nan")) for m in models)] for k, v in general.items()]
        common.console.print(common.table("general checks (test nDCG@10)", ["set", *models], grows))
    settings = {**vars(a), "general_check": checks, "data": data.name}
    result = {
        **report,
        "settings": settings,
        "test_ndcg@10": scores,
        "general_checks": general,
        "runs": runs,
        "load_average_end": common.load_average(),
    }
    common.write_json(a.out, result)


def _slice(data: Path, n: int, work: Path) -> str:
    """A BEIR folder with the first ``n`` training queries (same corpus), for smoke runs."""
    folder = work / f"{data.name}-{n}"
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    lines = (data / "qrels" / "train.tsv").read_text().splitlines()
    kept, queries = [lines[0]], set()
    for line in lines[1:]:
        qid = line.split("\t")[0]
        if qid in queries or len(queries) < n:
            queries.add(qid)
            kept.append(line)
    (folder / "qrels" / "train.tsv").write_text("\n".join(kept) + "\n")
    for name in ("corpus.jsonl", "queries.jsonl"):
        target = folder / name
        if not target.exists():
            os.symlink((data / name).resolve(), target)
    return str(folder)


if __name__ == "__main__":
    main()
