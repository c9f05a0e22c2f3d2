"""Each generator on a tiny folder: the exact queries and line ranges it produces."""

from __future__ import annotations

import pytest

from ragtune.errors import RagtuneError
from ragtune.pseudo import PseudoPair, available, make_generator
from ragtune.pseudo.code import rebuild_source
from ragtune.pseudo.generators import Generator, GeneratorOptions
from ragtune.pseudo.identifiers import split_identifier
from ragtune.pseudo.prose import sentences
from ragtune.search.chunking import Chunk

PY = '''import re


def parse_status_line(line):
    """Split an HTTP status line into version, code and reason.

    More detail here.
    """
    version, code, reason = line.split(" ", 2)
    return version, int(code), reason


class HTTPResponse:
    def read_chunked(self, amt):
        """Read a chunked response body up to amt bytes."""
        data = self.fp.read(amt)
        return data
'''

GO = """package main

// Retry the request with exponential backoff until it succeeds.
func retryWithBackoff(req Request) error {
    return nil
}
"""

MD = """# Installing the tool

Run the installer from the release page and add the binary folder to your PATH variable.

## Configuration file

Settings live in a TOML file in your home folder; every key has a documented default value.
"""


def chunk_of(path: str, text: str) -> Chunk:
    lines = text.rstrip("\n").split("\n")
    return Chunk(path, 1, len(lines), "\n".join(lines))


def run(name: str, *chunks: Chunk) -> list[PseudoPair]:
    return list(make_generator(name).generate(list(chunks)))


def test_every_builtin_generator_is_registered_and_follows_the_protocol():
    builtin = {"docstring", "comment", "identifier", "heading", "title", "cloze", "keywords"}
    assert builtin <= set(available())
    for name in builtin:
        assert isinstance(make_generator(name), Generator)


def test_an_unknown_generator_names_the_valid_ones():
    with pytest.raises(RagtuneError, match="choose from: .*docstring"):
        make_generator("nope")


def test_docstring_summary_points_at_the_function_without_its_docstring():
    pairs = run("docstring", chunk_of("http/status.py", PY))
    assert [(p.query, p.start_line, p.end_line) for p in pairs] == [
        ("Split an HTTP status line into version, code and reason.", 4, 10),
        ("Read a chunked response body up to amt bytes.", 14, 17),
    ]
    assert pairs[0].document == (
        "def parse_status_line(line):\n"
        '    version, code, reason = line.split(" ", 2)\n'
        "    return version, int(code), reason"
    )
    assert pairs[0].chunk_id == "http/status.py:1-17"
    assert all(p.generator == "docstring" for p in pairs)


def test_docstrings_are_found_across_chunks_of_one_file():
    lines = PY.rstrip("\n").split("\n")
    parts = [
        Chunk("a.py", 1, 10, "\n".join(lines[:10])),
        Chunk("a.py", 13, 17, "\n".join(lines[12:])),
    ]
    assert rebuild_source(parts).split("\n")[:10] == lines[:10]
    pairs = run("docstring", *parts)
    assert [p.chunk_id for p in pairs] == ["a.py:1-10", "a.py:13-17"]


def test_a_form_feed_between_sections_does_not_shift_the_code_after_it():
    # a page break (an old Emacs habit) is one line for ast, two for str.splitlines
    source = (
        '"""Tools."""\n\f\ndef first(x):\n    """Return the first value of x."""\n    return x[0]\n'
    )
    (pair,) = run("docstring", chunk_of("tools.py", source))
    assert (pair.query, pair.start_line) == ("Return the first value of x.", 3)
    assert pair.document == "def first(x):\n    return x[0]"


def test_comment_above_a_definition_in_any_language():
    (pair,) = run("comment", chunk_of("net/retry.go", GO))
    assert pair.query == "Retry the request with exponential backoff until it succeeds."
    assert (pair.start_line, pair.end_line) == (4, 6)
    assert "// Retry" not in pair.document and "func retryWithBackoff" in pair.document


def test_identifiers_are_split_into_words_and_methods_carry_their_class():
    assert split_identifier("parseHTTPStatus_line2") == ["parse", "http", "status", "line", "2"]
    pairs = run("identifier", chunk_of("http/status.py", PY))
    assert [(p.query, p.start_line) for p in pairs] == [
        ("parse status line", 4),
        ("http response", 13),
    ]
    more = list(
        make_generator("identifier", GeneratorOptions(max_per_chunk=5)).generate(
            [chunk_of("http/status.py", PY)]
        )
    )
    assert more[-1].query == "http response read chunked"


def test_headings_point_at_their_sections():
    pairs = run("heading", chunk_of("docs/install.md", MD))
    assert [(p.query, p.start_line, p.end_line) for p in pairs] == [
        ("Installing the tool", 1, 4),
        ("Configuration file", 5, 7),
    ]
    assert pairs[1].document.startswith("Settings live in a TOML file")


def test_title_to_body_for_a_corpus_record():
    record = Chunk(
        "doc7", 1, 2, "Aspirin lowers fever\nAspirin reduces body temperature in adults."
    )
    (pair,) = run("title", record)
    assert pair.query == "Aspirin lowers fever"
    assert pair.document == "Aspirin reduces body temperature in adults."


def test_inverse_cloze_holds_one_sentence_out_of_its_passage():
    text = (
        "Vitamin D and fracture risk in older adults\n"
        "Low levels were associated with a higher fracture risk in older adults. "
        "The association remained after adjusting for age and sex. "
        "Supplements reduced the risk in the treated group over five years."
    )
    chunk = Chunk("doc1", 1, 2, text)
    pairs = list(make_generator("cloze", GeneratorOptions(max_per_chunk=1)).generate([chunk]))
    (pair,) = pairs
    body = sentences(text.partition("\n")[2])
    assert pair.query in body
    assert pair.query not in pair.document
    assert pair.document.startswith("Vitamin D and fracture risk")  # the title stays
    again = list(make_generator("cloze", GeneratorOptions(max_per_chunk=1)).generate([chunk]))
    assert again == pairs  # seeded: the same sentence every run


def test_keywords_are_the_salient_terms_in_text_order():
    docs = [
        Chunk("a", 1, 1, "glacier melt raises glacier lakes near alpine valleys and rivers"),
        Chunk("b", 1, 1, "volcano ash clouds ground flights near alpine airports and rivers"),
        Chunk("c", 1, 1, "river floods damage farms and towns near valleys and rivers"),
        Chunk("d", 1, 1, "farms grow pepper and tulip crops in towns near airports"),
    ]
    pairs = list(make_generator("keywords").generate(docs))
    by_path = {p.path: p.query for p in pairs}
    assert by_path["a"].split()[0] == "glacier"  # tf 2 and unique: the most salient
    assert all(len(q.split()) == 4 for q in by_path.values())


CLASSES = '''class LRUCache:
    """Keep the most recently used items up to a fixed size.

    Older items are evicted first.
    """

    def __init__(self, size):
        self.size = size


class NotFound(Exception):
    """Raised when the key is not in the cache."""
'''


def test_class_docstring_points_at_the_class_body_without_it():
    (pair,) = run("docstring", chunk_of("cache.py", CLASSES))
    assert (pair.query, pair.start_line, pair.end_line) == (
        "Keep the most recently used items up to a fixed size.",
        1,
        8,
    )
    assert (
        pair.document == "class LRUCache:\n    def __init__(self, size):\n        self.size = size"
    )
    gen = make_generator("docstring")
    list(gen.generate([chunk_of("cache.py", CLASSES)]))
    assert gen.skipped["class_no_body"] == 1  # the exception type: only its docstring


def test_a_class_spanning_chunks_pairs_with_the_chunk_of_its_class_line():
    lines = CLASSES.split("\n")
    parts = [Chunk("c.py", 1, 7, "\n".join(lines[:7])), Chunk("c.py", 8, 8, lines[7])]
    (pair,) = run("docstring", *parts)
    assert pair.chunk_id == "c.py:1-7" and (pair.start_line, pair.end_line) == (1, 8)
    assert pair.document == "class LRUCache:\n    def __init__(self, size):"  # as far as its chunk
    header_only = [
        Chunk("c.py", 1, 6, "\n".join(lines[:6])),
        Chunk("c.py", 7, 8, "\n".join(lines[6:8])),
    ]
    gen = make_generator("docstring")
    assert list(gen.generate(header_only)) == []
    assert gen.skipped["class_body_elsewhere"] == 1
