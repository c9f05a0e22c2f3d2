"""Load test of the ragtune server: N requests from C concurrent clients, latency percentiles.

Indexes a folder (default: this repository's ``src/ragtune``) with a model (default: the bundled
all-MiniLM-L6-v2), starts the server on a free loopback port in this process, then sends
``--requests`` POST /search requests and as many POST /v1/embeddings requests (one short text
each) from ``--concurrency`` client threads. Every run stops by itself: each request has a
timeout and no request starts after ``--timeout`` seconds. Prints a table and writes JSON.

Run (about a minute on 2 CPU cores, most of it indexing):

    python benchmarks/serve_load.py --out benchmarks/results/serve_load.json

The clients share the server's process (and Python's GIL), so the figures include their
overhead: they are an upper bound on what a separate client would see.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]

QUESTIONS = [
    "where is the request body size limit enforced?",
    "how are chunks split at Markdown headings?",
    "which files are skipped as binary?",
    "how is reciprocal rank fusion computed?",
    "where are embeddings truncated to fewer dimensions?",
    "how does the index reuse vectors of unchanged files?",
    "what happens when a token array is sent to the embeddings endpoint?",
    "how is the model fingerprint checked when loading an index?",
]


def run_load(
    url: str,
    *,
    endpoint: str = "search",
    requests: int = 200,
    concurrency: int = 20,
    timeout_s: float = 120.0,
    request_timeout_s: float = 30.0,
) -> dict[str, Any]:
    """Send ``requests`` requests to ``endpoint`` ("search" or "embeddings") from
    ``concurrency`` threads; return counts and latency percentiles in milliseconds."""
    import httpx

    if endpoint not in ("search", "embeddings"):
        raise ValueError(f"unknown endpoint {endpoint!r}; choose search or embeddings")
    path = "/search" if endpoint == "search" else "/v1/embeddings"
    counter = iter(range(requests))
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + timeout_s

    def body(i: int) -> dict[str, Any]:
        question = QUESTIONS[i % len(QUESTIONS)]
        if endpoint == "search":
            return {"query": question, "k": 5, "hybrid": i % 4 == 3}
        return {"model": "ragtune", "input": f"{question} ({i})"}

    def worker() -> None:
        with httpx.Client(base_url=url, timeout=request_timeout_s) as client:
            while time.monotonic() < deadline:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                started = time.perf_counter()
                try:
                    response = client.post(path, json=body(i))
                    ok = response.status_code == 200
                    problem = "" if ok else f"HTTP {response.status_code}: {response.text[:200]}"
                except httpx.HTTPError as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                elapsed = 1000 * (time.perf_counter() - started)
                with lock:
                    if problem:
                        errors.append(problem)
                    else:
                        latencies.append(elapsed)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + request_timeout_s)
    wall = time.perf_counter() - started
    lat = np.asarray(latencies) if latencies else np.zeros(1)
    return {
        "endpoint": path,
        "requests": requests,
        "concurrency": concurrency,
        "ok": len(latencies),
        "errors": len(errors),
        "not_sent": requests - len(latencies) - len(errors),
        "first_error": errors[0] if errors else None,
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p90_ms": round(float(np.percentile(lat, 90)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
        "mean_ms": round(float(lat.mean()), 2),
        "max_ms": round(float(lat.max()), 2),
        "throughput_rps": round(len(latencies) / wall, 1),
        "wall_s": round(wall, 2),
    }


COLUMNS = {  # result key -> column title
    "endpoint": "endpoint", "requests": "requests", "concurrency": "clients", "ok": "ok",
    "errors": "errors", "p50_ms": "p50 ms", "p90_ms": "p90 ms", "p99_ms": "p99 ms",
    "max_ms": "max ms", "throughput_rps": "req/s",
}  # fmt: skip


def print_table(results: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="ragtune serve load test")
    for key, title in COLUMNS.items():
        table.add_column(title, justify="left" if key == "endpoint" else "right")
    for r in results:
        table.add_row(*(str(r[key]) for key in COLUMNS))
    Console(width=max(100, Console().width)).print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--folder", type=Path, default=REPO / "src" / "ragtune")
    parser.add_argument("--index", type=Path, help="Use (or build) the index here.")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=300.0, help="Seconds per endpoint.")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/serve_load.json")
    args = parser.parse_args(argv)

    import torch

    from ragtune.io import atomic_write_json
    from ragtune.model import Encoder
    from ragtune.search.build import build_index
    from ragtune.search.searcher import Searcher
    from ragtune.serve.app import create_app
    from ragtune.serve.server import background_server

    with tempfile.TemporaryDirectory() as tmp:
        index_dir = args.index or Path(tmp) / "index"
        encoder = Encoder.load(args.model, device=args.device)
        started = time.perf_counter()
        report = build_index(args.folder, encoder, index_dir, model_ref=args.model)
        index_s = time.perf_counter() - started
        print(
            f"indexed {report.chunks_total} chunks from {args.folder} in {index_s:.1f} s "
            f"({report.chunks_embedded} embedded)",
            file=sys.stderr,
        )
        searcher = Searcher.open(index_dir, device=args.device)
        results = []
        try:
            with background_server(create_app(searcher)) as url:
                for endpoint in ("search", "embeddings"):
                    run_load(url, endpoint=endpoint, requests=20, concurrency=4)  # warm-up
                    results.append(
                        run_load(
                            url,
                            endpoint=endpoint,
                            requests=args.requests,
                            concurrency=args.concurrency,
                            timeout_s=args.timeout,
                        )
                    )
        finally:
            searcher.close()
    print_table(results)
    atomic_write_json(
        args.out,
        {
            "benchmark": "serve_load",
            "command": " ".join(["python benchmarks/serve_load.py", *(argv or sys.argv[1:])]),
            "model": args.model,
            "chunks": report.chunks_total,
            "device": args.device,
            "machine": {
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "torch_threads": torch.get_num_threads(),
                "load_average": list(os.getloadavg()),
            },
            "results": results,
        },
    )
    print(f"wrote {args.out}", file=sys.stderr)
    return 0 if all(r["errors"] == 0 and r["not_sent"] == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
