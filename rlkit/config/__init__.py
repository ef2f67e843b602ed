"""Typed, frozen run configuration: YAML files with ``extends:``, ``--set a.b=c`` overrides.

- ``schema``: the section dataclasses (one ``#:`` docstring line per field: meaning, unit,
  range) and the Atari protocol presets;
- ``rules``: per-field ranges and name registries, kept as field metadata;
- ``validation``: the checks of a whole Config (``validate``);
- ``loading``: YAML files, overrides, coercion, key suggestions, ``to_dict``/``from_dict``
  and ``config_diff``.

Step counts are **env steps** (one step of one environment, i.e. one transition) unless
the name says otherwise. ``rlkit train --help`` lists all fields (``describe()``).
"""

from rlkit.config.loading import (
    OVERRIDE,
    Change,
    apply_overrides,
    check_key,
    check_section,
    config_diff,
    describe,
    dump_config,
    field_docs,
    field_names,
    from_dict,
    load_config,
    load_raw,
    load_raw_sourced,
    origin_of,
    parse_override,
    read_yaml,
    split_key,
    suggest,
    to_dict,
)
from rlkit.config.rules import Choices, Range, above, at_least, one_of, within
from rlkit.config.schema import (
    ATARI_PROTOCOLS,
    SECTION_TYPES,
    Config,
    ConfigError,
    DistributedConfig,
    EnvConfig,
    EvalConfig,
    ExplorationConfig,
    LearnerConfig,
    NetworkConfig,
    ReplayConfig,
    TrainerConfig,
    apply_protocol,
)
from rlkit.config.validation import check_fields, validate

__all__ = [
    "ATARI_PROTOCOLS",
    "SECTION_TYPES",
    "Change",
    "Choices",
    "Config",
    "ConfigError",
    "EnvConfig",
    "DistributedConfig",
    "EvalConfig",
    "ExplorationConfig",
    "LearnerConfig",
    "NetworkConfig",
    "Range",
    "ReplayConfig",
    "TrainerConfig",
    "above",
    "apply_overrides",
    "apply_protocol",
    "at_least",
    "check_fields",
    "check_key",
    "check_section",
    "config_diff",
    "describe",
    "dump_config",
    "field_docs",
    "field_names",
    "from_dict",
    "load_config",
    "OVERRIDE",
    "load_raw",
    "load_raw_sourced",
    "origin_of",
    "one_of",
    "parse_override",
    "read_yaml",
    "split_key",
    "suggest",
    "to_dict",
    "validate",
    "within",
]
