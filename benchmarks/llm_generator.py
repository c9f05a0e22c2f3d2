"""What the LLM generator's own machinery costs: cache appends, cache loads, concurrency.

Three measurements, none of which needs a real LLM (the model's speed is the server's business):

1. **append**: one answer appended to the cache (one ``write`` + ``fsync``), median and p99 over
   ``--appends`` answers, on the folder given (the disk the cache will live on matters);
2. **load**: reading a cache of ``--entries`` answers back (what a resumed run pays first);
3. **concurrency**: chunks per second through :class:`~ragtune.pseudo.llm.LlmGenerator` against
   the local stand-in server of the tests, which answers after ``--latency-s`` seconds, for each
   ``--concurrency`` value: how close the bounded thread pool gets to ``concurrency / latency``.

Run (about 30 seconds on 2 CPU cores):

    python benchmarks/llm_generator.py --dir /tmp --out benchmarks/results/llm_generator.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the stand-in server lives with the tests

from benchmarks.common import console, machine_report, print_machine, table, write_json  # noqa: E402


def bench_append(folder: Path, appends: int) -> dict[str, Any]:
    from ragtune.pseudo.llm_cache import LlmCache, cache_key

    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        cache = LlmCache(Path(tmp) / "cache.jsonl")
        questions = ["How is the retry delay chosen after a 429 answer?"] * 3
        cache.put("warm-up", questions)
        times = []
        for i in range(appends):
            start = time.perf_counter()
            cache.put(cache_key("m", 1, str(i), 3), questions)
            times.append(time.perf_counter() - start)
        cache.close()
    times.sort()
    return {
        "appends": appends,
        "median_ms": 1000 * times[len(times) // 2],
        "p99_ms": 1000 * times[int(len(times) * 0.99)],
    }


def bench_load(entries: int) -> dict[str, Any]:
    from ragtune.pseudo.llm_cache import LlmCache, cache_key

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cache.jsonl"
        header = '{"format": "ragtune-llm-cache", "version": 1}\n'
        q = '["How is the retry delay chosen after a 429 answer?", "What does backoff_s set?"]'
        lines = [
            f'{{"key": "{cache_key("m", 1, str(i), 3)}", "questions": {q}}}\n'
            for i in range(entries)
        ]
        path.write_text(header + "".join(lines), encoding="utf-8")
        start = time.perf_counter()
        cache = LlmCache(path)
        seconds = time.perf_counter() - start
        assert len(cache) == entries
        return {"entries": entries, "mb": path.stat().st_size / 1e6, "load_s": seconds}


def bench_concurrency(chunks: int, latency_s: float, levels: list[int]) -> list[dict[str, Any]]:
    from ragtune.pseudo.llm import LlmConfig, LlmGenerator
    from ragtune.search.chunking import Chunk
    from tests.pseudo.llm_standin import StandIn

    rows = []
    items = [
        Chunk(f"f{i}.md", 1, 5, f"Topic {i} explains retries, case {i}.") for i in range(chunks)
    ]
    for level in levels:
        with StandIn() as server:
            server.delay_s = latency_s
            config = LlmConfig(url=server.url, model="stand-in", concurrency=level)
            gen = LlmGenerator(config, progress=False)
            start = time.perf_counter()
            pairs = list(gen.generate(items))
            seconds = time.perf_counter() - start
            rows.append(
                {
                    "concurrency": level,
                    "chunks": chunks,
                    "pairs": len(pairs),
                    "seconds": seconds,
                    "chunks_per_s": chunks / seconds,
                    "ideal_chunks_per_s": level / latency_s,
                    "max_in_flight": server.max_in_flight,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--appends", type=int, default=500)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--chunks", type=int, default=64)
    parser.add_argument("--latency-s", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/llm_generator.json")
    args = parser.parse_args()

    machine = machine_report(gemm=False)
    print_machine(machine)
    append = bench_append(args.dir, args.appends)
    load = bench_load(args.entries)
    rows = bench_concurrency(args.chunks, args.latency_s, args.concurrency)
    console.print(
        table(
            "LLM cache",
            ["measure", "value"],
            [
                ["append + fsync, median (ms)", append["median_ms"]],
                ["append + fsync, p99 (ms)", append["p99_ms"]],
                [f"load {load['entries']:,} answers ({load['mb']:.1f} MB), s", load["load_s"]],
            ],
        )
    )
    columns = ["concurrency", "chunks_per_s", "ideal_chunks_per_s", "max_in_flight", "seconds"]
    console.print(
        table(
            f"generator, stand-in server answering after {args.latency_s} s",
            columns,
            [[r[c] for c in columns] for r in rows],
        )
    )
    write_json(
        args.out,
        {
            "machine": machine,
            "args": {
                k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "out"
            },
            "append": append,
            "load": load,
            "concurrency": rows,
        },
    )


if __name__ == "__main__":
    main()
