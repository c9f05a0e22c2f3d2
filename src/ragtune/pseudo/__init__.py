"""Pseudo-queries for label-free training: generators, the round-trip filter, the split by file."""

from ragtune.pseudo.generators import Generator, GeneratorOptions, available, make_generator
from ragtune.pseudo.pairs import PseudoPair, chunk_id, pair_for

__all__ = [
    "Generator",
    "GeneratorOptions",
    "PseudoPair",
    "available",
    "chunk_id",
    "make_generator",
    "pair_for",
]
