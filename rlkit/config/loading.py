"""Reading a Config: YAML files with ``extends:``, ``--set a.b=c`` overrides, coercion of
values to the field types, the key checks with their close-match suggestions, and the
plain-dict form (``to_dict``) that config.yaml files and checkpoints hold.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import yaml

from rlkit.config.schema import SECTION_TYPES, Config, ConfigError, apply_protocol
from rlkit.config.validation import validate

# ---------------------------------------------------------------- field docs


def field_docs(cls: type) -> dict[str, str]:
    """The ``#:`` comment above each field of a config dataclass."""
    import inspect

    docs: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(cls).splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
        elif ":" in stripped and pending and not stripped.startswith(("class", "@", '"')):
            docs[stripped.split(":", 1)[0].strip()] = " ".join(pending)
            pending = []
    return docs


def describe(config: Config | None = None) -> str:
    """All config keys with their values in ``config`` (the dataclass defaults when None)
    and their docs, one per line."""
    config = config if config is not None else Config()
    lines = []
    for section, cls in SECTION_TYPES.items():
        docs = field_docs(cls)
        values = getattr(config, section)
        for f in dataclasses.fields(cls):
            value = _plain(getattr(values, f.name))
            lines.append(f"  {section}.{f.name} = {value!r}: {docs.get(f.name, '')}")
    return "\n".join(lines)


# ---------------------------------------------------------------- coercion


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _yaml11_number(value: Any) -> Any:
    """YAML 1.1 reads ``3e-4`` and ``1e5`` (no dot) as strings; read them as numbers."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


_EXPECTED = {float: "a number", int: "an integer", bool: "true or false", str: "a string"}


def _expected(tp: Any) -> str:
    """What a value of annotation ``tp`` looks like, for error messages."""
    if typing.get_origin(tp) is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    return _EXPECTED.get(tp, _type_name(tp))


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Check ``value`` against the annotation ``tp``; return it converted (list -> tuple)."""
    if tp in (int, float):
        value = _yaml11_number(value)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(key, value, arg)
            except ConfigError as exc:
                errors.append(str(exc))
        if len(errors) > 1:  # e.g. float | Literal["auto"]: name every accepted form
            wanted = " or ".join(_expected(a) for a in args if a is not type(None))
            raise ConfigError(f"{key}: expected {wanted}, got {value!r}")
        raise ConfigError(errors[0] if errors else f"{key}: expected {_type_name(tp)}")
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ConfigError(f"{key}: must be one of {choices}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return tuple(_coerce(f"{key}[{i}]", v, args[0]) for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
                return int(value)  # 1e5 in YAML
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(float(value)):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    raise ConfigError(f"{key}: unsupported type {_type_name(tp)}")


def suggest(name: str, choices: Iterable[str], prefix: str = "") -> str:
    """`` (did you mean 'PREFIXx'?)`` for the choice closest to ``name`` ('' when none is
    close); ``prefix`` makes the suggestion a full key, e.g. ``prefix="learner."``."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {prefix + close[0]!r}?)" if close else ""


def field_names(section: str) -> list[str]:
    """The keys of a config section, in field order."""
    return [f.name for f in dataclasses.fields(SECTION_TYPES[section])]


def check_section(where: str, section: Any) -> type:
    """The dataclass of ``section``; ConfigError naming it (and a close match) if unknown."""
    if section not in SECTION_TYPES:
        raise ConfigError(
            f"{where}: unknown section {section!r}{suggest(str(section), SECTION_TYPES)}"
        )
    return SECTION_TYPES[section]


def check_key(where: str, section: str, name: Any) -> None:
    """ConfigError unless ``section.name`` is a config key (``section`` must be known)."""
    names = field_names(section)
    if name not in names:
        hint = suggest(str(name), names, prefix=f"{section}.")
        raise ConfigError(f"{where}: unknown key '{section}.{name}'{hint}")


def split_key(where: str, key: str) -> tuple[str, str]:
    """``"section.field"`` -> (section, field), checked against the config's keys."""
    parts = key.split(".")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"{where}: key {key!r} must be section.field, e.g. learner.lr")
    section, name = parts
    check_section(where, section)
    check_key(where, section, name)
    return section, name


# ---------------------------------------------------------------- dicts


OVERRIDE = "--set"  # the origin of a key set on the command line


def origin_of(key: str, sources: Mapping[str, str], source: str) -> str:
    """Where ``key`` ("section.field" or "section") was set: its own entry in
    ``sources``, else its section's, else ``source``."""
    return sources.get(key) or sources.get(key.split(".", 1)[0]) or source


def _at(origin: str, message: str) -> str:
    """``message`` prefixed with where its key came from: ``"--set learner.lr: ..."`` for
    the command line, ``"path.yaml: learner.lr: ..."`` for a file."""
    return f"{origin} {message}" if origin == OVERRIDE else f"{origin}: {message}"


_KEY_AT_START = re.compile(r"^([A-Za-z_]\w*\.[A-Za-z_]\w*)[.:\[]")


def _section(name: Any, values: Any, source: str, sources: Mapping[str, str]) -> Any:
    """One section dataclass from its mapping: keys checked, values coerced; errors name
    the file (or ``--set``) each key came from."""
    cls = check_section(origin_of(str(name), sources, source), name)
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{origin_of(name, sources, source)}: section {name!r} must be a mapping")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        where = origin_of(f"{name}.{key}", sources, source)
        check_key(where, name, key)
        try:
            kwargs[key] = _coerce(f"{name}.{key}", value, hints[key])
        except ConfigError as exc:
            raise ConfigError(_at(where, str(exc))) from None
    if name == "env":
        kwargs = apply_protocol(kwargs, source)
    return cls(**kwargs)


def from_dict(
    data: dict, source: str = "config", sources: Mapping[str, str] | None = None
) -> Config:
    """Build a validated Config from nested dicts; unknown keys, wrong types and values
    out of range raise ConfigError naming the key and where it came from: its entry in
    ``sources`` ("section.field" or "section" -> a file path or ``--set``), else ``source``."""
    sources = sources or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(data).__name__}")
    sections = {}
    for name, values in data.items():
        sections[name] = _section(name, values, source, sources)
    config = Config(**sections)
    try:
        validate(config)
    except ConfigError as exc:
        match = _KEY_AT_START.match(str(exc))
        where = origin_of(match.group(1), sources, source) if match else source
        raise ConfigError(_at(where, str(exc))) from None
    return config


def _plain(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def to_dict(config: Config) -> dict:
    """Nested plain dict (tuples as lists) suitable for YAML."""
    return {
        s: {f.name: _plain(getattr(getattr(config, s), f.name)) for f in dataclasses.fields(cls)}
        for s, cls in SECTION_TYPES.items()
    }


class Change(NamedTuple):
    """One key where two configs differ, with its plain (``to_dict``) values."""

    key: str  # "section.field"
    old: Any  # the value in the first config
    new: Any  # the value in the second config


def config_diff(old: Config, new: Config, *, ignore: Iterable[str] = ()) -> list[Change]:
    """Every key (in section and field order) whose value differs, except ``ignore``d keys."""
    skip = frozenset(ignore)
    a, b = to_dict(old), to_dict(new)
    return [
        Change(f"{section}.{key}", a[section][key], b[section][key])
        for section in a
        for key in a[section]
        if f"{section}.{key}" not in skip and a[section][key] != b[section][key]
    ]


# ---------------------------------------------------------------- YAML files


def _deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def read_yaml(path: Path) -> Any:
    """Safe-load one YAML file; errors name the file (and line for syntax errors)."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}{where}: malformed YAML: {problem}") from exc


def load_raw(path: str | Path) -> dict:
    """The merged nested dict of a YAML file and its ``extends:`` chain (relative paths)."""
    return load_raw_sourced(path)[0]


def _sources_of(data: dict, path: Path) -> dict[str, str]:
    """``{"section": path, "section.field": path}`` for every section and key of ``data``."""
    out = {}
    for section, values in data.items():
        out[str(section)] = str(path)
        if isinstance(values, dict):
            out.update({f"{section}.{key}": str(path) for key in values})
    return out


def load_raw_sourced(path: str | Path, _seen: tuple[Path, ...] = ()) -> tuple[dict, dict[str, str]]:
    """``load_raw(path)`` and, for every section and "section.field" in it, the file of the
    ``extends:`` chain that set it last (what ``from_dict``'s errors name)."""
    path = Path(path)
    resolved = path.resolve()
    if resolved in _seen:
        raise ConfigError(f"{path}: circular 'extends:'")
    data = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    parent = data.pop("extends", None)
    if parent is None:
        return data, _sources_of(data, path)
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: 'extends' must be a path string")
    base, sources = load_raw_sourced(path.parent / parent, (*_seen, resolved))
    return _deep_merge(base, data), {**sources, **_sources_of(data, path)}


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"a.b=c"`` -> (["a", "b"], yaml-parsed c)."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. trainer.seed=3")
    key, _, text = item.partition("=")
    parts = key.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"--set {item!r}: key must be section.field, e.g. learner.lr")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: cannot parse value {text!r}") from exc
    return parts, value


def apply_overrides(data: dict, overrides: Sequence[str] | Mapping[str, Any]) -> dict:
    """A copy of the nested dict ``data`` with each override set, in order: ``--set``
    items ``"section.field=value"`` (parsed by ``parse_override``), or a mapping
    ``{"section.field": value}`` of values already parsed. Keys are checked later, by
    ``from_dict``."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for (section, key), value in _override_pairs(overrides):
        if not isinstance(out.get(section), dict):
            out[section] = {}
        out[section][key] = value
    return out


def _override_pairs(overrides: Sequence[str] | Mapping[str, Any]) -> list[tuple[list[str], Any]]:
    """(["section", "field"], value) of each ``--set`` item or mapping entry."""
    if isinstance(overrides, Mapping):
        return [(key.split("."), value) for key, value in overrides.items()]
    return [parse_override(item) for item in overrides]


def load_config(
    path: str | Path | None, overrides: Sequence[str] | Mapping[str, Any] = ()
) -> Config:
    """Load a YAML config (or the defaults when ``path`` is None) and apply the overrides
    (``--set`` items, or a mapping ``{"section.field": value}``); errors name the file or
    ``--set`` each offending key came from."""
    data, sources = load_raw_sourced(path) if path is not None else ({}, {})
    pairs = _override_pairs(overrides)
    data = apply_overrides(data, overrides)
    for parts, _ in pairs:
        sources[".".join(parts)] = OVERRIDE
        sources.setdefault(parts[0], OVERRIDE)
    return from_dict(data, str(path) if path is not None else "defaults", sources)


def dump_config(config: Config) -> str:
    """The config as YAML (every key, in section and field order)."""
    return yaml.safe_dump(to_dict(config), sort_keys=False)
