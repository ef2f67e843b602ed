"""Suite files: parsing and checking a suite, and its expansion into runs (``Job``).

A **suite** is a YAML file (see ``load_suite``)::

    description: TD targets on CartPole-v1     # optional, shown in report.md
    variants: [q_learning.yaml, double_q.yaml] # run configs, relative to the suite file
    envs:                                      # env ids, or mappings with overrides
      - CartPole-v1
      - {id: Acrobot-v1, set: {learner.lr: 6.3e-4}}
    seeds: 5                                   # seeds 0..4, or a list [0, 3, 7]
    set: {trainer.total_steps: 20000}          # optional, applied to every run

A variant's name is its file stem. A run's config is the variant file (with its
``extends:`` chain), then the suite's ``set``, then the env's id and ``set``, then the
command line's ``--set``, and finally ``trainer.seed`` = the run's seed. Keys and values
go through ``rlkit.config``'s own checks (``split_key``, ``apply_overrides``,
``from_dict``); errors name the suite file and the key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlkit.config import (
    OVERRIDE,
    SECTION_TYPES,
    Config,
    ConfigError,
    apply_overrides,
    from_dict,
    load_raw_sourced,
    parse_override,
    read_yaml,
    split_key,
    suggest,
)

SUITE_KEYS = ("description", "variants", "envs", "seeds", "set")
ENV_KEYS = ("id", "name", "set")
DEFAULT_SEEDS = 5
#: keys set per run by the suite itself, so ``set:`` / ``--set`` may not touch them.
RESERVED_KEYS = {"trainer.seed": "seeds:/--seeds", "env.id": "envs:"}


# ---------------------------------------------------------------- suite files


@dataclass(frozen=True)
class EnvEntry:
    """One env of a suite: the Gymnasium id, its directory name and its overrides."""

    id: str
    name: str  # directory under OUT (the id with "/" replaced), unique in the suite
    overrides: dict[str, Any]  # "section.field" -> value


@dataclass(frozen=True)
class Suite:
    path: Path
    variants: tuple[Path, ...]  # run config files, resolved against the suite's folder
    envs: tuple[EnvEntry, ...]
    seeds: tuple[int, ...]
    overrides: dict[str, Any]  # "section.field" -> value, for every run
    description: str = ""

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def variant_names(self) -> list[str]:
        return [p.stem for p in self.variants]


def check_override_key(where: str, key: str) -> None:
    """Raise ConfigError unless ``key`` is a settable ``section.field`` of a run config
    (``rlkit.config.split_key``'s checks, plus the keys the suite sets per run)."""
    split_key(where, key)
    if key in RESERVED_KEYS:
        raise ConfigError(f"{where}: {key} is set per run by the suite; use {RESERVED_KEYS[key]}")


def parse_set_mapping(where: str, value: Any) -> dict[str, Any]:
    """A suite ``set:`` mapping -> ``{"section.field": value}``, checked.

    Accepts dotted keys (``learner.lr: 1e-3``) and sections (``learner: {lr: 1e-3}``).
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping of section.field: value")
    flat: dict[str, Any] = {}
    for key, item in value.items():
        key = str(key)
        if "." not in key and isinstance(item, dict):
            flat.update({f"{key}.{k}": v for k, v in item.items()})
        else:
            flat[key] = item
    for key in flat:
        check_override_key(where, key)
    return flat


def parse_cli_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``--set a.b=c`` items -> ``{"a.b": yaml-parsed c}``, checked like a suite's ``set:``."""
    flat: dict[str, Any] = {}
    for item in items:
        (section, name), value = parse_override(item)
        check_override_key("--set", f"{section}.{name}")
        flat[f"{section}.{name}"] = value
    return flat


def _parse_seeds(where: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ConfigError(f"{where}: must be >= 1 (the number of seeds), got {value}")
        return tuple(range(value))
    if isinstance(value, list) and value:
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value):
            raise ConfigError(f"{where}: seeds must be integers >= 0, got {value!r}")
        if len(set(value)) != len(value):
            raise ConfigError(f"{where}: seeds must be distinct, got {value!r}")
        return tuple(value)
    raise ConfigError(f"{where}: expected a number of seeds or a list of seeds, got {value!r}")


def _parse_env(where: str, item: Any) -> EnvEntry:
    if isinstance(item, str) and item:
        return EnvEntry(item, item.replace("/", "-"), {})
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: expected an env id or a mapping with 'id', got {item!r}")
    for key in item:
        if key not in ENV_KEYS:
            raise ConfigError(f"{where}: unknown key {key!r}{suggest(str(key), ENV_KEYS)}")
    env_id = item.get("id")
    if not isinstance(env_id, str) or not env_id:
        raise ConfigError(f"{where}: 'id' must be a Gymnasium env id, got {env_id!r}")
    name = item.get("name", env_id.replace("/", "-"))
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise ConfigError(f"{where}: 'name' must be a plain directory name, got {name!r}")
    return EnvEntry(env_id, name, parse_set_mapping(f"{where}.set", item.get("set")))


def _parse_variants(where: str, value: Any, base: Path) -> tuple[Path, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: expected a non-empty list of config files")
    paths: list[Path] = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise ConfigError(f"{where}[{i}]: expected a config file path, got {item!r}")
        path = base / item
        if not path.is_file():
            raise ConfigError(f"{where}[{i}]: config file not found: {path}")
        if path.stem in [p.stem for p in paths]:
            raise ConfigError(f"{where}[{i}]: two variants are named {path.stem!r} (file stem)")
        paths.append(path)
    return tuple(paths)


def load_suite(path: Path) -> Suite:
    """Read and check a suite file; mistakes raise a one-line ConfigError naming file and key."""
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with 'variants', 'envs' and 'seeds'")
    for key in data:
        if key not in SUITE_KEYS:
            if key in SECTION_TYPES or key == "extends":
                raise ConfigError(
                    f"{path}: {key!r} is a run-config key; this looks like a run config, "
                    "not a suite (use 'rlkit train' for it, or list it under 'variants:')"
                )
            raise ConfigError(f"{path}: unknown key {key!r}{suggest(str(key), SUITE_KEYS)}")
    for key in ("variants", "envs"):
        if key not in data:
            raise ConfigError(f"{path}: missing key {key!r}")
    variants = _parse_variants(f"{path}: variants", data["variants"], path.parent)
    if not isinstance(data["envs"], list) or not data["envs"]:
        raise ConfigError(f"{path}: envs: expected a non-empty list of env ids")
    envs = tuple(_parse_env(f"{path}: envs[{i}]", e) for i, e in enumerate(data["envs"]))
    names = [e.name for e in envs]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(
                f"{path}: envs[{i}]: env {name!r} listed twice (give one a distinct 'name:')"
            )
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise ConfigError(f"{path}: description: expected a string")
    return Suite(
        path=path,
        variants=variants,
        envs=envs,
        seeds=_parse_seeds(f"{path}: seeds", data.get("seeds", DEFAULT_SEEDS)),
        overrides=parse_set_mapping(f"{path}: set", data.get("set")),
        description=" ".join(description.split()),
    )


# ---------------------------------------------------------------- expansion into runs


@dataclass(frozen=True)
class Job:
    """One run of a suite: a resolved config and the run dir it trains into."""

    variant: str
    env: str  # EnvEntry.name
    seed: int
    config: Config
    run_dir: Path

    @property
    def key(self) -> str:
        return f"{self.env}/{self.variant}/seed{self.seed}"


def resolve_config(
    suite: Suite, variant: Path, env: EnvEntry, overrides: Mapping[str, Any]
) -> Config:
    """The config of (variant, env) before the seed: file, suite set, env, ``--set``."""
    where = f"{suite.path}: variant {variant.stem!r} on {env.name}"
    try:
        raw, sources = load_raw_sourced(variant)
        for origin, values in (
            ("the suite's set", suite.overrides),
            (f"env {env.name}", {"env.id": env.id, **env.overrides}),
            (OVERRIDE, overrides),
        ):
            raw = apply_overrides(raw, values)
            sources.update({key: origin for key in values})
        return from_dict(raw, str(variant), sources)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def default_out(suite: Suite) -> Path:
    """``runs/ablate/<suite name>``: where a suite's run dirs go without ``--out``."""
    return Path("runs") / "ablate" / suite.name


def expand(
    suite: Suite,
    out: Path,
    *,
    seeds: int | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> list[Job]:
    """Every (seed, env, variant) run, seed-major so early results cover every variant.

    ``seeds`` (``--seeds N``) replaces the suite's seeds by 0..N-1. Every config is
    resolved and checked here, before anything runs; unknown env ids raise EnvError, an
    unavailable device ConfigError.
    """
    from rlkit.build import resolve_device
    from rlkit.envs import check_env_id

    if seeds is not None and seeds < 1:
        raise ConfigError(f"--seeds: must be >= 1, got {seeds}")
    seed_list = tuple(range(seeds)) if seeds is not None else suite.seeds
    configs = {
        (env.name, variant.stem): resolve_config(suite, variant, env, overrides or {})
        for env in suite.envs
        for variant in suite.variants
    }
    for env_id, imports in dict.fromkeys((c.env.id, c.env.imports) for c in configs.values()):
        check_env_id(env_id, imports)
    for config in configs.values():
        resolve_device(config.trainer.device)  # e.g. cuda on a machine without it
    jobs = []
    for seed in seed_list:
        for env in suite.envs:
            for variant in suite.variant_names:
                config = configs[env.name, variant]
                config = dataclasses.replace(
                    config, trainer=dataclasses.replace(config.trainer, seed=seed)
                )
                run_dir = out / env.name / variant / f"seed{seed}"
                jobs.append(Job(variant, env.name, seed, config, run_dir))
    return jobs
