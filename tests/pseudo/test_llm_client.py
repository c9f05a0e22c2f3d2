"""The OpenAI-compatible client against a real local stand-in server: retries, timeouts, errors."""

from __future__ import annotations

import email.utils
import time

import pytest

from ragtune.pseudo.llm_client import (
    LlmClient,
    LlmEndpointError,
    LlmRequestFailed,
    backoff_seconds,
    chat_completions_url,
    retry_after_seconds,
)
from tests.pseudo.llm_standin import StandIn, free_port

HELLO = [{"role": "user", "content": 'Write one question.\nPassage:\n"""\nhello world\n"""'}]


@pytest.fixture
def server():
    with StandIn() as s:
        yield s


def client_for(url: str, **kw) -> tuple[LlmClient, list[float]]:
    """A client whose waits are recorded instead of slept (the tests stay fast)."""
    waits: list[float] = []
    kw = {"timeout_s": 5.0, "max_retries": 3, "backoff_s": 0.5, "sleep": waits.append, **kw}
    return LlmClient(url, "tiny-model", **kw), waits


def test_a_normal_answer_is_the_message_text(server):
    client, waits = client_for(server.url)
    with client:
        text = client.chat(HELLO, temperature=0.0, max_tokens=64, seed=3)
    assert "What is said about hello world?" in text
    assert (server.calls, client.stats.requests, client.stats.retries, waits) == (1, 1, 0, [])
    sent = server.bodies[0]
    assert (sent["model"], sent["temperature"], sent["max_tokens"], sent["seed"]) == (
        "tiny-model",
        0.0,
        64,
        3,
    )


def test_the_api_key_comes_from_the_environment_and_never_shows(server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("RAGTUNE_LLM_API_KEY", "sk-secret-123")
    client, _ = client_for(server.url)
    with client:
        client.chat(HELLO)
    assert server.headers[0]["Authorization"] == "Bearer sk-secret-123"
    assert "sk-secret" not in repr(client)


def test_no_key_sends_no_authorization_header(server, monkeypatch):
    monkeypatch.delenv("RAGTUNE_LLM_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    client, _ = client_for(server.url)
    with client:
        client.chat(HELLO)
    assert "Authorization" not in server.headers[0]


def test_every_documented_url_form_reaches_the_same_endpoint():
    full = "http://h:1/v1/chat/completions"
    for url in ("http://h:1", "http://h:1/", "http://h:1/v1", "http://h:1/v1/", full):
        assert chat_completions_url(url) == full
    with pytest.raises(Exception, match="must start with http"):
        chat_completions_url("localhost:11434")


def test_500s_then_success_is_retried_with_growing_backoff(server):
    server.plan.extend(["500", "503", "502"])
    client, waits = client_for(server.url, max_retries=3)
    with client:
        assert "hello world" in client.chat(HELLO)
    assert server.calls == 4 and client.stats.retries == 3
    # equal jitter: attempt k waits in [base * 2**k / 2, base * 2**k]
    for k, wait in enumerate(waits):
        assert 0.5 * 2**k / 2 <= wait <= 0.5 * 2**k
    assert len(waits) == 3


def test_429_waits_as_long_as_retry_after_says(server):
    server.plan.append("429")
    server.retry_after = "7"
    client, waits = client_for(server.url)
    with client:
        client.chat(HELLO)
    assert waits == [7.0] and server.calls == 2


def test_retry_after_is_capped_by_the_longest_backoff(server):
    server.plan.append("429")
    server.retry_after = "3600"
    client, waits = client_for(server.url, max_backoff_s=30.0)
    with client:
        client.chat(HELLO)
    assert waits == [30.0]


def test_retry_after_reads_seconds_and_http_dates():
    now = time.time()
    assert retry_after_seconds("12") == 12.0
    assert retry_after_seconds(email.utils.formatdate(now + 30, usegmt=True), now=now) == (
        pytest.approx(30, abs=1)
    )
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_backoff_never_exceeds_its_cap():
    import random

    rng = random.Random(0)
    assert all(backoff_seconds(k, 1.0, 8.0, rng) <= 8.0 for k in range(20))


def test_a_server_that_keeps_failing_fails_the_request_after_the_retries(server):
    server.default = "500"
    client, waits = client_for(server.url, max_retries=2)
    with client, pytest.raises(LlmRequestFailed, match="HTTP 500") as info:
        client.chat(HELLO)
    assert info.value.reason == "http_500"
    assert server.calls == 3 and len(waits) == 2


def test_a_slow_answer_times_out_and_is_retried(server):
    server.plan.append("slow")
    server.slow_s = 1.0
    client, waits = client_for(server.url, timeout_s=0.3, max_retries=1)
    with client:
        assert "hello world" in client.chat(HELLO)  # the retry is answered at once
    assert server.calls == 2 and len(waits) == 1


def test_an_answer_that_never_comes_in_time_is_a_failed_request(server):
    server.default = "slow"
    server.slow_s = 1.0
    client, _ = client_for(server.url, timeout_s=0.2, max_retries=1)
    with client, pytest.raises(LlmRequestFailed, match="timeout") as info:
        client.chat(HELLO)
    assert info.value.reason == "timeout"


def test_a_body_that_is_not_json_fails_that_request_only_and_is_not_retried(server):
    server.plan.append("bad_json")
    client, _ = client_for(server.url)
    with client:
        with pytest.raises(LlmRequestFailed, match="not a chat completion") as info:
            client.chat(HELLO)
        assert info.value.reason == "bad_json" and server.calls == 1
        assert "hello world" in client.chat(HELLO)  # the next request is fine


def test_a_400_is_not_retried(server):
    server.plan.append("400")
    client, waits = client_for(server.url)
    with client, pytest.raises(LlmRequestFailed, match="HTTP 400 \\(server trouble\\)"):
        client.chat(HELLO)
    assert server.calls == 1 and waits == []


def test_a_wrong_model_name_is_one_clear_error(server):
    server.default = "404"
    client, waits = client_for(server.url)
    with client, pytest.raises(LlmEndpointError) as info:
        client.chat(HELLO)
    message = str(info.value)
    assert "404" in message and "'tiny-model'" in message and "not found" in message
    assert "\n" not in message and server.calls == 1 and waits == []


def test_a_refused_key_names_the_environment_variables(server):
    server.default = "401"
    client, _ = client_for(server.url)
    with client, pytest.raises(LlmEndpointError, match="RAGTUNE_LLM_API_KEY or OPENAI_API_KEY"):
        client.chat(HELLO)


def test_an_unreachable_endpoint_fails_at_once_with_one_line():
    url = f"http://127.0.0.1:{free_port()}/v1"
    client, waits = client_for(url)
    start = time.perf_counter()
    with client, pytest.raises(LlmEndpointError, match="cannot reach the LLM endpoint") as info:
        client.chat(HELLO)
    assert url in str(info.value) and "\n" not in str(info.value)
    assert waits == [] and time.perf_counter() - start < 5


def test_a_server_lost_after_it_answered_is_retried_then_fatal():
    with StandIn() as server:
        client, waits = client_for(server.url, max_retries=2)
        client.chat(HELLO)
    with client, pytest.raises(LlmEndpointError, match="lost the LLM endpoint"):
        client.chat(HELLO)
    assert len(waits) == 2


def test_without_httpx_the_error_names_what_to_install(monkeypatch):
    import sys

    from ragtune.errors import RagtuneError

    monkeypatch.setitem(sys.modules, "httpx", None)  # as if it were not installed
    with pytest.raises(RagtuneError, match="needs httpx: pip install httpx"):
        LlmClient("http://127.0.0.1:9/v1", "m")
