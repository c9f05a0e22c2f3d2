"""A shortened run trains on the queries the base model ranks worst (tune/selection.py)."""

from __future__ import annotations

from ragtune.data.schema import Example
from ragtune.tune.selection import BELOW_DEPTH, distinct_queries, hardest_queries


def _examples() -> list[Example]:
    return [
        Example("open a file", "def open_file(): ...", positive_id="io.py:1-3"),
        Example("parse a url", "def parse(url): ...", positive_id="url.py:1-9"),
        Example("parse a url", "def urlsplit(url): ...", positive_id="url.py:10-20"),
        Example("sort a list", "def sort(xs): ...", positive_id="sort.py:1-4"),
        Example("hash bytes", "def sha(b): ...", positive_id="hash.py:1-5"),
    ]


RANKS = {
    ("open a file", "io.py:1-3"): 1,  # the base model already ranks it first: easy
    ("parse a url", "url.py:1-9"): 2,
    ("parse a url", "url.py:10-20"): 40,  # a query is as hard as its best-ranked chunk: 2
    ("sort a list", "sort.py:1-4"): 0,  # below the dense list: the hardest
    ("hash bytes", "hash.py:1-5"): 7,
}


def test_the_hardest_queries_are_taken_with_every_pair_and_in_data_order():
    chosen = hardest_queries(_examples(), RANKS, queries=2, seed=0)
    assert [(e.query, e.positive_id) for e in chosen.examples] == [
        ("sort a list", "sort.py:1-4"),
        ("hash bytes", "hash.py:1-5"),
    ]
    assert (chosen.queries, chosen.of_queries, chosen.selected) == (2, 4, True)
    assert chosen.median_rank == BELOW_DEPTH  # of (7, below the list): the upper middle
    assert chosen.describe().startswith("trained on the 2 queries the base model ranks worst, of 4")


def test_a_query_with_several_chunks_comes_with_all_of_them_and_the_easiest_is_left_out():
    chosen = hardest_queries(_examples(), RANKS, queries=3, seed=0)
    assert [(e.query, e.positive_id) for e in chosen.examples] == [
        ("parse a url", "url.py:1-9"),
        ("parse a url", "url.py:10-20"),
        ("sort a list", "sort.py:1-4"),
        ("hash bytes", "hash.py:1-5"),
    ]
    assert "open a file" not in {e.query for e in chosen.examples}
    assert chosen.median_rank == 7


def test_enough_room_keeps_everything_and_says_so():
    chosen = hardest_queries(_examples(), RANKS, queries=10, seed=0)
    assert chosen.examples == _examples()
    assert not chosen.selected
    assert chosen.describe() == "trained on all 4 queries"


def test_ties_and_unranked_pairs_are_broken_by_the_seed_not_by_data_order():
    examples = [Example(f"q{i}", "d", positive_id=f"d{i}") for i in range(40)]
    # no ranks recorded: every query is equally (maximally) hard, and the seed picks
    picks = {
        s: {e.query for e in hardest_queries(examples, {}, queries=10, seed=s).examples}
        for s in range(3)
    }
    assert picks[0] == {e.query for e in hardest_queries(examples, {}, queries=10, seed=0).examples}
    assert len({frozenset(p) for p in picks.values()}) == 3
    assert picks[0] != {f"q{i}" for i in range(10)}
    assert hardest_queries(examples, {}, queries=10).unranked == 40


def test_distinct_queries_count_by_text_identity():
    examples = _examples() + [Example("parse  a url", "x", positive_id="y")]  # same text
    assert distinct_queries(examples) == 4
