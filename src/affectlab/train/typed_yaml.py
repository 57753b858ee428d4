"""YAML into typed dataclasses: the engine that checks a recipe, kept apart from what a recipe holds.

:func:`build` converts a parsed YAML value to a type (dataclasses, unions, literals, lists, tuples,
dicts, scalars), naming the file and the dotted key of anything it cannot use; a dataclass's own
``__post_init__`` checks (raising ValueError) come back the same way. :func:`apply_override` sets a
``key=value`` override in the parsed YAML first; list items are addressed by their ``name`` or index.
"""
from __future__ import annotations

import copy
import math
import dataclasses
import types
import typing
from typing import Any, Literal, Union

import yaml

from affectlab.errors import AffectlabError


class ConfigError(AffectlabError):
    """A recipe or override that cannot be used; names the file and the key."""


def merge(base: dict, extra: dict) -> dict:
    """Deep-merge ``extra`` into ``base`` (dicts merge, anything else replaces)."""
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def apply_override(raw: dict, item: str) -> None:
    """Set ``a.b.c=value`` in a raw recipe dict (the value parsed as YAML)."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {item!r} is not key=value")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    parts = key.strip().split(".")
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        node = _child(node, part, ".".join(parts[: i + 1]), create=True)
    last = parts[-1]
    if isinstance(node, list):
        node[_list_index(node, last, key)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"override {key}: {'.'.join(parts[:-1])} is a value, not a section")


def _list_index(items: list, part: str, where: str) -> int:
    """A list item by index or by its ``name``."""
    if part.lstrip("-").isdigit() and -len(items) <= int(part) < len(items):
        return int(part)
    for i, item in enumerate(items):
        if isinstance(item, dict) and item.get("name") == part:
            return i
    names = [item.get("name") for item in items if isinstance(item, dict)]
    raise ConfigError(f"override {where}: no item {part!r}; items: {names or list(range(len(items)))}")


def _child(node: Any, part: str, where: str, create: bool) -> Any:
    if isinstance(node, list):
        return node[_list_index(node, part, where)]
    if not isinstance(node, dict):
        raise ConfigError(f"override {where}: not a section")
    if node.get(part) is None and create:
        node[part] = {}
    return node[part]


def build(tp: Any, value: Any, where: str, key: str) -> Any:
    """Convert ``value`` to type ``tp`` (dataclasses, unions, lists, dicts, scalars) or raise ConfigError."""
    here = key or "(top level)"
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return build(option, value, where, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[-1])
    if value is None:
        raise ConfigError(f"{where}: {here}: a value is required")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{where}: {here}: must be one of {', '.join(map(str, choices))}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {here}: expected a section (mapping), got {value!r}")
        hints = typing.get_type_hints(tp)
        fields = {f.name: f for f in dataclasses.fields(tp) if f.metadata.get("yaml", True)}  # yaml=False: set by code
        unknown = [k for k in value if k not in fields]
        if unknown:
            raise ConfigError(f"{where}: {here}: unknown key {unknown[0]!r}; known: {', '.join(fields)}")
        required = [n for n, f in fields.items()
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        missing = [n for n in required if n not in value]
        if missing:
            raise ConfigError(f"{where}: {here}: missing key {missing[0]!r}")
        kwargs = {k: build(hints[k], _none_is_empty(fields[k], v), where, f"{key}.{k}" if key else k)
                  for k, v in value.items()}
        try:
            return tp(**kwargs)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"{where}: {here}: {e}") from None
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: {here}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        if dataclasses.is_dataclass(item):  # a section set to null is left out (stages.prior=null)
            value = [v for v in value if v is not None]
        return [build(item, v, where, f"{key}.{i}") for i, v in enumerate(value)]
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{where}: {here}: expected a list of {len(args)} values, got {value!r}")
        return tuple(build(a, v, where, f"{key}.{i}") for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {here}: expected a mapping, got {value!r}")
        _, item = typing.get_args(tp)
        if item is Any:
            return dict(value)
        return {str(k): build(item, v, where, f"{key}.{k}") for k, v in value.items() if v is not None}
    return _scalar(tp, value, where, here)


def _none_is_empty(f: dataclasses.Field, value: Any) -> Any:
    """null for a section that is empty by default (``validation=null``, ``ensembles=null``) turns it off."""
    if value is None and f.default_factory is dict:
        return {}
    return value


def _scalar(tp: Any, value: Any, where: str, key: str) -> Any:
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as text
            try:
                number = float(value)
            except ValueError:
                pass
        if number is not None and not math.isfinite(number):  # nan, inf: no setting means either
            raise ConfigError(f"{where}: {key}: expected a finite number, got {value!r}")
        if number is not None:
            return number
    elif tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    else:
        raise TypeError(f"unsupported recipe field type {tp}")
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}
    raise ConfigError(f"{where}: {key}: expected {names[tp]}, got {value!r}")
