"""A bounded load test: 200 requests from 20 concurrent clients, zero errors.

Uses ``run_load`` from benchmarks/serve_load.py (so the benchmark is exercised too) against the
tiny model's server; every request has a timeout and the run stops after 120 s at most.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "serve_load.py"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("serve_load_benchmark", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_200_requests_from_20_clients_without_errors(server_url):
    bench = load_benchmark()
    for endpoint in ("search", "embeddings"):
        result = bench.run_load(
            server_url, endpoint=endpoint, requests=200, concurrency=20, timeout_s=120,
            request_timeout_s=30,
        )  # fmt: skip
        print(
            f"\n{result['endpoint']}: {result['ok']} ok, {result['errors']} errors, "
            f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
            f"{result['throughput_rps']} req/s"
        )
        assert result["errors"] == 0, result["first_error"]
        assert result["ok"] == 200 and result["not_sent"] == 0
        assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
