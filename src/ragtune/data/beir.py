"""BEIR folders: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``.

The layout of Thakur et al., "BEIR: A Heterogeneous Benchmark for Zero-shot Evaluation of
Information Retrieval Models" (NeurIPS 2021 Datasets and Benchmarks)::

    corpus.jsonl      {"_id": "d1", "title": "...", "text": "...", "metadata": {...}} per line
    queries.jsonl     {"_id": "q1", "text": "..."} per line (all splits together)
    qrels/test.tsv    header "query-id<TAB>corpus-id<TAB>score", then one judgement per line

A document's title and text stay apart in :class:`Document`; training pairs join them the way
BEIR's models do (title, a space, text; see :meth:`Document.full_text`). Problems are one
:class:`DataError` naming the file, the line and the field; a qrels line that names a query or
document missing from the folder is an error, not a silent drop, and so is a text or id a
tokenizer cannot take (:func:`~ragtune.data.valid_text.text_problem`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ragtune.data.jsonl import open_binary
from ragtune.data.schema import Document, EvalSet, Example, Qrels
from ragtune.data.valid_text import text_problem
from ragtune.errors import DataError
from ragtune.io import atomic_dir

QRELS_HEADER = ("query-id", "corpus-id", "score")


def is_beir_folder(path: str | os.PathLike[str]) -> bool:
    """True for a folder holding ``corpus.jsonl`` (the rule :func:`load_training_data` uses)."""
    return Path(path).is_dir() and (Path(path) / "corpus.jsonl").is_file()


def beir_splits(folder: str | os.PathLike[str]) -> list[str]:
    """The splits a BEIR folder has judgements for, e.g. ``["test", "train"]``."""
    return sorted(p.stem for p in (Path(folder) / "qrels").glob("*.tsv"))


def load_beir(folder: str | os.PathLike[str], split: str = "test") -> EvalSet:
    """Queries of ``split`` (those with at least one relevant document), the whole corpus, qrels."""
    corpus_path, queries_path, qrels_path = _paths(folder, split)
    judgements = list(read_qrels(qrels_path))
    wanted = {qid for _, qid, _, _ in judgements}
    queries = {qid: text for _, qid, text in iter_queries(queries_path) if qid in wanted}
    corpus = {doc.id: doc for _, doc in iter_corpus(corpus_path)}
    qrels: Qrels = {}
    for line, qid, doc_id, score in judgements:
        _check_known(qrels_path, line, qid, queries, doc_id, corpus)
        docs = qrels.setdefault(qid, {})
        docs[doc_id] = max(score, docs.get(doc_id, score))  # a repeated judgement keeps the higher
    if not any(score > 0 for docs in qrels.values() for score in docs.values()):
        raise DataError(
            f"no query has a relevant document (score > 0) in the {split} split: "
            "nothing to evaluate or train on",
            path=str(qrels_path),
        )
    return EvalSet(queries=queries, corpus=corpus, qrels=qrels, name=f"{Path(folder).name}/{split}")


def beir_training_pairs(
    folder: str | os.PathLike[str], split: str = "train", *, title_separator: str = " "
) -> list[Example]:
    """One :class:`Example` per relevant judgement (score > 0) of ``split``, in file order.

    The corpus is streamed and only the documents the judgements name are kept, so this works on
    corpora far larger than memory would hold whole.
    """
    corpus_path, queries_path, qrels_path = _paths(folder, split)
    judgements = [j for j in read_qrels(qrels_path) if j[3] > 0]
    wanted_q = {qid for _, qid, _, _ in judgements}
    wanted_d = {doc_id for _, _, doc_id, _ in judgements}
    queries = {qid: text for _, qid, text in iter_queries(queries_path) if qid in wanted_q}
    docs: dict[str, tuple[int, str]] = {}
    for line, doc in iter_corpus(corpus_path):
        if doc.id in wanted_d:
            docs[doc.id] = (line, doc.full_text(title_separator))
    pairs = []
    for line, qid, doc_id, _ in judgements:
        _check_known(qrels_path, line, qid, queries, doc_id, docs)
        doc_line, text = docs[doc_id]
        if not text.strip():
            raise DataError(
                f"document {doc_id!r} is judged relevant but has no title or text",
                path=str(corpus_path),
                line=doc_line,
                field="text",
            )
        pairs.append(Example(query=queries[qid], positive=text, query_id=qid, positive_id=doc_id))
    return pairs


def iter_corpus(path: Path) -> Iterator[tuple[int, Document]]:
    """Stream ``(line, Document)``; ``title`` and ``metadata`` are optional; ``text`` may be ""."""
    seen: set[str] = set()
    for line, obj in _iter_objects(path):
        doc_id = _id(obj, path, line)
        if doc_id in seen:
            raise DataError(
                f"duplicate document id {doc_id!r}", path=str(path), line=line, field="_id"
            )
        seen.add(doc_id)
        text = _str_field(obj, "text", path, line, required=True)
        title = _str_field(obj, "title", path, line, required=False)
        metadata = obj.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise DataError(
                "metadata must be an object", path=str(path), line=line, field="metadata"
            )
        yield line, Document(id=doc_id, text=text, title=title, metadata=metadata)


def iter_queries(path: Path) -> Iterator[tuple[int, str, str]]:
    """Stream ``(line, query id, text)``; an empty query text is an error."""
    seen: set[str] = set()
    for line, obj in _iter_objects(path):
        qid = _id(obj, path, line)
        if qid in seen:
            raise DataError(f"duplicate query id {qid!r}", path=str(path), line=line, field="_id")
        seen.add(qid)
        text = _str_field(obj, "text", path, line, required=True)
        if not text.strip():
            raise DataError("empty query text", path=str(path), line=line, field="text")
        yield line, qid, text


def read_qrels(path: Path) -> Iterator[tuple[int, str, str, int]]:
    """Stream ``(line, query id, corpus id, score)`` from a qrels TSV (header optional)."""
    source = str(path)
    with open_binary(path) as f:
        for line, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8-sig" if line == 1 else "utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise DataError(
                    f"invalid UTF-8: {raw[exc.start : exc.end]!r}", path=source, line=line
                ) from None
            if not text.strip():
                continue
            fields = text.split("\t")
            if line == 1 and fields[0].strip().lower() == QRELS_HEADER[0]:
                continue
            if len(fields) != 3:
                raise DataError(
                    f"expected 3 tab-separated fields ({', '.join(QRELS_HEADER)}), got "
                    f"{len(fields)}",
                    path=source,
                    line=line,
                    hint="separate fields with tabs, not spaces" if len(fields) == 1 else None,
                )
            qid, doc_id, raw_score = (x.strip() for x in fields)
            for name, value in (("query-id", qid), ("corpus-id", doc_id)):
                if not value:
                    raise DataError("empty id", path=source, line=line, field=name)
            yield line, qid, doc_id, _score(raw_score, source, line)


def write_beir_folder(
    folder: str | os.PathLike[str],
    corpus: Iterable[Document],
    queries: Mapping[str, str],
    qrels: Mapping[str, Qrels],
) -> Path:
    """Write a BEIR folder atomically (nothing is left half-written if this fails)."""
    with atomic_dir(folder) as tmp:
        with open(tmp / "corpus.jsonl", "w", encoding="utf-8") as f:
            for doc in corpus:
                row = {
                    "_id": doc.id,
                    "title": doc.title,
                    "text": doc.text,
                    "metadata": doc.metadata,
                }
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        with open(tmp / "queries.jsonl", "w", encoding="utf-8") as f:
            for qid, text in queries.items():
                f.write(json.dumps({"_id": qid, "text": text}, ensure_ascii=False) + "\n")
        (tmp / "qrels").mkdir()
        for split, judged in qrels.items():
            with open(tmp / "qrels" / f"{split}.tsv", "w", encoding="utf-8") as f:
                f.write("\t".join(QRELS_HEADER) + "\n")
                for qid, docs in judged.items():
                    for doc_id, score in docs.items():
                        if any(c in s for s in (qid, doc_id) for c in "\t\n"):
                            raise DataError(
                                f"ids cannot hold tabs or line breaks: {qid!r} {doc_id!r}"
                            )
                        f.write(f"{qid}\t{doc_id}\t{score}\n")
    return Path(folder)


def _paths(folder: str | os.PathLike[str], split: str) -> tuple[Path, Path, Path]:
    root = Path(folder)
    if not root.is_dir():
        raise DataError("BEIR folder not found", path=str(root))
    paths = (root / "corpus.jsonl", root / "queries.jsonl", root / "qrels" / f"{split}.tsv")
    for p in paths:
        if not p.is_file():
            hint = "a BEIR folder holds corpus.jsonl, queries.jsonl and qrels/<split>.tsv"
            if p.parent.name == "qrels":
                hint = f"splits in this folder: {', '.join(beir_splits(root)) or 'none'}"
            raise DataError("missing BEIR file", path=str(p), hint=hint)
    return paths


def _check_known(
    path: Path,
    line: int,
    qid: str,
    queries: Mapping[str, Any],
    doc_id: str,
    docs: Mapping[str, Any],
) -> None:
    if qid not in queries:
        raise DataError(
            f"unknown query id {qid!r}: not in queries.jsonl",
            path=str(path),
            line=line,
            field="query-id",
        )
    if doc_id not in docs:
        raise DataError(
            f"unknown document id {doc_id!r}: not in corpus.jsonl",
            path=str(path),
            line=line,
            field="corpus-id",
        )


def _iter_objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    source = str(path)
    with open_binary(path) as f:
        for line, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8-sig" if line == 1 else "utf-8"))
            except UnicodeDecodeError as exc:
                raise DataError(
                    f"invalid UTF-8: {raw[exc.start : exc.end]!r}",
                    path=source,
                    line=line,
                    hint="save the file as UTF-8",
                ) from None
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"malformed JSON: {exc.msg} (column {exc.colno})", path=source, line=line
                ) from None
            if not isinstance(obj, dict):
                raise DataError("expected a JSON object", path=source, line=line)
            yield line, obj


def _id(obj: Mapping[str, Any], path: Path, line: int) -> str:
    value = obj.get("_id")
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value) == "":
        raise DataError(
            "missing or invalid id",
            path=str(path),
            line=line,
            field="_id",
            hint='every line needs a non-empty "_id" string',
        )
    return _readable(str(value), "_id", path, line)


def _str_field(obj: Mapping[str, Any], name: str, path: Path, line: int, *, required: bool) -> str:
    value = obj.get(name)
    if value is None:
        if required:
            raise DataError("missing field", path=str(path), line=line, field=name)
        return ""
    if not isinstance(value, str):
        raise DataError(
            f"expected text, got {type(value).__name__}", path=str(path), line=line, field=name
        )
    return _readable(value, name, path, line)


def _readable(value: str, name: str, path: Path, line: int) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise DataError(problem.message, path=str(path), line=line, field=name, hint=problem.hint)
    return value


def _score(raw: str, source: str, line: int) -> int:
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value.is_integer():
        raise DataError(
            f"score {raw!r} is not an integer",
            path=source,
            line=line,
            field="score",
            hint="qrels scores are graded relevance: 0, 1, 2...",
        )
    return int(value)
