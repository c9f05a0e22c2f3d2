"""The stdlib code-search dataset: every rule on a hand-written tree, then the real stdlib."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragtune.data import (
    CodeSearchConfig,
    Example,
    beir_training_pairs,
    build_codesearch,
    load_beir,
    write_beir,
)
from ragtune.data.codesearch import split_of, stdlib_root
from ragtune.data.funcscan import python_files
from ragtune.data.pyfunctions import summarise

MOD = '''\
import functools


def parse_status_line(line):
    """Parse an HTTP status line into version, code and reason.

    More details here.
    """

    version, code, reason = line.split(None, 2)
    return version, int(code), reason


class Reader:
    @functools.lru_cache(maxsize=None)
    def read_chunk(self, size):
        """Internal: read one chunk of the given size from the stream."""
        data = self.fp.read(size)
        return data

    def close(self):
        """Close the underlying stream for good."""
        pass

    def abstract(self):
        """Subclasses must implement this method."""
        raise NotImplementedError("subclass")

    def one_liner(self):
        """Return the number of bytes read so far."""
        return self.count

    def helper(self):
        total = self.a + self.b
        return total

    def todo(self):
        """TODO: write a docstring."""
        x = 1
        return x

    def short(self):
        """Close it."""
        a = 1
        return a


def outer():
    """Build and return a closure over a counter."""
    def inner():
        """Increment the counter and return it."""
        return 1
    return inner
'''

COPY = '''\
def parse_status_line(line):
    """A copy with another docstring but the same code."""
    version, code, reason = line.split(None, 2)
    return version, int(code), reason


def other(line):
    """Parse an HTTP status line into version, code and reason."""
    head, tail = line.split(None, 1)
    return head


def sketch(line):
    """Split a line of text into words and count them."""
    words = line.split()
    return len(words)
'''


def make_tree(root: Path) -> Path:
    files = {
        "pkg/__init__.py": "",
        "pkg/mod.py": MOD,
        "zcopy.py": COPY,
        "test/test_mod.py": MOD,  # test folders are skipped
        "_sysconfigdata_x.py": MOD,  # generated file, skipped
        "broken.py": "def f(:\n",  # not Python: counted, not fatal
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def build_tree(tmp_path: Path, **config) -> tuple:
    root = make_tree(tmp_path / "lib")
    config = {
        "root": str(root),
        "fractions": (1.0, 0.0, 0.0),
        "force_test": ("pkg/mod.py",),
    } | config
    return build_codesearch(CodeSearchConfig(**config)), root


def test_walk_is_sorted_and_skips_tests_and_generated_files(tmp_path):
    root = make_tree(tmp_path / "lib")
    assert python_files(root) == ["broken.py", "pkg/__init__.py", "pkg/mod.py", "zcopy.py"]


def test_every_rule_on_a_hand_written_tree(tmp_path):
    ds, _ = build_tree(tmp_path)
    stats = ds.stats
    assert stats["files_scanned"] == 4 and stats["files_unparseable"] == 1
    assert stats["functions_scanned"] == 13  # 10 in mod.py (inner included) + 3 in zcopy.py
    assert stats["dropped"] == {
        "nested_function": 1,  # inner
        "trivial_body": 2,  # close (pass), abstract (raise NotImplementedError)
        "short_body": 1,  # one_liner
        "no_docstring": 1,  # helper
        "boilerplate_query": 1,  # todo
        "short_query": 1,  # short
        "duplicate_code": 1,  # zcopy.parse_status_line: same code as pkg/mod.py's
        "duplicate_query": 1,  # zcopy.other: same summary as parse_status_line
    }
    assert stats["kept"] == 4  # parse_status_line, Reader.read_chunk, outer, sketch


def test_test_split_queries_documents_and_metadata(tmp_path):
    ds, _ = build_tree(tmp_path)
    test = ds.test
    assert test.queries == {
        "q:pkg/mod.py::parse_status_line": (
            "Parse an HTTP status line into version, code and reason."
        ),
        "q:pkg/mod.py::Reader.read_chunk": "Read one chunk of the given size from the stream.",
        "q:pkg/mod.py::outer": "Build and return a closure over a counter.",
    }
    assert test.qrels["q:pkg/mod.py::outer"] == {"pkg/mod.py::outer": 1}
    doc = test.corpus["pkg/mod.py::parse_status_line"]
    assert doc.text == (
        "def parse_status_line(line):\n"
        "    version, code, reason = line.split(None, 2)\n"
        "    return version, int(code), reason"
    )  # the docstring and the blank line after it are gone
    assert doc.metadata == {
        "path": "pkg/mod.py", "module": "pkg.mod", "qualname": "parse_status_line",
        "start_line": 4, "end_line": 11,
    }  # fmt: skip
    method = test.corpus["pkg/mod.py::Reader.read_chunk"]
    assert method.text == (
        "@functools.lru_cache(maxsize=None)\n"
        "def read_chunk(self, size):\n"
        "    data = self.fp.read(size)\n"
        "    return data"
    )  # decorator kept, dedented out of the class
    assert (method.metadata["start_line"], method.metadata["end_line"]) == (15, 19)
    # Functions without docstrings are distractors in the corpus, with no query of their own.
    assert "pkg/mod.py::Reader.helper" in test.corpus
    assert len(test.corpus) == 4


def test_train_split_holds_the_other_modules(tmp_path):
    ds, _ = build_tree(tmp_path)
    assert ds.train == [
        Example(
            "Split a line of text into words and count them.",
            "def sketch(line):\n    words = line.split()\n    return len(words)",
            query_id="q:zcopy.py::sketch",
            positive_id="zcopy.py::sketch",
        )
    ]
    assert ds.dev.queries == {} and ds.dev.corpus == {}


def test_without_undocumented_the_corpus_is_the_queries_documents(tmp_path):
    ds, _ = build_tree(tmp_path, include_undocumented=False)
    assert sorted(ds.test.corpus) == [
        "pkg/mod.py::Reader.read_chunk", "pkg/mod.py::outer", "pkg/mod.py::parse_status_line",
    ]  # fmt: skip


def test_caps_sample_queries_but_keep_the_corpus(tmp_path):
    ds, _ = build_tree(tmp_path, max_test=2, seed=1)
    assert len(ds.test.queries) == 2 and len(ds.test.corpus) == 4
    assert ds.stats["splits"]["test"] == {
        "modules": 1,
        "queries_full": 3,
        "queries": 2,
        "corpus": 4,
    }
    again, _ = build_tree(tmp_path / "again", max_test=2, seed=1)
    assert again.test.queries == ds.test.queries


def test_summaries_are_first_sentences_without_signatures():
    assert summarise("Return x.  Then more.\n\nDetails.") == "Return x."
    assert summarise("f(a, b) -> int\n\nAdd two numbers, e.g. Two and three.") == (
        "Add two numbers, e.g. Two and three."
    )
    assert summarise("Read the\n   status    line") == "Read the status line"


def test_split_of_is_a_stable_function_of_the_path():
    fractions = (0.7, 0.1, 0.2)
    paths = [f"m{i}.py" for i in range(300)]
    splits = [split_of(p, fractions, ()) for p in paths]
    assert splits == [split_of(p, fractions, ()) for p in paths]
    assert 0.6 < splits.count("train") / 300 < 0.8  # roughly the asked shares
    assert split_of("m0.py", fractions, ("m0.py",)) == "test"
    assert {split_of(p, (1.0, 0.0, 0.0), ()) for p in paths} == {"train"}


def test_bad_fractions_are_refused(tmp_path):
    from ragtune.errors import DataError

    with pytest.raises(DataError, match="summing to 1"):
        build_codesearch(CodeSearchConfig(root=str(tmp_path), fractions=(0.5, 0.1, 0.1)))


# --- the real standard library (built once: a few seconds) --------------------------------------


@pytest.fixture(scope="module")
def stdlib():
    return build_codesearch()


def paths_of(ids) -> set[str]:
    return {i.removeprefix("q:").split("::")[0] for i in ids}


def test_stdlib_splits_are_by_module(stdlib):
    train = paths_of(e.positive_id for e in stdlib.train)
    dev, test = paths_of(stdlib.dev.corpus), paths_of(stdlib.test.corpus)
    assert not (train & dev) and not (train & test) and not (dev & test)
    assert "http/client.py" in test


def test_stdlib_sizes_fit_the_demo(stdlib):
    s = stdlib.stats["splits"]
    assert 1500 <= s["train"]["pairs"] <= 3500
    assert 400 <= s["test"]["queries"] <= 1000
    assert "http/client.py::HTTPResponse._read_status" in stdlib.test.corpus  # a distractor
    assert all(len(e.query.split()) >= 4 for e in stdlib.train)
    assert not any(e.query in e.positive for e in stdlib.train)  # docstrings were removed


def test_stdlib_build_is_deterministic():
    # One package of the stdlib keeps this fast; the walk, hashing and sampling are the same.
    config = CodeSearchConfig(root=str(stdlib_root() / "email"), max_train=50, max_test=20)
    first, again = build_codesearch(config), build_codesearch(config)
    assert len(first.train) == 50 and first.test.queries
    assert again.train == first.train
    for a, b in ((again.dev, first.dev), (again.test, first.test)):
        assert (a.queries, a.qrels) == (b.queries, b.qrels)
        assert {k: d.text for k, d in a.corpus.items()} == {k: d.text for k, d in b.corpus.items()}


def test_write_beir_round_trips(stdlib, tmp_path):
    folder = write_beir(stdlib, tmp_path / "stdlib")
    test = load_beir(folder, "test")
    assert (test.queries, test.qrels) == (stdlib.test.queries, stdlib.test.qrels)
    assert set(stdlib.test.corpus) <= set(test.corpus)  # one corpus for all splits
    doc = test.corpus["http/client.py::HTTPResponse._read_status"]
    assert doc.metadata["split"] == "test" and doc.metadata["path"] == "http/client.py"
    assert beir_training_pairs(folder, "train") == stdlib.train
