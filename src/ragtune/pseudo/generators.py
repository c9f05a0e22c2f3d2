"""The generator interface and the registry of pseudo-query generators, by name.

A generator is any object with a ``name`` and a ``generate(chunks)`` method that yields
:class:`~ragtune.pseudo.pairs.PseudoPair` for (some of) the chunks it is given. It must be
deterministic for a given ``seed`` where it samples, never raise on a chunk it cannot use (it
skips it and counts why in ``skipped``), and name every pair it yields with its own ``name``.

Generators register a factory under their name, so ``--generator docstring,heading`` and the
report's per-generator counts use one vocabulary. A factory takes a :class:`GeneratorOptions`
(shared settings: seed, per-chunk cap) and returns the generator.

Example::

    gen = make_generator("heading", GeneratorOptions(seed=0))
    pairs = list(gen.generate(chunks))
    gen.skipped          # Counter({"no_heading": 12})
"""

from __future__ import annotations

import importlib
import importlib.util
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ragtune.errors import RagtuneError
from ragtune.pseudo.pairs import PseudoPair
from ragtune.search.chunking import Chunk


@runtime_checkable
class Generator(Protocol):
    """Writes pseudo-queries for chunks; ``skipped`` counts the chunks it could not use, by why."""

    name: str
    skipped: Counter[str]

    def generate(self, chunks: Sequence[Chunk]) -> Iterable[PseudoPair]: ...


@dataclass(frozen=True)
class GeneratorOptions:
    """Settings every generator factory receives."""

    seed: int = 0
    max_per_chunk: int = 2
    """At most this many queries per chunk from one generator: a long section would otherwise
    outweigh the rest of the folder."""


Factory = Callable[[GeneratorOptions], Generator]
_REGISTRY: dict[str, Factory] = {}


def register(name: str, factory: Factory) -> None:
    """Make ``factory`` available as ``name`` (a later registration of a name replaces it)."""
    _REGISTRY[name] = factory


def available() -> list[str]:
    """The registered generator names, sorted."""
    _load_builtins()
    return sorted(_REGISTRY)


def make_generator(name: str, options: GeneratorOptions | None = None) -> Generator:
    """The generator registered as ``name``; an unknown name raises listing the valid ones."""
    _load_builtins()
    if name not in _REGISTRY:
        raise RagtuneError(
            f"unknown generator {name!r}; choose from: {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[name](options or GeneratorOptions())


def _load_builtins() -> None:
    # Imported on first use, not at import time: the modules register themselves. The LLM
    # generator lives in ``ragtune.pseudo.llm`` when that module is installed alongside.
    from ragtune.pseudo import code, identifiers, prose  # noqa: F401

    if importlib.util.find_spec("ragtune.pseudo.llm") is not None:
        importlib.import_module("ragtune.pseudo.llm")


__all__ = ["Factory", "Generator", "GeneratorOptions", "available", "make_generator", "register"]
