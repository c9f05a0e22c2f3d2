"""The candidates of ``recipe: auto``: what to try, from the data's size, the machine and a budget.

:func:`plan_search` is a pure function: given the data's shape (:class:`DataShape`), a measured
throughput (:class:`Throughput`) and a time budget in seconds, it returns a :class:`SearchPlan`:
the candidates (batch size, GradCache mini-batch, learning rate, epochs), the successive-halving
rungs they are compared at, and the estimated time. Settings the user gave explicitly are held
fixed (``fixed``); everything else is searched. :mod:`ragtune.train.auto` runs the plan.

Why these candidates (BENCHMARKS.md section 6, SciFact, all-MiniLM-L6-v2, chosen on dev):

- **Batch size matters most.** In-batch InfoNCE sees ``B - 1`` negatives per query: batch 32 / 3
  epochs reached dev 0.876 / test 0.677, batch 128 0.889 / 0.699, batch 256 0.911 / 0.724. Large
  batches run through GradCache (Gao et al., "Scaling Deep Contrastive Learning Batch Size under
  Memory Limited Setup", RepL4NLP 2021) in mini-batches of 32 on CPU, so memory stays that of
  batch 32 (BENCHMARKS.md 5). The batch is capped at half the training queries: an epoch keeps
  at least two steps, and a batch never holds most of the data's queries (in-batch negatives
  from a small pool repeat every step).
- **The learning rate scales with the square root of the batch** (the rule for Adam of Malladi
  et al., "On the SDEs and Scaling Rules for Adaptive Gradient Algorithms", NeurIPS 2022), from
  2e-5 at batch 32 (the model's own fine-tuning rate), at 1x and 2x: batch 256 gets 5.7e-5 and
  1.1e-4, bracketing section 6's best 1e-4.
- **Epochs: up to 5**, the most section 6 measured (5 beat 3 and 1); fewer when the budget says
  so, since a candidate trained to its planned end is what gets published.
- **One candidate with mined hard negatives** when the data have none, the loss is InfoNCE and
  the budget also fits the mining: the first-preferred batch size and learning rate, with one
  dense-mined negative per query from ranks 10-99 of the training positives, minus those the
  false-negative filter (score above 0.95 x the positive's, NV-Retriever's TopK-PercPos) flags
  (:mod:`ragtune.mining`). Why only one: in section 6 one mined negative per pair at batch 32
  reached dev 0.858, below the large in-batch candidates, so it is a dimension worth one slot,
  not a grid; its mining (an encoding of the positives and queries) is counted in the budget.
- **A floor of 3 epochs**: when no search of two candidates fits at 3 or more epochs but one
  candidate does, that one trains rather than a search of shorter runs (section 6: 1 epoch was
  clearly worse than 3 and 5 at every batch size).
- **The plan is made twice.** The first plan rests on a probe of a few steps
  (``auto.measure_throughput``), which a loaded machine can make pessimistic or optimistic; after
  the first rung, :func:`replan_epochs` re-plans the survivors' length from the measured wall
  time of their real steps and the budget left, so a bad probe cannot fix the epochs of the
  whole search.

Successive halving (Jamieson & Talwalkar, AISTATS 2016; Li et al., "Hyperband", JMLR 2018): all
candidates train to the first rung, the better half (by dev score) continues to the next, and so
on; each candidate's schedule is planned for its full length, so a survivor continues exactly
where it stopped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ragtune.train.config import TrainConfig

BATCH_LADDER = (32, 64, 128, 256, 512)
"""Batch sizes the search considers (capped by the data)."""
BASE_LR = 2e-5
"""The learning rate at batch 32; larger batches get ``BASE_LR * sqrt(B / 32)`` (x1, x2)."""
LR_MULTIPLIERS = (2.0, 1.0)
MAX_EPOCHS = 5
MIN_EPOCHS = 3
"""A candidate that fits the budget at this many epochs or more is not planned shorter."""
MINED_NEGATIVES = 1
"""Hard negatives per query of the mined candidate."""
CPU_CACHE_MINI_BATCH = 32
"""GradCache rows per encoder pass on CPU (batch-32 memory; BENCHMARKS.md 5)."""
GPU_CACHE_MINI_BATCH = 128
GRADCACHE_COST = 4 / 3
"""GradCache's time per pair against a plain step: one extra no-grad forward (~1/3 of a step)."""


def step_cost(cache_mini_batch_size: int, hard_negatives: int) -> float:
    """Time per pair against a plain in-batch step: GradCache's extra forward, and a third text
    per hard negative (a row of query, positive and one negative encodes 3 texts)."""
    cache = GRADCACHE_COST if cache_mini_batch_size else 1.0
    return cache * (1 + hard_negatives / 2)


WIDTHS = (6, 4, 3, 2)
"""How many candidates a search starts with, widest first."""
MIN_RUNG_EPOCHS = 1.0
"""Every candidate trains at least this many epochs before the first comparison.

Why: an early rung favours what makes fast early progress over what ends best (the short-horizon
bias of Wu et al., ICLR 2018), and here that is the small batch: at a quarter of 3 epochs on
SciFact, batch 32 had taken 16 optimizer steps and batch 256 two, still in its warm-up; dev
0.860 against 0.854 sent batch 32 on, and it was published, although batch 256 trained to the
end is the better model (BENCHMARKS.md section 6: test 0.724 against 0.677). Hyperband's minimum
resource (Li et al., JMLR 2018) is this floor: a search whose first rung would come sooner is
narrowed (fewer rungs) or, when even two candidates do not fit, replaced by one longer run."""
SEARCHED = (
    "batch_size",
    "learning_rate",
    "epochs",
    "loss.cache_mini_batch_size",
    "num_negatives",
)
"""The settings the search chooses; each one the user gave stays fixed."""


@dataclass(frozen=True)
class DataShape:
    """What the plan needs to know about the data."""

    train_queries: int
    """Distinct training queries (an epoch passes over them once with ``group_by_query``)."""
    train_examples: int
    dev_queries: int = 0
    """0: no dev set, nothing can be compared."""
    dev_corpus: int = 0
    """Documents a dev evaluation encodes."""
    mining_corpus: int = 0
    """Documents a mined candidate's mining encodes (the distinct training positives); 0: no
    mined candidate (the data have negatives, the loss takes none or the user set them)."""

    @property
    def epoch_pairs(self) -> int:
        """Pairs one epoch trains on (one per query and epoch)."""
        return max(1, self.train_queries)


@dataclass(frozen=True)
class Throughput:
    """Measured speed of this machine on this data (see ``auto.measure_throughput``)."""

    pairs_per_second: float
    """Plain training steps (no GradCache), at the data's text lengths."""
    texts_per_second: float
    """No-grad encoding (what a dev evaluation does)."""

    def step_seconds(self, pairs: float, cost: float = 1.0) -> float:
        """Training time of ``pairs`` at ``cost`` times a plain pair's (:attr:`Candidate.cost`)."""
        return pairs / self.pairs_per_second * cost

    def eval_seconds(self, shape: DataShape) -> float:
        return (shape.dev_corpus + shape.dev_queries) / self.texts_per_second

    def mining_seconds(self, shape: DataShape) -> float:
        """Encoding the mining corpus and the training queries (the retrieval itself is cheap)."""
        if not shape.mining_corpus:
            return 0.0
        return (shape.mining_corpus + shape.train_queries) / self.texts_per_second


def measured_throughput(
    runs: Sequence[tuple[Candidate, int, float]],
    evals: int,
    eval_seconds: float,
    shape: DataShape,
    fallback: Throughput,
) -> Throughput:
    """Throughput from real training: ``(candidate, steps, seconds)`` per run, and the dev
    evaluations' count and time; ``fallback``'s figure where nothing was measured.

    Each run's pairs are weighted by the candidate's :attr:`~Candidate.cost`, so the result is in
    plain pairs per second like the probe's, and includes what the probe leaves out (batching,
    GradCache's extra pass, optimizer steps, the checkpoint at the rung).
    """
    pairs = sum(steps * c.batch_size * c.cost for c, steps, _ in runs)
    seconds = sum(s for _, _, s in runs)
    pps = pairs / seconds if pairs and seconds > 0 else fallback.pairs_per_second
    texts = evals * (shape.dev_corpus + shape.dev_queries)
    tps = texts / eval_seconds if texts and eval_seconds > 0 else fallback.texts_per_second
    return Throughput(pps, tps)


@dataclass(frozen=True)
class Candidate:
    """One setting of the searched fields; ``settings`` is what it changes in the config."""

    name: str
    batch_size: int
    learning_rate: float
    epochs: int
    cache_mini_batch_size: int = 0
    hard_negatives: int = 0
    """Mined hard negatives per query (0: in-batch negatives only, or the data's own)."""

    def config(self, cfg: TrainConfig, **changes: Any) -> TrainConfig:
        """``cfg`` with this candidate's settings (and ``changes``), as a fixed recipe."""
        loss = replace(cfg.loss, cache_mini_batch_size=self.cache_mini_batch_size)
        if self.hard_negatives:
            changes = {"num_negatives": self.hard_negatives, **changes}
        return replace(
            cfg,
            recipe="fixed",
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            epochs=self.epochs,
            loss=loss,
            **changes,
        )

    @property
    def cost(self) -> float:
        """Time per pair against a plain in-batch step (:func:`step_cost`)."""
        return step_cost(self.cache_mini_batch_size, self.hard_negatives)

    def with_epochs(self, epochs: int) -> Candidate:
        """The same candidate planned for ``epochs`` (its name says the new length)."""
        name = self.name.replace(f"-{self.epochs}ep", f"-{epochs}ep")
        return replace(self, name=name, epochs=epochs)

    def mined(self, negatives: int = MINED_NEGATIVES) -> Candidate:
        """The same settings trained with ``negatives`` mined hard negatives per query."""
        return replace(self, name=f"{self.name}-mined{negatives}", hard_negatives=negatives)

    def steps(self, epoch_pairs: int) -> int:
        """Optimizer steps of the whole planned run (batches of at least half a batch)."""
        full, rest = divmod(epoch_pairs, self.batch_size)
        per_epoch = max(1, full + (rest * 2 >= self.batch_size))
        return per_epoch * self.epochs


@dataclass
class SearchPlan:
    """What the search will do: candidates, rungs (fractions of each run) and the estimate."""

    candidates: list[Candidate]
    rungs: list[float]
    """Fractions of each candidate's planned steps at which the survivors are compared."""
    estimated_seconds: float
    budget_seconds: float
    reason: str = ""
    """Why the plan is what it is (why a single candidate, what the budget cut)."""
    fixed: dict[str, Any] = field(default_factory=dict)
    mining_seconds: float = 0.0
    """Estimated mining time of the mined candidate (0: none planned)."""

    def without_mined(self, why: str) -> SearchPlan:
        """This plan less its mined candidate (mining failed), with ``why`` in the reason."""
        kept = [c for c in self.candidates if not c.hard_negatives]
        reason = "; ".join(r for r in (self.reason, why) if r)
        return replace(
            self, candidates=kept, rungs=halving_rungs(len(kept)), reason=reason, mining_seconds=0
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidates": [asdict(c) for c in self.candidates],
            "rungs": self.rungs,
            "estimated_seconds": round(self.estimated_seconds, 1),
            "budget_seconds": self.budget_seconds,
            "reason": self.reason,
            "fixed": self.fixed,
            "mining_seconds": round(self.mining_seconds, 1),
        }


def auto_dev_queries(queries: int) -> int:
    """How many training queries ``recipe: auto`` holds out as dev set (0: none).

    Why 15% with at least 100 (or a quarter of small data) and at most 500: the dev set both
    chooses among candidates and feeds the significance gate. The per-query nDCG@10 difference of
    two models has a standard deviation of about 0.3 on SciFact, so its mean over n queries has a
    standard error of ~0.3 / sqrt(n): 0.047 at the fixed recipe's 5% (40 SciFact queries), 0.027
    at 121, 0.013 at 500. Below 80 training queries nothing is held out (too little to compare
    with and still train on).
    """
    if queries < 80:
        return 0
    n = round(0.15 * queries)
    return int(min(500, max(n, min(100, queries // 4))))


def batch_sizes(train_queries: int) -> list[int]:
    """Largest batch the data allows, half of it and 32 (largest first)."""
    cap = max(1, train_queries // 2)
    allowed = [b for b in BATCH_LADDER if b <= cap]
    if not allowed:
        return [cap]
    top = allowed[-1]
    return sorted({top, max(allowed[0], top // 2), allowed[0]}, reverse=True)


def cache_size(batch_size: int, device: str, fixed: Mapping[str, Any]) -> int:
    """GradCache mini-batch for a batch on a device (0 = plain steps)."""
    size = int(fixed.get("loss.cache_mini_batch_size", 0)) or (
        GPU_CACHE_MINI_BATCH if device == "cuda" else CPU_CACHE_MINI_BATCH
    )
    return size if batch_size > size else 0


def candidate_grid(
    shape: DataShape, epochs: int, device: str, fixed: Mapping[str, Any]
) -> list[Candidate]:
    """Every candidate at ``epochs``, in the order the search prefers them.

    Order: the largest batch at the higher learning rate first, then alternating across batch
    sizes, so a narrower search still spans batch sizes (section 6: larger batches won on dev).
    """
    sizes = (
        [int(fixed["batch_size"])] if "batch_size" in fixed else batch_sizes(shape.train_queries)
    )
    by_size: list[list[Candidate]] = []
    for b in sizes:
        if "learning_rate" in fixed:
            rates = [float(fixed["learning_rate"])]
        else:
            rates = [BASE_LR * math.sqrt(max(b, 32) / 32) * m for m in LR_MULTIPLIERS]
        by_size.append(
            [
                Candidate(
                    name=f"b{b}-lr{lr:.1e}-{epochs}ep",
                    batch_size=b,
                    learning_rate=float(f"{lr:.2g}"),
                    epochs=epochs,
                    cache_mini_batch_size=cache_size(b, device, fixed),
                )
                for lr in rates
            ]
        )
    order: list[Candidate] = []
    for i in range(max(len(r) for r in by_size)):  # all sizes at the high rate, then the low
        order += [r[i] for r in by_size if i < len(r)]
    return order


def halving_rungs(width: int) -> list[float]:
    """Fractions of the planned run at which survivors are compared: 4 -> [0.25, 0.5, 1.0]."""
    halvings = math.ceil(math.log2(width)) if width > 1 else 0
    return [1 / 2**k for k in range(halvings, 0, -1)] + [1.0]


def first_rung_fits(width: int, epochs: int, fixed: Mapping[str, Any] | None = None) -> bool:
    """Whether a search of ``width`` candidates of ``epochs`` first compares them after at least
    :data:`MIN_RUNG_EPOCHS` epochs each (``halving_rungs(4)[0] * 5 = 1.25``: yes). Epochs the
    user gave are the user's choice of length: the floor then does not narrow the search."""
    if fixed and "epochs" in fixed:
        return True
    return halving_rungs(width)[0] * epochs >= MIN_RUNG_EPOCHS - 1e-9


def survivors(width: int) -> list[int]:
    """How many candidates train to each rung: 6 -> [6, 3, 2, 1]."""
    alive, out = width, [width]
    while alive > 1:
        alive = math.ceil(alive / 2)
        out.append(alive)
    return out


def search_seconds(candidates: Sequence[Candidate], shape: DataShape, speed: Throughput) -> float:
    """Estimated time of successive halving over ``candidates`` (training plus dev evaluations).

    The estimate assumes the slowest candidates survive (an upper bound).
    """
    n = len(candidates)
    return remaining_seconds(candidates, [0] * n, halving_rungs(n), survivors(n), shape, speed)


def remaining_seconds(
    candidates: Sequence[Candidate],
    done_steps: Sequence[int],
    rungs: Sequence[float],
    alive: Sequence[int],
    shape: DataShape,
    speed: Throughput,
) -> float:
    """Estimated time to take ``candidates``, trained ``done_steps`` so far, through ``rungs``
    (fractions of each one's planned steps), ``alive[k]`` of them to ``rungs[k]``.

    An upper bound: the slowest candidates are assumed to survive each rung.
    """
    eval_s = speed.eval_seconds(shape)
    reached = [float(d) for d in done_steps]
    total = 0.0
    for fraction, n in zip(rungs, alive, strict=False):
        costs = []
        for i, c in enumerate(candidates):
            target = fraction * c.steps(shape.epoch_pairs)
            costs.append(speed.step_seconds(max(0.0, target - reached[i]) * c.batch_size, c.cost))
            reached[i] = max(reached[i], target)
        total += sum(sorted(costs, reverse=True)[:n]) + n * eval_s
    return total


def replan_epochs(
    candidates: Sequence[Candidate],
    done_steps: Sequence[int],
    rungs: Sequence[float],
    alive: Sequence[int],
    shape: DataShape,
    speed: Throughput,
    seconds_left: float,
    fixed: Mapping[str, Any] | None = None,
) -> int | None:
    """The longest length (epochs) the surviving ``candidates`` fit in ``seconds_left``.

    Called after the first rung with ``speed`` measured on the real steps: ``rungs`` and
    ``alive`` are the rungs still to run. None when the epochs are the user's, or when no length
    longer than what the candidates already trained fits (the search's own budget check then
    stops it where it must). Each candidate's schedule is then rebuilt for the new length and
    continues from the step it reached (train/checkpoint.py: ``epochs`` may change on resume).
    """
    if "epochs" in (fixed or {}):
        return None
    for epochs in range(MAX_EPOCHS, 0, -1):
        planned = [c.with_epochs(epochs) for c in candidates]
        if any(c.steps(shape.epoch_pairs) <= d for c, d in zip(planned, done_steps, strict=True)):
            return None  # shorter than what was trained: nothing to gain by re-planning
        if remaining_seconds(planned, done_steps, rungs, alive, shape, speed) <= seconds_left:
            return epochs
    return None


def plan_search(
    shape: DataShape,
    speed: Throughput,
    budget_seconds: float,
    *,
    device: str = "cpu",
    fixed: Mapping[str, Any] | None = None,
    reserve_evals: int = 0,
) -> SearchPlan:
    """The widest, longest search that fits the budget; one candidate when nothing can be searched.

    Length first: a candidate trained to 5 epochs is preferred over a wider search of shorter
    runs, because the published model is one candidate's full run; below :data:`MIN_EPOCHS` a
    single candidate at 3+ epochs is preferred over any search. At the chosen length and width a
    mined candidate is added when ``shape.mining_corpus`` says one can be and it fits too (from 3
    candidates, in place of the least-preferred one when only that fits).
    ``reserve_evals`` dev evaluations (the base model, the interpolation grid) are kept out of
    the budget.
    """
    fixed = dict(fixed or {})
    budget = budget_seconds - reserve_evals * (
        speed.eval_seconds(shape) if shape.dev_queries else 0
    )
    epoch_options = [int(fixed["epochs"])] if "epochs" in fixed else list(range(MAX_EPOCHS, 0, -1))
    if shape.dev_queries == 0:
        one = _fitting_single(shape, speed, budget, epoch_options, device, fixed)
        return SearchPlan(
            [one],
            [1.0],
            search_seconds([one], shape, speed),
            budget_seconds,
            "no dev set: nothing to compare candidates on, so one candidate trains "
            f"({one.name}); give eval_data or more queries to search",
            fixed,
        )
    long = [e for e in epoch_options if e >= MIN_EPOCHS]
    short = [e for e in epoch_options if e < MIN_EPOCHS]
    for lengths in (long, short):
        for epochs in lengths:
            grid = candidate_grid(shape, epochs, device, fixed)
            for width in WIDTHS:
                chosen = grid[:width]
                if width > len(grid) or not first_rung_fits(width, epochs, fixed):
                    continue
                seconds = search_seconds(chosen, shape, speed)
                if seconds > budget:
                    continue
                return _with_mined(chosen, seconds, shape, speed, budget, budget_seconds, fixed)
        if lengths is not long or not long:
            continue
        single = _fitting_single(shape, speed, budget, long, device, fixed)
        seconds = search_seconds([single], shape, speed)
        if seconds <= budget:  # the floor: one run of 3+ epochs, not a search of shorter ones
            why = (
                "only one candidate varies (every searched setting is fixed)"
                if len(candidate_grid(shape, single.epochs, device, fixed)) == 1
                else f"the budget left ({max(0.0, budget_seconds):.0f} s) fits no search of two "
                f"candidates at {MIN_EPOCHS}+ epochs, and one candidate trained longer beats "
                "a search of shorter runs"
            )
            return SearchPlan(
                [single], [1.0], seconds, budget_seconds, f"{why}: {single.name}", fixed
            )
    one = _fitting_single(shape, speed, budget, epoch_options, device, fixed)
    why = (
        "only one candidate varies (every searched setting is fixed)"
        if len(candidate_grid(shape, epoch_options[-1], device, fixed)) == 1
        else f"the budget left ({max(0.0, budget_seconds):.0f} s) fits no search of two candidates"
    )
    return SearchPlan(
        [one],
        [1.0],
        search_seconds([one], shape, speed),
        budget_seconds,
        f"{why}: {one.name}",
        fixed,
    )


def _with_mined(
    chosen: list[Candidate],
    seconds: float,
    shape: DataShape,
    speed: Throughput,
    budget: float,
    budget_seconds: float,
    fixed: dict[str, Any],
) -> SearchPlan:
    """The search over ``chosen``, with the mined variant of its first candidate if it fits:
    beside the others, else (from 3 candidates) in place of the least-preferred one."""
    if not shape.mining_corpus:
        return SearchPlan(chosen, halving_rungs(len(chosen)), seconds, budget_seconds, "", fixed)
    mining = speed.mining_seconds(shape)
    options = []
    if first_rung_fits(len(chosen) + 1, chosen[0].epochs, fixed):
        options.append([*chosen, chosen[0].mined()])
    if len(chosen) >= 3:
        options.append([*chosen[:-1], chosen[0].mined()])
    for widened in options:
        total = search_seconds(widened, shape, speed) + mining
        if total <= budget:
            return SearchPlan(
                widened, halving_rungs(len(widened)), total, budget_seconds, "", fixed, mining
            )
    why = (
        f"mined hard negatives skipped: the mining (est. {mining:.0f} s) and its candidate do "
        f"not fit the budget beside {len(chosen)} candidates"
    )
    return SearchPlan(chosen, halving_rungs(len(chosen)), seconds, budget_seconds, why, fixed)


def _fitting_single(
    shape: DataShape,
    speed: Throughput,
    budget: float,
    epoch_options: Sequence[int],
    device: str,
    fixed: Mapping[str, Any],
) -> Candidate:
    """The first-preferred candidate that fits at the longest length where one does (else the
    first-preferred at the shortest): length before batch size, as in the search."""
    for epochs in epoch_options:
        for candidate in candidate_grid(shape, epochs, device, fixed):
            if search_seconds([candidate], shape, speed) <= budget:
                return candidate
    return candidate_grid(shape, epoch_options[-1], device, fixed)[0]
