"""Query encoding with and without padding in the fused CPU forward, same batches.

A server encodes the queries that arrived together: mixed lengths (the first 512 SciFact
queries: 22 tokens on average, 50 at most), padded to the longest of each forward pass. The
fused forward (:mod:`ragtune.model.cpu.fused`) runs its linears on the real tokens only where
enough of a batch is padding; this benchmark encodes the same 512 SciFact queries, 128 per call,
with ``batch_size`` 8 to 128 texts per forward pass, both ways (padding kept: ``real_rows``
patched to report no padding), fp32, alternating the two modes over ``--rounds`` rounds and
keeping each one's best. It also checks that both give the same vectors.

Usage::

    python benchmarks/unpadded_encode.py ../shared/data/scifact \
        --out benchmarks/results/unpadded_encode.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path, help="BEIR folder (queries.jsonl)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/unpadded_encode.json"))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32, 64, 128])
    args = parser.parse_args()
    import ragtune.model.cpu.fused as fused
    from ragtune.model.encoder import Encoder

    machine = common.machine_report(gemm=False)
    common.print_machine(machine)
    with open(args.data / "queries.jsonl", encoding="utf-8") as f:
        queries = [json.loads(line)["text"] for line in f][:512]
    encoder = Encoder.load(common.minilm_path(), device="cpu")
    lengths = [len(t) for t in encoder.tokenizer(queries)["input_ids"]]
    real_rows = fused.real_rows
    modes = {"padded": lambda mask: None, "unpadded": real_rows}
    best: dict[tuple[str, int], float] = {}
    for _ in range(args.rounds):
        for mode, rows in modes.items():
            fused.real_rows = rows  # type: ignore[assignment]
            for bs in args.batch_sizes:
                encoder.encode(queries[:64], precision="fp32", batch_size=bs, show_progress=False)
                start = time.perf_counter()
                for i in range(0, len(queries), 128):
                    encoder.encode(
                        queries[i : i + 128], precision="fp32", batch_size=bs, show_progress=False
                    )
                ms = 1000 * (time.perf_counter() - start) / len(queries)
                best[(mode, bs)] = min(best.get((mode, bs), float("inf")), ms)
    vectors = {}
    for mode, rows in modes.items():
        fused.real_rows = rows  # type: ignore[assignment]
        vectors[mode] = encoder.encode(queries, batch_size=128, show_progress=False)
    fused.real_rows = real_rows
    rows_out: list[dict[str, Any]] = []
    for bs in args.batch_sizes:
        pad, unpad = best[("padded", bs)], best[("unpadded", bs)]
        rows_out.append(
            {
                "batch_size": bs,
                "padded_ms_per_query": round(pad, 3),
                "unpadded_ms_per_query": round(unpad, 3),
                "speedup": round(pad / unpad, 3),
            }
        )
    common.console.print(
        common.table(
            "fused fp32 encode of SciFact queries, ms per query (best of rounds)",
            ["texts per forward", "padded", "unpadded", "speed-up"],
            [[r["batch_size"], r[k1], r[k2], r["speedup"]] for r in rows_out
             for k1, k2 in [("padded_ms_per_query", "unpadded_ms_per_query")]],
        )
    )  # fmt: skip
    result = {
        **machine,
        "queries": len(queries),
        "tokens_mean": round(float(np.mean(lengths)), 2),
        "tokens_max": int(max(lengths)),
        "rounds": args.rounds,
        "results": rows_out,
        "max_abs_diff": float(np.abs(vectors["padded"] - vectors["unpadded"]).max()),
        "load_average_end": common.load_average(),
    }
    common.write_json(args.out, result)


if __name__ == "__main__":
    main()
