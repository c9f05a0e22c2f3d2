"""``GET /metrics`` (Prometheus text format) and the JSON access log, against a real server."""

from __future__ import annotations

import json
import logging

import httpx

from ragtune.serve.metrics import CONTENT_TYPE, Histogram, ServeMetrics


def scrape(url: str) -> dict[str, float]:
    """The samples of ``/metrics``: ``'name{labels}' -> value``."""
    response = httpx.get(f"{url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE
    samples = {}
    for line in response.text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            samples[series] = float(value)
    return samples


def delta(before: dict[str, float], after: dict[str, float], series: str) -> float:
    return after.get(series, 0.0) - before.get(series, 0.0)


def requests_series(endpoint: str, method: str, status: int) -> str:
    return (
        f'ragtune_http_requests_total{{endpoint="{endpoint}",method="{method}",status="{status}"}}'
    )


def test_request_counts_go_up_by_endpoint_and_status(server_url):
    before = scrape(server_url)
    for _ in range(2):
        assert httpx.post(f"{server_url}/search", json={"query": "backoff"}).status_code == 200
    assert httpx.post(f"{server_url}/search", json={"query": ""}).status_code == 422
    assert httpx.get(f"{server_url}/no/such/page").status_code == 404
    after = scrape(server_url)
    assert delta(before, after, requests_series("/search", "POST", 200)) == 2
    assert delta(before, after, requests_series("/search", "POST", 422)) == 1
    assert delta(before, after, requests_series("other", "GET", 404)) == 1  # unknown paths
    assert delta(before, after, requests_series("/metrics", "GET", 200)) == 1  # the scrape before
    histogram = "ragtune_http_request_duration_seconds"
    assert delta(before, after, f'{histogram}_count{{endpoint="/search"}}') == 3
    assert (
        after[f'{histogram}_bucket{{endpoint="/search",le="+Inf"}}']
        == (after[f'{histogram}_count{{endpoint="/search"}}'])
    )
    assert delta(before, after, f'{histogram}_sum{{endpoint="/search"}}') > 0


TEXTS3 = ["retry with backoff", "a", "b c d"]


def test_embedded_texts_and_tokens_match_the_usage_the_client_is_told(server_url, encoder):
    before = scrape(server_url)
    response = httpx.post(f"{server_url}/v1/embeddings", json={"input": TEXTS3})
    assert response.status_code == 200
    after = scrape(server_url)
    assert delta(before, after, "ragtune_embedded_texts_total") == 3
    assert (
        delta(before, after, "ragtune_embedded_tokens_total")
        == (response.json()["usage"]["total_tokens"])
    )
    assert delta(before, after, 'ragtune_texts_per_request_bucket{le="2"}') == 0
    assert delta(before, after, 'ragtune_texts_per_request_bucket{le="4"}') == 1
    assert delta(before, after, "ragtune_encode_batches_total") == 1
    assert after["ragtune_encode_queue_depth"] == 0  # nothing waits once the answer is back
    # the batcher's hook: one encode call of 3 texts, padded to the longest of them
    assert delta(before, after, 'ragtune_encode_batch_texts_bucket{le="2"}') == 0
    assert delta(before, after, 'ragtune_encode_batch_texts_bucket{le="4"}') == 1
    assert delta(before, after, "ragtune_encode_batch_texts_sum") == 3
    longest = max(len(encoder.tokenizer(t)["input_ids"]) for t in TEXTS3)
    assert delta(before, after, "ragtune_encode_batch_padded_tokens_sum") == 3 * longest
    assert after["ragtune_encode_queue_limit"] == 1024


def test_each_request_is_one_json_access_log_line(server_url, caplog):
    caplog.set_level(logging.INFO, logger="ragtune.serve.access")
    httpx.post(f"{server_url}/search", json={"query": "backoff", "k": 1})
    httpx.post(f"{server_url}/search", json={"k": 1})
    records = [
        json.loads(r.getMessage()) for r in caplog.records if r.name == "ragtune.serve.access"
    ]
    assert [(r["method"], r["path"], r["status"]) for r in records] == [
        ("POST", "/search", 200),
        ("POST", "/search", 422),
    ]
    for record in records:
        assert set(record) == {"method", "path", "status", "ms", "client"}
        assert record["client"].startswith("127.0.0.1:") and record["ms"] >= 0


def test_histogram_buckets_are_cumulative():
    histogram = Histogram((0.1, 1.0))
    for seconds in (0.05, 0.1, 0.5, 3.0):
        histogram.observe(seconds)
    assert histogram.lines("t", 'endpoint="/x"') == [
        't_bucket{endpoint="/x",le="0.1"} 2',  # le: an observation equal to a bound is in it
        't_bucket{endpoint="/x",le="1"} 3',
        't_bucket{endpoint="/x",le="+Inf"} 4',
        't_sum{endpoint="/x"} 3.65',
        't_count{endpoint="/x"} 4',
    ]


def test_render_without_requests_has_every_family_typed():
    text = ServeMetrics().render()
    assert text.endswith("\n")
    types = [line.split()[2:] for line in text.splitlines() if line.startswith("# TYPE")]
    assert types == [
        ["ragtune_http_requests_total", "counter"],
        ["ragtune_http_request_duration_seconds", "histogram"],
        ["ragtune_embedded_texts_total", "counter"],
        ["ragtune_embedded_tokens_total", "counter"],
        ["ragtune_texts_per_request", "histogram"],
    ]  # the batcher's two series appear when there is a batcher
