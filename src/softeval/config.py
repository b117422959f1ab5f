"""Typed configs from YAML files and `key=value` overrides.

The command's frozen dataclass is the schema: unknown keys are rejected (with a suggestion), nested
dataclasses are merged key by key (never a shallow `{**a, **b}`), and values are coerced to the
field's type so `steps=50` on the command line becomes an int.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from softeval.errors import ConfigError


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _unknown(key: str, known: list[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return ConfigError(f"unknown config key '{where}{key}'.{hint} Known keys: {', '.join(sorted(known))}")


def _coerce(value: Any, typ: Any, key: str) -> Any:
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return _coerce(value, args[0], key)
    if typ is bool and isinstance(value, str):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"config key '{key}' expects true/false, got '{value}'")
    if typ in (int, float) and isinstance(value, str):
        try:
            return typ(value)
        except ValueError:
            raise ConfigError(f"config key '{key}' expects {typ.__name__}, got '{value}'") from None
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if origin in (list, tuple) and isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if origin is dict and isinstance(value, str):
        loaded = yaml.safe_load(value)
        if not isinstance(loaded, dict):
            raise ConfigError(f"config key '{key}' expects a mapping, got '{value}'")
        return loaded
    return value


def merge_into(cls, base: dict, updates: dict, where: str = "") -> dict:
    """Deep-merge `updates` into `base` (both plain dicts) following dataclass `cls`."""
    types_ = _field_types(cls)
    out = dict(base)
    for key, value in updates.items():
        if key not in types_:
            raise _unknown(key, list(types_), where)
        typ = types_[key]
        if dataclasses.is_dataclass(typ):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{where}{key}' expects a mapping")
            out[key] = merge_into(typ, out.get(key) or {}, value, f"{where}{key}.")
        elif typing.get_origin(typ) is dict and isinstance(value, dict):
            out[key] = {**(out.get(key) or {}), **value}  # free-form options: merged one level, by design
        else:
            out[key] = _coerce(value, typ, where + key)
    return out


def instantiate(cls, data: dict):
    types_ = _field_types(cls)
    kwargs = {}
    for key, value in data.items():
        typ = types_[key]
        kwargs[key] = instantiate(typ, value) if dataclasses.is_dataclass(typ) and isinstance(value, dict) else value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"invalid config for {cls.__name__}: {exc}") from exc


def dotted_to_nested(overrides: list[str]) -> dict:
    """['task.name=repetition', 'steps=5'] → {'task': {'name': 'repetition'}, 'steps': '5'}."""
    nested: dict = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not key=value")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(value) if value.strip() else value
    return nested


def load_yaml(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{p} must hold a mapping of config keys")
    return data


def build_config(cls, yaml_path: str | None = None, overrides: list[str] | None = None, flags: dict | None = None):
    """YAML file, then CLI flags (only those given), then dotted overrides; later wins."""
    data: dict = {}
    if yaml_path:
        data = merge_into(cls, data, load_yaml(yaml_path))
    if flags:
        data = merge_into(cls, data, flags)
    if overrides:
        data = merge_into(cls, data, dotted_to_nested(overrides))
    return instantiate(cls, data)
