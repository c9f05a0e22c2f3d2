"""General-domain checks: what tuning cost on data it was not tuned for.

:func:`general_checks` scores the base and the published model on a list of BEIR folders
(``TrainConfig.general_checks``: ``"path"`` or ``"path:split"``, default split ``test``) and
returns one :class:`GeneralCheck` per folder: nDCG@10 before, after and the difference. The
numbers are reported (run summary, the printed table, the model card); they never choose
anything, so they stay an honest estimate of the cost elsewhere.

Why: fine-tuning a general embedding model on one domain can lower its quality on others
("catastrophic forgetting"; Kirkpatrick et al., PNAS 2017); a user deciding whether to deploy
the tuned model needs to see that cost, not only the in-domain gain. WiSE-FT (Wortsman et al.,
CVPR 2022) reports in- and out-of-distribution scores side by side for the same reason.

Example::

    checks = general_checks(["data/conala:test", "data/birco-arguana"], base, tuned)
    for c in checks:
        print(c.name, f"{c.before:.4f} -> {c.after:.4f} ({c.delta:+.4f})")
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ragtune.data.beir import load_beir
from ragtune.errors import RagtuneError
from ragtune.evaluation.evaluate import EncoderLike, evaluate_encoder

CHECK_METRIC = "nDCG@10"
_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


@dataclass(frozen=True)
class GeneralCheck:
    """One general-domain folder scored before and after tuning."""

    name: str
    """``folder name/split``, e.g. ``conala/test``."""
    path: str
    split: str
    metric: str
    before: float
    """The base model's score."""
    after: float
    """The published model's score (equal to ``before`` when the base model was published)."""
    queries: int

    @property
    def delta(self) -> float:
        return self.after - self.before

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "path": self.path,
            "split": self.split,
            "metric": self.metric,
            "before": self.before,
            "after": self.after,
            "delta": self.delta,
            "queries": self.queries,
        }


def parse_check(spec: str) -> tuple[str, str]:
    """``"path"`` -> ``(path, "test")``; ``"path:split"`` -> ``(path, split)``.

    The split is what follows the last ``:``; a Windows drive (``C:\\data``) is not a split.
    """
    text = str(spec).strip()
    head, sep, tail = text.rpartition(":")
    if not sep or not head or _DRIVE.match(text) and ":" not in text[2:]:
        return text, "test"
    if "/" in tail or "\\" in tail or not tail:
        raise RagtuneError(f"train.general_checks: {spec!r} is not 'path' or 'path:split'")
    return head, tail


def check_specs(specs: Sequence[str]) -> list[tuple[str, str]]:
    """Parse every spec and check that its folder and qrels split exist (before any training)."""
    parsed = []
    for spec in specs:
        path, split = parse_check(spec)
        folder = Path(path)
        if not (folder / "corpus.jsonl").is_file():
            raise RagtuneError(
                f"train.general_checks: {path} is not a BEIR folder (no corpus.jsonl)"
            )
        if not (folder / "qrels" / f"{split}.tsv").is_file():
            raise RagtuneError(
                f"train.general_checks: {path} has no qrels/{split}.tsv "
                "(give the split as path:split)"
            )
        parsed.append((path, split))
    return parsed


def general_checks(
    specs: Sequence[str],
    base: EncoderLike,
    published: EncoderLike | None,
    *,
    batch_size: int = 64,
    show_progress: bool | None = None,
) -> list[GeneralCheck]:
    """nDCG@10 of ``base`` and ``published`` on every folder of ``specs``.

    ``published`` None means the base model itself was published: it is scored once and
    ``after == before``.
    """
    checks = []
    for path, split in check_specs(specs):
        evalset = load_beir(path, split)
        before = evaluate_encoder(
            base, evalset, name="base", batch_size=batch_size, show_progress=show_progress
        )
        after = (
            before
            if published is None
            else evaluate_encoder(
                published, evalset, name="tuned", batch_size=batch_size, show_progress=show_progress
            )
        )
        checks.append(
            GeneralCheck(
                name=f"{Path(path).name}/{split}",
                path=path,
                split=split,
                metric=CHECK_METRIC,
                before=float(before.metrics[CHECK_METRIC]),
                after=float(after.metrics[CHECK_METRIC]),
                queries=before.num_queries,
            )
        )
    return checks
