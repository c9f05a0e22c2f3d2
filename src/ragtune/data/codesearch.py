"""A real code-search dataset built offline from the Python standard library of this interpreter.

Every function or method with a docstring becomes one query/document pair:

* **query** - the docstring's first sentence (:func:`~ragtune.data.pyfunctions.summarise`), e.g.
  ``"Read and return the response body, or up to the next amt bytes."``;
* **document** - the function's code as written, decorators included, *without* its docstring
  (otherwise the answer would be inside the document). The path, qualified name and line range
  are kept in ``Document.metadata`` only: the ``def`` line already names the function, and a
  ``# http/client.py:HTTPResponse.read`` header would hand the model a paraphrase of the query.

Files are the ``*.py`` files under ``sysconfig.get_paths()["stdlib"]`` minus tests, IDLE,
tkinter, lib2to3, encodings and generated or bundled code; functions are filtered by the rules
of :mod:`ragtune.data.funcscan` (trivial bodies, one-liners, boilerplate or very short
summaries, duplicates...), each drop counted in ``stats["dropped"]``.

Splits are **by module**: a file's functions all land in one split, chosen by a SHA-256 hash of
its path (70/10/20 by default; ``force_test`` files always go to test), so the same interpreter
version gives the same dataset on every machine and run. The dev/test corpora are their split's
documents plus, with ``include_undocumented``, the split's functions without docstrings as
distractors (code a user searches through even though it has no query).
"""

from __future__ import annotations

import hashlib
import os
import platform
import random
import sysconfig
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ragtune.data.beir import write_beir_folder
from ragtune.data.funcscan import Candidate, FunctionFilters, scan_tree
from ragtune.data.schema import Document, EvalSet, Example
from ragtune.errors import DataError

Split = Literal["train", "dev", "test"]


@dataclass(frozen=True)
class CodeSearchConfig:
    """How the dataset is built; the defaults are the ones the demo uses."""

    root: str | None = None  # None: the running interpreter's standard library
    # train, dev, test shares of modules. 20% for test: ~600 test queries rather than ~330, so
    # that a difference of a few points of MRR@10 is more than noise.
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
    force_test: tuple[str, ...] = ("http/client.py",)  # paths relative to root, always in test
    filters: FunctionFilters = FunctionFilters()
    include_undocumented: bool = True
    max_train: int | None = None  # caps applied by seeded sampling; None keeps everything
    max_dev: int | None = None
    max_test: int | None = None
    seed: int = 0


@dataclass
class CodeSearchDataset:
    """Training pairs and two evaluation sets, split by module; ``stats`` says how it was built."""

    train: list[Example]
    dev: EvalSet
    test: EvalSet
    stats: dict[str, Any] = field(default_factory=dict)
    # Every document of the train modules (also those left out by max_train, and, with
    # include_undocumented, functions without docstrings): for indexing and for write_beir.
    train_corpus: dict[str, Document] = field(default_factory=dict)


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def build_codesearch(config: CodeSearchConfig = CodeSearchConfig()) -> CodeSearchDataset:
    """Build the dataset (a few seconds); see the module docstring for every rule."""
    started = time.perf_counter()
    if abs(sum(config.fractions) - 1.0) > 1e-9 or min(config.fractions) < 0:
        raise DataError(
            f"fractions must be three non-negative numbers summing to 1, got {config.fractions}"
        )
    root = Path(config.root) if config.root is not None else stdlib_root()
    if not root.is_dir():
        raise DataError("source folder not found", path=str(root))
    scan = scan_tree(root, config.filters)
    files, kept, undocumented = scan.files, scan.kept, scan.undocumented

    splits: dict[Split, list[Candidate]] = {"train": [], "dev": [], "test": []}
    modules: dict[Split, set[str]] = {"train": set(), "dev": set(), "test": set()}
    for rel in files:
        modules[split_of(rel, config.fractions, config.force_test)].add(rel)
    for cand in kept:
        splits[split_of(cand.path, config.fractions, config.force_test)].append(cand)
    if not config.include_undocumented:
        undocumented = []
    extra = {s: [c for c in undocumented if c.path in modules[s]] for s in splits}

    train_full = [_example(c) for c in splits["train"]]
    train = _sample(train_full, config.max_train, config.seed)
    train_corpus = {c.doc_id: c.document() for c in splits["train"] + extra["train"]}
    dev = _eval_set("dev", splits["dev"], extra["dev"], config.max_dev, config.seed)
    test = _eval_set("test", splits["test"], extra["test"], config.max_test, config.seed)
    stats: dict[str, Any] = {
        "python_version": platform.python_version(),
        "files_scanned": len(files),
        "files_unparseable": scan.unparseable,
        "functions_scanned": scan.functions,
        "kept": len(kept),
        "dropped": dict(sorted(scan.dropped.items())),
        "undocumented": {s: len(extra[s]) for s in splits},
        "splits": {
            "train": {
                "modules": len(modules["train"]),
                "pairs_full": len(train_full),
                "pairs": len(train),
                "corpus": len(train_corpus),
            },
            "dev": _eval_sizes(len(modules["dev"]), len(splits["dev"]), dev),
            "test": _eval_sizes(len(modules["test"]), len(splits["test"]), test),
        },
        "config": asdict(config),
    }
    stats["seconds"] = round(time.perf_counter() - started, 2)
    return CodeSearchDataset(
        train=train, dev=dev, test=test, stats=stats, train_corpus=train_corpus
    )


def write_beir(dataset: CodeSearchDataset, folder: str | os.PathLike[str]) -> Path:
    """Write the dataset as a BEIR folder: corpus with metadata, queries, qrels/{train,dev,test}.

    BEIR has one corpus for all splits, so ``load_beir(folder, "test")`` searches every document
    (a harder setting than ``dataset.test``, whose corpus is the test modules' code only); each
    document's ``metadata["split"]`` tells where it came from.
    """
    corpus: dict[str, Document] = {}
    for split, docs in (
        ("train", dataset.train_corpus),
        ("dev", dataset.dev.corpus),
        ("test", dataset.test.corpus),
    ):
        for doc in docs.values():
            corpus[doc.id] = Document(doc.id, doc.text, doc.title, {**doc.metadata, "split": split})
    queries = {e.query_id: e.query for e in dataset.train if e.query_id is not None}
    queries |= dataset.dev.queries | dataset.test.queries
    qrels = {
        "train": {
            e.query_id: {e.positive_id: 1}
            for e in dataset.train
            if e.query_id is not None and e.positive_id is not None
        },
        "dev": dataset.dev.qrels,
        "test": dataset.test.qrels,
    }
    return write_beir_folder(folder, corpus.values(), queries, qrels)


def split_of(
    path: str, fractions: tuple[float, float, float], force_test: tuple[str, ...]
) -> Split:
    """The split of a module: a stable hash of its path, unless it is forced into test."""
    if path in force_test:
        return "test"
    u = int.from_bytes(hashlib.sha256(path.encode("utf-8")).digest()[:8], "big") / 2**64  # [0, 1)
    if u < fractions[0]:
        return "train"
    return "dev" if u < fractions[0] + fractions[1] else "test"


def _example(c: Candidate) -> Example:
    return Example(
        query=c.query, positive=c.fn.code, query_id=f"q:{c.doc_id}", positive_id=c.doc_id
    )


def _eval_set(
    name: Split, cands: list[Candidate], distractors: list[Candidate], cap: int | None, seed: int
) -> EvalSet:
    # Capping samples queries only: the corpus stays whole, so scores stay comparable.
    corpus = {c.doc_id: c.document() for c in cands + distractors}
    chosen = _sample(cands, cap, seed)
    queries = {f"q:{c.doc_id}": c.query for c in chosen}
    qrels = {f"q:{c.doc_id}": {c.doc_id: 1} for c in chosen}
    return EvalSet(queries=queries, corpus=corpus, qrels=qrels, name=f"stdlib-{name}")


def _eval_sizes(modules: int, queries_full: int, es: EvalSet) -> dict[str, int]:
    return {
        "modules": modules,
        "queries_full": queries_full,
        "queries": len(es.queries),
        "corpus": len(es.corpus),
    }


def _sample(items: list[Any], cap: int | None, seed: int) -> list[Any]:
    """A seeded sample of at most ``cap`` items, in their original order."""
    if cap is None or len(items) <= cap:
        return list(items)
    keep = sorted(random.Random(seed).sample(range(len(items)), cap))
    return [items[i] for i in keep]
