"""Sharded vs single-process encoding of a BEIR corpus: same ids and vectors, wall time.

Encodes ``corpus.jsonl`` with the bundled all-MiniLM-L6-v2 through the CLI, twice:

* one process: ``ragtune index CORPUS --out one.idx --shard 0/1`` with all cores' threads;
* two processes at once: ``--shard 0/2`` and ``--shard 1/2``, each with ``cores / 2`` threads
  (``OMP_NUM_THREADS``), as two ranks of a machine would share it;

then ``--merge`` each and compares the two indexes: the chunk ids (document ids, in corpus order)
must be identical and the vectors within 1e-5 (max absolute difference). Wall times are for the
encoding step (process start and model load included), the merge timed apart.

Usage::

    python benchmarks/shard_encode.py ../shared/data/scifact \
        --out benchmarks/results/shard_encode.json
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402


def cli(*args: str, threads: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RAGTUNE_PROGRESS": "0", "OMP_NUM_THREADS": str(threads)}
    env["TOKENIZERS_PARALLELISM"] = "false"
    cmd = [sys.executable, "-m", "ragtune.cli.main", "index", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def run_all(procs: list[subprocess.Popen[bytes]]) -> float:
    start = time.perf_counter()
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(err.decode()[-3000:])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path, help="BEIR folder (corpus.jsonl)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/shard_encode.json"))
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=["fp32", "bf16", "auto"],
        help="encoding precision of both runs (fp32: the identity check is exact arithmetic; "
        "bf16 results depend on which documents share a padded batch)",
    )
    args = parser.parse_args()
    from ragtune.search import IndexStore

    machine = common.machine_report(gemm=False)
    common.print_machine(machine)
    work = args.work or Path(tempfile.mkdtemp(prefix="shard-encode-"))
    corpus, model = str(args.data / "corpus.jsonl"), common.minilm_path()
    cores = os.cpu_count() or 2
    result: dict[str, Any] = {"corpus": args.data.name, "cores": cores, "precision": args.precision}
    for name, count in (("one", 1), ("two", 2)):
        out = str(work / f"{name}.idx")
        base = (corpus, "--out", out, "--model", model, "--precision", args.precision)
        procs = [
            cli(*base, "--shard", f"{i}/{count}", threads=cores // count) for i in range(count)
        ]
        result[f"{name}_process_encode_s"] = round(run_all(procs), 2)
        start = time.perf_counter()
        run_all([cli(*base, "--merge", threads=cores)])
        result[f"{name}_merge_s"] = round(time.perf_counter() - start, 2)
    with IndexStore.open(work / "one.idx") as one, IndexStore.open(work / "two.idx") as two:
        ids_one = [c.path for c in one.chunks(range(len(one)))]
        ids_two = [c.path for c in two.chunks(range(len(two)))]
        result["chunks"] = len(ids_one)
        result["identical_ids"] = ids_one == ids_two
        diff = np.abs(np.asarray(one.vectors) - np.asarray(two.vectors)).max()
        result["max_abs_diff"] = float(diff)
    machine["load_average_end"] = common.load_average()
    rows = [[k, v] for k, v in result.items()]
    common.console.print(common.table("sharded encoding", ["measure", "value"], rows))
    common.write_json(args.out, {"machine": machine, "result": result})


if __name__ == "__main__":
    main()
