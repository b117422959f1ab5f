"""Typed configs from YAML files, CLI flags and `key=value` overrides.

The command's frozen dataclass is the schema: unknown keys are rejected (with a suggestion), nested
dataclasses are merged key by key (never a shallow `{**a, **b}`), and values are coerced to the
field's type so `steps=50` on the command line becomes an int and `placement=before_bos` a `Placement`.

Sections shared by several commands (`prompt`, `optim`, `task`) are dataclasses declared once. A field's
metadata (`option(...)`) names its CLI flag and help; `add_dataclass_flags` generates the argparse flags
from it, so a choice list (a str-enum) or a default is written exactly once. A flat key that names a field
of exactly one section (`lr=0.05`, `num_virtual_tokens: 4` in an older YAML) is routed into that section.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import enum
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from softeval.errors import ConfigError


class Choice(str, enum.Enum):
    """Base of softeval's str-enums: compares and serialises as its value (`Placement.after_bos == "after_bos"`)."""

    def __str__(self) -> str:
        return self.value

    @classmethod
    def values(cls) -> list[str]:
        return [m.value for m in cls]


def option(default=dataclasses.MISSING, *, help: str = "", flag: str | None = None, default_factory=None,
           choices=None, repeat: bool = False, identity: bool = True, why: str = ""):
    """A dataclass field with CLI metadata: `flag` (e.g. '--tokens'; None = no flag, config key only),
    `help`, `choices` (a callable returning the valid names, for registries that are not enums) and `repeat`
    (a list field whose flag may be given several times, like `--model A --model B`).

    `identity=False` declares that the setting changes no number of a result (where it runs, how often it
    reports, a label whose resolved value is recorded instead); `why` must say so. softeval.store.identity reads
    this for every command."""
    meta = {"help": help, "flag": flag, "choices": choices, "repeat": repeat, **_identity_meta(identity, why)}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def section(factory, *, identity: bool = True, why: str = ""):
    """A nested config section (its own fields declare their identity); `identity=False` leaves it out whole."""
    return dataclasses.field(default_factory=factory, metadata=_identity_meta(identity, why))


def _identity_meta(identity: bool, why: str) -> dict:
    if not identity and not why:
        raise TypeError("a setting declared identity=False must say why it changes no number (why=...)")
    return {"identity": identity, "why": why}


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _unknown(key: str, known: list[str], where: str, routable: list[str] = ()) -> ConfigError:
    close = difflib.get_close_matches(key, [*known, *routable], n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return ConfigError(f"unknown config key '{where}{key}'.{hint} Known keys: {', '.join(sorted(known))}")


def _coerce(value: Any, typ: Any, key: str) -> Any:
    origin = typing.get_origin(typ)
    if isinstance(typ, type) and issubclass(typ, enum.Enum):
        try:
            return typ(value.value if isinstance(value, enum.Enum) else value)
        except ValueError:
            choices = [m.value for m in typ]
            close = difflib.get_close_matches(str(value), choices, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"config key '{key}' must be one of {', '.join(choices)}, got '{value}'.{hint}") from None
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
    if origin in (list, tuple) and isinstance(value, (str, int)) and not isinstance(value, bool):
        items = [v.strip() for v in str(value).split(",") if v.strip()]
        inner = (typing.get_args(typ) or (str,))[0]
        return [_number_or_text(v, inner) for v in items] if inner in (int, float) else items
    if origin is dict and isinstance(value, str):
        loaded = yaml.safe_load(value)
        if not isinstance(loaded, dict):
            raise ConfigError(f"config key '{key}' expects a mapping, got '{value}'")
        return loaded
    return value


def _section_defaults(cls, name: str) -> dict:
    """The command's own default for section `name` (e.g. bench's optim: 80 steps, constant lr), as data, so
    `lr=0.05` changes only lr and keeps the command's other section defaults."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    if f.default_factory is not dataclasses.MISSING:
        return to_dict(f.default_factory())
    if dataclasses.is_dataclass(f.default):
        return to_dict(f.default)
    return {}


def section_of(cls, key: str) -> str | None:
    """The one nested dataclass field of `cls` that has a field named `key` (for flat keys), else None."""
    owners = [name for name, typ in _field_types(cls).items()
              if dataclasses.is_dataclass(typ) and key in _field_types(typ)]
    return owners[0] if len(owners) == 1 else None


def _number_or_text(text: str, typ: type):
    """'4' → 4 for list[int] fields; text that is no number stays text for the field's own check to name."""
    try:
        return typ(text)
    except ValueError:
        return text


def merge_into(cls, base: dict, updates: dict, where: str = "") -> dict:
    """Deep-merge `updates` into `base` (both plain dicts) following dataclass `cls`."""
    types_ = _field_types(cls)
    out = dict(base)
    if dataclasses.is_dataclass(updates) and not isinstance(updates, type):
        updates = to_dict(updates)
    for key, value in updates.items():
        if key not in types_:
            section = section_of(cls, key)
            if section is None:
                routable = [k for t in types_.values() if dataclasses.is_dataclass(t) for k in _field_types(t)]
                raise _unknown(key, list(types_), where, routable)
            out = merge_into(cls, out, {section: {key: value}}, where)
            continue
        typ = types_[key]
        if dataclasses.is_dataclass(typ):
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                value = to_dict(value)
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{where}{key}' expects a mapping")
            start = out[key] if isinstance(out.get(key), dict) else _section_defaults(cls, key)
            out[key] = merge_into(typ, start, value, f"{where}{key}.")
        elif typing.get_origin(typ) is dict and isinstance(value, dict):
            out[key] = {**(out.get(key) or {}), **value}  # free-form options: merged one level, by design
        else:
            out[key] = _coerce(value, typ, where + key)
    return out


def plain(value: Any) -> Any:
    """A config value as plain JSON-able data: enums as their values, tuples as lists, paths as text."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {k: plain(x) for k, x in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(x) for x in value]
    if isinstance(value, Path):
        return str(value)
    return value


def to_dict(cfg) -> dict:
    """A config as plain JSON-able data (enums as their values, tuples as lists)."""
    return plain(dataclasses.asdict(cfg))


def from_dict(cls, data: dict):
    """The inverse of `to_dict`, with the same checks as a YAML file (unknown keys, types)."""
    return instantiate(cls, merge_into(cls, {}, data))


def instantiate(cls, data: dict):
    """Build `cls` from merged data. Errors of every section and of `cls` itself are reported together."""
    types_ = _field_types(cls)
    kwargs, errors = {}, []
    for key, value in data.items():
        typ = types_[key]
        if dataclasses.is_dataclass(typ) and isinstance(value, dict):
            try:
                kwargs[key] = instantiate(typ, value)
            except ConfigError as exc:
                errors.append(str(exc))  # the section's defaults stand in, so cls's own checks still run
        elif isinstance(typ, type) and issubclass(typ, enum.Enum) and not isinstance(value, typ):
            kwargs[key] = _coerce(value, typ, key)
        else:
            kwargs[key] = value
    try:
        made = cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"invalid config for {cls.__name__}: {exc}") from exc
    except ConfigError as exc:
        raise ConfigError("; ".join([*errors, str(exc)])) from None
    if errors:
        raise ConfigError("; ".join(errors))
    return made


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
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"{p} is not a YAML config file (not UTF-8 text)") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{p} must hold a mapping of config keys")
    return data


def build_config(cls, yaml_path: str | None = None, overrides: list[str] | None = None, flags: dict | None = None,
                 base: dict | None = None):
    """`base` (e.g. a stored config), then the YAML file, then CLI flags (only those given), then dotted
    overrides; later wins."""
    data: dict = merge_into(cls, {}, base) if base else {}
    if yaml_path:
        data = merge_into(cls, data, load_yaml(yaml_path))
    if flags:
        data = merge_into(cls, data, flags)
    if overrides:
        data = merge_into(cls, data, dotted_to_nested(overrides))
    return instantiate(cls, data)


# --------------------------------------------------------------------------- CLI flags from field metadata


def _flag_fields(cls, prefix: str = ""):
    """(dotted key, field, type) for every field with a CLI flag, nested sections included."""
    types_ = _field_types(cls)
    for f in dataclasses.fields(cls):
        typ = types_[f.name]
        if dataclasses.is_dataclass(typ):
            yield from _flag_fields(typ, f"{prefix}{f.name}.")
        elif f.metadata.get("flag"):
            yield prefix + f.name, f, typ


def _default_text(f, defaults=None, key: str = "") -> str:
    if defaults is not None:  # the command's own defaults (a section default_factory may differ from the class's)
        value = defaults
        for part in key.split("."):
            value = getattr(value, part)
    elif f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return ""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value) or "none"
    return "" if value is None else f" (default {value})"


def add_dataclass_flags(parser: argparse.ArgumentParser, cls, *, skip: tuple[str, ...] = (),
                        groups: dict[str, str] | None = None, prefix: str = "") -> None:
    """Add one flag per field that declares one (`option(flag=...)`); values stay strings (None = not given)
    and are typed by `merge_into`, so the dataclass annotation is the only type declaration."""
    made: dict[str, argparse._ArgumentGroup] = {}
    try:
        defaults = cls()
    except (TypeError, ConfigError):
        defaults = None
    for key, f, typ in _flag_fields(cls, prefix):
        if key in skip or f.metadata["flag"] in skip:
            continue
        section = key.split(".")[0] if "." in key else ""
        title = (groups or {}).get(section)
        target = parser
        if title:
            target = made.setdefault(section, parser.add_argument_group(title))
        inner = typing.get_args(typ)
        base = next((a for a in inner if a is not type(None)), typ) if inner else typ
        choices = None
        if isinstance(base, type) and issubclass(base, enum.Enum):
            choices = [m.value for m in base]
        elif f.metadata.get("choices"):
            choices = list(f.metadata["choices"]())
        kwargs = dict(dest="cfg:" + key, default=None, help=(f.metadata.get("help") or "") + _default_text(f, defaults, key.removeprefix(prefix)))
        if base is bool:
            kwargs.update(action="store_const", const="true")
        elif f.metadata.get("repeat"):
            kwargs.update(action="append", metavar=key.split(".")[-1].upper().rstrip("S"))
        else:
            kwargs.update(metavar=key.split(".")[-1].upper())
            if choices:  # shown, not enforced by argparse: merge_into's check says "Did you mean …" in one line
                kwargs.update(metavar="{" + ",".join(choices) + "}")
        target.add_argument(f.metadata["flag"], **kwargs)


def given_flags(args: argparse.Namespace) -> dict:
    """The generated flags the user actually passed, as a nested dict of config keys."""
    out: dict = {}
    for dest, value in vars(args).items():
        if not dest.startswith("cfg:") or value is None:
            continue
        node = out
        parts = dest[4:].split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out
