"""Index growth curve: flat, HNSW and IVF-PQ at 10k, 100k and 1M 384-d unit vectors.

For every size the vectors are generated once into a ``.npy`` file (streamed, 65,536 at a time)
with 200 queries and their exact top 10 (:func:`ragtune.search.topk.top_k`, chunked). Then each
index kind is built in a fresh process (so that its peak RSS, ``VmHWM``, is that build's own):

* flat and HNSW get the vectors added 65,536 at a time (they hold every float vector in RAM by
  design: that is their cost);
* IVF-PQ is trained on the first ``train_size`` vectors (the data is i.i.d., so they are a random
  sample), then filled 65,536 at a time, the chunks read with ``np.fromfile`` (not a memmap, so
  the file's pages never count as the process's memory); at query time the top ``rerank``
  candidates are re-scored from the ``.npy`` file memory-mapped, as an index folder's
  ``vectors.npy`` is by :class:`ragtune.search.store.IndexStore`.

Reported per (size, kind): build seconds, peak RSS after the build and after the queries (the
``import ragtune`` baseline, ~220 MB of PyTorch, included and reported apart), index bytes on disk
(IVF-PQ: codes and quantisers; its exact store is the ``.npy`` itself, ``4 * dim`` bytes a
vector), single-query latency p50/p99 over the 200 queries one at a time, and recall@10 against
exact search. IVF-PQ is also swept over (nprobe, rerank) on the built index.

The vectors imitate sentence embeddings rather than the uniform sphere (where nearest neighbours
are barely nearer than random points and every ANN index fails): 1,000 cluster centres plus
anisotropic noise with a power-law spectrum (eigenvalue ``i^-1``) in a random basis, normalised.
A query's nearest neighbour has cosine ~0.6 and its 10th ~0.52, as for MiniLM on SciFact.

Usage::

    python benchmarks/index_scale.py --sizes 10000 100000 1000000 \
        --out benchmarks/results/index_scale.json --plot benchmarks/results/index_scale.png
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

DIM = 384
CHUNK = 65_536
QUERIES = 200
SWEEP = [(16, 100), (32, 100), (32, 200), (64, 100), (64, 200), (128, 200), (128, 400)]


def synth(n: int, seed: int, dim: int = DIM, n_clusters: int = 1000) -> np.ndarray:
    """``n`` unit vectors: a centre (scaled 0.1) plus power-law anisotropic noise, normalised."""
    shared = np.random.default_rng(12345)  # the same centres and basis for corpus and queries
    centres = shared.standard_normal((n_clusters, dim)).astype(np.float32) * 0.1
    basis = np.linalg.qr(shared.standard_normal((dim, dim)))[0].astype(np.float32)
    spectrum = np.arange(1, dim + 1, dtype=np.float32) ** -0.5  # std; eigenvalues i^-1
    rng = np.random.default_rng(seed)
    c = rng.integers(0, n_clusters, n)
    x = centres[c] + (rng.standard_normal((n, dim)).astype(np.float32) * spectrum) @ basis
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def prepare(size: int, work: Path) -> Path:
    """Write vectors, queries and exact top-10 for ``size`` into ``work/<size>/`` (once)."""
    from ragtune.search.topk import top_k

    folder = work / str(size)
    if (folder / "truth.npy").is_file() and (folder / "vectors.npy").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    vectors = np.lib.format.open_memmap(folder / "vectors.npy", "w+", np.float32, (size, DIM))
    for start in range(0, size, CHUNK):
        stop = min(size, start + CHUNK)
        vectors[start:stop] = synth(stop - start, seed=start + 1)
    vectors.flush()
    queries = synth(QUERIES, seed=-1 % 2**32)
    np.save(folder / "queries.npy", queries)
    _, truth = top_k(queries, np.load(folder / "vectors.npy", mmap_mode="r"), 10, chunk_size=CHUNK)
    np.save(folder / "truth.npy", truth)
    return folder


def chunks_from_file(path: Path, n: int) -> Any:
    """(≤CHUNK, DIM) float32 blocks of a ``.npy`` file, read (not mapped) one at a time."""
    header = np.load(path, mmap_mode="r").offset
    with open(path, "rb") as f:
        f.seek(header)
        for start in range(0, n, CHUNK):
            count = min(CHUNK, n - start) * DIM
            yield np.fromfile(f, dtype=np.float32, count=count).reshape(-1, DIM)


def rss_mb() -> float:
    """This process's peak RSS so far (``VmHWM``: unlike ``ru_maxrss``, not inherited from the
    parent across fork and exec, so a worker reports its own peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def recall_at_10(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth, strict=True)]))


def worker(kind: str, folder: Path) -> dict[str, Any]:
    """Build one index from ``folder``'s vectors and query it; runs in its own process."""
    import faiss

    from ragtune.search.ivfpq import plan
    from ragtune.search.topk import DenseIndex

    baseline = rss_mb()
    path = folder / "vectors.npy"
    n = int(np.load(path, mmap_mode="r").shape[0])
    queries, truth = np.load(folder / "queries.npy"), np.load(folder / "truth.npy")
    start = time.perf_counter()
    index = DenseIndex(DIM, kind)  # type: ignore[arg-type]
    if kind == "ivfpq":
        recipe = plan(n, DIM)
        index.train(first_rows(path, recipe.train_size), n_total=n)
    for block in chunks_from_file(path, n):
        index.add(block)
    build_s = time.perf_counter() - start
    build_rss = rss_mb()
    faiss.write_index(index._index, str(folder / f"{kind}.faiss"))
    index_bytes = (folder / f"{kind}.faiss").stat().st_size
    (folder / f"{kind}.faiss").unlink()
    if kind == "ivfpq":
        index.attach_vectors(np.load(path, mmap_mode="r"))

    def run(**kw: Any) -> dict[str, Any]:
        index.search(queries[:5], 10, **kw)  # warm-up
        found, times = [], []
        for q in queries:
            t0 = time.perf_counter()
            _, ids = index.search(q[None, :], 10, **kw)
            times.append(time.perf_counter() - t0)
            found.append(ids[0])
        ms = np.array(times) * 1000
        return {
            "recall_at_10": round(recall_at_10(np.array(found), truth), 4),
            "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3),
        }

    result: dict[str, Any] = {"kind": kind, "n": n, "build_s": round(build_s, 2)}
    result |= run()
    result |= {
        "baseline_rss_mb": round(baseline),
        "build_peak_rss_mb": round(build_rss),
        "peak_rss_mb": round(rss_mb()),
        "index_bytes": index_bytes,
        "params": index.params,
    }
    if kind == "ivfpq":
        result["exact_store_bytes"] = path.stat().st_size
        result["sweep"] = [
            {"nprobe": p, "rerank": r, **run(nprobe=p, rerank=r)} for p, r in SWEEP
        ] + [{"nprobe": 64, "rerank": 0, **run(nprobe=64, rerank=0)}]
    return result


def first_rows(path: Path, n: int) -> np.ndarray:
    """The first ``n`` rows of the ``.npy`` file, read (the training sample)."""
    header = np.load(path, mmap_mode="r").offset
    with open(path, "rb") as f:
        f.seek(header)
        return np.fromfile(f, dtype=np.float32, count=n * DIM).reshape(-1, DIM)


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("build_s", "build time (s)"),
        ("peak_rss_mb", "peak RSS (MB)"),
        ("index_bytes", "index size (bytes)"),
        ("p99_ms", "query latency p99 (ms)"),
        ("recall_at_10", "recall@10 vs exact"),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.4))
    for ax, (key, label) in zip(axes, panels, strict=True):
        for kind in ("flat", "hnsw", "ivfpq"):
            rows = sorted((r for r in results if r["kind"] == kind), key=lambda r: r["n"])
            if rows:
                ax.plot([r["n"] for r in rows], [r[key] for r in rows], "o-", label=kind)
        ax.set_xscale("log")
        if key != "recall_at_10":
            ax.set_yscale("log")
        ax.set_xlabel("vectors (384-d)")
        ax.set_title(label)
        ax.grid(True, alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--kinds", nargs="+", default=["flat", "hnsw", "ivfpq"])
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: temp)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/index_scale.json"))
    parser.add_argument("--plot", type=Path, default=Path("benchmarks/results/index_scale.png"))
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], Path(args.worker[1]))))
        return

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import common

    machine = common.machine_report(gemm=False)
    common.print_machine(machine)
    work = args.work or Path(tempfile.mkdtemp(prefix="index-scale-"))
    results: list[dict[str, Any]] = []
    if args.out.is_file():  # keep sizes measured by an earlier run that this one does not redo
        earlier = json.loads(args.out.read_text()).get("results", [])
        results = [r for r in earlier if r["n"] not in args.sizes]
    for size in args.sizes:
        folder = prepare(size, work)
        for kind in args.kinds:
            res = common.run_worker([__file__, "--worker", kind, str(folder)])
            common.console.print(res | {"sweep": "..."} if "sweep" in res else res)
            results.append(res)
        (folder / "vectors.npy").unlink()
    results.sort(key=lambda r: (r["n"], r["kind"]))
    rows = [
        [
            f"{r['n']:,} {r['kind']}",
            r["build_s"],
            r["build_peak_rss_mb"],
            r["peak_rss_mb"],
            r["index_bytes"] / 2**20,
            r["p50_ms"],
            r["p99_ms"],
            r["recall_at_10"],
        ]
        for r in results
    ]
    cols = ["size kind", "build s", "build RSS MB", "peak RSS MB", "index MiB", "p50 ms"]
    common.console.print(common.table("index scale", [*cols, "p99 ms", "recall@10"], rows))
    sweep_rows = [
        [f"{r['n']:,}", s["nprobe"], s["rerank"], s["p50_ms"], s["p99_ms"], s["recall_at_10"]]
        for r in results
        if r["kind"] == "ivfpq"
        for s in r["sweep"]
    ]
    cols = ["size", "nprobe", "rerank", "p50 ms", "p99 ms", "recall@10"]
    common.console.print(common.table("IVF-PQ sweep", cols, sweep_rows))
    machine["load_average_end"] = common.load_average()
    common.write_json(args.out, {"machine": machine, "dim": DIM, "results": results})
    plot(results, args.plot)
    common.console.print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
