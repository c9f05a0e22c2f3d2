"""Retrieval quality of the reduced-precision encodings: bf16 and ONNX int8 against fp32.

On the bundled all-MiniLM-L6-v2, SciFact test nDCG@10 (300 queries) with ragtune's evaluator
for every system, the same queries and corpus for all:

- ``torch fp32``: :class:`ragtune.model.Encoder`, ``precision="fp32"`` (the fused CPU path);
- ``torch bf16``: the same model with ``precision="bf16"`` (bf16 autocast);
- ``torch auto``: ``precision="auto"``, what ragtune's default encodes in on this CPU (the check
  of ragtune.model.cpu.encode_precision runs on the corpus's first texts), with its decision;
- ``onnx int8`` and ``onnx int8-all``: ``ragtune export --format onnx --quantize int8|int8-all``
  (ONNX Runtime dynamic quantisation; its integer GEMMs use VNNI or AMX where the CPU has them).

Targets (issue 22): int8 nDCG@10 within 0.005 of fp32; bf16 within 0.001. Each row also gives
the corpus encoding rate, the smallest cosine between its query vectors and fp32's, and its
nDCG@10 difference from fp32 per query (mean absolute), so that a small mean difference that
hides large per-query swings shows.

``--max-docs N`` evaluates on a smaller corpus (every document judged relevant for a test query,
then the first other documents up to N): nDCG@10 is then higher than on the full corpus and the
figures are a precision comparison only, marked as such in the JSON and the table. Nothing is
tuned on the test split; the thresholds come from the issue.

Usage::

    python benchmarks/int8_quality.py ../shared/data/scifact \\
        --out benchmarks/results/int8_quality.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

SYSTEMS = ("torch fp32", "torch bf16", "torch auto", "onnx int8", "onnx int8-all")
TARGETS = {"bf16": 0.001, "int8": 0.005}


def smaller_corpus(evalset: Any, max_docs: int) -> Any:
    """The judged documents of ``evalset`` plus the first others, up to ``max_docs``."""
    from ragtune.data.schema import EvalSet

    judged = {d for rels in evalset.qrels.values() for d in rels}
    keep = [d for d in evalset.corpus if d in judged]
    keep += [d for d in evalset.corpus if d not in judged][: max(0, max_docs - len(keep))]
    corpus = {d: evalset.corpus[d] for d in evalset.corpus if d in set(keep)}
    return EvalSet(evalset.queries, corpus, evalset.qrels, name=evalset.name)


def build_systems(names: list[str], model: str, tmp: Path) -> dict[str, Any]:
    from ragtune.model import Encoder
    from ragtune.model.export import export_onnx
    from ragtune.model.onnx import OnnxEncoder
    from ragtune.model.precision import set_encode_precision

    systems: dict[str, Any] = {}
    torch_model = Encoder.load(model, device="cpu")
    for name in names:
        if name.startswith("torch "):
            encoder = torch_model if name == "torch fp32" else Encoder.load(model, device="cpu")
            set_encode_precision(encoder, name.removeprefix("torch "))
            systems[name] = encoder
        else:
            quantize = name.removeprefix("onnx ")
            folder = export_onnx(torch_model, tmp / quantize.replace("-", "_"), quantize=quantize)  # type: ignore[arg-type]
            systems[name] = OnnxEncoder.load(folder)
    return systems


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("data", help="BEIR folder with a test split, e.g. ../shared/data/scifact")
    p.add_argument("--out", default="benchmarks/results/int8_quality.json")
    p.add_argument("--model", default=common.minilm_path())
    p.add_argument("--systems", default=",".join(SYSTEMS))
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-docs", type=int, default=0, help="0: the whole corpus")
    a = p.parse_args()

    from ragtune.data.beir import load_beir
    from ragtune.evaluation.evaluate import evaluate_encoder
    from ragtune.model.cpu.bf16 import bf16_kind
    from ragtune.model.cpu.encode_precision import last_check

    report = common.machine_report(gemm=False)
    common.print_machine(report)
    names = [n.strip() for n in a.systems.split(",") if n.strip()]
    unknown = sorted(set(names) - set(SYSTEMS))
    if unknown or "torch fp32" not in names:
        raise SystemExit(f"--systems must include 'torch fp32' and name only {', '.join(SYSTEMS)}")
    evalset = load_beir(a.data, "test")
    full_docs = len(evalset.corpus)
    if a.max_docs:
        evalset = smaller_corpus(evalset, a.max_docs)
    queries = list(evalset.queries.values())
    rows: list[dict[str, Any]] = []
    query_vectors: dict[str, np.ndarray] = {}
    per_query: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="ragtune-int8-") as tmp:
        systems = build_systems(names, a.model, Path(tmp))
        for name, model in systems.items():
            common.console.print(f"{name}: encoding {len(evalset.corpus)} documents")
            t0 = time.perf_counter()
            res = evaluate_encoder(model, evalset, batch_size=a.batch_size, show_progress=False)
            seconds = time.perf_counter() - t0
            query_vectors[name] = np.asarray(
                model.encode_queries(queries, batch_size=a.batch_size, show_progress=False),
                dtype=np.float32,
            )
            per_query[name] = {q: m["nDCG@10"] for q, m in res.per_query.items()}
            check = last_check(model) if name == "torch auto" else None
            rows.append(
                {
                    "system": name,
                    "nDCG@10": res.metrics["nDCG@10"],
                    "recall@100": res.metrics.get("Recall@100"),
                    "docs_per_second": res.docs_per_second,
                    "seconds": seconds,
                    "encoded_in": getattr(model, "encode_precision", None)
                    or getattr(model, "quantization", "?"),
                    "auto_reason": check.reason if check else None,
                }
            )
            common.console.print(
                f"  nDCG@10 {res.metrics['nDCG@10']:.4f}, {res.docs_per_second or 0:.1f} docs/s"
            )
    base = rows[[r["system"] for r in rows].index("torch fp32")]
    ref = query_vectors["torch fp32"]
    for row in rows:
        mine = query_vectors[row["system"]]
        cos = (mine * ref).sum(1) / (np.linalg.norm(mine, axis=1) * np.linalg.norm(ref, axis=1))
        row["min_query_cosine_vs_fp32"] = float(cos.min())
        row["delta_vs_fp32"] = row["nDCG@10"] - base["nDCG@10"]
        diffs = [abs(v - per_query["torch fp32"][q]) for q, v in per_query[row["system"]].items()]
        row["mean_abs_query_delta"] = float(np.mean(diffs))
        family = "int8" if row["system"].startswith("onnx") else "bf16"
        if row["system"] != "torch fp32" and not (
            row["system"] == "torch auto" and row["encoded_in"] == "fp32"
        ):
            row["target"] = TARGETS[family]
            row["met"] = abs(row["delta_vs_fp32"]) <= TARGETS[family]
    subset = f"{len(evalset.corpus)} of {full_docs} docs" if a.max_docs else "whole corpus"
    cols = ["system", "encoded in", "nDCG@10", "delta vs fp32", "target", "met"]
    cols += ["mean |query delta|", "min query cos", "docs/s"]
    common.console.print(
        common.table(
            f"SciFact test ({len(queries)} queries, {subset}); bf16 kind: {bf16_kind()}",
            cols,
            [
                [
                    r["system"],
                    r["encoded_in"],
                    r["nDCG@10"],
                    r["delta_vs_fp32"],
                    r.get("target", float("nan")),
                    str(r.get("met", "-")),
                    r["mean_abs_query_delta"],
                    r["min_query_cosine_vs_fp32"],
                    r["docs_per_second"] or float("nan"),
                ]
                for r in rows
            ],
        )
    )
    result = {
        **report,
        "settings": vars(a),
        "corpus": {"documents": len(evalset.corpus), "full": full_docs, "subset": bool(a.max_docs)},
        "queries": len(queries),
        "bf16_kind": bf16_kind(),
        "rows": rows,
        "load_average_end": common.load_average(),
    }
    common.write_json(a.out, result)


if __name__ == "__main__":
    main()
