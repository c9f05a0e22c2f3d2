"""LoRA vs full fine-tuning of the bundled all-MiniLM-L6-v2 on SciFact, same recipe.

What is compared: trainable parameters, checkpoint size, peak RSS of training, pairs/s, and
nDCG@10. Both systems train on SciFact train pairs minus a dev split carved *by query*
(:func:`ragtune.train.data.carve_dev_set`, 15% of the train queries, seed 42) with the same
recipe: InfoNCE with in-batch negatives, batch 32, 1 epoch, linear schedule with 10% warm-up,
fp32, max length 256, seed 42. Full fine-tuning uses ragtune's default learning rate 2e-5.

LoRA (rank 16, alpha 32, dropout 0.05, adapters on query, key, value and every dense layer)
trains ~3% of the weights from a zero update, so a step at 2e-5 barely moves the model; its
learning rate is chosen from ``--lora-lrs`` by dev nDCG@10 (the LoRA paper and PEFT's examples
use 1e-4 .. 1e-3). Only the chosen LoRA run and the full run are scored on the test split (300
queries, 5,183 abstracts); the test split chooses nothing.

Each training run is a fresh process (peak RSS = ``ru_maxrss`` measured right after training,
before any evaluation; the published model is evaluated afterwards from its folder, i.e. the
merged LoRA model). On a shared CPU the throughput depends on the other tenants: the report
keeps the load average at start and end.

Usage::

    python benchmarks/lora.py ../shared/data/scifact --out benchmarks/results/lora.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

RECIPE: dict[str, Any] = {"batch_size": 32, "epochs": 1, "precision": "fp32", "seed": 42}
FULL_LR = 2e-5


def worker(a: argparse.Namespace) -> None:
    """Train one system and print one JSON line: sizes, speed, memory, dev nDCG@10."""
    import torch

    from ragtune.data.beir import beir_training_pairs
    from ragtune.evaluation.evaluate import evaluate_encoder
    from ragtune.model.adapters import trainable_parameters
    from ragtune.model.encoder import Encoder
    from ragtune.train.config import TrainConfig
    from ragtune.train.data import carve_dev_set
    from ragtune.train.loop import train

    spec = json.loads(a.worker)
    pairs = beir_training_pairs(a.data, "train")
    train_pairs, dev = carve_dev_set(pairs, a.dev_fraction, RECIPE["seed"])
    assert dev is not None
    encoder = Encoder.load(a.model, device="cpu")
    cfg = TrainConfig(
        recipe="fixed",  # this recipe, not train's search (recipe: auto)
        model=a.model,
        output=spec["output"],
        learning_rate=spec["lr"],
        adapter=spec["adapter"],
        save_steps=10**9,  # the end-of-epoch checkpoint only
        log_steps=10**9,
        **RECIPE,
    )
    # dev=None: no evaluation inside training, so the RSS and pairs/s are training's own
    result = train(cfg, examples=train_pairs, dev=None, encoder=encoder)
    rss = common.peak_rss_mb()
    trainable, total = trainable_parameters(encoder)  # prepare adapted this encoder in place
    (ckpt,) = sorted((Path(spec["output"]) / "run" / "checkpoints").iterdir())
    ckpt_mb = sum(p.stat().st_size for p in ckpt.iterdir() if p.is_file()) / 2**20
    weights = [p for p in ckpt.iterdir() if p.suffix == ".safetensors"]
    del encoder
    t0 = time.perf_counter()
    published = Encoder.load(spec["output"], device="cpu")
    dev_score = evaluate_encoder(published, dev, batch_size=64, show_progress=False)
    out = {
        "adapter": spec["adapter"],
        "learning_rate": spec["lr"],
        "trainable_parameters": trainable,
        "total_parameters": total,
        "train_pairs": len(train_pairs),
        "steps": result.steps,
        "train_seconds": result.seconds,
        "pairs_per_second": result.pairs_per_second,
        "peak_rss_mb_training": rss,
        "checkpoint_mb": ckpt_mb,
        "checkpoint_weights_mb": sum(p.stat().st_size for p in weights) / 2**20,
        "dev_queries": len(dev.queries),
        "dev_ndcg@10": float(dev_score.metrics["nDCG@10"]),
        "dev_eval_seconds": time.perf_counter() - t0,
        "torch_threads": torch.get_num_threads(),
    }
    print(json.dumps(out))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("data", help="BEIR folder with train and test splits (SciFact)")
    p.add_argument("--out", default="benchmarks/results/lora.json")
    p.add_argument("--model", default=common.minilm_path())
    p.add_argument("--dev-fraction", type=float, default=0.15)
    p.add_argument("--lora-lrs", default="2e-4,1e-3", help="LoRA learning rates tried on dev")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        worker(a)
        return

    from ragtune.data.beir import load_beir
    from ragtune.evaluation.evaluate import evaluate_encoder
    from ragtune.model.encoder import Encoder

    report = common.machine_report(gemm=False)
    common.print_machine(report)
    tmp = Path(tempfile.mkdtemp(prefix="ragtune-lora-"))
    base = [sys.argv[0], a.data, "--model", a.model, "--dev-fraction", str(a.dev_fraction)]
    systems: dict[str, dict[str, Any]] = {}
    runs = [("full", "none", FULL_LR)] + [
        (f"lora lr {lr}", "lora", float(lr)) for lr in a.lora_lrs.split(",")
    ]
    for name, adapter, lr in runs:
        spec = {"adapter": adapter, "lr": lr, "output": str(tmp / name.replace(" ", "-"))}
        systems[name] = common.run_worker([*base, "--worker", json.dumps(spec)])
        systems[name]["output"] = spec["output"]
        r = systems[name]
        common.console.print(
            f"{name}: dev nDCG@10 {r['dev_ndcg@10']:.4f}, {r['pairs_per_second']:.1f} pairs/s, "
            f"peak RSS {r['peak_rss_mb_training']:.0f} MB"
        )

    lora = [n for n in systems if n.startswith("lora")]
    chosen = max(lora, key=lambda n: systems[n]["dev_ndcg@10"])
    test = load_beir(a.data, "test")
    for name in ("full", chosen):
        res = evaluate_encoder(
            Encoder.load(systems[name]["output"], device="cpu"),
            test,
            batch_size=64,
            show_progress=False,
        )
        systems[name]["test_ndcg@10"] = float(res.metrics["nDCG@10"])
    for r in systems.values():
        del r["output"]  # a temporary folder of this machine
    rows = [
        [
            name + (" (chosen on dev)" if name == chosen else ""),
            r["trainable_parameters"],
            r["checkpoint_weights_mb"],
            r["peak_rss_mb_training"],
            r["pairs_per_second"],
            r["dev_ndcg@10"],
            r.get("test_ndcg@10", float("nan")),
        ]
        for name, r in systems.items()
    ]
    common.console.print(
        common.table(
            "LoRA vs full fine-tuning, MiniLM-L6 on SciFact (batch 32, 1 epoch, fp32, CPU)",
            [
                "system",
                "trainable params",
                "ckpt weights MB",
                "peak RSS MB",
                "pairs/s",
                "dev nDCG@10",
                "test nDCG@10",
            ],
            rows,
        )
    )
    result = {
        **report,
        "settings": {**vars(a), "recipe": RECIPE, "full_lr": FULL_LR},
        "chosen_on_dev": chosen,
        "systems": systems,
        "load_average_end": common.load_average(),
    }
    common.write_json(a.out, result)


if __name__ == "__main__":
    main()
