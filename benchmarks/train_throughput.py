"""Training throughput: ragtune's loop vs sentence-transformers' trainer, same model and recipe.

Both systems train all-MiniLM-L6-v2 with in-batch-negative InfoNCE (ST: MultipleNegativesRanking-
Loss, scale 20, cosine) on the SciFact train pairs: batch 32, max length 256, AdamW lr 2e-5,
weight decay 0.01, linear schedule with 10% warm-up, grad-norm clip 1.0, seed 42, fp32, no
duplicate texts inside a batch, last partial batch dropped. Each run is its own subprocess (peak
RSS is that process's ru_maxrss) and the systems alternate (A, B, A, B) so load from other tenants
falls on both; the table shows medians.

Timing: a global optimizer-step hook stamps the clock after every optimizer step, so both systems
are timed the same way: ``steps`` steps after ``warmup`` steps, nothing else (no loading, no
saving). Work done is counted at the backbone's input (padded batch shapes), giving GFLOP/s as
3x the forward FLOPs of :mod:`benchmarks.common`.

Dropout settings (``--dropout``, comma-separated): ``default`` (MiniLM ships
attention_probs_dropout_prob=0.1 and hidden_dropout_prob=0.1), ``0`` (attention-probability
dropout off: with any value > 0 PyTorch's scaled_dot_product_attention takes its unfused math
path on CPU) and ``none`` (every dropout module off, hidden dropout too: on CPU each dropout mask
is drawn by ``aten::bernoulli_``, which profiles as a large share of a training step). Each
setting is applied identically to both systems.

Precision: ragtune runs with ``TrainConfig.precision`` (``--ragtune-precision``, default ``auto``,
its default: bf16 autocast on CPUs with native bf16, fp32 elsewhere) and sentence-transformers in
every precision of ``--st-precision`` (default ``fp32,bf16``: its default, and ``bf16=True``, its
best setting on a CPU with native bf16; on a CPU without it only fp32 runs), all in one
invocation, so "ragtune's default vs ST's default" and "same dropout, same precision" come from
the same machine state. Each run records the precision it used and is judged against the GEMM
peak of that precision (fp32 and bf16 peaks are both measured at the start). The targets printed
at the end include the AMX ones of issue 22 (ragtune's default >= 30% of the bf16 peak, >= 1.5x
ST bf16 at the same dropout); on a CPU without AMX they are reported, not expected.

Memory: ragtune trains with ``TrainConfig.cpu_memory`` (``--ragtune-memory``, default ``reuse``:
freed activations are reused instead of unmapped, see ragtune.model.cpu.memory);
sentence-transformers runs with glibc's policy as shipped (``--st-memory system``) or, to show what
that setting alone is worth, with the same ``reuse`` policy (``--st-memory reuse``).

Usage::

    python benchmarks/train_throughput.py ../shared/data/scifact --steps 10 \
        --out benchmarks/results/train_throughput.json
    python benchmarks/train_throughput.py ../shared/data/scifact --epoch-quality \
        --dropout default,0,none --repeats 1 --seeds 42,1,2 \
        --out benchmarks/results/train_epoch_quality.json   # slow on CPU: 1 epoch + test each
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

SYSTEMS = ("sentence-transformers", "ragtune")


# ---------------------------------------------------------------------------- worker side
def _step_clock(recorder: common.ShapeRecorder) -> list[tuple[float, int]]:
    """(time, forwards so far) after every optimizer step, for any optimizer in the process."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    marks: list[tuple[float, int]] = []

    def hook(opt: Any, args: Any, kwargs: Any) -> None:
        marks.append((time.perf_counter(), len(recorder.shapes)))

    register_optimizer_step_post_hook(hook)
    return marks


def _all_dropout_off(backbone: Any) -> None:
    """Setting ``none``: every nn.Dropout of the backbone (hidden and attention) gets p=0."""
    import torch

    for module in backbone.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


def _set_st_attention_dropout(model: Any, p: float) -> None:
    backbone = model[0].auto_model
    backbone.config.attention_probs_dropout_prob = p
    for name, module in backbone.named_modules():
        # BertSelfAttention keeps nn.Dropout(attention_probs_dropout_prob) as `.dropout` and
        # passes its .p to the attention function while training.
        if name.endswith("attention.self"):
            module.dropout.p = p


def _worker(a: argparse.Namespace) -> dict[str, Any]:
    import torch

    from ragtune.data.beir import beir_training_pairs

    torch.manual_seed(a.seed)
    pairs = beir_training_pairs(a.data, "train")
    total = a.warmup + a.steps
    epoch_steps = len(pairs) // a.batch_size
    planned = epoch_steps if a.epoch_quality else total
    warmup_steps = int(0.1 * planned)
    dropout = {"default": None, "none": 0.0}.get(a.dropout)
    if dropout is None and a.dropout != "default":
        dropout = float(a.dropout)
    # hidden dropout: the model's (0.1 for MiniLM) unless the setting is "none"
    hidden = 0.0 if a.dropout == "none" else None
    tmp = Path(tempfile.mkdtemp(prefix="ragtune-bench-"))
    load_start = time.perf_counter()
    if a.worker == "ragtune":
        from ragtune.model.cpu.memory import cpu_memory_policy
        from ragtune.model.encoder import Encoder
        from ragtune.train.config import TrainConfig
        from ragtune.train.loop import train

        encoder = Encoder.load(a.model, max_seq_length=a.max_length, device=a.device)
        backbone = encoder.backbone
        if a.dropout == "none":
            _all_dropout_off(backbone)
        recorder = common.ShapeRecorder(backbone.embeddings)
        marks = _step_clock(recorder)
        cfg = TrainConfig(
            recipe="fixed",  # this recipe, not train's search (recipe: auto)
            model=a.model,
            output=str(tmp / "out"),
            max_seq_length=a.max_length,
            attention_dropout=dropout,
            hidden_dropout=hidden,
            batch_size=a.batch_size,
            learning_rate=a.lr,
            weight_decay=0.01,
            schedule="linear",
            warmup_ratio=0.1,
            max_grad_norm=1.0,
            epochs=1,
            max_steps=0 if a.epoch_quality else total,
            precision=a.ragtune_precision,
            cpu_memory=a.ragtune_memory,
            seed=a.seed,
            dev_fraction=0.0,
            save_steps=10**9,
            log_steps=10**9,
        )
        t0 = time.perf_counter()
        with cpu_memory_policy(cfg.cpu_memory, device=encoder.device.type):  # as `ragtune train`
            run = train(cfg, examples=pairs, dev=None, encoder=encoder)
        train_seconds = time.perf_counter() - t0
        trained = encoder
        optimizer_name = "torch.optim.AdamW (ragtune build_optimizer)"
        precision = run.precision  # what TrainConfig.precision resolved to here
    else:
        from datasets import Dataset
        from sentence_transformers import (
            SentenceTransformer,
            SentenceTransformerTrainer,
            SentenceTransformerTrainingArguments,
        )
        from sentence_transformers.sentence_transformer import losses
        from sentence_transformers.sentence_transformer.training_args import BatchSamplers

        if a.device == "cpu":
            from ragtune.model.cpu.memory import apply_policy

            apply_policy(a.st_memory)  # "system" changes nothing
        model = SentenceTransformer(a.model, device=a.device)
        model.max_seq_length = a.max_length
        if dropout is not None:
            _set_st_attention_dropout(model, dropout)
        backbone = model[0].auto_model
        if a.dropout == "none":
            _all_dropout_off(backbone)
        recorder = common.ShapeRecorder(backbone.embeddings)
        marks = _step_clock(recorder)
        dataset = Dataset.from_dict(
            {"anchor": [p.query for p in pairs], "positive": [p.positive for p in pairs]}
        )
        args = SentenceTransformerTrainingArguments(
            output_dir=str(tmp / "st"),
            per_device_train_batch_size=a.batch_size,
            learning_rate=a.lr,
            weight_decay=0.01,
            lr_scheduler_type="linear",
            warmup_steps=warmup_steps,
            max_grad_norm=1.0,
            num_train_epochs=1,
            max_steps=-1 if a.epoch_quality else total,
            seed=a.seed,
            batch_sampler=BatchSamplers.NO_DUPLICATES,
            dataloader_drop_last=True,
            save_strategy="no",
            logging_steps=10**9,
            report_to="none",
            use_cpu=a.device == "cpu",
            disable_tqdm=True,
            bf16=a.st_precision == "bf16",
        )
        precision = "bf16 autocast" if a.st_precision == "bf16" else "fp32"
        trainer = SentenceTransformerTrainer(
            model=model,
            args=args,
            train_dataset=dataset,
            loss=losses.MultipleNegativesRankingLoss(model, scale=20.0),
        )
        t0 = time.perf_counter()
        trainer.train()
        train_seconds = time.perf_counter() - t0
        optimizer_name = type(trainer.optimizer.optimizer).__name__ + f" ({args.optim})"
        trained = model
    recorder.enabled = False
    t_start, f_start = marks[a.warmup - 1] if a.warmup else (t0, 0)
    t_end, f_end = marks[min(total, len(marks)) - 1]
    timed_steps = min(total, len(marks)) - a.warmup
    if a.epoch_quality:  # time the whole epoch after the warm-up steps
        t_end, f_end = marks[-1]
        timed_steps = len(marks) - a.warmup
    shapes = recorder.shapes[f_start:f_end]
    seconds = t_end - t_start
    p_layers = common.layer_params(backbone)
    cfg_hf = backbone.config
    fwd = sum(
        common.forward_flops(p_layers, cfg_hf.num_hidden_layers, cfg_hf.hidden_size, b, t)
        for b, t in shapes
    )
    step_times = [marks[i][0] - marks[i - 1][0] for i in range(max(a.warmup, 1), len(marks))]
    result: dict[str, Any] = {
        "system": a.worker,
        "dropout": a.dropout,
        "precision": precision,
        "cpu_memory": a.ragtune_memory if a.worker == "ragtune" else a.st_memory,
        "seed": a.seed,
        "steps_timed": timed_steps,
        "seconds": seconds,
        "pairs_per_second": timed_steps * a.batch_size / seconds,
        "median_step_seconds": common.median(step_times),
        "padded_tokens": sum(b * t for b, t in shapes),
        "train_gflops_per_second": 3 * fwd / seconds / 1e9,
        "peak_rss_mb": common.peak_rss_mb(),
        "setup_seconds": t0 - load_start,
        "train_call_seconds": train_seconds,
        "optimizer": optimizer_name,
        "sdpa": getattr(cfg_hf, "_attn_implementation", "?"),
        "torch_threads": torch.get_num_threads(),
        "load_average_end": common.load_average(),
        "total_optimizer_steps": len(marks),
    }
    if a.epoch_quality:
        result.update(_test_quality(a, trained, tmp))
    return result


def _test_quality(a: argparse.Namespace, trained: Any, tmp: Path) -> dict[str, Any]:
    """nDCG@10 on the test split with ragtune's evaluator, identical for both systems."""
    from ragtune.data.beir import load_beir
    from ragtune.evaluation.evaluate import evaluate_encoder
    from ragtune.model.encoder import Encoder

    if a.worker != "ragtune":  # load the ST model back through the same code path
        trained.save(str(tmp / "st_model"))
        trained = Encoder.load(tmp / "st_model", device=a.device)
    t0 = time.perf_counter()
    res = evaluate_encoder(trained, load_beir(a.data, "test"), batch_size=64, show_progress=False)
    return {"test_ndcg@10": res.metrics["nDCG@10"], "eval_seconds": time.perf_counter() - t0}


# ---------------------------------------------------------------------------- driver side
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("data", help="BEIR folder with a train split, e.g. ../shared/data/scifact")
    p.add_argument("--out", default="benchmarks/results/train_throughput.json")
    p.add_argument("--model", default=common.minilm_path())
    p.add_argument("--steps", type=int, default=10, help="timed optimizer steps per run")
    p.add_argument("--warmup", type=int, default=2, help="untimed optimizer steps first")
    p.add_argument("--repeats", type=int, default=2, help="A,B rounds per dropout setting")
    p.add_argument("--dropout", default="default,0", help="attention dropout settings to run")
    p.add_argument("--systems", default=",".join(SYSTEMS))
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--seed", type=int, default=42, help=argparse.SUPPRESS)
    p.add_argument("--seeds", default="42", help="comma-separated seeds; each gets all rounds")
    p.add_argument("--epoch-quality", action="store_true", help="train 1 epoch, test nDCG@10")
    p.add_argument("--device", default="cpu", help="cpu (the benchmark) or cuda (quality runs)")
    p.add_argument(
        "--ragtune-precision",
        default="auto",
        choices=("auto", "fp32", "bf16"),
        help="ragtune's TrainConfig.precision (auto: its default)",
    )
    p.add_argument(
        "--st-precision",
        default="fp32,bf16",
        help="sentence-transformers precisions to run: fp32 (its default), bf16 (bf16=True)",
    )
    p.add_argument(
        "--ragtune-memory",
        default="reuse",
        choices=("reuse", "release", "system"),
        help="ragtune's TrainConfig.cpu_memory (reuse: its default)",
    )
    p.add_argument(
        "--st-memory",
        default="system",
        choices=("system", "reuse"),
        help="sentence-transformers' process: glibc's policy (as shipped) or ragtune's reuse",
    )
    p.add_argument("--worker", choices=SYSTEMS, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        a.dropout = a.dropout.split(",")[0]
        print(json.dumps(_worker(a)))
        return

    report = common.machine_report(gemm=a.device == "cpu")
    common.print_machine(report)
    settings = a.dropout.split(",")
    st_precisions = [x for x in a.st_precision.split(",") if x]
    flags = report["cpu"]["flags"]
    if a.device == "cpu" and not (flags.get("avx512_bf16") or flags.get("amx_bf16")):
        st_precisions = [x for x in st_precisions if x != "bf16"] or ["fp32"]
    variants: list[tuple[str, str]] = []  # (worker, ST precision)
    for worker in a.systems.split(","):
        if worker == "ragtune":
            variants.append((worker, "fp32"))
        else:
            variants += [(worker, x) for x in st_precisions]
    systems = [_label(w, x) for w, x in variants]
    runs: list[dict[str, Any]] = []
    base = [str(Path(__file__).resolve()), a.data, "--model", a.model]
    base += ["--steps", str(a.steps), "--warmup", str(a.warmup), "--batch-size", str(a.batch_size)]
    base += ["--max-length", str(a.max_length), "--lr", str(a.lr)]
    base += ["--device", a.device]
    base += ["--ragtune-precision", a.ragtune_precision]
    base += ["--ragtune-memory", a.ragtune_memory, "--st-memory", a.st_memory]
    if a.epoch_quality:
        base.append("--epoch-quality")
    rounds = [(seed, rep) for seed in a.seeds.split(",") for rep in range(a.repeats)]
    for i, (seed, _rep) in enumerate(rounds):
        for setting in settings:
            for worker, st_precision in variants if i % 2 == 0 else variants[::-1]:
                system = _label(worker, st_precision)
                common.console.print(f"round {i + 1} (seed {seed}): {system}, dropout {setting}")
                args = ["--seed", seed, "--worker", worker, "--dropout", setting]
                r = common.run_worker([*base, *args, "--st-precision", st_precision])
                r["system"], r["round"] = system, i + 1
                runs.append(r)
                common.console.print(
                    f"  {r['pairs_per_second']:.2f} pairs/s, peak RSS {r['peak_rss_mb']:.0f} MB"
                    + (f", test nDCG@10 {r['test_ndcg@10']:.4f}" if "test_ndcg@10" in r else "")
                )
    peaks = {
        "fp32": report.get("gemm_fp32", {}).get("gflops"),
        "bf16": report.get("gemm_bf16", {}).get("gflops"),
    }
    summary = _summarise(runs, settings, systems, peaks)
    report["load_average_end"] = common.load_average()
    report["settings"] = {k: v for k, v in vars(a).items() if k != "worker"}
    report.update({"summary": summary, "runs": runs})
    _print(summary, a.epoch_quality)
    common.write_json(a.out, report)


def _label(worker: str, st_precision: str) -> str:
    """How the table names a run: sentence-transformers in bf16 is its own row."""
    return worker if worker == "ragtune" or st_precision == "fp32" else f"{worker} bf16"


def _summarise(
    runs: list[dict[str, Any]],
    settings: list[str],
    systems: list[str],
    peaks: dict[str, float | None],
) -> dict[str, Any]:
    rows = []
    for setting in settings:
        for system in systems:
            mine = [r for r in runs if r["system"] == system and r["dropout"] == setting]
            if not mine:
                continue
            row = {
                "system": system,
                "dropout": setting,
                "precision": mine[0]["precision"],
                "runs": len(mine),
                "pairs_per_second": common.median(r["pairs_per_second"] for r in mine),
                "all_pairs_per_second": [round(r["pairs_per_second"], 3) for r in mine],
                "peak_rss_mb": common.median(r["peak_rss_mb"] for r in mine),
                "train_gflops_per_second": common.median(
                    r["train_gflops_per_second"] for r in mine
                ),
            }
            # each run against the GEMM peak of the precision it ran in
            peak = peaks["fp32" if row["precision"] == "fp32" else "bf16"]
            row["peak_gflops_used"] = peak
            row["fraction_of_peak"] = row["train_gflops_per_second"] / peak if peak else None
            if any("test_ndcg@10" in r for r in mine):
                scores = [r["test_ndcg@10"] for r in mine]
                row["test_ndcg@10"] = sum(scores) / len(scores)  # mean over seeds
                row["all_test_ndcg@10"] = [round(x, 4) for x in scores]
            rows.append(row)

    def rate(system: str, setting: str) -> float | None:
        return next(
            (
                r["pairs_per_second"]
                for r in rows
                if r["system"] == system and r["dropout"] == setting
            ),
            None,
        )

    st_default = rate("sentence-transformers", "default")
    for row in rows:
        same = rate("sentence-transformers", row["dropout"])
        same16 = rate("sentence-transformers bf16", row["dropout"])
        row["ratio_vs_st_same_dropout"] = row["pairs_per_second"] / same if same else None
        row["ratio_vs_st_bf16_same_dropout"] = row["pairs_per_second"] / same16 if same16 else None
        row["ratio_vs_st_default"] = row["pairs_per_second"] / st_default if st_default else None
    targets: dict[str, Any] = {}
    mine = rate("ragtune", "default")  # ragtune's default keeps the model's dropout, as ST does
    if mine and st_default:
        targets["ragtune_default_vs_st_default"] = {"ratio": mine / st_default, "target": 1.8}
    fastest = max(
        (r for r in rows if r["system"] == "ragtune"),
        key=lambda r: r["pairs_per_second"],
        default=None,
    )
    if fastest and st_default and fastest["dropout"] != "default":
        targets["ragtune_fastest_vs_st_default"] = {
            "ragtune_dropout": fastest["dropout"],
            "ratio": fastest["pairs_per_second"] / st_default,
            "target": 1.8,
        }
    for row in rows:
        if row["system"] == "ragtune" and row["ratio_vs_st_same_dropout"]:
            targets[f"same_dropout_{row['dropout']}"] = {
                "ratio": row["ratio_vs_st_same_dropout"],
                "target": 1.15,
            }
    for row in rows:
        if row["system"] == "ragtune" and row["ratio_vs_st_bf16_same_dropout"]:
            targets[f"vs_st_bf16_same_dropout_{row['dropout']}"] = {
                "ratio": row["ratio_vs_st_bf16_same_dropout"],
                "target": 1.5,  # issue 22, on an AMX CPU
            }
        if row["system"] == "ragtune" and row["dropout"] == "default" and row["fraction_of_peak"]:
            targets["ragtune_default_fraction_of_bf16_peak"] = {
                "ratio": row["fraction_of_peak"],
                "target": 0.30,  # issue 22, on an AMX CPU
            }
    for t in targets.values():
        t["met"] = t["ratio"] >= t["target"]
    return {"rows": rows, "targets": targets}


def _print(summary: dict[str, Any], quality: bool) -> None:
    cols = ["system", "dropout", "precision", "pairs/s", "x ST same", "x ST bf16 same"]
    cols += ["x ST default", "GFLOP/s"]
    cols += ["% peak", "peak RSS MB"] + (["test nDCG@10"] if quality else [])
    rows = [
        [
            r["system"],
            r["dropout"],
            r["precision"],
            r["pairs_per_second"],
            r["ratio_vs_st_same_dropout"] or float("nan"),
            r["ratio_vs_st_bf16_same_dropout"] or float("nan"),
            r["ratio_vs_st_default"] or float("nan"),
            r["train_gflops_per_second"],
            100 * r["fraction_of_peak"] if r["fraction_of_peak"] else float("nan"),
            r["peak_rss_mb"],
            *([r.get("test_ndcg@10", float("nan"))] if quality else []),
        ]
        for r in summary["rows"]
    ]
    common.console.print(common.table("training throughput (medians)", cols, rows))
    for name, t in summary["targets"].items():
        verdict = "[green]met" if t["met"] else "[red]not met"
        common.console.print(f"{name}: {t['ratio']:.2f}x (target {t['target']}x) {verdict}")


if __name__ == "__main__":
    main()
