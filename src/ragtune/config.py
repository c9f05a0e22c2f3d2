"""Typed configuration: dataclasses loaded from YAML or TOML, overridden by ``key=value`` strings.

Each stage keeps its own dataclass next to its code (``train.TrainConfig``, ``losses.LossConfig``);
this module only knows how to fill any dataclass from a file and from overrides, converting every
value to the field's declared type, and how to write the resolved result back out.

It also holds the range checks the dataclasses run in ``__post_init__`` (``check_int``,
``check_number``, ``check_choice``, ``check_text``): a value outside what its field allows fails
while the config is built, before a model loads or a folder is created, with one line that names
the field by its dotted key (``train.learning_rate``) and says what is allowed.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from ragtune.errors import RagtuneError

T = TypeVar("T")


class ConfigValueError(RagtuneError, ValueError):
    """A config field holds a value it does not allow; the message names the field's dotted key.

    Also a :class:`ValueError`, which is what a Python caller constructing a dataclass expects.
    """


def load_config(
    cls: type[T],
    path: str | Path | None = None,
    overrides: typing.Sequence[str] = (),
    **values: Any,
) -> T:
    """Build ``cls`` from a YAML/TOML file, then ``key=value`` overrides, then keyword values.

    Nested dataclasses take dotted keys (``loss.scale=10``). Unknown keys are errors that list the
    valid ones, so a typo never silently does nothing.
    """
    data: dict[str, Any] = read_file(Path(path)) if path else {}
    given: set[str] = set()  # dotted keys set by overrides or keyword values, not by the file
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise RagtuneError(f"override {item!r} must look like key=value")
        _set_dotted(data, key.strip(), _parse_scalar(raw.strip()))
        given.add(key.strip().replace("-", "_"))
    for key, value in values.items():
        if value is not None:
            _set_dotted(data, key, value)
            given.add(key)
    try:
        result = build(cls, data)
    except RagtuneError as exc:
        if path and not _names_a_key(str(exc), given):
            raise RagtuneError(f"{path}: {exc}") from None  # the file's value: say which file
        raise
    # What the user chose (file, overrides, values), for code that fills in the rest itself
    # (train/auto.py searches only what was not given); not a field: configs stay plain data.
    object.__setattr__(result, GIVEN, frozenset(given | set(_dotted_keys(data))))
    return result


GIVEN = "_given_keys"


def given_keys(config: Any) -> frozenset[str] | None:
    """The dotted keys :func:`load_config` got from the file, overrides or values; None when
    ``config`` was not built by it (``dataclasses.replace`` makes a new, unmarked config)."""
    keys = getattr(config, GIVEN, None)
    return keys if isinstance(keys, frozenset) else None


def _dotted_keys(data: dict[str, Any], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for key, value in data.items():
        name = f"{prefix}{key}".replace("-", "_")
        keys += _dotted_keys(value, f"{name}.") if isinstance(value, dict) else [name]
    return keys


def _names_a_key(message: str, keys: set[str]) -> bool:
    """Whether an error message is about one of ``keys`` (``train.lr: ...``, ``['lr']``)."""
    if "unknown keys [" in message:  # only the unknown ones count, not the list of valid keys
        unknown = message.split("unknown keys [", 1)[1].split("]", 1)[0]
        return any(f"'{key.split('.')[-1]}'" in unknown for key in keys)
    return any(re.search(rf"(^|[ .]){re.escape(key)}([: ]|$)", message) for key in keys)


def read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise RagtuneError(f"config file {path} not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RagtuneError(
            f"{path}: not valid UTF-8 (byte {exc.start}: {exc.reason}); save the config as UTF-8"
        ) from None
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        elif path.suffix == ".toml":
            data = toml_parser().loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise RagtuneError(f"{path}: config files must be .yaml, .yml, .toml or .json")
    except RagtuneError:
        raise
    except Exception as exc:  # yaml/toml/json syntax errors carry their own line numbers
        raise RagtuneError(f"{path}: cannot parse config ({exc})".replace("\n", " ")) from None
    if not isinstance(data, dict):
        raise RagtuneError(f"{path}: the top level of a config must be a mapping")
    return data


def toml_parser() -> Any:
    """The TOML parser: ``tomllib`` (Python 3.11+), else ``tomli``, the same parser for 3.10."""
    try:
        return importlib.import_module("tomllib")
    except ModuleNotFoundError:
        pass
    try:
        return importlib.import_module("tomli")
    except ModuleNotFoundError:
        raise RagtuneError(
            "reading a .toml config on Python 3.10 needs tomli: pip install tomli "
            "(or write the config as .yaml or .json)"
        ) from None


def build(cls: type[T], data: dict[str, Any], where: str | None = None) -> T:
    """Instantiate dataclass ``cls`` from plain data, converting and checking every field.

    ``where`` prefixes error messages; it defaults to the dataclass's ``SECTION`` ("train" for
    ``TrainConfig``), and a nested dataclass field uses its own name ("loss"), so messages give
    the dotted key that ``--set`` takes. Range checks run in the dataclasses' ``__post_init__``.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls} is not a dataclass")
    where = where or str(getattr(cls, "SECTION", "config"))
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise RagtuneError(f"{where}: unknown keys {unknown}; valid keys: {sorted(fields)}")
    kwargs = {name: convert(value, hints[name], f"{where}.{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)  # type: ignore[return-value]
    except RagtuneError:
        raise  # range checks already name the field
    except (TypeError, ValueError) as exc:
        raise RagtuneError(f"{where}: {exc}") from None


def convert(value: Any, hint: Any, where: str) -> Any:
    """Convert ``value`` to type ``hint`` (dataclass, Literal, Optional, tuple, scalar)."""
    origin = get_origin(hint)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if dataclasses.is_dataclass(value):
            return value
        if not isinstance(value, dict):
            raise RagtuneError(f"{where}: expected a mapping, got {value!r}")
        return build(hint, value, where.rpartition(".")[2])  # "train.loss" -> "loss"
    if origin is Literal:
        choices = get_args(hint)
        if value not in choices:
            raise RagtuneError(
                f"{where}: {value!r} is not valid; choose one of {', '.join(map(str, choices))}"
            )
        return value
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        is_none = value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        if is_none and type(None) in get_args(hint):
            return None
        errors = []
        for arg in args:
            try:
                return convert(value, arg, where)
            except RagtuneError as exc:
                errors.append(str(exc))
        raise RagtuneError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin in (tuple, list):
        items: Any = value
        if isinstance(value, str):
            items = [v.strip() for v in value.split(",")] if value.strip() else []
            if "" in items:  # "64,,32" is a typo, not the list (64, 32)
                raise RagtuneError(
                    f"{where}: empty item in {value!r}; give comma-separated values like 64,32"
                )
        elif isinstance(value, int | float) and not isinstance(value, bool):
            items = [value]  # "--set dims=64": the override's text "64" is the list of one item
        if not isinstance(items, list | tuple):
            raise RagtuneError(f"{where}: expected a list, got {value!r}")
        item_args = get_args(hint)
        item_type = item_args[0] if item_args else str
        converted = [convert(v, item_type, where) for v in items]
        return tuple(converted) if origin is tuple else list(converted)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in (
            "true",
            "1",
            "yes",
            "on",
            "false",
            "0",
            "no",
            "off",
        ):
            return value.lower() in ("true", "1", "yes", "on")
        raise RagtuneError(f"{where}: expected true or false, got {value!r}")
    if hint in (int, float):
        if isinstance(value, bool):
            raise RagtuneError(f"{where}: expected a number, got {value!r}")
        try:
            number = hint(value)
        except (TypeError, ValueError):
            raise RagtuneError(f"{where}: expected {hint.__name__}, got {value!r}") from None
        if hint is int and isinstance(value, float) and not value.is_integer():
            raise RagtuneError(f"{where}: expected an integer, got {value!r}")
        return number
    if hint is str:
        if not isinstance(value, str | int | float):
            raise RagtuneError(f"{where}: expected text, got {value!r}")
        return str(value)
    return value


def to_dict(config: Any) -> dict[str, Any]:
    """The resolved config as plain data (saved with every run)."""
    return dataclasses.asdict(config)


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.replace("-", "_").split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise RagtuneError(f"override {key!r}: {part!r} is not a section")
    node[parts[-1]] = value


def _parse_scalar(raw: str) -> Any:
    """Overrides arrive as text; YAML's scalar rules turn '3' into 3 and 'true' into True."""
    import yaml

    try:
        return yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        return raw


# ---- range checks, called by the config dataclasses' __post_init__


def check_int(
    key: str, value: object, minimum: int, maximum: int | None = None, meaning: str = ""
) -> None:
    """``value`` must be an integer in ``[minimum, maximum]``; ``meaning`` explains a special value.

    >>> check_int("train.batch_size", 0, 1)
    Traceback (most recent call last):
    ragtune.config.ConfigValueError: train.batch_size must be >= 1, got 0
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigValueError(f"{key} must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        allowed = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ConfigValueError(f"{key} must be {allowed}{_explained(meaning)}, got {value!r}")


def check_number(
    key: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    meaning: str = "",
) -> None:
    """``value`` must be a finite number within the bounds given (open bounds exclude the end).

    NaN and infinity are always refused: no setting of a run means anything with them.
    """
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low  # type: ignore[operator]
    if ok and high is not None:
        ok = value < high if high_open else value <= high  # type: ignore[operator]
    if not ok:
        allowed = _interval(low, high, low_open, high_open)
        raise ConfigValueError(
            f"{key} must be a finite number{allowed}{_explained(meaning)}, got {value!r}"
        )


def check_choice(key: str, value: object, choices: typing.Sequence[str]) -> None:
    """``value`` must be one of ``choices``; the message lists them (as ``convert`` words it)."""
    if value not in choices:
        raise ConfigValueError(f"{key}: {value!r} is not valid; choose one of {', '.join(choices)}")


def check_text(key: str, value: object, hint: str) -> None:
    """``value`` must be non-blank text; ``hint`` says what to pass instead of ''."""
    if not isinstance(value, str):
        raise ConfigValueError(f"{key} must be text, got {value!r}")
    if not value.strip():
        raise ConfigValueError(f"{key} must not be empty: {hint}")


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f" {'<' if high_open else '<='} {high:g}"
    return ""


def _explained(meaning: str) -> str:
    return f" ({meaning})" if meaning else ""
