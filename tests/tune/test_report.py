"""The tune report is rebuilt from the run's summary alone: every evaluation set, every count."""

from __future__ import annotations

from ragtune.tune.report import evaluation_sets, tune_markdown, tune_plot_png

SUMMARY = {
    "seconds": 12.0,
    "input": {
        "chunks": 30,
        "files": 9,
        "skipped": {"binary": 2, "too_large": 1},
        "code_files_without_pairs": {".go": 3},
    },
    "generators": {
        "docstring": {
            "pairs": 5,
            "skipped": {"short_query": 1},
            "examples": [{"query": "Parse a | line", "at": "a.py:3-9"}],
        }
    },
    "counts": {
        "docstring": {"generated": 6, "duplicates": 1, "round_trip_removed": 0, "kept": 5}
        | {"train": 3, "dev": 1, "test": 1}
    },
    "training": {"steps": 4, "seconds": 2.0, "dev_base": 0.5, "dev_best": 0.6, "improved": True},
    "test": {"BM25": {"nDCG@10": 0.4}, "base": {"nDCG@10": 0.5}, "tuned": {"nDCG@10": 0.6}},
    "per_generator": {"docstring": {"queries": 1, "BM25": 0.3, "base": 0.5, "tuned": 0.7}},
    "questions": {
        "note": "dev decided publishing; test was used for nothing else",
        "dev": {"BM25": {"nDCG@10": 0.1}, "base": {"nDCG@10": 0.2}, "tuned": {"nDCG@10": 0.3}},
        "test": {"BM25": {"nDCG@10": 0.4}, "base": {"nDCG@10": 0.5}, "tuned": {"nDCG@10": 0.55}},
    },
}


def test_every_evaluation_set_and_count_is_in_the_markdown():
    assert list(evaluation_sets(SUMMARY)) == [
        "held-out pseudo-queries",
        "your questions (dev)",
        "your questions (test)",
    ]
    md = tune_markdown(SUMMARY)
    assert "| your questions (test) | 0.4000 | 0.5000 | 0.5500 |" in md
    assert "| held-out, docstring (1 queries) | 0.3000 | 0.5000 | 0.7000 |" in md
    assert "| docstring | 6 | 1 | 0 | 5 | 3 | 1 | 1 |" in md
    assert "- **docstring** `a.py:3-9`: Parse a \\| line" in md
    assert "Files not read: binary 2, too_large 1." in md
    assert "by suffix: .go 3." in md
    assert "dev 0.5000 -> 0.6000; published." in md


def test_the_plot_is_a_png():
    assert tune_plot_png(SUMMARY)[:8] == b"\x89PNG\r\n\x1a\n"
