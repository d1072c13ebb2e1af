"""Configuration dataclasses as TOML files and command-line flags, with one set of names for both.

A stage declares its settings once, as a dataclass whose fields carry a help text (`setting(default, help)`) and
whose defaults are the recommended values. `add_flags` turns the fields into `--kebab-case` options, `resolve`
layers defaults <- TOML file <- flags, and `to_dict` is what a run records so that it can be reproduced.
"""

from __future__ import annotations

import argparse
import dataclasses
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from rapgpt.errors import ConfigError

C = TypeVar("C")


def setting(default: Any, help: str, choices: tuple[str, ...] | None = None, optional_value: Any = None,
            metavar: str | None = None) -> Any:
    """A dataclass field with the help text its flag shows (and, for strings, the allowed values). With
    `optional_value`, the flag may be given alone (`--name` rather than `--name VALUE`) and then means that value;
    `metavar` names the value in the help."""
    metadata = {"help": help, "choices": choices, "optional_value": optional_value, "metavar": metavar}
    return dataclasses.field(default=default, metadata=metadata)


def _base_type(annotation: Any) -> tuple[type, bool]:
    """(int, True) for `int | None`: the scalar type of a field and whether it may be None."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0], True
    if typing.get_origin(annotation) is tuple:  # tuple[str, ...]: a list of names
        return tuple, False
    return annotation, False


def _fields(cls: type) -> dict[str, tuple[dataclasses.Field, type, bool]]:
    hints = typing.get_type_hints(cls)
    return {f.name: (f, *_base_type(hints[f.name])) for f in dataclasses.fields(cls)}


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def add_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """One option per field of `cls`. Options left out of the command line do not appear in the namespace."""
    group = parser.add_argument_group(f"{cls.__name__} settings (also accepted in the --config TOML file)")
    for name, (f, kind, _optional) in _fields(cls).items():
        help_text = f.metadata.get("help", "")
        if "(default" not in help_text:
            help_text += f" (default: {f.default})"
        kwargs: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": help_text}
        if kind is bool:
            group.add_argument(flag_name(name), action=argparse.BooleanOptionalAction, **kwargs)
        elif kind is tuple:
            group.add_argument(flag_name(name), nargs="+", metavar="NAME", type=str, **kwargs)
        else:
            metavar = f.metadata.get("metavar") or {int: "N", float: "X"}.get(kind, "NAME")
            if f.metadata.get("optional_value") is not None:
                kwargs.update(nargs="?", const=f.metadata["optional_value"])
            group.add_argument(
                flag_name(name), type=kind, choices=f.metadata.get("choices"), metavar=metavar, **kwargs
            )


def flags_given(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of `cls` that were set on the command line."""
    return {name: getattr(args, name) for name in _fields(cls) if hasattr(args, name)}


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from e


def _check_value(name: str, value: Any, kind: type, optional: bool, where: str) -> Any:
    if value is None and optional:
        return None
    if kind is tuple:
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: {name} must be a list of strings, got {value!r}")
        return tuple(value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: {name} must be {kind.__name__}, got {value!r}")
    return value


def resolve(cls: type[C], *layers: dict[str, Any], where: tuple[str, ...] = ()) -> C:
    """An instance of `cls` from its defaults overridden by each layer in turn (e.g. a TOML file, then flags).

    Unknown names and values of the wrong type are refused with the layer's name (`where`) in the message.
    """
    fields = _fields(cls)
    values: dict[str, Any] = {}
    for i, layer in enumerate(layers):
        source = where[i] if i < len(where) else "settings"
        unknown = sorted(set(layer) - set(fields))
        if unknown:
            raise ConfigError(
                f"{source}: unknown setting(s) {', '.join(unknown)}; known ones are {', '.join(fields)}"
            )
        for name, value in layer.items():
            f, kind, optional = fields[name]
            choices = f.metadata.get("choices")
            value = _check_value(name, value, kind, optional, source)
            if choices and value not in choices:
                raise ConfigError(f"{source}: {name} must be one of {', '.join(choices)}, got {value!r}")
            values[name] = value
    return cls(**values)


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)
