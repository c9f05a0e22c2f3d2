"""Settings of ``ragtune tune``: one dataclass, checked when built, saved with the run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

from ragtune.errors import RagtuneError
from ragtune.model.resolve import DEFAULT_MODEL

if TYPE_CHECKING:
    from ragtune.pseudo.llm import LlmConfig

Negatives = Literal["none", "dense"]
Recipe = Literal["fixed", "auto"]
ALL_GENERATORS: tuple[str, ...] = (
    "docstring",
    "comment",
    "identifier",
    "heading",
    "title",
    "cloze",
    "keywords",
)
"""The generators that need no model; each skips the chunks it does not apply to."""


@dataclass(frozen=True)
class TuneConfig:
    """What ``tune`` reads, writes and how hard it works; the defaults fit 20 minutes on 2 cores
    for the Python standard library (``benchmarks/label_free.py``)."""

    input: str = ""
    """A folder (walked like ``ragtune index``: .gitignore-aware) or a BEIR ``corpus.jsonl``."""
    output: str = "runs/tune"
    queries: str = ""
    """Optional JSONL of real questions, ``{"query": ..., "path": "a.py" | "a.py:12"}``; they
    become the dev set that gates publishing and are reported on their own."""
    generators: tuple[str, ...] = ALL_GENERATORS
    llm_url: str = ""
    """The OpenAI-compatible endpoint of the ``openai`` generator (``http://localhost:11434/v1``)."""
    llm_model: str = ""
    llm_questions: int = 3
    """Questions the LLM writes per chunk."""
    llm_concurrency: int = 4
    llm_cache: str = ""
    """Where the LLM's answers are kept (JSONL); empty: ``<output>/stages/llm-cache.jsonl``. Outside
    any temporary folder, so a killed run asks again only for the chunks it had no answer for."""
    model: str = DEFAULT_MODEL
    max_seq_length: int = 256
    exclude: tuple[str, ...] = ()
    """Extra gitignore-style patterns left out of the folder."""
    max_per_chunk: int = 2
    max_pairs: int = 12_000
    """Cap on training pairs after filtering (seeded sample): what keeps the run in budget."""
    round_trip_k: int = 10
    """Keep a pair when the base BM25+dense fusion ranks its chunk in the top k (0: off)."""
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    max_eval_queries: int = 1000
    """Cap per held-out split (dev and test), sampled with the seed."""
    negatives: Negatives = "dense"
    """dense: one hard negative per pair mined with the base model, false negatives filtered."""
    relative_margin: float = 0.05
    """A candidate scoring above (1 - margin) x the positive's score is dropped as a likely
    unlabelled positive (NV-Retriever's positive-aware filter, Moreira et al. 2024)."""
    recipe: Recipe = "fixed"
    """fixed: train once with the settings below (the demo's recipe), checkpointed, so a killed
    run resumes mid-training; auto: train's dev-driven search within ``budget``, which cannot
    resume (a kill while it runs restarts the training stage; the stages before are kept)."""
    batch_size: int = 32
    epochs: int = 1
    dropout: bool = False
    """Train with the model's dropout (attention and hidden 0.1 for MiniLM). Off by default
    because tune's training is bounded by ``--budget``: a step without dropout is ~1.3x faster on
    CPU (13.25 vs 10.07 pairs/s, BENCHMARKS.md section 1), so ~1.3x the steps fit, and one epoch
    without it scored the same SciFact test nDCG@10 within seed noise (0.6670 vs 0.6665 over
    three seeds, section 1b)."""
    learning_rate: float = 5e-5
    save_steps: int = 200
    """Checkpoint training every this many steps: a killed run resumes from the last one."""
    budget: str = "30m"
    """The whole run's time: the fixed recipe trains as many steps as fit once the stages before
    it have run and those after it are paid for (tune/budget.py); auto searches within it."""
    seed: int = 0
    index: bool = True
    """Index the folder with the published model at the end (folders only)."""
    overwrite: bool = False

    def __post_init__(self) -> None:
        from ragtune.pseudo.generators import available

        if not self.input:
            raise RagtuneError("give the folder or corpus.jsonl to tune on")
        known = available()
        for name in self.generators:
            if name not in known:
                raise RagtuneError(f"unknown generator {name!r}; choose from: {', '.join(known)}")
        if not self.generators:
            raise RagtuneError("give at least one generator")
        if "openai" in self.generators:
            if not (self.llm_url and self.llm_model):
                raise RagtuneError(
                    "the 'openai' generator needs --llm-url URL and --llm-model NAME"
                )
            self.llm_config()  # checks the URL and the counts before any work
        elif self.llm_url or self.llm_model:
            raise RagtuneError("--llm-url/--llm-model are used only by --generator openai")
        if self.negatives not in get_args(Negatives):
            raise RagtuneError(
                f"unknown negatives {self.negatives!r}; valid: {', '.join(get_args(Negatives))}"
            )
        if self.recipe not in get_args(Recipe):
            raise RagtuneError(
                f"unknown recipe {self.recipe!r}; valid: {', '.join(get_args(Recipe))}"
            )
        for key in (
            "max_per_chunk",
            "max_pairs",
            "max_eval_queries",
            "batch_size",
            "epochs",
            "save_steps",
            "llm_questions",
            "llm_concurrency",
        ):
            if getattr(self, key) < 1:
                raise RagtuneError(f"{key} must be at least 1, got {getattr(self, key)}")
        if self.round_trip_k < 0:
            raise RagtuneError(f"round_trip_k must be >= 0 (0: off), got {self.round_trip_k}")
        if len(self.fractions) != 3 or abs(sum(self.fractions) - 1) > 1e-6:
            raise RagtuneError(f"fractions must be three shares summing to 1, got {self.fractions}")
        from ragtune.train.config import parse_budget

        try:  # before any stage: a typo must not cost the chunking, the filter or an LLM's time
            parse_budget(self.budget)
        except ValueError as exc:
            raise RagtuneError(f"budget: {exc}") from None

    def llm_config(self) -> LlmConfig:
        """The settings of the ``openai`` generator."""
        from ragtune.pseudo.llm import LlmConfig

        return LlmConfig(
            url=self.llm_url,
            model=self.llm_model,
            questions_per_chunk=self.llm_questions,
            concurrency=self.llm_concurrency,
            seed=self.seed,
        )


__all__ = ["ALL_GENERATORS", "Negatives", "Recipe", "TuneConfig"]
