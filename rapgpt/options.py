"""Settings dataclasses as command-line flags and TOML files, with one set of names for both.

A stage declares its settings once, as a frozen dataclass whose fields carry their help text (`setting(default,
help, ...)`) and whose defaults are the recommended values. `add_flags` turns the fields into `--kebab-case`
options, `resolve` layers defaults <- TOML file <- flags, and `to_dict` is what a run records so that it can be
reproduced. A field's public name (flag, TOML key, record) is its own name unless `setting(name=...)` says another.
"""

from __future__ import annotations

import argparse
import dataclasses
import tomllib
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from rapgpt.errors import ConfigError

C = TypeVar("C")


def setting(
    default: Any,
    help: str,
    choices: tuple[str, ...] | None = None,
    *,
    metavar: str | None = None,
    name: str | None = None,
    parse: Callable[[str], Any] | None = None,
    repeat: bool = False,
    optional_value: Any = None,
) -> Any:
    """A dataclass field with what its flag shows: the help text, the allowed values (strings), the metavar,
    the public name where it differs from the field's, a parser of the typed text, for tuples whether the flag
    is repeated (`--x A --x B`) rather than followed by several values (`--x A B`), and the value that the flag
    given alone means (`--x` for `--x VALUE`, when `optional_value` is not None)."""
    metadata = {"help": help, "choices": choices, "metavar": metavar, "name": name, "parse": parse, "repeat": repeat,
                "optional_value": optional_value}
    return dataclasses.field(default=default, metadata=metadata)


def _base_type(annotation: Any) -> tuple[type, bool]:
    """(int, True) for `int | None`: the scalar type of a field and whether it may be None."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _base_type(args[0])[0], True
    if typing.get_origin(annotation) is tuple:  # tuple[str, ...]: a list of names
        return tuple, False
    return annotation, False


def public_name(f: dataclasses.Field) -> str:
    return f.metadata.get("name") or f.name


def _fields(cls: type) -> dict[str, tuple[dataclasses.Field, type, bool]]:
    """The fields of `cls` by public name: (field, scalar type, may be None)."""
    hints = typing.get_type_hints(cls)
    return {public_name(f): (f, *_base_type(hints[f.name])) for f in dataclasses.fields(cls)}


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _shown(default: Any) -> bool:
    return default is not None and default is not False and default != () and default != ""


def add_flags(parser: argparse.ArgumentParser, cls: type, title: str | None = None) -> None:
    """One option per field of `cls`, with the field's default in its help. Options left out of the command line
    do not appear in the namespace: `resolve(cls, flags_given(args, cls))` fills in the defaults."""
    group = parser.add_argument_group(title or f"{cls.__name__} settings")
    for name, (f, kind, _optional) in _fields(cls).items():
        meta = f.metadata
        help_text = meta.get("help", "")
        if _shown(f.default) and "(default" not in help_text:
            shown = " ".join(f.default) if kind is tuple else f.default
            help_text += f" (default: {shown})"
        kwargs: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": help_text}
        if kind is bool:
            group.add_argument(flag_name(name), action=argparse.BooleanOptionalAction, **kwargs)
            continue
        kwargs["type"] = meta.get("parse") or (str if kind is tuple else kind)
        if kind is tuple:
            kwargs["action" if meta.get("repeat") else "nargs"] = "append" if meta.get("repeat") else "+"
        else:
            kwargs["choices"] = meta.get("choices")
            if meta.get("optional_value") is not None:
                kwargs.update(nargs="?", const=meta["optional_value"])
        if meta.get("metavar") or not kwargs.get("choices"):  # else argparse shows the choices: {fp32,bf16,fp16}
            kwargs["metavar"] = meta.get("metavar") or {int: "N", float: "X"}.get(kind, "NAME")
        group.add_argument(flag_name(name), **kwargs)


def flags_given(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The settings of `cls` that were set on the command line, by public name."""
    return {name: getattr(args, name) for name in _fields(cls) if hasattr(args, name)}


def from_args(args: argparse.Namespace, cls: type[C]) -> C:
    """The settings of `cls`: its defaults, overridden by the flags given."""
    return resolve(cls, flags_given(args, cls), where=("command line",))


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

    Layers use public names. Unknown names and values of the wrong type are refused with the layer's name
    (`where`) in the message.
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
            if choices and value is not None and value not in choices:
                raise ConfigError(f"{source}: {name} must be one of {', '.join(choices)}, got {value!r}")
            values[f.name] = value
    return cls(**values)


def to_dict(config: Any) -> dict[str, Any]:
    """The settings by public name, as a run records them."""
    return {public_name(f): getattr(config, f.name) for f in dataclasses.fields(config)}
