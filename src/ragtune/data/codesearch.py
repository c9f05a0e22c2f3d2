"""A real code-search dataset built offline from the Python standard library of this interpreter.

Every function or method with a docstring becomes one query/document pair:

* **query** - the docstring's first sentence (:func:`~ragtune.data.pyfunctions.summarise`), e.g.
  ``"Read and return the response body, or up to the next amt bytes."``;
* **document** - the function's code as written, decorators included, *without* its docstring
  (otherwise the answer would be inside the document). The path, qualified name and line range
  are kept in ``Document.metadata`` only: the ``def`` line already names the function, and a
  ``# http/client.py:HTTPResponse.read`` header would hand the model a paraphrase of the query.

Rules (every drop is counted in ``stats["dropped"]``):

* files: ``*.py`` under ``sysconfig.get_paths()["stdlib"]``, walked in sorted order, skipping
  the folders in :data:`SKIP_DIRS` (tests, IDLE, tkinter's Tcl wrappers, lib2to3, encodings,
  generated or bundled code) and generated files (``_sysconfigdata_*``);
* functions nested inside functions are skipped (not addressable by name);
* ``no_body``/``trivial_body``: nothing but the docstring, or one placeholder statement
  (``pass``, ``...``, ``return <constant>``, ``raise NotImplementedError``);
* ``short_body``: fewer than ``min_body_lines`` code lines after the signature;
* ``too_long``: more than ``max_lines`` lines (a long function's summary is vague, and the
  tokenizer would keep only its beginning anyway);
* ``short_query``/``long_query``: a summary of fewer than ``min_query_words`` or more than
  ``max_query_words`` words; ``boilerplate_query``: placeholders such as "TODO" or "Docstring",
  or a parameter list ("@param ...", "Args: ...") where a summary should be;
* ``duplicate_code``/``duplicate_query``: the same whitespace-normalised code, or the same
  case-folded summary, as a function seen earlier in the sorted walk (the first one is kept).

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
import re
import sysconfig
import time
import tokenize
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ragtune.data.beir import write_beir_folder
from ragtune.data.pyfunctions import PyFunction, extract_functions, parse_source, summarise
from ragtune.data.schema import Document, EvalSet, Example
from ragtune.errors import DataError

Split = Literal["train", "dev", "test"]

SKIP_DIRS = frozenset({
    "test", "tests", "idlelib", "tkinter", "turtledemo", "lib2to3", "site-packages",
    "dist-packages", "__pycache__", "encodings", "ensurepip", "pydoc_data", "lib-dynload",
})
_SKIP_FILE = re.compile(r"^_sysconfigdata_.*\.py$|^config-")
_BOILERPLATE = re.compile(
    r"^(todo|xxx|fixme|docstring|deprecated|undocumented|not implemented|placeholder|"
    r"(for )?internal use)\b"
    r"|^(@\w+|:\w+|(args|arguments|parameters|keyword arguments)\s*:)",  # parameter lists
    re.IGNORECASE,
)
_INTERNAL_PREFIX = re.compile(r"^internal:\s*", re.IGNORECASE)  # "Internal: send one line..."


@dataclass(frozen=True)
class CodeSearchConfig:
    """How the dataset is built; the defaults are the ones the demo uses."""

    root: str | None = None  # None: the running interpreter's standard library
    # train, dev, test shares of modules. 20% for test: ~600 test queries rather than ~330, so
    # that a difference of a few points of MRR@10 is more than noise.
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
    force_test: tuple[str, ...] = ("http/client.py",)  # paths relative to root, always in test
    min_query_words: int = 4
    max_query_words: int = 48
    min_body_lines: int = 2
    max_lines: int = 150
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


@dataclass(frozen=True)
class _Candidate:
    path: str
    doc_id: str
    fn: PyFunction
    query: str

    def document(self) -> Document:
        return Document(id=self.doc_id, text=self.fn.code, metadata={
            "path": self.path, "module": _module_name(self.path), "qualname": self.fn.qualname,
            "start_line": self.fn.start_line, "end_line": self.fn.end_line,
        })


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def build_codesearch(config: CodeSearchConfig = CodeSearchConfig()) -> CodeSearchDataset:
    """Build the dataset (a few seconds); see the module docstring for every rule."""
    started = time.perf_counter()
    if abs(sum(config.fractions) - 1.0) > 1e-9 or min(config.fractions) < 0:
        raise DataError(f"fractions must be three non-negative numbers summing to 1, got "
                        f"{config.fractions}")
    root = Path(config.root) if config.root is not None else stdlib_root()
    if not root.is_dir():
        raise DataError("source folder not found", path=str(root))
    dropped: Counter[str] = Counter()
    kept: list[_Candidate] = []
    undocumented: list[_Candidate] = []
    seen_code: set[str] = set()
    seen_query: set[str] = set()
    files = python_files(root)
    functions = unparseable = 0
    for rel in files:
        tree, source = _parse(root / rel)
        if tree is None:
            unparseable += 1
            continue
        found, nested = extract_functions(tree, source)
        functions += len(found) + nested
        dropped["nested_function"] += nested
        occurrences: Counter[str] = Counter()
        for fn in found:
            # ids are "path::qualname"; a name defined again in the same file (a property
            # setter, a platform-specific variant) gets "#2", "#3"... in source order.
            occurrences[fn.qualname] += 1
            n = occurrences[fn.qualname]
            doc_id = f"{rel}::{fn.qualname}" + (f"#{n}" if n > 1 else "")
            reason, query = _judge(fn, config)
            code_key = " ".join(fn.code.split())
            cand = _Candidate(rel, doc_id, fn, query)
            if reason == "no_docstring":
                if fn.problem is None and _size_ok(fn, config) and code_key not in seen_code:
                    seen_code.add(code_key)
                    undocumented.append(cand)
            elif reason is None:
                query_key = " ".join(query.casefold().split())
                if code_key in seen_code:
                    reason = "duplicate_code"
                elif query_key in seen_query:
                    reason = "duplicate_query"
                else:
                    seen_code.add(code_key)
                    seen_query.add(query_key)
                    kept.append(cand)
            if reason is not None:
                dropped[reason] += 1

    splits: dict[Split, list[_Candidate]] = {"train": [], "dev": [], "test": []}
    modules: dict[Split, set[str]] = {"train": set(), "dev": set(), "test": set()}
    for rel in files:
        modules[split_of(rel, config.fractions, config.force_test)].add(rel)
    for cand in kept:
        splits[split_of(cand.path, config.fractions, config.force_test)].append(cand)
    extra = {s: [c for c in undocumented if c.path in modules[s]] for s in splits}

    train_full = [_example(c) for c in splits["train"]]
    train = _sample(train_full, config.max_train, config.seed)
    train_corpus = {c.doc_id: c.document() for c in splits["train"] + extra["train"]}
    dev = _eval_set("dev", splits["dev"], extra["dev"], config.max_dev, config.seed)
    test = _eval_set("test", splits["test"], extra["test"], config.max_test, config.seed)
    stats: dict[str, Any] = {
        "python_version": platform.python_version(),
        "files_scanned": len(files),
        "files_unparseable": unparseable,
        "functions_scanned": functions,
        "kept": len(kept),
        "dropped": dict(sorted(dropped.items())),
        "undocumented": {s: len(extra[s]) for s in splits},
        "splits": {
            "train": {"modules": len(modules["train"]), "pairs_full": len(train_full),
                      "pairs": len(train), "corpus": len(train_corpus)},
            **{name: {"modules": len(modules[name]), "queries_full": len(splits[name]),  # type: ignore[index]
                      "queries": len(es.queries), "corpus": len(es.corpus)}
               for name, es in (("dev", dev), ("test", test))},
        },
        "config": asdict(config),
    }
    stats["seconds"] = round(time.perf_counter() - started, 2)
    return CodeSearchDataset(train=train, dev=dev, test=test, stats=stats,
                             train_corpus=train_corpus)


def write_beir(dataset: CodeSearchDataset, folder: str | os.PathLike[str]) -> Path:
    """Write the dataset as one BEIR folder: corpus (with metadata), queries, qrels/{train,dev,test}.

    BEIR has one corpus for all splits, so ``load_beir(folder, "test")`` searches every document
    (a harder setting than ``dataset.test``, whose corpus is the test modules' code only); each
    document's ``metadata["split"]`` tells where it came from.
    """
    corpus: dict[str, Document] = {}
    for split, docs in (("train", dataset.train_corpus), ("dev", dataset.dev.corpus),
                        ("test", dataset.test.corpus)):
        for doc in docs.values():
            corpus[doc.id] = Document(doc.id, doc.text, doc.title, {**doc.metadata, "split": split})
    queries = {e.query_id: e.query for e in dataset.train if e.query_id is not None}
    queries |= dataset.dev.queries | dataset.test.queries
    qrels = {
        "train": {e.query_id: {e.positive_id: 1} for e in dataset.train
                  if e.query_id is not None and e.positive_id is not None},
        "dev": dataset.dev.qrels, "test": dataset.test.qrels,
    }
    return write_beir_folder(folder, corpus.values(), queries, qrels)


def python_files(root: Path) -> list[str]:
    """``*.py`` files under ``root`` as sorted POSIX paths relative to it, skip rules applied."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not _SKIP_FILE.match(d))
        rel_dir = Path(dirpath).relative_to(root)
        found += [(rel_dir / f).as_posix() for f in filenames
                  if f.endswith(".py") and not _SKIP_FILE.match(f)]
    return sorted(found)


def split_of(path: str, fractions: tuple[float, float, float], force_test: tuple[str, ...]) -> Split:
    """The split of a module: a stable hash of its path, unless it is forced into test."""
    if path in force_test:
        return "test"
    u = int.from_bytes(hashlib.sha256(path.encode("utf-8")).digest()[:8], "big") / 2**64  # [0, 1)
    if u < fractions[0]:
        return "train"
    return "dev" if u < fractions[0] + fractions[1] else "test"


def _judge(fn: PyFunction, config: CodeSearchConfig) -> tuple[str | None, str]:
    """(drop reason or None, query); the first rule that fails names the drop."""
    if fn.docstring is None:
        return "no_docstring", ""
    if fn.problem is not None:
        return fn.problem, ""
    if not _size_ok(fn, config):
        return ("short_body" if fn.body_lines < config.min_body_lines else "too_long"), ""
    query = _INTERNAL_PREFIX.sub("", summarise(fn.docstring))
    query = query[:1].upper() + query[1:]
    if _BOILERPLATE.match(query):
        return "boilerplate_query", query
    if len(query.split()) < config.min_query_words:
        return "short_query", query
    if len(query.split()) > config.max_query_words:
        return "long_query", query
    return None, query


def _size_ok(fn: PyFunction, config: CodeSearchConfig) -> bool:
    lines = fn.end_line - fn.start_line + 1
    return fn.body_lines >= config.min_body_lines and lines <= config.max_lines


def _parse(path: Path) -> tuple[Any, str]:
    try:
        with tokenize.open(path) as f:  # honours "# -*- coding: ... -*-" cookies
            source = f.read()
    except (SyntaxError, UnicodeDecodeError):
        return None, ""
    return parse_source(source, str(path)), source


def _module_name(rel: str) -> str:
    parts = rel.removesuffix(".py").split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _example(c: _Candidate) -> Example:
    return Example(query=c.query, positive=c.fn.code, query_id=f"q:{c.doc_id}", positive_id=c.doc_id)


def _eval_set(
    name: Split, cands: list[_Candidate], distractors: list[_Candidate], cap: int | None, seed: int
) -> EvalSet:
    # Capping samples queries only: the corpus stays whole, so scores stay comparable.
    corpus = {c.doc_id: c.document() for c in cands + distractors}
    chosen = _sample(cands, cap, seed)
    queries = {f"q:{c.doc_id}": c.query for c in chosen}
    qrels = {f"q:{c.doc_id}": {c.doc_id: 1} for c in chosen}
    return EvalSet(queries=queries, corpus=corpus, qrels=qrels, name=f"stdlib-{name}")


def _sample(items: list[Any], cap: int | None, seed: int) -> list[Any]:
    """A seeded sample of at most ``cap`` items, in their original order."""
    if cap is None or len(items) <= cap:
        return list(items)
    keep = sorted(random.Random(seed).sample(range(len(items)), cap))
    return [items[i] for i in keep]
