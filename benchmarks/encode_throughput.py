"""Encoding throughput: ragtune's Encoder.encode vs SentenceTransformer.encode, same documents.

Both load the bundled all-MiniLM-L6-v2 (max length 256, mean pooling, L2-normalised) and embed
the first ``--n`` SciFact abstracts (title + " " + text) with batch size 32, alternating
(A, B, C, D, then D, C, B, A, ...) in one process so that load from other tenants falls on all;
the table shows medians. Work is counted at the backbone's embeddings module (padded batch
shapes) and turned into GFLOP/s with the formula in :mod:`benchmarks.common`, then divided by the
GEMM peak *of the precision the row ran in* (fp32 or bf16), both measured in this invocation.

Rows:

- ``ragtune fp32``: ``precision="fp32"``, the fused fp32 CPU path (ragtune.model.cpu.fused);
- ``ragtune bf16``: ``precision="bf16"``, bf16 autocast (with ``--bf16``, the default on a CPU
  with native bf16);
- ``sentence-transformers``: its default (fp32);
- ``sentence-transformers bf16``: its best setting on a bf16 CPU, the model loaded with
  ``model_kwargs={"torch_dtype": torch.bfloat16}``;
- ``ragtune (HF forward)`` (``--hf-forward``): ragtune with the fused path switched off.

``precision="auto"`` (ragtune's default): the benchmark runs the same check that
:mod:`ragtune.model.cpu.encode_precision` runs on a large call (forced here, since ``--n`` may be
under its threshold), reports its decision, its reason and what it cost, and marks the row auto
equals. Every row's vectors are compared with sentence-transformers fp32 (max abs difference,
min cosine).

Usage::

    python benchmarks/encode_throughput.py ../shared/data/scifact --n 500 \
        --out benchmarks/results/encode_throughput.json
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402


def load_texts(folder: str, n: int) -> list[str]:
    from ragtune.data.beir import iter_corpus

    docs = itertools.islice(iter_corpus(Path(folder) / "corpus.jsonl"), n)
    return [doc.full_text() for _, doc in docs]


def _fused_used(encoder: Any) -> bool:
    """Whether encode() ran through the fused CPU path (ragtune.model.cpu.fast_paths)."""
    paths = encoder.cpu_fast_paths
    return paths is not None and paths.fused is not None


def timed(fn: Any, recorder: common.ShapeRecorder) -> tuple[Any, float, list[tuple[int, int]]]:
    recorder.shapes.clear()
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    return out, seconds, list(recorder.shapes)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("data", help="BEIR folder, e.g. ../shared/data/scifact")
    p.add_argument("--out", default="benchmarks/results/encode_throughput.json")
    p.add_argument("--model", default=common.minilm_path())
    p.add_argument("--n", type=int, default=1000, help="documents to encode")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=2, help="rounds over all systems")
    p.add_argument("--bf16", choices=("auto", "yes", "no"), default="auto", help="bf16 rows")
    p.add_argument("--hf-forward", action="store_true", help="also ragtune without fused path")
    p.add_argument("--device", default="cpu")
    a = p.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    from ragtune.model.cpu.bf16 import bf16_kind
    from ragtune.model.cpu.encode_precision import choose_encode_precision
    from ragtune.model.encoder import Encoder

    report = common.machine_report()
    common.print_machine(report)
    kind = bf16_kind()
    with_bf16 = a.bf16 == "yes" or (a.bf16 == "auto" and kind != "none")
    texts = load_texts(a.data, a.n)
    encoder = Encoder.load(a.model, device=a.device)
    backbone = encoder.backbone
    hf = backbone.config
    p_layers = common.layer_params(backbone)
    rec_rt = common.ShapeRecorder(backbone.embeddings)

    def ragtune(precision: str, fused: bool = True) -> Any:
        def run(docs: list[str]) -> Any:
            encoder.fused_inference = fused
            try:
                return encoder.encode(
                    docs, batch_size=a.batch_size, precision=precision, show_progress=False
                )
            finally:
                encoder.fused_inference = True

        return run

    def st_system(model: Any) -> Any:
        def run(docs: list[str]) -> Any:
            emb = model.encode(docs, batch_size=a.batch_size, convert_to_tensor=True)
            return emb.float().cpu().numpy()

        return run

    st = SentenceTransformer(a.model, device=a.device)
    assert st.max_seq_length == encoder.config.max_seq_length, "both must truncate alike"
    systems: dict[str, tuple[Any, common.ShapeRecorder, str]] = {
        "ragtune fp32": (ragtune("fp32"), rec_rt, "fp32"),
        "sentence-transformers": (
            st_system(st),
            common.ShapeRecorder(st[0].auto_model.embeddings),
            "fp32",
        ),
    }
    if a.hf_forward:
        systems["ragtune (HF forward)"] = (ragtune("fp32", fused=False), rec_rt, "fp32")
    if with_bf16:
        st16 = SentenceTransformer(
            a.model, device=a.device, model_kwargs={"torch_dtype": torch.bfloat16}
        )
        systems["ragtune bf16"] = (ragtune("bf16"), rec_rt, "bf16")
        systems["sentence-transformers bf16"] = (
            st_system(st16),
            common.ShapeRecorder(st16[0].auto_model.embeddings),
            "bf16",
        )
    # warm-up: thread pools, allocator, oneDNN kernels of both precisions, first-call overheads
    for fn, _, _ in systems.values():
        fn(texts[:8])

    t0 = time.perf_counter()
    check = choose_encode_precision(encoder, texts, batch_size=a.batch_size, force=True)
    check_seconds = time.perf_counter() - t0
    common.console.print(f"precision=auto chose {check.precision}: {check.reason}")

    runs: list[dict[str, Any]] = []
    outputs: dict[str, np.ndarray] = {}
    for rep in range(a.repeats):
        order = list(systems) if rep % 2 == 0 else list(systems)[::-1]
        for name in order:
            fn, rec, _ = systems[name]
            emb, seconds, shapes = timed(lambda fn=fn: fn(texts), rec)
            outputs[name] = np.asarray(emb, dtype=np.float32)
            flops = sum(
                common.forward_flops(p_layers, hf.num_hidden_layers, hf.hidden_size, b, t)
                for b, t in shapes
            )
            runs.append(
                {
                    "system": name,
                    "round": rep + 1,
                    "seconds": seconds,
                    "docs_per_second": len(texts) / seconds,
                    "gflops_per_second": flops / seconds / 1e9,
                    "padded_tokens": sum(b * t for b, t in shapes),
                    "load_average": common.load_average(),
                }
            )
            common.console.print(
                f"round {rep + 1} {name}: {len(texts) / seconds:.2f} docs/s "
                f"({flops / seconds / 1e9:.1f} GFLOP/s)"
            )
    reference = outputs["sentence-transformers"]
    peaks = {
        "fp32": report["gemm_fp32"]["gflops"],
        "bf16": report.get("gemm_bf16", {}).get("gflops"),
    }
    rows = []
    for name, (_, _, precision) in systems.items():
        mine = [r for r in runs if r["system"] == name]
        cos = (outputs[name] * reference).sum(1) / (
            np.linalg.norm(outputs[name], axis=1) * np.linalg.norm(reference, axis=1)
        )
        rows.append(
            {
                "system": name,
                "precision": precision,
                "docs_per_second": common.median(r["docs_per_second"] for r in mine),
                "all_docs_per_second": [round(r["docs_per_second"], 3) for r in mine],
                "gflops_per_second": common.median(r["gflops_per_second"] for r in mine),
                "padded_tokens": mine[0]["padded_tokens"],
                "max_abs_diff_vs_st": float(np.abs(outputs[name] - reference).max()),
                "min_cosine_vs_st": float(cos.min()),
            }
        )
    st_rate = next(r["docs_per_second"] for r in rows if r["system"] == "sentence-transformers")
    st16_rate = next(
        (r["docs_per_second"] for r in rows if r["system"] == "sentence-transformers bf16"), None
    )
    for row in rows:
        row["ratio_vs_st"] = row["docs_per_second"] / st_rate
        row["ratio_vs_st_bf16"] = row["docs_per_second"] / st16_rate if st16_rate else None
        peak = peaks[row["precision"]]
        row["peak_gflops_used"] = peak
        row["fraction_of_peak"] = row["gflops_per_second"] / peak if peak else None
    auto_row = f"ragtune {check.precision}"
    result: dict[str, Any] = {
        **report,
        "settings": vars(a),
        "documents": len(texts),
        "bf16_kind": kind,
        "fused_path_used": _fused_used(encoder),
        "auto": {
            "precision": check.precision,
            "reason": check.reason,
            "min_cosine": check.min_cosine,
            "speedup_on_sample": check.speedup,
            "sample": check.sample,
            "check_seconds": check_seconds,
            "row": auto_row,
        },
        "rows": rows,
        "runs": runs,
        "load_average_end": common.load_average(),
    }
    bf16_peak = f"; bf16 GEMM peak {peaks['bf16']:.1f}" if peaks["bf16"] else ""
    cols = ["system", "precision", "docs/s", "x ST", "x ST bf16", "GFLOP/s", "% of peak"]
    cols += ["min cos vs ST", "padded tokens"]
    common.console.print(
        common.table(
            f"encode {len(texts)} SciFact docs (medians of {a.repeats}; fp32 GEMM peak "
            f"{peaks['fp32']:.1f}{bf16_peak} GFLOP/s)",
            cols,
            [
                [
                    r["system"] + (" = auto" if r["system"] == auto_row else ""),
                    r["precision"],
                    r["docs_per_second"],
                    r["ratio_vs_st"],
                    r["ratio_vs_st_bf16"] or float("nan"),
                    r["gflops_per_second"],
                    100 * r["fraction_of_peak"] if r["fraction_of_peak"] else float("nan"),
                    r["min_cosine_vs_st"],
                    r["padded_tokens"],
                ]
                for r in rows
            ],
        )
    )
    common.console.print(
        f"precision=auto on this CPU ({kind}): {check.precision} ({check.reason}); "
        f"the check took {check_seconds:.1f} s on {check.sample} texts"
    )
    common.write_json(a.out, result)


if __name__ == "__main__":
    main()
