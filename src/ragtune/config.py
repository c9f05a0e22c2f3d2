"""Typed configuration: dataclasses loaded from YAML or TOML, overridden by ``key=value`` strings.

Each stage keeps its own dataclass next to its code (``train.TrainConfig``, ``losses.LossConfig``);
this module only knows how to fill any dataclass from a file and from overrides, converting every
value to the field's declared type, and how to write the resolved result back out.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from ragtune.errors import RagtuneError

T = TypeVar("T")


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
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise RagtuneError(f"override {item!r} must look like key=value")
        _set_dotted(data, key.strip(), _parse_scalar(raw.strip()))
    for key, value in values.items():
        if value is not None:
            _set_dotted(data, key, value)
    return build(cls, data, where=str(path) if path else "config")


def read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise RagtuneError(f"config file {path} not found")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        elif path.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
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


def build(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Instantiate dataclass ``cls`` from plain data, converting and checking every field."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls} is not a dataclass")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise RagtuneError(f"{where}: unknown keys {unknown}; valid keys: {sorted(fields)}")
    kwargs = {name: convert(value, hints[name], f"{where}.{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)  # type: ignore[return-value]
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
        return build(hint, value, where)
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
            items = [v for v in value.split(",") if v.strip()] if value.strip() else []
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
