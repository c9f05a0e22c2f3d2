"""``--api-key``: Bearer auth on every endpoint but ``/health`` and the page; no key, no serving
off loopback."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import httpx
import pytest

from ragtune.cli.main import main
from ragtune.serve.auth import is_loopback

KEY = "s3cret-key"
MISSING = {
    "error": {
        "message": "missing API key: send the header 'Authorization: Bearer KEY'",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
}


@pytest.fixture(scope="module")
def keyed_url(sample_index) -> Iterator[str]:
    """A real server on loopback that requires ``Authorization: Bearer s3cret-key``."""
    from ragtune.search.searcher import Searcher
    from ragtune.serve.app import create_app
    from ragtune.serve.server import background_server

    searcher = Searcher.open(sample_index, device="cpu")
    try:
        with background_server(create_app(searcher, api_key=KEY)) as url:
            yield url
    finally:
        searcher.close()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_requests_without_the_key_get_401_in_openai_error_shape(keyed_url):
    for method, path in [("POST", "/search"), ("POST", "/v1/embeddings"), ("GET", "/v1/models"),
                         ("GET", "/metrics"), ("GET", "/no-such-page")]:  # fmt: skip
        response = httpx.request(method, f"{keyed_url}{path}", json={"query": "backoff"})
        assert response.status_code == 401, path
        assert response.json() == MISSING
        assert response.headers["www-authenticate"] == "Bearer"


def test_a_wrong_key_gets_401(keyed_url):
    for key in ("wrong", KEY + "x", KEY[:-1], KEY.upper()):
        response = httpx.post(f"{keyed_url}/search", json={"query": "backoff"}, headers=bearer(key))
        assert response.status_code == 401
        assert response.json()["error"]["message"] == "incorrect API key"
    basic = httpx.post(f"{keyed_url}/search", json={"query": "x"}, headers={"Authorization": KEY})
    assert basic.status_code == 401  # the key without "Bearer " is not accepted either


def test_the_key_opens_every_endpoint(keyed_url):
    search = httpx.post(
        f"{keyed_url}/search", json={"query": "backoff", "k": 1}, headers=bearer(KEY)
    )
    assert search.status_code == 200 and len(search.json()["hits"]) == 1
    embedded = httpx.post(
        f"{keyed_url}/v1/embeddings", json={"input": ["a", "b"]}, headers=bearer(KEY)
    )
    assert embedded.status_code == 200 and len(embedded.json()["data"]) == 2
    assert httpx.get(f"{keyed_url}/metrics", headers=bearer(KEY)).status_code == 200


def test_health_is_open_without_a_key(keyed_url):
    response = httpx.get(f"{keyed_url}/health")
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_the_page_is_open_and_asks_for_the_key(keyed_url):
    page = httpx.get(f"{keyed_url}/")  # static HTML, no data: the browser needs it to ask
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="key"' in page.text and "Authorization" in page.text


def test_rejected_requests_are_counted_in_metrics(keyed_url):
    httpx.post(f"{keyed_url}/v1/embeddings", json={"input": "x"}, headers=bearer("nope"))
    text = httpx.get(f"{keyed_url}/metrics", headers=bearer(KEY)).text
    counted = 'ragtune_http_requests_total{endpoint="/v1/embeddings",method="POST",status="401"}'
    assert any(line.startswith(counted + " ") for line in text.splitlines())


def test_loopback_addresses():
    assert [is_loopback(h) for h in ("127.0.0.1", "127.5.0.1", "::1", "localhost")] == [True] * 4
    assert [is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.5", "10.0.0.1")] == [False] * 4
    assert is_loopback("no-such-host.invalid") is False


def run_serve(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """``ragtune serve ARGS`` in this process; binding a socket fails the test."""
    import ragtune.serve.server as server

    def no_bind(host: str, port: int) -> None:
        pytest.fail(f"bound {host}:{port} although the setup was refused")

    monkeypatch.setattr(server, "bind", no_bind)
    monkeypatch.setattr(sys, "argv", ["ragtune", "serve", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.out, captured.err


def test_serving_beyond_loopback_without_a_key_is_refused(monkeypatch, capsys, sample_index):
    monkeypatch.delenv("RAGTUNE_API_KEY", raising=False)
    for host in ("0.0.0.0", "::"):
        code, out, err = run_serve(monkeypatch, capsys, str(sample_index), "--host", host)
        assert (code, out) == (1, "")
        assert err == (
            f"error: --host {host} is reachable from other machines; pass --api-key KEY "
            "(or set RAGTUNE_API_KEY) to serve beyond loopback\n"
        )


def test_an_empty_key_is_refused(monkeypatch, capsys, sample_index):
    monkeypatch.delenv("RAGTUNE_API_KEY", raising=False)
    code, out, err = run_serve(monkeypatch, capsys, str(sample_index), "--api-key", "")
    assert (code, out, err) == (1, "", "error: --api-key must not be empty\n")


def test_the_key_can_come_from_the_environment(monkeypatch, sample_index):
    import ragtune.serve.server as server

    received: dict[str, object] = {}
    monkeypatch.setattr(server, "serve", lambda index_dir, **kwargs: received.update(kwargs))
    monkeypatch.setenv("RAGTUNE_API_KEY", KEY)
    monkeypatch.setattr(sys, "argv", ["ragtune", "serve", str(sample_index), "--host", "0.0.0.0"])
    main()  # the stand-in serve returns at once: nothing is bound
    assert (received["host"], received["api_key"]) == ("0.0.0.0", KEY)
