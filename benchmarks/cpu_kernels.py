"""The CPU kernels behind a training step with dropout: masks, attention, and the allocator.

Why this exists: a MiniLM training step with the model's dropout (attention-probability 0.1,
hidden 0.1) ran 2.4x slower than without it on CPU. The profile pointed at three things this
script times in isolation, on the shapes of a batch of 32 SciFact abstracts at 256 tokens
(MiniLM: 12 heads of 32 dims, width 384):

1. dropout masks: PyTorch's ``bernoulli_`` against ragtune's 16-bit masks
   (``ragtune.model.cpu.dropout``), forward + backward, on hidden states and on the L x L
   attention probabilities;
2. one attention layer, forward + backward: fused SDPA without dropout (what dropout 0 gets),
   SDPA with dropout (its unfused math path) and ragtune's math path with cheap masks
   (``ragtune.model.cpu.attention``);
3. with bf16 inputs (what the layers give under autocast): the math path upcast to fp32 (the
   default off AMX) and kept in bf16 (the default on AMX), and fused SDPA in bf16;
4. the same under glibc's malloc policy (``system``: blocks above 32 MiB are mmapped, so every
   fresh 100 MB tensor is page-faulted in) and under ragtune's training default (``reuse``:
   freed blocks are kept; ``ragtune.model.cpu.memory``). Minor page faults are counted.

Each figure is the median of ``--repeats`` timed calls after one warm-up call, in ms. The
``system`` rows run first, since ``reuse`` changes the process's malloc policy until restored.

    python benchmarks/cpu_kernels.py --out benchmarks/results/cpu_kernels.json
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

BATCH, HEADS, LENGTH, HEAD_DIM = 32, 12, 256, 32


def timed(fn: Callable[[], object], repeats: int) -> dict[str, float]:
    """Median ms of ``repeats`` calls after one warm-up, and minor page faults per call."""
    fn()
    times = []
    faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0
    return {"ms": common.median(times), "page_faults_per_call": faults / repeats}


def cases() -> dict[str, Callable[[], object]]:
    from ragtune.model.cpu.attention import _attention_with_dropout
    from ragtune.model.cpu.dropout import dropout as fast_dropout

    torch.manual_seed(0)
    hidden = torch.randn(BATCH * LENGTH, HEADS * HEAD_DIM, requires_grad=True)
    hidden_grad = torch.randn_like(hidden)
    probs = torch.rand(BATCH, HEADS, LENGTH, LENGTH, requires_grad=True)
    probs_grad = torch.randn_like(probs)
    q, k, v = (torch.randn(BATCH, HEADS, LENGTH, HEAD_DIM, requires_grad=True) for _ in range(3))
    mask = torch.ones(BATCH, 1, LENGTH, LENGTH, dtype=torch.bool)
    out_grad = torch.randn(BATCH, LENGTH, HEADS, HEAD_DIM)

    def backward(x: torch.Tensor, g: torch.Tensor) -> Callable[[], None]:
        return lambda: x.backward(g)

    def sdpa(p: float) -> Callable[[], None]:
        def run() -> None:
            out = torch.nn.functional.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=p
            )
            out.transpose(1, 2).backward(out_grad)

        return run

    def ragtune_attention() -> None:
        out, _ = _attention_with_dropout(q, k, v, mask, dropout=0.1)
        out.backward(out_grad)

    # bf16 inputs, as Linear layers give them under autocast
    qb, kb, vb = (t.detach().bfloat16().requires_grad_() for t in (q, k, v))
    out_grad_b = out_grad.bfloat16()

    def ragtune_attention_bf16(keep: bool) -> Callable[[], None]:
        def run() -> None:
            out, _ = _attention_with_dropout(qb, kb, vb, mask, dropout=0.1, keep_bf16=keep)
            out.backward(out_grad_b)

        return run

    def sdpa_bf16() -> None:
        out = torch.nn.functional.scaled_dot_product_attention(qb, kb, vb, attn_mask=mask)
        out.transpose(1, 2).backward(out_grad_b)

    return {
        "hidden dropout, torch (bernoulli_)": lambda: backward(
            torch.nn.functional.dropout(hidden, 0.1, True), hidden_grad
        )(),
        "hidden dropout, ragtune masks": lambda: backward(fast_dropout(hidden, 0.1), hidden_grad)(),
        "attention-probability dropout, torch": lambda: backward(
            torch.nn.functional.dropout(probs, 0.1, True), probs_grad
        )(),
        "attention-probability dropout, ragtune masks": lambda: backward(
            fast_dropout(probs, 0.1), probs_grad
        )(),
        "attention layer, SDPA fused, no dropout": sdpa(0.0),
        "attention layer, SDPA math path, dropout 0.1": sdpa(0.1),
        "attention layer, ragtune math path, dropout 0.1": ragtune_attention,
        "attention layer, bf16 inputs, ragtune math path in fp32, dropout 0.1": (
            ragtune_attention_bf16(False)
        ),
        "attention layer, bf16 inputs, ragtune math path in bf16, dropout 0.1": (
            ragtune_attention_bf16(True)
        ),
        "attention layer, SDPA fused in bf16, no dropout": sdpa_bf16,
        "softmax over (32, 12, 256, 256), forward only": lambda: torch.softmax(
            probs.detach(), dim=-1
        ),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default="benchmarks/results/cpu_kernels.json")
    a = p.parse_args()
    from ragtune.model.cpu.memory import apply_policy, restore_system_policy

    report = common.machine_report(gemm=False)
    common.print_machine(report)
    rows: list[dict[str, Any]] = []
    for policy in ("system", "reuse"):
        applied = apply_policy(policy)
        for name, fn in cases().items():
            rows.append({"kernel": name, "cpu_memory": policy, **timed(fn, a.repeats)})
            common.console.print(f"{policy:6s} {name}: {rows[-1]['ms']:.1f} ms")
        if applied:
            restore_system_policy()
    by = {(r["kernel"], r["cpu_memory"]): r for r in rows}
    table_rows = [
        [
            name,
            by[(name, "system")]["ms"],
            by[(name, "reuse")]["ms"],
            by[(name, "system")]["ms"] / by[(name, "reuse")]["ms"],
            by[(name, "system")]["page_faults_per_call"],
            by[(name, "reuse")]["page_faults_per_call"],
        ]
        for name in dict.fromkeys(r["kernel"] for r in rows)
    ]
    cols = ["kernel (fwd+bwd)", "system ms", "reuse ms", "x", "faults system", "faults reuse"]
    common.console.print(common.table("CPU kernels of a training step", cols, table_rows))
    report.update(
        {
            "command": " ".join(["python", *sys.argv]),
            "shapes": {"batch": BATCH, "heads": HEADS, "length": LENGTH, "head_dim": HEAD_DIM},
            "repeats": a.repeats,
            "rows": rows,
        }
    )
    common.write_json(a.out, report)


if __name__ == "__main__":
    main()
