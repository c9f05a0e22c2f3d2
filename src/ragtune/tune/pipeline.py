"""``tune``: label-free fine-tuning of the base model on a folder (or a BEIR corpus).

Stages, each resumable (stages/stages.json) with atomic outputs under ``<out>/stages``:

1. ``chunks``: chunk the folder as ``ragtune index`` does (chunks.jsonl), on every run: the
   stages after it are keyed by what was read, so an edited folder redoes them; an output folder
   inside the input is left out of it; the user's questions are matched to the chunks here;
2. ``queries:<generator>``: pseudo-queries of each generator (queries-<name>.jsonl);
3. ``filter``: round-trip consistency with the base BM25+dense fusion (filtered.jsonl);
4. ``split``: by file into train/dev/test, capped by seeded samples (splits.json);
5. ``mine``: one hard negative per training pair, false negatives filtered (mined.jsonl);
6. ``plan`` and ``train``: as many steps as the budget leaves (:mod:`ragtune.tune.budget`), on
   the queries the base model ranks worst when that is less than an epoch
   (:mod:`ragtune.tune.selection`), then the public :func:`ragtune.train.train` with the dev set
   gating (``<out>/model``); a run killed mid-training resumes, a run with other examples,
   settings or dev questions trains afresh (``train:started`` records which);
7. ``report``: base vs tuned vs BM25 on the held-out pseudo-queries, per generator, and on the
   user's questions split into dev and test (:mod:`ragtune.tune.question_split`); counts per
   generator and filter (``<out>/tune.md``, ``tune.png``, ``tune.json``; ``<out>/report``: the
   held-out queries one by one);
8. ``index``: the folder indexed with the published model (``<out>/index``).

Every stage that encodes a chunk (the filter, the hard negatives, the training positives, the
evaluations) reads it as the index embeds it, behind its ``"<path>\n"`` header
(:func:`ragtune.tune.inputs.served`): the model is trained and measured on the texts it serves.

Why this order: the filter needs every chunk (a pseudo-query must find its chunk among all of
them), and the split comes after it so dev and test hold only pairs that passed, as training does.
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ragtune.config import load_config
from ragtune.data.schema import EvalSet, Example
from ragtune.errors import RagtuneError
from ragtune.evaluation.evaluate import EvalResult, evaluate_bm25, evaluate_encoder
from ragtune.evaluation.report import Report, compare
from ragtune.io import (
    artefact_kind,
    atomic_dir,
    atomic_write_json,
    check_output,
    claim_output,
    discard_own,
    write_marker,
)
from ragtune.model.encoder import Encoder
from ragtune.progress import console
from ragtune.pseudo.generators import Generator, GeneratorOptions, make_generator
from ragtune.pseudo.llm import NAME as LLM_NAME
from ragtune.pseudo.llm import LlmGenerator
from ragtune.pseudo.pairs import PseudoPair
from ragtune.pseudo.roundtrip import RoundTripConfig, round_trip_filter
from ragtune.pseudo.split import split_by_file
from ragtune.search.build import IndexConfig, build_index
from ragtune.search.chunking import Chunk
from ragtune.train import TrainConfig, train
from ragtune.train.config import parse_budget
from ragtune.train.probe import measure_throughput
from ragtune.train.recipe import step_cost
from ragtune.tune.budget import STEP_SAFETY, TrainingPlan, plan_training
from ragtune.tune.config import TuneConfig
from ragtune.tune.counts import code_files_without_pairs, example_queries, pair_counts
from ragtune.tune.evalsets import positive_id, pseudo_evalset, question_evalset, sample
from ragtune.tune.inputs import Question, load_chunks, read_questions, served, served_pairs
from ragtune.tune.negatives import example_from_json, mine_examples
from ragtune.tune.question_split import split_questions
from ragtune.tune.report import save_tune_report
from ragtune.tune.selection import Selection, distinct_queries, hardest_queries
from ragtune.tune.stages import Stages, read_jsonl, stage_key, write_jsonl

QUESTIONS_FOR_A_TEST = 40
"""With at least this many questions, half of them (by file) are a test set of their own."""


@dataclass
class TuneResult:
    output: Path
    report: Report
    improved: bool
    summary: dict[str, Any]
    serve_command: str


def run_tune(cfg: TuneConfig) -> TuneResult:
    """Run every stage into ``cfg.output``, reusing the stages an earlier run finished."""
    started = time.perf_counter()
    questions = read_questions(cfg.queries) if cfg.queries else []  # bad input fails first
    out = claim_output(cfg.output, "tune", overwrite=cfg.overwrite, sources=[cfg.input])
    for part, kind in (("model", "model"), ("index", "index"), ("report", "report")):
        check_output(out / part, kind)
    work, cache = out / "stages", out / "cache"
    work.mkdir(parents=True, exist_ok=True)
    write_marker(out, "tune", complete=False)
    stages = Stages(work)
    base = Encoder.load(cfg.model, max_seq_length=cfg.max_seq_length)

    console.rule("[bold]1. chunks")
    exclude = cfg.exclude + own_output(cfg.input, out)
    # Chunking is cheap (seconds) and always redone: the key is what was read, so an edited,
    # added or removed file redoes the stages after it, and an unchanged folder reuses them.
    loaded = load_chunks(cfg.input, base, exclude)
    rows = [asdict(c) for c in loaded.chunks]
    key = stage_key(rows, loaded.headers, cfg.model, cfg.max_seq_length, "served headers")
    if not stages.fresh("chunks", key, work / "chunks.jsonl"):
        write_jsonl(work / "chunks.jsonl", rows)
        atomic_write_json(
            work / "chunks.json",
            {
                "files": loaded.files,
                "skipped": dict(loaded.skipped),
                "folder": loaded.is_folder,
                "headers": loaded.headers,
            },
        )
        stages.finish("chunks", key)
    chunks = [Chunk(**r) for r in read_jsonl(work / "chunks.jsonl")]
    meta = _read_json(work / "chunks.json")
    console.print(f"{len(chunks)} chunks from {meta['files']} files (skipped {meta['skipped']})")
    if not chunks:
        raise_empty(cfg.input)
    # what the index embeds: every stage that encodes a chunk reads it behind its path header
    headers: dict[str, str] = meta.get("headers", {})
    docs = served(chunks, headers)

    # The user's questions: dev decides publishing, test (when there are enough) is reported.
    # Matched to the chunks now, so a wrong path fails before minutes of work, not after them.
    qsplit = split_questions(questions, cfg.seed, min_questions=QUESTIONS_FOR_A_TEST)
    q_dev = question_evalset(qsplit.dev, docs, "questions (dev)") if qsplit.dev else None
    q_test = question_evalset(qsplit.test, docs, "questions (test)") if qsplit.test else None
    unmatched = check_questions(cfg, qsplit.dev + qsplit.test, q_dev, q_test, chunks)

    console.rule("[bold]2. pseudo-queries")
    generated: dict[str, dict[str, Any]] = {}
    pairs: list[PseudoPair] = []
    for name in cfg.generators:
        gkey = stage_key(key, name, cfg.seed, cfg.max_per_chunk, _llm_key(cfg, name))
        path = work / f"queries-{name}.jsonl"
        if not stages.fresh(f"queries:{name}", gkey, path):
            gen = _generator(cfg, name, work)
            made = list(gen.generate(chunks))
            write_jsonl(path, [p.to_json() for p in made])
            info: dict[str, Any] = {"skipped": dict(gen.skipped)}
            if isinstance(gen, LlmGenerator):
                info["llm"] = gen.stats.to_json()
            atomic_write_json(work / f"queries-{name}.json", info)
            if isinstance(gen, LlmGenerator) and gen.stats.failures:
                # not recorded as done: a rerun asks again for the chunks that failed (the
                # answers it has are in the cache, so it sends only those)
                console.print(
                    f"[yellow]{gen.stats.failures} chunks got no answer from the LLM; "
                    "run again to ask for them"
                )
            else:
                stages.finish(f"queries:{name}", gkey)
        made = [PseudoPair.from_json(r) for r in read_jsonl(path)]
        generated[name] = {
            "pairs": len(made),
            **_read_json(work / f"queries-{name}.json"),
            "examples": example_queries(made),
        }
        pairs.extend(made)
        console.print(f"{name:<11} {len(made):>7} pairs")
    made_by = Counter(p.generator for p in pairs)
    pairs = _dedupe(pairs)
    duplicates = made_by - Counter(p.generator for p in pairs)

    console.rule("[bold]3. round-trip filter")
    fkey = stage_key(
        key, [stages.done.get(f"queries:{n}") for n in cfg.generators], cfg.round_trip_k
    )
    if not stages.fresh("filter", fkey, work / "filtered.jsonl", work / "dense-ranks.jsonl"):
        trip = round_trip_filter(
            pairs, docs, base, RoundTripConfig(k=cfg.round_trip_k), cache_dir=cache
        )
        write_jsonl(work / "filtered.jsonl", [p.to_json() for p in trip.kept])
        write_jsonl(  # every pair's: the selection looks up only the training pairs
            work / "dense-ranks.jsonl",
            [
                {"query": p.query, "chunk_id": p.chunk_id, "rank": r}
                for p, r in zip(pairs, trip.dense_ranks, strict=True)
            ],
        )
        atomic_write_json(
            work / "filter.json",
            {
                "removed": dict(trip.removed),
                "before": len(pairs),
                "docs_per_second": trip.docs_per_second,
            },
        )
        stages.finish("filter", fkey)
    kept = [PseudoPair.from_json(r) for r in read_jsonl(work / "filtered.jsonl")]
    removed = _read_json(work / "filter.json")["removed"]
    console.print(f"kept {len(kept)} of {len(pairs)} pairs; removed by generator: {removed}")

    console.rule("[bold]4. split by file")
    skey = stage_key(fkey, cfg.fractions, cfg.seed, cfg.max_pairs, cfg.max_eval_queries)
    if not stages.fresh("split", skey, work / "splits.json"):
        splits = split_by_file(kept, cfg.fractions, cfg.seed)
        atomic_write_json(
            work / "splits.json",
            {
                "train": [p.to_json() for p in sample(splits.train, cfg.max_pairs, cfg.seed)],
                "dev": [p.to_json() for p in sample(splits.dev, cfg.max_eval_queries, cfg.seed)],
                "test": [p.to_json() for p in sample(splits.test, cfg.max_eval_queries, cfg.seed)],
                "files": splits.files,
            },
        )
        stages.finish("split", skey)
    saved = _read_json(work / "splits.json")
    split = {s: [PseudoPair.from_json(r) for r in saved[s]] for s in ("train", "dev", "test")}
    files: dict[str, str] = saved["files"]
    if not split["train"]:
        raise RagtuneError(f"{cfg.input}: no pseudo-query passed the filter; nothing to train on")
    needed = ["test"] if q_dev is not None else ["dev", "test"]
    if any(not split[s] for s in needed):
        sources = len({p.path for p in kept})
        what = "files" if meta["folder"] else "records"
        raise RagtuneError(
            f"{cfg.input}: the pseudo-queries that passed the filter come from {sources} "
            f"{what}; splitting them by file into train, dev and test needs at least "
            f"{len(needed) + 1} (nothing was trained)"
        )
    paths = {s: {p for p, v in files.items() if v == s} for s in ("train", "dev", "test")}
    console.print(", ".join(f"{s} {len(split[s])} pairs / {len(paths[s])} files" for s in split))

    console.rule("[bold]5. hard negatives")
    mkey = stage_key(skey, cfg.negatives, cfg.relative_margin)
    if not stages.fresh("mine", mkey, work / "mined.jsonl", work / "mine.json"):
        train_pairs = served_pairs(split["train"], headers)
        examples = mine_examples(cfg, train_pairs, docs, paths["train"], base, cache)
        write_jsonl(work / "mined.jsonl", [asdict(e) for e in examples])
        atomic_write_json(work / "mine.json", {"pairs": len(train_pairs)})
        stages.finish("mine", mkey)
    examples = [example_from_json(r) for r in read_jsonl(work / "mined.jsonl")]
    mined_from = int(_read_json(work / "mine.json")["pairs"])
    mining = {
        "pairs": mined_from,
        "examples": len(examples),
        "with_negative": sum(bool(e.negatives) for e in examples),
        # more than half found a negative: those that found none are left out of training
        "left_out_without_negative": max(mined_from - len(examples), 0),
    }
    console.print(
        f"{len(examples)} training examples, {mining['with_negative']} with a hard negative"
        + (
            f"; {mining['left_out_without_negative']} pairs without one left out"
            if mining["left_out_without_negative"]
            else ""
        )
    )

    # the user's questions decide; else pseudo-queries, whose strata are their generators: the
    # gate then asks for a gain on every generator's queries (train/gate.py)
    dev = (
        q_dev
        if q_dev is not None and q_dev.queries
        else _pseudo(split["dev"], docs, headers, "dev", paths["dev"])
    )

    console.rule("[bold]6. training")
    tcfg = load_config(
        TrainConfig,
        None,
        (),
        model=cfg.model,
        output=str(out / "model"),
        batch_size=cfg.batch_size,
        epochs=cfg.epochs,
        learning_rate=cfg.learning_rate,
        seed=cfg.seed,
        max_seq_length=cfg.max_seq_length,
        budget=cfg.budget,
        save_steps=cfg.save_steps,
        log_steps=10,
        recipe=cfg.recipe,
        attention_dropout=None if cfg.dropout else 0.0,
        hidden_dropout=None if cfg.dropout else 0.0,
        resume=cfg.recipe == "fixed",  # an auto search cannot resume (train/auto.py)
    )
    test = _pseudo(split["test"], docs, headers, "held-out pseudo-queries", paths["test"])
    plan: TrainingPlan | None = None
    selection: Selection | None = None
    if cfg.recipe == "fixed":  # auto's search keeps to the budget itself (train/auto.py)
        pkey = stage_key(
            mkey, cfg.batch_size, cfg.epochs, cfg.budget, len(dev.queries), cfg.dropout
        )
        if stages.fresh("plan", pkey, work / "plan.json"):
            plan = TrainingPlan.from_json(_read_json(work / "plan.json"))
        else:
            indexed = len(chunks) if meta["folder"] and cfg.index else 0
            encoded = _read_json(work / "filter.json").get("docs_per_second")
            plan = _plan(cfg, tcfg, base, examples, dev, test, indexed, started, encoded)
            atomic_write_json(work / "plan.json", plan.to_json())
            stages.finish("plan", pkey)
        console.print(plan.describe())
        if plan.shortened:
            tcfg = replace(tcfg, max_steps=plan.max_steps)
            ranks = {
                (r["query"], r["chunk_id"]): int(r["rank"])
                for r in read_jsonl(work / "dense-ranks.jsonl")
            }
            selection = hardest_queries(
                examples, ranks, queries=plan.max_steps * cfg.batch_size, seed=cfg.seed
            )
            examples = selection.examples
            console.print(selection.describe())
    tkey = stage_key(
        mkey,
        "hardest-first",
        cfg.recipe,
        cfg.dropout,
        cfg.batch_size,
        cfg.epochs,
        cfg.learning_rate,
        cfg.budget,
        tcfg.max_steps,
        [asdict(q) for q in qsplit.dev],
    )
    model_dir = out / "model"
    if stages.fresh("train", tkey) and artefact_kind(model_dir) == "model":
        training: dict[str, Any] = _read_json(work / "train.json")
    else:
        # A run killed mid-training resumes from its checkpoints; a run with other examples,
        # settings or dev set starts afresh: its model folder (this command's own, checked
        # above) is replaced, not refused as a different run.
        if stages.done.get("train:started") != tkey and os.path.lexists(model_dir):
            discard_own(model_dir)
        stages.finish("train:started", tkey)
        trained = train(tcfg, examples=examples, dev=dev)
        training = {
            "steps": trained.steps,
            "seconds": round(trained.seconds, 1),
            "dev_base": trained.base_score,
            "dev_best": trained.best_score,
            "improved": trained.improved,
            "improvement": trained.improvement,
            "gate": trained.gate.reason if trained.gate is not None else None,
            "gate_strata": [{**asdict(st), "verdict": st.verdict} for st in trained.gate.strata]
            if trained.gate
            else [],
            "plan": plan.to_json() if plan is not None else None,
            "selection": selection.to_json() if selection is not None else None,
        }
        atomic_write_json(work / "train.json", training)
        stages.finish("train", tkey)

    console.rule("[bold]7. report")
    tuned = Encoder.load(model_dir, max_seq_length=cfg.max_seq_length)
    systems = _systems(test, base, tuned, cache)
    report = compare(systems, test, baseline="base", candidate="tuned")
    per_generator = {}
    for name in cfg.generators:
        if any(p.generator == name for p in split["test"]):
            sub = _subset(test, name)
            per_generator[name] = {
                "queries": len(sub.queries),
                **{
                    r.system: round(r.metrics["nDCG@10"], 4)
                    for r in _systems(sub, base, tuned, cache)
                },
            }
    on_questions: dict[str, Any] = {}
    if questions:
        on_questions = {
            "split_by": qsplit.by,
            "dev_questions": len(qsplit.dev),
            "test_questions": len(qsplit.test),
            "unmatched": unmatched,
            "note": (
                "dev decided publishing; test was used for nothing else"
                if q_test is not None
                else f"fewer than {QUESTIONS_FOR_A_TEST} questions: all are dev (they decided "
                "publishing); the test is the held-out pseudo-queries"
            ),
        }
        for part, evalset in (("dev", q_dev), ("test", q_test)):
            if evalset is not None:
                on_questions[part] = {
                    r.system: r.metrics for r in _systems(evalset, base, tuned, cache)
                }

    index_dir = out / "index"
    serve = ""
    if meta["folder"] and cfg.index:
        console.rule("[bold]8. index")
        build_index(
            cfg.input,
            tuned,
            index_dir,
            IndexConfig(exclude=exclude),
            model_ref=str(model_dir.resolve()),
        )
        serve = f"ragtune serve {index_dir}"
    improved = bool(training.get("improved"))
    summary = {
        "seconds": round(time.perf_counter() - started, 1),
        "input": {
            "chunks": len(chunks),
            "files": meta["files"],
            "skipped": meta["skipped"],
            "code_files_without_pairs": code_files_without_pairs(chunks, pairs),
        },
        "generators": generated,
        "counts": pair_counts(cfg.generators, made_by, duplicates, removed, kept, split),
        "round_trip": {
            "k": cfg.round_trip_k,
            "before": len(pairs),
            "kept": len(kept),
            "removed": removed,
        },
        "splits": {s: {"pairs": len(split[s]), "files": len(paths[s])} for s in split},
        "mining": mining,
        "training": training,
        "test": {r.system: r.metrics for r in systems},
        "per_generator": per_generator,
        "questions": on_questions,
        "reused_stages": stages.reused,
        "config": asdict(cfg),
    }
    with atomic_dir(out / "report", "report", marker=False) as folder:
        report.save(folder)  # the held-out pseudo-queries: report.md, metrics.png, per query
    console.print(report.table())
    save_tune_report(out, summary)  # the whole run: tune.md, tune.png, beside tune.json
    atomic_write_json(out / "tune.json", summary)
    write_marker(out, "tune")
    return TuneResult(out, report, improved, summary, serve)


def _plan(
    cfg: TuneConfig,
    tcfg: TrainConfig,
    base: Encoder,
    examples: list[Example],
    dev: EvalSet,
    test: EvalSet,
    indexed: int,
    started: float,
    encoded: float | None = None,
) -> TrainingPlan:
    """Measure this machine on these examples (~15 s) and fit training into what the budget has
    left (tune/budget.py). ``encoded``: the docs/s the round-trip filter measured over every
    chunk, which plans the documents encoded after training; the probe's speed plans the queries.

    Why: the probe times one forward of a few dozen training texts, short queries among them, and
    two runs on the same machine measured speeds that planned a 533 s and a 435 s reserve for the
    same work (about 540 s were needed: the second run ended 56 s past its budget); the filter's
    figure is the folder's own chunks, all of them.
    """
    speed = measure_throughput(base, examples, tcfg)
    negatives = max((len(e.negatives) for e in examples), default=0)
    cost = step_cost(tcfg.loss.cache_mini_batch_size, negatives)
    # the base before training, the trained model at the end, each other mix after it
    # (train/finish.py: the mix a = 1 is the trained model, its scores reused)
    evals = 2 + len(set(tcfg.mix_grid) - {1.0})
    # the report's base evaluation reads the filter's vectors of the test chunks (model/corpus.py)
    docs_after = evals * len(dev.corpus) + len(test.corpus) + indexed
    queries_after = evals * len(dev.queries) + 2 * len(test.queries)
    probed = max(speed.texts_per_second, 1e-9)
    encode_seconds = docs_after / (encoded or probed) + queries_after / probed
    return plan_training(
        budget=parse_budget(cfg.budget),
        spent=time.perf_counter() - started,
        full_steps=cfg.epochs * math.ceil(distinct_queries(examples) / cfg.batch_size),
        step_seconds=speed.step_seconds(cfg.batch_size, cost) * STEP_SAFETY,
        encode_seconds=encode_seconds,
    )


def _generator(cfg: TuneConfig, name: str, work: Path) -> Generator:
    """The generator ``name``; the LLM's answers are cached beside the stages (resumable)."""
    if name == LLM_NAME:
        cache = Path(cfg.llm_cache) if cfg.llm_cache else work / "llm-cache.jsonl"
        return LlmGenerator(cfg.llm_config(), cache=cache)
    return make_generator(name, GeneratorOptions(cfg.seed, cfg.max_per_chunk))


def _llm_key(cfg: TuneConfig, name: str) -> list[Any]:
    # the endpoint's address is not part of the key: the same model elsewhere answers the same
    return [cfg.llm_model, cfg.llm_questions] if name == LLM_NAME else []


def own_output(source: str, out: Path) -> tuple[str, ...]:
    """The exclude pattern of ``out`` when it lies inside the folder ``source`` (``tune . --out
    runs/x``): the run's own model, stages and report are not the user's documents."""
    root = Path(source).expanduser().resolve()
    if not root.is_dir():
        return ()
    try:
        inside = out.resolve().relative_to(root)
    except ValueError:
        return ()
    return (f"/{inside.as_posix()}/",)


def check_questions(
    cfg: TuneConfig,
    questions: list[Question],
    dev: EvalSet | None,
    test: EvalSet | None,
    chunks: list[Chunk],
) -> int:
    """The number of questions whose path has no chunk (named in a warning); refuse a run in
    which the dev or the test questions would all be unscored."""
    if not questions:
        return 0
    spans: dict[str, list[tuple[int, int]]] = {}
    for c in chunks:
        spans.setdefault(c.path, []).append((c.start_line, c.end_line))

    def found(q: Question) -> bool:  # as question_evalset matches: the file, or a chunk's line
        return q.path in spans and (q.line == 0 or any(a <= q.line <= b for a, b in spans[q.path]))

    missing = sorted(
        {f"{q.path}:{q.line}" if q.line else q.path for q in questions if not found(q)}
    )
    shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    for part, evalset in (("dev", dev), ("test", test)):
        if evalset is not None and not evalset.queries:
            raise RagtuneError(
                f"{cfg.queries}: no {part} question names a file (or line) of {cfg.input} with "
                f"a chunk; not found: {shown}"
            )
    unmatched = len(questions) - len(dev.queries if dev else {}) - len(test.queries if test else {})
    if unmatched:
        console.print(
            f"[yellow]{unmatched} questions name a path or line with no chunk, not scored: {shown}",
            soft_wrap=True,
        )
    return unmatched


def raise_empty(source: str) -> None:
    raise RagtuneError(f"{source}: no text to chunk (no readable text files or records)")


def _systems(evalset: EvalSet, base: Encoder, tuned: Encoder, cache: Path) -> list[EvalResult]:
    return [
        evaluate_bm25(evalset, name="BM25"),
        evaluate_encoder(base, evalset, name="base", cache_dir=cache),
        evaluate_encoder(tuned, evalset, name="tuned", cache_dir=cache),
    ]


def _pseudo(
    pairs: list[PseudoPair],
    docs: list[Chunk],
    headers: dict[str, str],
    name: str,
    paths: set[str],
) -> EvalSet:
    """The pairs as an evaluation set over the chunks ``docs`` as served (behind their headers)."""
    return pseudo_evalset(served_pairs(pairs, headers), docs, name, paths)


def _subset(test: EvalSet, generator: str) -> EvalSet:
    """The test set's queries of one generator, over the same corpus."""
    keep = {q for q, g in test.strata.items() if g == generator}
    return EvalSet(
        {q: t for q, t in test.queries.items() if q in keep},
        test.corpus,
        {q: r for q, r in test.qrels.items() if q in keep},
        name=generator,
        unjudged={q: d for q, d in test.unjudged.items() if q in keep},
    )


def _dedupe(pairs: list[PseudoPair]) -> list[PseudoPair]:
    seen: set[tuple[str, str]] = set()
    out = []
    for p in pairs:
        key = (" ".join(p.query.lower().split()), positive_id(p))
        if key not in seen and p.query.strip():
            seen.add(key)
            out.append(p)
    return out


def _read_json(path: Path) -> Any:
    import json

    return json.loads(path.read_text(encoding="utf-8"))


__all__ = ["TuneResult", "run_tune"]
