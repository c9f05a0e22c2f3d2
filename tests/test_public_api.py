"""The names the README uses are importable from the top-level package and are what they claim."""

import ast
import dataclasses
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import ragtune

INIT = Path(ragtune.__file__)

DATACLASSES = {
    "EncoderConfig": "pooling",
    "Example": "query",
    "LabelledPair": "query",
    "Document": "id",
    "EvalSet": "queries",
    "LossConfig": "name",
    "TrainConfig": "model",
}
"""Config and record types: dataclasses, by their first field."""

FUNCTIONS = {
    "load_model": "name_or_path",
    "load_beir": "folder",
    "load_training_data": "source",
    "pairs_to_labelled": "pairs",
    "pairs_to_triplets": "pairs",
    "build_codesearch": "config",
    "check_data": "source",
    "build_loss": "name",
    "train": "cfg",
    "evaluate_encoder": "encoder",
    "evaluate_bm25": "evalset",
    "compare": "results",
    "load_config": "cls",
}
"""Callables, by their first parameter (what a caller passes first)."""


def test_every_export_is_covered_here():
    others = {"__version__", "Encoder", "EmbeddingModel", "DEFAULT_MODEL", "RagtuneError"}
    assert set(ragtune.__all__) == set(DATACLASSES) | set(FUNCTIONS) | others


@pytest.mark.parametrize("name", sorted(DATACLASSES))
def test_config_and_record_types_are_dataclasses(name):
    cls = getattr(ragtune, name)
    assert inspect.isclass(cls) and dataclasses.is_dataclass(cls)
    assert dataclasses.fields(cls)[0].name == DATACLASSES[name]


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_functions_are_callable_with_their_documented_first_argument(name):
    function = getattr(ragtune, name)
    assert callable(function)
    assert next(iter(inspect.signature(function).parameters)) == FUNCTIONS[name]


def test_the_rest(tiny_encoder):
    try:
        import tomllib
    except ImportError:  # Python 3.10: the same parser, a dependency there
        import tomli as tomllib
    pyproject = tomllib.loads((INIT.parents[2] / "pyproject.toml").read_text(encoding="utf-8"))
    assert ragtune.__version__ == pyproject["project"]["version"]
    assert ragtune.DEFAULT_MODEL == "sentence-transformers/all-MiniLM-L6-v2"
    assert issubclass(ragtune.RagtuneError, Exception)
    assert inspect.isclass(ragtune.Encoder) and callable(ragtune.Encoder.load)
    assert isinstance(tiny_encoder, ragtune.Encoder)
    assert isinstance(tiny_encoder, ragtune.EmbeddingModel)  # the protocol of every encoder


def test_train_is_the_training_function_whichever_way_it_is_reached():
    from ragtune import train
    from ragtune.train.loop import train as loop_train

    assert train is ragtune.train  # the subpackage object, bound by the import system ...
    assert inspect.signature(train) == inspect.signature(loop_train)  # ... that trains when called
    assert train.TrainConfig is ragtune.TrainConfig


@pytest.mark.parametrize(
    "script",
    [
        # first use through the package attribute, then the import statement
        "import ragtune; a = ragtune.train; from ragtune import train; assert a is train",
        # the subpackage imported first, as any `from ragtune.train... import` does
        "import ragtune.train.loop; from ragtune import train",
        "from ragtune.train import TrainConfig; from ragtune import train",
    ],
)
def test_train_is_callable_in_a_fresh_interpreter(script):
    check = "; import inspect; assert list(inspect.signature(train).parameters)[0] == 'cfg'"
    check += "; print(callable(train))"
    result = subprocess.run(
        [sys.executable, "-c", script + check], capture_output=True, text=True, timeout=300
    )
    assert (result.returncode, result.stdout) == (0, "True\n"), result.stderr


def test_type_checkers_see_every_export():
    """``if TYPE_CHECKING:`` imports give editors and mypy real types for the lazy exports."""
    tree = ast.parse(INIT.read_text(encoding="utf-8"))
    guarded = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"
    )
    names = {alias.asname or alias.name for node in guarded.body for alias in node.names}
    assert names == set(ragtune.__all__) - {"__version__"}


def test_unknown_names_fail_like_a_module_attribute():
    with pytest.raises(AttributeError, match="no attribute 'Trainer'"):
        ragtune.Trainer  # noqa: B018
