"""Truncated encoders: speed and SciFact test nDCG@10 of all-MiniLM-L6-v2 cut to k layers.

``Encoder.truncate(k)`` keeps the embeddings and layers 1..k and mean-pools layer k's output, so
the layers above k are never computed: encoding cost falls about linearly in k (the embedding
lookup and pooling are tiny). This measures how much retrieval quality that costs, without any
fine-tuning of the truncated model (fine-tuning it would win some of the loss back).

Speed: the first ``--n`` SciFact abstracts, batch 32, one pass per k per round, rounds alternate
the order of k. Quality (``--ndcg``, slow on a CPU: the 5,183-document corpus per k): nDCG@10 on
the test split with ``evaluate_encoder``. ``--finetune`` also trains each truncated model with
the recipe :mod:`quality_recipe` chose on its dev split for the full model (batch 256 via
GradCache, 5 epochs, lr 1e-4; best epoch by a dev split of 15% of the train queries) and scores
it on test: what truncation costs once the model has adapted to it. A PNG goes next to the JSON.

Usage::

    python benchmarks/truncated_layers.py ../shared/data/scifact --n 500 --ndcg \
        --out benchmarks/results/truncated_layers.json
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("data", help="BEIR folder, e.g. ../shared/data/scifact")
    p.add_argument("--out", default="benchmarks/results/truncated_layers.json")
    p.add_argument("--model", default=common.minilm_path())
    p.add_argument("--layers", default="6,4,3,2")
    p.add_argument("--n", type=int, default=500, help="documents for the speed test (0: skip)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--ndcg", action="store_true", help="also score the test split (slow on CPU)")
    p.add_argument(
        "--ndcg-from", default="", help="copy the nDCG columns from an earlier result JSON"
    )
    p.add_argument("--finetune", action="store_true", help="also fine-tune each k, then test")
    p.add_argument("--device", default="cpu")
    p.add_argument("--png", default="", help="default: <out without .json>.png")
    a = p.parse_args()

    from ragtune.data.beir import iter_corpus, load_beir
    from ragtune.evaluation.evaluate import evaluate_encoder
    from ragtune.model.encoder import Encoder

    report = common.machine_report(gemm=a.device == "cpu")
    common.print_machine(report)
    peak = report.get("gemm_fp32", {}).get("gflops")
    base = Encoder.load(a.model, device=a.device)
    ks = [int(k) for k in a.layers.split(",")]
    models = {k: base.truncate(k) if k < base.num_layers else base for k in ks}
    texts = [
        d.full_text() for _, d in itertools.islice(iter_corpus(Path(a.data) / "corpus.jsonl"), a.n)
    ]
    rows: dict[int, dict[str, Any]] = {k: {"layers": k, "speed_runs": []} for k in ks}
    if texts:
        base.encode(texts[:8], show_progress=False)  # warm-up
        for rep in range(a.repeats):
            for k in ks if rep % 2 == 0 else ks[::-1]:
                enc = models[k]
                rec = common.ShapeRecorder(enc.backbone.embeddings)
                start = time.perf_counter()
                enc.encode(texts, batch_size=a.batch_size, show_progress=False)
                seconds = time.perf_counter() - start
                rec.remove()
                hf = enc.backbone.config
                flops = rec.flops(common.layer_params(enc.backbone), k, hf.hidden_size)
                rows[k]["speed_runs"].append(
                    {
                        "docs_per_second": len(texts) / seconds,
                        "gflops_per_second": flops / seconds / 1e9,
                        "load_average": common.load_average(),
                    }
                )
                common.console.print(f"{k} layers: {len(texts) / seconds:.2f} docs/s")
        for k in ks:
            runs = rows[k]["speed_runs"]
            rows[k]["docs_per_second"] = common.median(r["docs_per_second"] for r in runs)
            rows[k]["gflops_per_second"] = common.median(r["gflops_per_second"] for r in runs)
            if peak:
                rows[k]["fraction_of_peak"] = rows[k]["gflops_per_second"] / peak
        full = rows[max(ks)]["docs_per_second"]
        for k in ks:
            rows[k]["speedup_vs_full"] = rows[k]["docs_per_second"] / full
    if a.ndcg:
        test = load_beir(a.data, "test")
        for k in ks:
            start = time.perf_counter()
            res = evaluate_encoder(models[k], test, batch_size=64, show_progress=False)
            rows[k]["test_ndcg@10"] = res.metrics["nDCG@10"]
            rows[k]["test_recall@100"] = res.metrics.get("Recall@100")
            rows[k]["eval_seconds"] = time.perf_counter() - start
            common.console.print(f"{k} layers: test nDCG@10 {res.metrics['nDCG@10']:.4f}")

    if a.finetune:
        for k in ks:
            rows[k].update(finetuned(a, models[k]))
            common.console.print(
                f"{k} layers fine-tuned: test nDCG@10 {rows[k]['tuned_test_ndcg@10']:.4f}"
            )

    if a.ndcg_from:  # e.g. quality measured on a GPU machine, speed measured here
        import json

        earlier = json.loads(Path(a.ndcg_from).read_text(encoding="utf-8"))
        for old in earlier["rows"]:
            if old["layers"] in rows:
                rows[old["layers"]].update(
                    {k: v for k, v in old.items() if "ndcg" in k or "recall" in k}
                )

    result = {**report, "settings": vars(a), "documents": len(texts), "rows": list(rows.values())}
    result["load_average_end"] = common.load_average()
    nan = float("nan")
    common.console.print(
        common.table(
            "all-MiniLM-L6-v2 truncated (Encoder.truncate)",
            ["layers", "docs/s", "x 6 layers", "GFLOP/s", "test nDCG@10", "tuned test nDCG@10"],
            [
                [
                    k,
                    r.get("docs_per_second", nan),
                    r.get("speedup_vs_full", nan),
                    r.get("gflops_per_second", nan),
                    r.get("test_ndcg@10", nan),
                    r.get("tuned_test_ndcg@10", nan),
                ]
                for k, r in rows.items()
            ],
        )
    )
    common.write_json(a.out, result)
    plot(list(rows.values()), a.png or str(Path(a.out).with_suffix(".png")))


def finetuned(a: argparse.Namespace, encoder: Any) -> dict[str, Any]:
    """Train a copy of ``encoder`` (dev-selected epoch), then score it on the test split."""
    import copy
    import tempfile

    from ragtune.data.beir import beir_training_pairs, load_beir
    from ragtune.evaluation.evaluate import evaluate_encoder
    from ragtune.losses.config import LossConfig
    from ragtune.model.encoder import Encoder
    from ragtune.train.config import TrainConfig
    from ragtune.train.data import carve_dev_set
    from ragtune.train.loop import train

    train_pairs, dev = carve_dev_set(beir_training_pairs(a.data, "train"), 0.15, 42)
    out = Path(tempfile.mkdtemp(prefix="ragtune-trunc-")) / "model"
    cfg = TrainConfig(
        recipe="fixed",  # this recipe, not train's search (recipe: auto)
        model=a.model,
        output=str(out),
        batch_size=256,
        epochs=5,
        learning_rate=1e-4,
        loss=LossConfig(cache_mini_batch_size=32),
        precision="fp32",
        seed=42,
        save_steps=10**9,
        log_steps=10**9,
    )
    start = time.perf_counter()
    res = train(cfg, examples=train_pairs, dev=dev, encoder=copy.deepcopy(encoder))
    seconds = time.perf_counter() - start
    test = evaluate_encoder(
        Encoder.load(out, device=a.device),
        load_beir(a.data, "test"),
        batch_size=64,
        show_progress=False,
    )
    return {
        "tuned_dev_ndcg@10": res.best_score,
        "tuned_test_ndcg@10": test.metrics["nDCG@10"],
        "tuned_train_seconds": seconds,
    }


def plot(rows: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda r: r["layers"])
    ks = [r["layers"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    if all("docs_per_second" in r for r in rows):
        ax.plot(ks, [r["docs_per_second"] for r in rows], "o-", color="tab:blue")
        ax.set_ylabel("docs/s (CPU)", color="tab:blue")
    ax.set_xlabel("layers kept")
    ax.set_xticks(ks)
    if all("test_ndcg@10" in r for r in rows):
        ax2 = ax.twinx()
        ax2.plot(ks, [r["test_ndcg@10"] for r in rows], "s--", color="tab:red", label="as cut")
        if all("tuned_test_ndcg@10" in r for r in rows):
            ax2.plot(
                ks,
                [r["tuned_test_ndcg@10"] for r in rows],
                "^-",
                color="tab:green",
                label="cut, then fine-tuned",
            )
        ax2.set_ylabel("SciFact test nDCG@10", color="tab:red")
        ax2.legend(loc="lower right")
    ax.set_title("all-MiniLM-L6-v2 truncated to k layers")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    common.console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
