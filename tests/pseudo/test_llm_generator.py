"""The LLM generator end to end against a real local stand-in server: cache, resume, concurrency."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from ragtune.errors import RagtuneError
from ragtune.pseudo.llm import LlmConfig, LlmGenerator
from ragtune.pseudo.llm_cache import LlmCache
from ragtune.pseudo.llm_client import LlmEndpointError
from ragtune.pseudo.llm_prompt import build_messages, clean_questions, clip_text, parse_questions
from ragtune.search.chunking import Chunk
from tests.conftest import REPO
from tests.pseudo.llm_standin import StandIn, free_port, questions_for


def make_chunks(n: int) -> list[Chunk]:
    return [
        Chunk(f"docs/topic{i}.md", 10 * i + 1, 10 * i + 9, f"Topic {i} covers retries number {i}.")
        for i in range(n)
    ]


def config(url: str, **kw) -> LlmConfig:
    fast = {"model": "tiny-model", "questions_per_chunk": 2, "concurrency": 2}
    fast |= {"backoff_s": 0.01, "max_backoff_s": 0.05}
    return LlmConfig(url=url, **{**fast, **kw})


@pytest.fixture
def server():
    with StandIn() as s:
        yield s


def test_each_chunk_gets_its_questions_as_pairs_in_chunk_order(server, tmp_path):
    chunks = make_chunks(3)
    gen = LlmGenerator(config(server.url), cache=tmp_path / "cache.jsonl")
    pairs = list(gen.generate(chunks))
    assert [p.query for p in pairs] == [q for c in chunks for q in questions_for(c.text, 2)]
    first = pairs[0]
    assert (first.chunk_id, first.path, first.start_line, first.end_line, first.generator) == (
        "docs/topic0.md:1-9",
        "docs/topic0.md",
        1,
        9,
        "openai",
    )
    assert gen.stats.to_json() == {
        "chunks": 3,
        "cache_hits": 0,
        "chunks_asked": 3,
        "questions_kept": 6,
        "duplicates": 0,
        "bad_answers": 0,
        "failures": 0,
        "retries": 0,
        "requests": 3,
        "failure_reasons": {},
    }
    assert server.calls == 3 and not gen.skipped


def test_a_second_run_is_answered_from_the_cache_without_a_request(server, tmp_path):
    chunks = make_chunks(4)
    first = list(LlmGenerator(config(server.url), cache=tmp_path / "c.jsonl").generate(chunks))
    gen = LlmGenerator(config(server.url), cache=tmp_path / "c.jsonl")
    assert list(gen.generate(chunks)) == first  # the same pairs, from disk
    assert server.calls == 4 and gen.stats.cache_hits == 4 and gen.stats.requests == 0


def test_another_model_or_count_asks_again(server, tmp_path):
    chunks = make_chunks(2)
    cache = LlmCache(tmp_path / "c.jsonl")
    list(LlmGenerator(config(server.url), cache=cache).generate(chunks))
    list(LlmGenerator(config(server.url, model="other"), cache=cache).generate(chunks))
    list(LlmGenerator(config(server.url, questions_per_chunk=3), cache=cache).generate(chunks))
    assert server.calls == 6 and len(cache) == 6


def test_an_interrupted_run_resumes_with_only_the_missing_calls(server, tmp_path):
    chunks = make_chunks(6)
    # the server drops out at the fourth chunk: the run stops with the endpoint's error
    server.by_passage = lambda passage, asked: "404" if "Topic 3 " in passage else "ok"
    gen = LlmGenerator(config(server.url, concurrency=1), cache=tmp_path / "c.jsonl")
    with pytest.raises(LlmEndpointError, match="404"):
        list(gen.generate(chunks))
    assert server.calls == 4
    server.by_passage = None
    gen = LlmGenerator(config(server.url, concurrency=3), cache=tmp_path / "c.jsonl")
    pairs = list(gen.generate(chunks))
    assert server.calls == 4 + 3  # topics 3, 4 and 5 only
    assert (gen.stats.cache_hits, gen.stats.chunks_asked, len(pairs)) == (3, 3, 12)


@pytest.mark.slow
def test_a_killed_run_resumes_from_the_cache(server, tmp_path):
    chunks = make_chunks(30)
    server.delay_s = 0.05
    child = (
        "import sys\n"
        "from ragtune.pseudo.llm import LlmConfig, LlmGenerator\n"
        "from ragtune.search.chunking import Chunk\n"
        "chunks = [Chunk(f'docs/topic{i}.md', 10 * i + 1, 10 * i + 9,\n"
        "                f'Topic {i} covers retries number {i}.') for i in range(30)]\n"
        "config = LlmConfig(url=sys.argv[1], model='tiny-model', questions_per_chunk=2,\n"
        "                   concurrency=2)\n"
        "for pair in LlmGenerator(config, cache=sys.argv[2], progress=False).generate(chunks):\n"
        "    pass\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    cache_path = tmp_path / "c.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", child, server.url, str(cache_path)], env=env)
    try:
        deadline = time.monotonic() + 120
        while server.calls < 10 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    asked_before = server.calls
    kept = len(LlmCache(cache_path))
    assert 0 < kept < 30  # killed mid-run
    server.delay_s = 0.0
    gen = LlmGenerator(config(server.url), cache=cache_path)
    pairs = list(gen.generate(chunks))
    assert server.calls - asked_before == 30 - kept == gen.stats.chunks_asked
    assert [p.query for p in pairs] == [q for c in chunks for q in questions_for(c.text, 2)]


def test_no_more_requests_are_in_flight_than_the_concurrency(server):
    server.delay_s = 0.1
    gen = LlmGenerator(config(server.url, concurrency=3))
    pairs = list(gen.generate(make_chunks(12)))
    assert len(pairs) == 24 and server.calls == 12
    assert 2 <= server.max_in_flight <= 3  # parallel, and bounded


def test_bad_answers_and_bad_json_cost_only_their_own_chunk(server, tmp_path):
    plans = {"Topic 1 ": "bad_answer", "Topic 2 ": "bad_json", "Topic 3 ": "fenced"}
    server.by_passage = lambda p, asked: next((b for k, b in plans.items() if k in p), "ok")
    gen = LlmGenerator(config(server.url), cache=tmp_path / "c.jsonl")
    pairs = list(gen.generate(make_chunks(5)))
    assert sorted({p.chunk_id.split(":")[0] for p in pairs}) == [
        "docs/topic0.md",
        "docs/topic3.md",  # a numbered list in a code fence is still read
        "docs/topic4.md",
    ]
    s = gen.stats
    assert (s.bad_answers, s.failures, s.failure_reasons, s.questions_kept) == (
        1,
        1,
        {"bad_json": 1},
        6,
    )
    assert gen.skipped == {"bad_answer": 1, "bad_json": 1}
    # the failed chunks are not cached: the next run asks for exactly those two again
    server.by_passage = None
    gen = LlmGenerator(config(server.url), cache=tmp_path / "c.jsonl")
    assert len(list(gen.generate(make_chunks(5)))) == 10 and gen.stats.chunks_asked == 2


def test_500s_and_429s_are_retried_inside_a_run(server):
    server.by_passage = lambda p, asked: (
        ("500" if "Topic 0 " in p else "429") if asked == 1 else "ok"
    )
    server.retry_after = "0"
    gen = LlmGenerator(config(server.url))
    assert len(list(gen.generate(make_chunks(3)))) == 6
    assert (gen.stats.retries, gen.stats.requests, gen.stats.failures) == (3, 6, 0)


def test_an_unreachable_endpoint_stops_the_run_with_one_line():
    url = f"http://127.0.0.1:{free_port()}/v1"
    gen = LlmGenerator(config(url, concurrency=4))
    with pytest.raises(RagtuneError, match="cannot reach the LLM endpoint") as info:
        list(gen.generate(make_chunks(10)))
    assert "\n" not in str(info.value)


def test_a_wrong_model_is_reported_after_one_request_not_one_per_worker(server):
    server.default = "404"
    gen = LlmGenerator(config(server.url, concurrency=4))
    with pytest.raises(LlmEndpointError, match="model 'tiny-model'"):
        list(gen.generate(make_chunks(10)))
    assert server.calls == 1


def test_a_server_that_only_fails_stops_the_run_instead_of_spending_every_retry(server):
    server.default = "500"
    gen = LlmGenerator(config(server.url, max_retries=1, max_consecutive_failures=3, concurrency=1))
    with pytest.raises(LlmEndpointError, match="3 LLM requests in a row failed .*HTTP 500"):
        list(gen.generate(make_chunks(50)))
    # three chunks judged, plus what the one worker had already started: not 50 chunks' retries
    assert 3 * 2 <= server.calls <= (3 + 1) * 2


def test_the_same_question_for_two_chunks_is_kept_once(server):
    chunks = [Chunk("a.md", 1, 2, "Same text."), Chunk("b.md", 1, 2, "Same text.")]
    gen = LlmGenerator(config(server.url))
    pairs = list(gen.generate(chunks))
    assert [p.path for p in pairs] == ["a.md", "a.md"] and gen.stats.duplicates == 2
    assert gen.skipped == {"only_duplicates": 1}


def test_long_chunks_are_clipped_at_a_line_end(server):
    text = "\n".join(f"line {i} of a long file" for i in range(400))
    gen = LlmGenerator(config(server.url, max_chunk_chars=1000))
    list(gen.generate([Chunk("long.txt", 1, 400, text)]))
    sent = server.bodies[0]["messages"][-1]["content"]
    assert "line 10 of" in sent and "line 399" not in sent
    assert clip_text(text, 1000) == text[: text[:1000].rfind("\n")]
    assert clip_text("x" * 50, 10) == "x" * 10


def test_the_prompt_asks_for_json_with_the_count():
    messages = build_messages("def f(): pass", 3)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "Write 3 different questions" in messages[1]["content"]
    assert '{"questions": [' in messages[1]["content"] and "def f(): pass" in messages[1]["content"]
    assert "Write one question that" in build_messages("x", 1)[1]["content"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            '{"questions": ["How to retry?", "What is backoff?"]}',
            ["How to retry?", "What is backoff?"],
        ),
        ('```json\n{"questions": ["How to retry?"]}\n```', ["How to retry?"]),
        (
            'Here they are:\n["How to retry?", "Why jitter?"]\nHope it helps.',
            ["How to retry?", "Why jitter?"],
        ),
        ('{"queries": [{"question": "How to retry?"}]}', ["How to retry?"]),
        (
            "<think>\nThe user wants {json}.\n</think>\n" + '{"questions": ["Why jitter?"]}',
            ["Why jitter?"],
        ),
        (
            "1. How to retry?\n2) Why jitter?\n- What is Retry-After?",
            ["How to retry?", "Why jitter?", "What is Retry-After?"],
        ),
        ('{"questions": ["How to retry?", "Why jit', ["How to retry?"]),  # cut by max_tokens
        ("Some questions:\nHow to retry?\nWhy jitter?", ["How to retry?", "Why jitter?"]),
        ('```json\n{"questions": ["How to retry?", "Why', ["How to retry?"]),
        ("<think>\nThe passage is about retries, so I could ask", []),
        ("I cannot help with that.", []),
    ],
)
def test_answers_are_read_in_every_shape_models_write_them(content, expected):
    assert parse_questions(content) == expected


def test_cleaning_drops_repeats_fragments_and_keeps_at_most_n():
    raw = [
        "  How to retry?  ",
        "how to   RETRY",
        "ok?",
        '"Why jitter?"',
        "3. What is backoff?",
        "x" * 400,
    ]
    assert clean_questions(raw, 5) == (["How to retry?", "Why jitter?", "What is backoff?"], 1)
    assert clean_questions(raw, 1) == (["How to retry?"], 0)


def test_config_mistakes_are_one_line_naming_the_field():
    with pytest.raises(RagtuneError, match="must start with http"):
        LlmConfig(url="localhost:11434", model="m")
    with pytest.raises(RagtuneError, match="LlmConfig.concurrency must be at least 1"):
        LlmConfig(url="http://h", model="m", concurrency=0)
    with pytest.raises(RagtuneError, match="model name is empty"):
        LlmConfig(url="http://h", model=" ")


def test_the_registry_names_the_generator_and_says_what_it_needs():
    from ragtune.pseudo.generators import available, make_generator

    assert "openai" in available()
    with pytest.raises(RagtuneError, match="--llm-url URL and --llm-model NAME"):
        make_generator("openai")
