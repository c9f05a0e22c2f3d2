"""The LLM answer cache: survives reloads and kills, never writes into a file it did not create."""

from __future__ import annotations

import pytest

from ragtune.errors import RagtuneError
from ragtune.pseudo.llm_cache import LlmCache, cache_key


def test_answers_come_back_after_a_reload(tmp_path):
    path = tmp_path / "cache.jsonl"
    with LlmCache(path) as cache:
        cache.put("k1", ["how do I parse a header?"])
        cache.put("k2", ["what is a status line?", "où est la réponse ?"])
    again = LlmCache(path)
    assert len(again) == 2 and "k1" in again and "k3" not in again
    assert again.get("k2") == ["what is a status line?", "où est la réponse ?"]
    assert again.get("k3") is None and again.damaged_lines == 0


def test_the_key_changes_with_each_of_model_prompt_version_text_and_count():
    base = cache_key("m", 1, "text", 3)
    assert base == cache_key("m", 1, "text", 3) and len(base) == 64
    others = {cache_key("m2", 1, "text", 3), cache_key("m", 2, "text", 3)}
    others |= {cache_key("m", 1, "text.", 3), cache_key("m", 1, "text", 2)}
    assert base not in others and len(others) == 4


def test_a_line_cut_short_is_ignored_and_the_next_answer_starts_a_fresh_line(tmp_path):
    path = tmp_path / "cache.jsonl"
    with LlmCache(path) as cache:
        cache.put("kept", ["a complete answer?"])
        cache.put("cut", ["an answer the kill cut short?"])
    data = path.read_bytes()
    path.write_bytes(data[:-12])  # as a kill in the middle of the last write leaves it
    cache = LlmCache(path)
    assert cache.get("kept") == ["a complete answer?"] and "cut" not in cache
    assert cache.damaged_lines == 1
    cache.put("next", ["the answer after the resume?"])
    cache.close()
    again = LlmCache(path)
    assert set(again._answers) == {"kept", "next"} and again.damaged_lines == 1


def test_a_file_that_is_not_a_cache_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "notes.jsonl"
    path.write_text('{"query": "mine"}\n', encoding="utf-8")
    with pytest.raises(RagtuneError, match="notes.jsonl: not a ragtune LLM cache"):
        LlmCache(path)
    assert path.read_text(encoding="utf-8") == '{"query": "mine"}\n'
    with pytest.raises(RagtuneError, match="is a folder"):
        LlmCache(tmp_path)


def test_a_header_cut_short_by_a_kill_is_written_again(tmp_path):
    path = tmp_path / "cache.jsonl"
    path.write_bytes(b'{"format": "ragtune-ll')
    cache = LlmCache(path)
    cache.put("k", ["q?"])
    cache.close()
    assert LlmCache(path).get("k") == ["q?"]
    assert path.read_bytes().startswith(b'{"format": "ragtune-llm-cache", "version": 1}\n{"key"')


def test_a_missing_folder_is_created_on_the_first_answer_only(tmp_path):
    path = tmp_path / "new" / "cache.jsonl"
    cache = LlmCache(path)
    assert not path.parent.exists()  # nothing written before there is something to keep
    cache.put("k", ["q?"])
    cache.close()
    assert LlmCache(path).get("k") == ["q?"]
