"""Chunk boundaries and line numbers, checked against ranges worked out by hand.

A fake token counter (one token per whitespace-separated word) makes every budget decision easy
to follow; tests/serve/test_serve_index.py repeats the checks with the real tokenizer.
"""

from __future__ import annotations

from collections.abc import Sequence

from ragtune.pseudo.pairs import chunk_id
from ragtune.search.chunking import (
    LINE,
    PARAGRAPH,
    SECTION,
    HFTokenCounter,
    boundary_strengths,
    chunk_text,
    split_lines,
)


class WordCounter:
    """One token per word; long lines are cut into windows of words."""

    def count(self, lines: Sequence[str]) -> list[int]:
        return [len(line.split()) for line in lines]

    def split(self, line: str, max_tokens: int) -> list[str]:
        words = line.split()
        return [" ".join(words[i : i + max_tokens]) for i in range(0, len(words), max_tokens)]


def ranges(chunks):
    return [(c.start_line, c.end_line) for c in chunks]


def test_lines_are_numbered_like_an_editor():
    assert split_lines("a\nb\n") == ["a", "b"]
    assert split_lines("a\r\nb") == ["a", "b"]
    assert split_lines("a\x0cb\u2028c\n\n") == ["a\x0cb\u2028c", ""]  # only \n ends a line
    assert split_lines("") == []


def test_markdown_splits_at_headings_and_ignores_hashes_in_code_fences():
    text = (
        "# Title\n"  # 1   2 words
        "\n"  # 2
        "Intro words here.\n"  # 3   3 words
        "\n"  # 4
        "## Install\n"  # 5   2 words
        "pip install ragtune now\n"  # 6   4 words
        "\n"  # 7
        "## Usage\n"  # 8   2 words
        "```bash\n"  # 9   1 word
        "# not a heading\n"  # 10  4 words
        "```\n"  # 11  1 word
    )
    assert boundary_strengths(split_lines(text), ".md") == [
        SECTION, LINE, PARAGRAPH, LINE, SECTION, LINE, LINE, SECTION, LINE, LINE, LINE,
    ]  # fmt: skip
    # 19 words > 10: sections of 5, 6 and 8 words; each is >= min_tokens (10 // 4 = 2) so
    # none grows into the next; blank lines at chunk ends are dropped.
    chunks = chunk_text("README.md", text, WordCounter(), max_tokens=10)
    assert ranges(chunks) == [(1, 3), (5, 6), (8, 11)]
    assert chunks[1].text == "## Install\npip install ragtune now"
    assert all(c.path == "README.md" for c in chunks)


def test_a_lone_heading_joins_the_section_below_it():
    text = "# Title\n## Install\npip install it\n## Usage\nrun the tool now please\n"
    # sections: [1] 2 words, [2-3] 5 words, [4-5] 7 words; budget 9, min_tokens 3
    chunks = chunk_text("a.md", text, WordCounter(), max_tokens=9, min_tokens=3)
    assert ranges(chunks) == [(1, 3), (4, 5)]


def test_python_definitions_keep_their_decorators_and_comments():
    text = (
        "import os\n"  # 1   2 words
        "\n"  # 2
        "# Helper that adds.\n"  # 3   4 words
        "@decorator\n"  # 4   1 word
        "def add(a, b):\n"  # 5   3 words
        "    return a + b\n"  # 6   4 words
        "\n"  # 7
        "class Box:\n"  # 8   2 words
        "    def size(self):\n"  # 9   2 words (indented: not a boundary)
        "        return 1\n"  # 10  2 words
    )
    strengths = boundary_strengths(split_lines(text), ".py")
    assert [i + 1 for i, s in enumerate(strengths) if s == SECTION] == [3, 8]
    # 20 words > 12 -> pieces [1-2] 2, [3-7] 12, [8-10] 6. "import os" (2 < 12 // 4) may cross
    # into the next section but 2 + 12 > 12 does not fit.
    chunks = chunk_text("box.py", text, WordCounter(), max_tokens=12)
    assert ranges(chunks) == [(1, 1), (3, 6), (8, 10)]
    assert chunks[1].text.startswith("# Helper that adds.\n@decorator\ndef add(a, b):")


def test_long_sections_split_at_paragraphs_with_overlap():
    text = "a b c\nd e\n\nf g h\ni\n\nj k l m\n"
    # words per line: 3 2 0 3 1 0 4 (13 > 6); paragraphs [1-3] 5, [4-6] 4, [7] 4.
    # chunk 1: [1-3]; adding [4-6] gives 9 > 6.
    # chunk 2 starts mid-section at 4: overlap 2 lines -> from line 2 (2 + 0 + 3 + 1 = 6 fits).
    # chunk 3 starts at 7: overlap from line 5 (1 + 0 + 4 = 5 fits).
    chunks = chunk_text("notes.txt", text, WordCounter(), max_tokens=6, overlap_lines=2)
    assert ranges(chunks) == [(1, 2), (2, 5), (5, 7)]
    assert chunks[1].text == "d e\n\nf g h\ni"
    assert ranges(chunk_text("notes.txt", text, WordCounter(), max_tokens=6, overlap_lines=0)) == [
        (1, 2), (4, 5), (7, 7),
    ]  # fmt: skip


def test_overlap_gives_way_to_the_budget():
    text = "a b\nc d e\nf g h i\n"
    # lines of 2, 3, 4 words, budget 6: [1-2] = 5; line 3 starts a new chunk, and the overlap
    # line 2 would make it 3 + 4 = 7 > 6, so there is none.
    assert ranges(chunk_text("t.txt", text, WordCounter(), max_tokens=6)) == [(1, 2), (3, 3)]


def test_a_line_longer_than_the_budget_becomes_windows_citing_that_line():
    text = "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10\ntail line\n"
    chunks = chunk_text("long.txt", text, WordCounter(), max_tokens=4)
    assert ranges(chunks) == [(1, 1), (1, 1), (1, 1), (2, 2)]
    assert [c.text for c in chunks] == ["w1 w2 w3 w4", "w5 w6 w7 w8", "w9 w10", "tail line"]
    # the windows share a line, not an id: tune's stages key chunks by chunk_id
    assert [c.part for c in chunks] == [1, 2, 3, 0]
    assert [chunk_id(c) for c in chunks] == [
        "long.txt:1-1~1",
        "long.txt:1-1~2",
        "long.txt:1-1~3",
        "long.txt:2-2",
    ]


def test_blank_files_give_no_chunks():
    assert chunk_text("empty.md", "\n\n  \n", WordCounter(), max_tokens=5) == []


def test_every_line_is_covered_and_every_chunk_fits(tokenizer):
    lines = [
        f"def f{i}(x):\n    return x + {i}\n" if i % 7 == 0 else f"value_{i} = {i} * {i}\n"
        for i in range(120)
    ]
    text = "".join(lines)
    counter = HFTokenCounter(tokenizer)
    chunks = chunk_text("gen.py", text, counter, max_tokens=40, overlap_lines=2)
    all_lines = split_lines(text)
    covered = {n for c in chunks for n in range(c.start_line, c.end_line + 1)}
    assert covered == {n + 1 for n, line in enumerate(all_lines) if line.strip()}
    for c in chunks:
        assert c.text == "\n".join(all_lines[c.start_line - 1 : c.end_line])
        assert sum(counter.count(c.text.split("\n"))) <= 40
    # counted per line, the total is never below what the tokenizer gives the joined text
    assert all(
        len(tokenizer(c.text, add_special_tokens=False)["input_ids"])
        <= sum(counter.count(c.text.split("\n")))
        for c in chunks
    )


def test_real_tokenizer_windows_cover_an_overlong_line(tokenizer):
    line = " ".join(f"word{i}" for i in range(200))
    counter = HFTokenCounter(tokenizer)
    parts = counter.split(line, 50)
    assert "".join(parts) == line
    assert all(len(tokenizer(p, add_special_tokens=False)["input_ids"]) <= 50 for p in parts)
