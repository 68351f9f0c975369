"""Typed configs: dataclasses holding defaults, overridden only through existing fields."""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml

from .errors import ConfigError

C = TypeVar("C")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert `value` (possibly a string from `--set key=value`) to the field type `tp`."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in typing.get_args(tp):
                return None
        for a in args:
            try:
                return _coerce(value, a, key)
            except ConfigError:
                continue
        raise ConfigError(f"config {key}: cannot read {value!r} as {tp}")
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"config {key}: {value!r} not one of {list(allowed)}")
        return value
    if origin in (tuple, list):
        if isinstance(value, str):
            value = yaml.safe_load(value) if value.strip().startswith("[") else [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config {key}: expected a list, got {value!r}")
        (inner, *_) = typing.get_args(tp) or (Any,)
        items = [_coerce(v, inner, key) if inner is not Any and inner is not Ellipsis else v for v in value]
        return tuple(items) if origin is tuple else items
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"config {key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"config {key}: expected an integer, got {value!r}")
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config {key}: expected an integer, got {value!r}") from None
        if f != int(f):
            raise ConfigError(f"config {key}: expected an integer, got {value!r}")
        return int(f)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"config {key}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config {key}: expected a number, got {value!r}") from None
    if tp is str:
        return str(value)
    return value


def update_config(config: C, overrides: Mapping[str, Any]) -> C:
    """A copy of dataclass `config` with `overrides` applied; unknown keys raise ConfigError."""
    fields = {f.name: f for f in dataclasses.fields(config)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(type(config))
    changes = {}
    for key, value in overrides.items():
        if key not in fields:
            raise ConfigError(f"unknown config key {key!r} for {type(config).__qualname__}; valid: {', '.join(fields)}")
        changes[key] = _coerce(value, hints[key], key)
    new = dataclasses.replace(config, **changes)  # type: ignore[type-var]
    validate = getattr(new, "validate", None)
    if callable(validate):
        validate()
    return new


MAX_SEED = 2**32 - 1  # seeds are combined into larger ones (e.g. times 1,000,003), which must stay in int64


def check_seed(seed: Any, what: str = "seed") -> int:
    """`seed` if it is an integer from 0 to `MAX_SEED`; ConfigError otherwise."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{what} must be an integer from 0 to {MAX_SEED}, got {seed!r}")
    return seed


def check_ipc(ipc: Any, what: str = "ipc") -> int:
    """`ipc` if it is a positive integer; ConfigError otherwise."""
    if isinstance(ipc, bool) or not isinstance(ipc, int) or ipc < 1:
        raise ConfigError(f"{what} must be a positive integer, got {ipc!r}")
    return ipc


def int_list(text: str, what: str) -> tuple[int, ...]:
    """'1,10,50' -> (1, 10, 50); ConfigError naming `what` on an empty list or a non-integer."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    try:
        values = tuple(int(t) for t in items)
    except ValueError:
        raise ConfigError(f"{what} expects comma-separated integers, got {text!r}") from None
    if not values:
        raise ConfigError(f"{what} expects at least one integer, got {text!r}")
    return values


def parse_set_options(items: list[str]) -> dict[str, str]:
    """['a=1', 'b=x'] -> {'a': '1', 'b': 'x'}."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def load_yaml_config(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: invalid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of config keys")
    return data


def config_dict(config: Any) -> dict[str, Any]:
    d = dataclasses.asdict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def before_fields(config: Any) -> dict[str, Any]:
    """What a record made before a field of `config`'s class existed ran with, field by field:
    `config`'s values, except the fields its class's BEFORE_FIELD names (a field added later with a
    default that keeps the old behaviour ran at that default)."""
    return {**config_dict(config), **getattr(type(config), "BEFORE_FIELD", {})}


def differing_fields(stored: Mapping[str, Any], today: Mapping[str, Any],
                     before: Mapping[str, Any] | None) -> dict[str, Any]:
    """The fields whose stored value differs from today's, with the stored value. A field `stored`
    lacks was added since: it counts at its value in `before` (see `before_fields`; not compared
    when `before` is None or lacks it). A field only `stored` has is ignored."""
    out: dict[str, Any] = {}
    for k, v in today.items():
        if k in stored:
            if stored[k] != v:
                out[k] = stored[k]
        elif before is not None and k in before and before[k] != v:
            out[k] = before[k]
    return out


def differs(stored: Mapping[str, Any], today: Mapping[str, Any], before: Mapping[str, Any] | None) -> bool:
    """Whether stored values differ from today's (`differing_fields`)."""
    return bool(differing_fields(stored, today, before))


def model_kwargs_tuple(value: Any, what: str) -> tuple[tuple[str, Any], ...]:
    """A model-options value (dict, YAML mapping string such as '{width: 64}', or (key, value)
    pairs) as the sorted tuple of pairs that frozen configs store."""
    if isinstance(value, str):
        value = yaml.safe_load(value) or {}
    if not isinstance(value, (dict, tuple, list)):
        raise ConfigError(f"{what} model_kwargs must be a mapping, got {value!r}")
    items = value.items() if isinstance(value, dict) else value
    return tuple(sorted((str(k), v) for k, v in items))
