"""Imports point only backwards along the pipeline; nothing imports the CLI."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "ragtune"
LEAVES = {"errors", "io", "progress"}  # utilities every stage may use
ALLOWED = {
    "data": set(),
    "losses": set(),
    "config": set(),
    "model": {"config"},
    "search": {"data", "model"},
    "mining": {"data", "model", "search"},
    "evaluation": {"data", "model", "search"},
    "train": {"data", "model", "losses", "evaluation", "mining", "config"},
    "serve": {"model", "search", "data"},
    "pseudo": {"data", "model", "search"},
    "tune": {"data", "model", "search", "mining", "train", "evaluation", "pseudo", "config"},
    "demo": {"data", "model", "losses", "evaluation", "train", "mining", "search", "config"},
    "cli": None,  # may import anything
}


def stage_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def imported_stages(path: Path, source: str | None = None) -> set[str]:
    """The ragtune stages a module imports, absolute or relative (``from ..model import x``).

    ``source`` stands in for the file's text (tests of this function); ``path`` places it.
    """
    tree = ast.parse(path.read_text(encoding="utf-8") if source is None else source)
    package = ["ragtune", *path.relative_to(PACKAGE).parts[:-1]]  # the module's own package
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.ImportFrom):
            # level 1 is the module's own package, each further level one package up
            base = package[: len(package) - (node.level - 1)]
            if node.module:
                names = [".".join([*base, node.module])]
            else:  # `from . import x`: each x is a module of that package
                names = [".".join([*base, a.name]) for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "ragtune" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_relative_imports_count_as_imports_of_the_stage_they_name():
    loop = PACKAGE / "train" / "loop.py"
    assert imported_stages(loop, "from ..model import Encoder") == {"model"}
    assert imported_stages(loop, "from .batching import pad") == {"train"}
    assert imported_stages(loop, "from .. import cli") == {"cli"}
    assert imported_stages(PACKAGE / "model" / "cpu" / "fused.py", "from ...losses import x") == {
        "losses"
    }
    assert imported_stages(PACKAGE / "demo.py", "from .search import build") == {"search"}


def test_stages_import_only_earlier_stages():
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        stage = stage_of(path)
        if stage in ("__init__", "__main__") or stage in LEAVES:
            continue
        allowed = ALLOWED.get(stage, set())
        if allowed is None:
            continue
        bad = imported_stages(path) - allowed - LEAVES - {stage}
        if bad:
            problems.append(f"{path.relative_to(PACKAGE)} imports {sorted(bad)}")
    assert not problems, "\n".join(problems)


def test_nothing_imports_the_cli():
    offenders = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if stage_of(p) != "cli" and "cli" in imported_stages(p)
    ]
    assert offenders == []
