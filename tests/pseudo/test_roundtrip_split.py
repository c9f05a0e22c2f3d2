"""The round-trip filter keeps pairs whose chunk the base retriever finds; the split is by file."""

from __future__ import annotations

import numpy as np

from ragtune.pseudo.pairs import PseudoPair, pair_for
from ragtune.pseudo.roundtrip import RoundTripConfig, fused_order, rank_of, round_trip_filter
from ragtune.pseudo.split import split_by_file
from ragtune.search.chunking import Chunk


def test_reciprocal_rank_fusion_equals_the_hand_computed_order():
    bm25 = np.array([[2, 0, -1]])  # doc 2 first, doc 0 second, one empty slot
    dense = np.array([[0, 1, 2]])
    # scores: d0 = 1/62 + 1/61, d1 = 1/62, d2 = 1/61 + 1/63
    order = fused_order([bm25, dense], n_docs=4, rrf_k=60)
    assert order.tolist() == [[0, 2, 1, -1]]
    assert rank_of(order, np.array([1])).tolist() == [3]
    assert rank_of(order, np.array([3])).tolist() == [0]  # never retrieved


def test_pairs_whose_chunk_is_not_found_are_removed_and_counted(tiny_encoder):
    chunks = [
        Chunk("a.md", 1, 1, "glacier melt raises lakes in alpine valleys"),
        Chunk("b.md", 1, 1, "volcano ash grounds flights at airports"),
        Chunk("c.md", 1, 1, "pepper and tulip crops grow on farms"),
    ]
    good = pair_for(chunks[0], "glacier lakes alpine", "keywords")
    bad = pair_for(chunks[0], "volcano ash flights airports", "cloze")  # b.md's words
    result = round_trip_filter([good, bad], chunks, tiny_encoder, RoundTripConfig(k=1))
    assert result.kept == [good]
    assert result.removed == {"cloze": 1}
    assert result.ranks[0] == 1 and result.ranks[1] > 1
    off = round_trip_filter([good, bad], chunks, tiny_encoder, RoundTripConfig(k=0))
    assert off.kept == [good, bad]


def _pairs(files: int, per_file: int) -> list[PseudoPair]:
    return [
        PseudoPair(f"q{f}-{i}", f"f{f}.py:1-2", f"f{f}.py", 1, 2, "docstring")
        for f in range(files)
        for i in range(per_file)
    ]


def test_no_file_is_in_two_splits_and_shares_are_close():
    pairs = _pairs(50, 4)
    splits = split_by_file(pairs, (0.8, 0.1, 0.1), seed=0)
    names = {s: {p.path for p in getattr(splits, s)} for s in ("train", "dev", "test")}
    assert not names["train"] & names["dev"] and not names["train"] & names["test"]
    assert not names["dev"] & names["test"]
    assert len(splits.train) + len(splits.dev) + len(splits.test) == len(pairs)
    assert len(splits.test) == 20 and len(splits.dev) == 20  # 10% of 200, whole files of 4


def test_three_files_fill_every_split_even_when_test_would_want_two():
    # test's share (10% of 102 pairs) is more than the two one-pair files hold: taking both
    # would leave dev empty, and a dev set is what decides publishing
    pairs = [
        PseudoPair(f"q{f}-{i}", f"g{f}.py:1-2", f"g{f}.py", 1, 2, "docstring")
        for f, n in ((0, 1), (1, 1), (2, 100))
        for i in range(n)
    ]
    for seed in range(6):
        splits = split_by_file(pairs, (0.8, 0.1, 0.1), seed=seed)
        assert splits.train and splits.dev and splits.test, seed


def test_the_split_is_stable_when_a_file_is_added():
    before = split_by_file(_pairs(30, 1), seed=3).files
    after = split_by_file(_pairs(31, 1), seed=3).files
    moved = [p for p in before if before[p] != after[p]]
    assert len(moved) <= 4  # only files near the two share boundaries move
    assert split_by_file(_pairs(30, 1), seed=3).files == before


def test_the_dense_rank_of_each_pair_is_the_base_models_own_order(tiny_encoder):
    words = ["glacier", "volcano", "pepper", "tulip", "harbour", "comet", "violin", "desert"]
    chunks = [
        Chunk(f"{w}.md", 1, 1, f"{w} {words[(i + 3) % 8]} notes") for i, w in enumerate(words)
    ]
    pairs = [pair_for(c, f"{words[(i + 5) % 8]} query", "keywords") for i, c in enumerate(chunks)]
    result = round_trip_filter(pairs, chunks, tiny_encoder, RoundTripConfig(k=3, depth=5))

    docs = np.asarray(tiny_encoder.encode_documents([c.text for c in chunks]), dtype=np.float64)
    queries = np.asarray(tiny_encoder.encode_queries([p.query for p in pairs]), dtype=np.float64)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    order = np.argsort(-(queries @ docs.T), axis=1, kind="stable")
    expected = [int(np.where(order[i] == i)[0][0]) + 1 for i in range(len(pairs))]
    expected = [r if r <= 5 else 0 for r in expected]  # below the depth read: 0
    assert result.dense_ranks == expected
    assert 0 in expected or max(expected) > 1  # the case is not trivial


def test_the_filter_reports_its_encoding_speed_only_when_it_encoded(tiny_encoder, tmp_path):
    chunks = [Chunk(f"{w}.md", 1, 1, f"{w} notes") for w in ("glacier", "volcano", "pepper")]
    pairs = [pair_for(chunks[0], "glacier", "keywords")]
    first = round_trip_filter(pairs, chunks, tiny_encoder, cache_dir=tmp_path)
    again = round_trip_filter(pairs, chunks, tiny_encoder, cache_dir=tmp_path)
    assert first.docs_per_second is not None and first.docs_per_second > 0
    assert again.docs_per_second is None  # from the cache: no speed to plan with
    assert again.kept == first.kept and again.dense_ranks == first.dense_ranks
