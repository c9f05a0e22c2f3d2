"""Prose pseudo-queries: a document's own structure says what each part is about.

Four generators for text that is not code (Markdown, reStructuredText, plain text, the records of
a BEIR ``corpus.jsonl``, whose title is the chunk's first line):

* ``heading``: a Markdown heading -> the section under it (heading line removed), the pairs
  Wikipedia section titles give in the open-domain literature;
* ``title``: a document's title (the first line of a chunk that starts the file, when it is short
  and a body follows) -> the body without it;
* ``cloze``: the inverse cloze task (Lee et al. 2019, ORQA): one sentence, drawn with a seed,
  held out of its passage -> the passage without it. The sentence is removed from the positive
  (Lee et al. keep it in 10% of pairs to teach lexical matching; the keyword generator does that
  job here);
* ``keywords``: the passage's most salient terms (tf-idf over all chunks given, in the order they
  appear) -> the passage: the short keyword queries users type into a search box.

Why: GPL (Wang et al. 2022) and InPars show that a model adapted on pseudo-queries of the target
corpus gains several points of nDCG@10 where no labels exist; titles, headings and held-out
sentences are the pseudo-queries that need no generator model at all.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections import Counter
from collections.abc import Iterator, Sequence

from ragtune.pseudo.code import is_code, suffix
from ragtune.pseudo.generators import GeneratorOptions, register
from ragtune.pseudo.pairs import PseudoPair, chunk_id, pair_for
from ragtune.search.chunking import MARKDOWN_SUFFIXES, Chunk

_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.+?)\s*#*\s*$")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\"'])")
_TERM = re.compile(r"[a-z][a-z0-9\-]{2,}")
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "also",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "however",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "may",
        "me",
        "might",
        "more",
        "most",
        "must",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "thus",
        "to",
        "too",
        "under",
        "until",
        "up",
        "upon",
        "us",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "within",
        "without",
        "would",
        "yet",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "one",
        "two",
        "three",
        "using",
        "use",
        "used",
        "based",
        "study",
        "results",
        "result",
        "show",
        "shows",
        "shown",
        "found",
        "also",
        "et",
        "al",
    ]
)


def is_prose(path: str) -> bool:
    return not is_code(path)


def sentences(text: str) -> list[str]:
    """Sentences of a passage (split after ``.!?`` before a capital, a digit or a quote)."""
    flat = " ".join(text.split())
    return [s for s in _SENTENCE.split(flat) if s]


def _seeded(seed: int, chunk: Chunk) -> random.Random:
    digest = hashlib.sha256(f"{seed}:{chunk_id(chunk)}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class HeadingGenerator:
    """A Markdown heading -> its section's text in the chunk."""

    name = "heading"

    def __init__(self, options: GeneratorOptions = GeneratorOptions(), min_words: int = 8) -> None:
        self.options = options
        self.min_words = min_words  # a section body shorter than this is not a passage
        self.skipped: Counter[str] = Counter()

    def generate(self, chunks: Sequence[Chunk]) -> Iterator[PseudoPair]:
        for chunk in chunks:
            if suffix(chunk.path) not in MARKDOWN_SUFFIXES:
                continue
            lines = chunk.text.split("\n")
            heads = [i for i, line in enumerate(lines) if _HEADING.match(line)]
            made = 0
            for n, i in enumerate(heads):
                end = heads[n + 1] if n + 1 < len(heads) else len(lines)
                body = "\n".join(lines[i + 1 : end]).strip()
                title = _HEADING.match(lines[i]).group(2)  # type: ignore[union-attr]
                if len(body.split()) < self.min_words:
                    self.skipped["empty_section"] += 1
                    continue
                if made >= self.options.max_per_chunk:
                    self.skipped["chunk_cap"] += 1
                    continue
                made += 1
                yield pair_for(
                    chunk,
                    title,
                    self.name,
                    start_line=chunk.start_line + i,
                    end_line=chunk.start_line + end - 1,
                    document=body,
                )


class TitleGenerator:
    """A document's title (its first line) -> its body."""

    name = "title"

    def __init__(
        self, options: GeneratorOptions = GeneratorOptions(), max_title_words: int = 30
    ) -> None:
        self.options = options
        self.max_title_words = max_title_words
        self.skipped: Counter[str] = Counter()

    def generate(self, chunks: Sequence[Chunk]) -> Iterator[PseudoPair]:
        for chunk in chunks:
            if chunk.start_line != 1 or not is_prose(chunk.path):
                continue
            first, _, body = chunk.text.partition("\n")
            title = first.strip().lstrip("#").strip()
            if not title or len(title.split()) > self.max_title_words:
                self.skipped["no_title"] += 1
                continue
            if len(body.split()) < 2 * len(title.split()):
                self.skipped["no_body"] += 1
                continue
            yield pair_for(chunk, title, self.name, document=body.strip())


class ClozeGenerator:
    """Inverse cloze task: a sentence held out of its passage -> the rest of the passage."""

    name = "cloze"

    def __init__(
        self,
        options: GeneratorOptions = GeneratorOptions(),
        min_sentences: int = 3,
        min_words: int = 6,
    ) -> None:
        self.options = options
        self.min_sentences = min_sentences
        self.min_words = min_words
        self.skipped: Counter[str] = Counter()

    def generate(self, chunks: Sequence[Chunk]) -> Iterator[PseudoPair]:
        for chunk in chunks:
            if not is_prose(chunk.path):
                continue
            parts = sentences(_body(chunk))
            usable = [i for i, s in enumerate(parts) if len(s.split()) >= self.min_words]
            if len(parts) < self.min_sentences or not usable:
                self.skipped["too_few_sentences"] += 1
                continue
            rng = _seeded(self.options.seed, chunk)
            for i in sorted(rng.sample(usable, min(self.options.max_per_chunk, len(usable)))):
                rest = " ".join(parts[:i] + parts[i + 1 :])
                yield pair_for(chunk, parts[i], self.name, document=_title(chunk) + rest)


class KeywordGenerator:
    """The passage's most salient terms by tf-idf over the chunks given -> the passage."""

    name = "keywords"

    def __init__(self, options: GeneratorOptions = GeneratorOptions(), terms: int = 4) -> None:
        self.options = options
        self.terms = terms
        self.skipped: Counter[str] = Counter()

    def generate(self, chunks: Sequence[Chunk]) -> Iterator[PseudoPair]:
        prose = [c for c in chunks if is_prose(c.path)]
        bags = [
            Counter(t for t in _TERM.findall(c.text.lower()) if t not in STOPWORDS) for c in prose
        ]
        df: Counter[str] = Counter()
        for bag in bags:
            df.update(bag.keys())
        n = len(prose)
        for chunk, bag in zip(prose, bags, strict=True):
            # A term in more than half the chunks says nothing about this one.
            weight = {
                t: (1 + math.log(tf)) * math.log(n / df[t])
                for t, tf in bag.items()
                if df[t] <= n / 2
            }
            if len(weight) < self.terms:
                self.skipped["too_few_terms"] += 1
                continue
            best = sorted(weight, key=lambda t: (-weight[t], t))[: self.terms]
            first = {t: chunk.text.lower().find(t) for t in best}
            query = " ".join(sorted(best, key=lambda t: first[t]))
            yield pair_for(chunk, query, self.name)


def _body(chunk: Chunk) -> str:
    """The chunk without a first-line title (a BEIR record or a document's start)."""
    if chunk.start_line == 1 and "\n" in chunk.text:
        first, _, body = chunk.text.partition("\n")
        if len(first.split()) <= 30 and not first.rstrip().endswith("."):
            return body
    return chunk.text


def _title(chunk: Chunk) -> str:
    body = _body(chunk)
    return chunk.text[: len(chunk.text) - len(body)] if body is not chunk.text else ""


register("heading", HeadingGenerator)
register("title", TitleGenerator)
register("cloze", ClozeGenerator)
register("keywords", KeywordGenerator)

__all__ = [
    "ClozeGenerator",
    "HeadingGenerator",
    "KeywordGenerator",
    "TitleGenerator",
    "is_prose",
    "sentences",
]
