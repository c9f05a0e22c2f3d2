"""Encoding throughput: ragtune's Encoder.encode vs SentenceTransformer.encode, same documents.

Both load the bundled all-MiniLM-L6-v2 (max length 256, mean pooling, L2-normalised) and embed
the first ``--n`` SciFact abstracts (title + " " + text) with batch size 32, alternating
(A, B, A, B, ...) in one process so that load from other tenants falls on both; the table shows
medians. Work is counted at the backbone's embeddings module (padded batch shapes) and turned
into GFLOP/s with the formula in :mod:`benchmarks.common`, then divided by the measured fp32 GEMM
peak. The max absolute difference between the two systems' embeddings checks they compute the
same function (< 1e-5 expected). A third row, ``ragtune (HF forward)``, is ragtune with its
fused fp32 CPU path (ragtune.model.cpu.fused) switched off, to show what that path contributes.

``--bf16-docs N`` also times ragtune with bf16 autocast (``precision="bf16"``) against fp32 on
the first N documents, once: on a CPU without native bf16 this is several times slower, which is
why ragtune never picks it by itself for encoding on a CPU (encoding stays fp32 so that
embeddings and indexes do not depend on the machine).

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
    p.add_argument("--repeats", type=int, default=2, help="A,B rounds")
    p.add_argument("--bf16-docs", type=int, default=0, help="also time bf16 autocast on N docs")
    p.add_argument("--device", default="cpu")
    a = p.parse_args()

    from sentence_transformers import SentenceTransformer

    from ragtune.model.encoder import Encoder

    report = common.machine_report()
    common.print_machine(report)
    texts = load_texts(a.data, a.n)
    encoder = Encoder.load(a.model, device=a.device)
    st = SentenceTransformer(a.model, device=a.device)
    assert st.max_seq_length == encoder.config.max_seq_length, "both must truncate alike"
    backbone = encoder.backbone
    hf = backbone.config
    p_layers = common.layer_params(backbone)
    rec_rt = common.ShapeRecorder(backbone.embeddings)
    rec_st = common.ShapeRecorder(st[0].auto_model.embeddings)

    def hf_forward() -> Any:  # ragtune with its fused path switched off
        encoder.fused_inference = False
        try:
            return encoder.encode(texts, batch_size=a.batch_size, show_progress=False)
        finally:
            encoder.fused_inference = True

    systems = {
        "ragtune": (
            lambda: encoder.encode(texts, batch_size=a.batch_size, show_progress=False),
            rec_rt,
        ),
        "ragtune (HF forward)": (hf_forward, rec_rt),
        "sentence-transformers": (
            lambda: st.encode(texts, batch_size=a.batch_size, convert_to_numpy=True),
            rec_st,
        ),
    }
    # warm-up: thread pools, allocator, first-call overheads
    encoder.encode(texts[:8], show_progress=False)
    st.encode(texts[:8])
    runs: list[dict[str, Any]] = []
    outputs: dict[str, np.ndarray] = {}
    for rep in range(a.repeats):
        order = list(systems) if rep % 2 == 0 else list(systems)[::-1]
        for name in order:
            fn, rec = systems[name]
            emb, seconds, shapes = timed(fn, rec)
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
    diff = float(np.abs(outputs["ragtune"] - reference).max())
    diff_hf = float(np.abs(outputs["ragtune (HF forward)"] - reference).max())
    peak = report["gemm_fp32"]["gflops"]
    rows = []
    for name in systems:
        mine = [r for r in runs if r["system"] == name]
        rows.append(
            {
                "system": name,
                "docs_per_second": common.median(r["docs_per_second"] for r in mine),
                "all_docs_per_second": [round(r["docs_per_second"], 3) for r in mine],
                "gflops_per_second": common.median(r["gflops_per_second"] for r in mine),
                "padded_tokens": mine[0]["padded_tokens"],
            }
        )
    st_rate = next(r["docs_per_second"] for r in rows if r["system"] == "sentence-transformers")
    for row in rows:
        row["ratio_vs_st"] = row["docs_per_second"] / st_rate
        row["fraction_of_peak"] = row["gflops_per_second"] / peak
    result: dict[str, Any] = {
        **report,
        "settings": vars(a),
        "documents": len(texts),
        "max_abs_diff_vs_st": diff,
        "max_abs_diff_hf_forward_vs_st": diff_hf,
        "fused_path_used": _fused_used(encoder),
        "rows": rows,
        "runs": runs,
    }
    if a.bf16_docs:
        result["bf16"] = bf16_check(encoder, texts[: a.bf16_docs], a.batch_size, rec_rt, p_layers)
    result["load_average_end"] = common.load_average()

    cols = ["system", "docs/s", "x ST", "GFLOP/s", "% of GEMM peak", "padded tokens"]
    common.console.print(
        common.table(
            f"encode {len(texts)} SciFact docs (medians of {a.repeats}; "
            f"fp32 GEMM peak {peak:.1f} GFLOP/s)",
            cols,
            [
                [
                    r["system"],
                    r["docs_per_second"],
                    r["ratio_vs_st"],
                    r["gflops_per_second"],
                    100 * r["fraction_of_peak"],
                    r["padded_tokens"],
                ]
                for r in rows
            ],
        )
    )
    common.console.print(
        f"max |ragtune - sentence-transformers| = {diff:.2e} (fused path used: "
        f"{_fused_used(encoder)}); with the HF forward {diff_hf:.2e}"
    )
    if "bf16" in result:
        b = result["bf16"]
        common.console.print(
            f"bf16 autocast: {b['bf16_docs_per_second']:.2f} docs/s vs fp32 "
            f"{b['fp32_docs_per_second']:.2f} docs/s ({b['speedup']:.2f}x); "
            f"max abs diff {b['max_abs_diff']:.2e}, min cosine {b['min_cosine']:.5f}"
        )
    common.write_json(a.out, result)


def bf16_check(
    encoder: Any, texts: list[str], batch_size: int, rec: common.ShapeRecorder, p_layers: int
) -> dict[str, Any]:
    """fp32 then bf16 autocast on the same texts (after a bf16 warm-up batch)."""
    encoder.encode(texts[:8], precision="bf16", show_progress=False)
    fp32, s32, _ = timed(
        lambda: encoder.encode(texts, batch_size=batch_size, precision="fp32", show_progress=False),
        rec,
    )
    bf16, s16, _ = timed(
        lambda: encoder.encode(texts, batch_size=batch_size, precision="bf16", show_progress=False),
        rec,
    )
    cos = (np.asarray(fp32) * np.asarray(bf16)).sum(1)  # both unit-normalised
    return {
        "documents": len(texts),
        "fp32_docs_per_second": len(texts) / s32,
        "bf16_docs_per_second": len(texts) / s16,
        "speedup": s32 / s16,
        "max_abs_diff": float(np.abs(np.asarray(fp32) - np.asarray(bf16)).max()),
        "min_cosine": float(cos.min()),
    }


if __name__ == "__main__":
    main()
