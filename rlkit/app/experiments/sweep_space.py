"""Sweep files: the search space of ``rlkit sweep CONFIG SPACE.yaml``, parsed and checked.

A **sweep file** is a YAML mapping (every key but ``space`` optional)::

    description: learning rate and n-step of Rainbow on CartPole
    search: random            # random | grid | optuna (Optuna's TPE; pip install optuna)
    samples: 8                # trials (random, optuna); grid: how often the grid is run
    seed: 0                   # the search's own random seed (same seed, same trials)
    metric: eval/return_mean  # what the search maximises (an eval/* tag)
    mode: max                 # or min
    scheduler: asha           # asha (early stopping) | none
    asha: {grace_period: 5000, reduction_factor: 3}   # in env steps
    max_concurrent: 0         # trials at once (0: as many as the resources allow)
    set: {trainer.total_steps: 20000}                  # fixed overrides for every trial
    space:                    # section.field: one distribution each
      learner.lr: {loguniform: [1.0e-4, 3.0e-3]}
      replay.n_step: {choice: [1, 3, 5]}
      replay.alpha: {uniform: [0.4, 0.8]}
      learner.target_update_period: {randint: [100, 1000]}   # both ends included
      learner.double_q: {grid: [true, false]}              # every value, crossed

``grid`` entries are crossed with each other (Tune's grid search) and the other entries
sampled for each grid point; ``search: grid`` takes grid entries only, ``search:
optuna`` none. Every key is checked against the config's keys, and every value a
distribution can produce (both bounds of a range, each listed value) against the
config's rules, on top of CONFIG and ``set``, before anything runs; mistakes raise a
one-line ConfigError naming the file and the key. Ray is not imported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlkit.app.experiments.suites import parse_set_mapping
from rlkit.config import Config, ConfigError, read_yaml, split_key, suggest

SWEEP_KEYS = (
    "description",
    "search",
    "samples",
    "seed",
    "metric",
    "mode",
    "scheduler",
    "asha",
    "max_concurrent",
    "set",
    "space",
)
SEARCHES = ("random", "grid", "optuna")
SCHEDULERS = ("asha", "none")
#: distribution name -> (what its list holds, a range of two numbers or values)
DISTRIBUTIONS = {
    "choice": "values",
    "grid": "values",
    "uniform": "range",
    "loguniform": "range",
    "randint": "range",
}
#: the tags an evaluation logs (``EvalResult.scalars``), which a sweep may rank by
METRICS = (
    "eval/return_mean",
    "eval/return_std",
    "eval/length_mean",
    "eval/q_pred",
    "eval/return_discounted",
    "eval/overestimation",
)


@dataclass(frozen=True)
class Dimension:
    """One searched key: ``key`` (section.field), its distribution and its arguments."""

    key: str
    kind: str  # a DISTRIBUTIONS name
    args: tuple[Any, ...]  # the values (choice, grid) or (low, high)

    def extremes(self) -> tuple[Any, ...]:
        """The values to check against the config: each value, or both bounds (as floats
        for uniform and loguniform, which sample floats)."""
        if self.kind in ("uniform", "loguniform"):
            return tuple(float(v) for v in self.args)
        return self.args


@dataclass(frozen=True)
class Asha:
    grace_period: int | None = None  # env steps; None: total_steps // 8 (>= eval.every)
    reduction_factor: float = 3.0


@dataclass(frozen=True)
class SweepSpec:
    path: Path
    dimensions: tuple[Dimension, ...]
    search: str = "random"
    samples: int = 1
    seed: int = 0
    metric: str = "eval/return_mean"
    mode: str = "max"
    scheduler: str = "none"
    asha: Asha = field(default_factory=Asha)
    max_concurrent: int = 0
    overrides: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    @property
    def name(self) -> str:
        return self.path.stem


def _number(where: str, value: Any, *, integer: bool = False) -> float | int:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{where}: expected {kind}, got {value!r}")
    return value


def _dimension(where: str, key: Any, value: Any) -> Dimension:
    key = str(key)
    split_key(where, key)
    here = f"{where}: {key}"
    if not isinstance(value, dict) or len(value) != 1:
        names = ", ".join(DISTRIBUTIONS)
        raise ConfigError(f"{here}: expected one distribution, e.g. {{choice: [a, b]}} ({names})")
    ((kind, args),) = value.items()
    if kind not in DISTRIBUTIONS:
        raise ConfigError(
            f"{here}: unknown distribution {kind!r}{suggest(str(kind), DISTRIBUTIONS)}"
        )
    if not isinstance(args, list) or not args:
        raise ConfigError(f"{here}: {kind}: expected a non-empty list")
    if DISTRIBUTIONS[kind] == "values":
        return Dimension(key, kind, tuple(args))
    if len(args) != 2:
        raise ConfigError(f"{here}: {kind}: expected [low, high], got {args!r}")
    low, high = (_number(f"{here}: {kind}", v, integer=kind == "randint") for v in args)
    if not low < high:
        raise ConfigError(f"{here}: {kind}: low must be < high, got [{low}, {high}]")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"{here}: loguniform: bounds must be > 0, got [{low}, {high}]")
    return Dimension(key, kind, (low, high))


def _choice(where: str, value: Any, options: tuple[str, ...]) -> str:
    if value not in options:
        raise ConfigError(f"{where}: expected one of {', '.join(options)}, got {value!r}")
    return value


def _count(where: str, value: Any, low: int) -> int:
    _number(where, value, integer=True)
    if value < low:
        raise ConfigError(f"{where}: must be >= {low}, got {value}")
    return value


def _asha(where: str, value: Any) -> Asha:
    if value is None:
        return Asha()
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping with grace_period, reduction_factor")
    for key in value:
        if key not in ("grace_period", "reduction_factor"):
            hint = suggest(str(key), ("grace_period", "reduction_factor"))
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")
    grace = value.get("grace_period")
    if grace is not None:
        _count(f"{where}: grace_period", grace, 1)
    factor = _number(f"{where}: reduction_factor", value.get("reduction_factor", 3.0))
    if factor <= 1:
        raise ConfigError(f"{where}: reduction_factor: must be > 1, got {factor}")
    return Asha(grace, float(factor))


def _check_search(where: str, search: str, dims: tuple[Dimension, ...]) -> None:
    for dim in dims:
        if search == "grid" and dim.kind != "grid":
            raise ConfigError(
                f"{where}: space: {dim.key}: search: grid takes grid entries only "
                f"(got {dim.kind}); use search: random to sample it"
            )
        if search == "optuna" and dim.kind == "grid":
            raise ConfigError(
                f"{where}: space: {dim.key}: search: optuna cannot take a grid; "
                "use choice (or search: grid)"
            )


def load_sweep(path: Path) -> SweepSpec:
    """Read and check a sweep file (its keys and distributions, not yet the config)."""
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with 'space'")
    for key in data:
        if key not in SWEEP_KEYS:
            raise ConfigError(f"{path}: unknown key {key!r}{suggest(str(key), SWEEP_KEYS)}")
    space = data.get("space")
    if not isinstance(space, dict) or not space:
        raise ConfigError(f"{path}: space: expected a mapping of section.field: distribution")
    dims = tuple(_dimension(f"{path}: space", k, v) for k, v in space.items())
    search = _choice(f"{path}: search", data.get("search", "random"), SEARCHES)
    _check_search(str(path), search, dims)
    overrides = parse_set_mapping(f"{path}: set", data.get("set"))
    for dim in dims:
        if dim.key in overrides:
            raise ConfigError(f"{path}: space: {dim.key} is also fixed under set:")
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise ConfigError(f"{path}: description: expected a string")
    return SweepSpec(
        path=path,
        dimensions=dims,
        search=search,
        samples=_count(f"{path}: samples", data.get("samples", 1), 1),
        seed=_count(f"{path}: seed", data.get("seed", 0), 0),
        metric=_choice(f"{path}: metric", data.get("metric", METRICS[0]), METRICS),
        mode=_choice(f"{path}: mode", data.get("mode", "max"), ("max", "min")),
        scheduler=_choice(f"{path}: scheduler", data.get("scheduler", "none"), SCHEDULERS),
        asha=_asha(f"{path}: asha", data.get("asha")),
        max_concurrent=_count(f"{path}: max_concurrent", data.get("max_concurrent", 0), 0),
        overrides=overrides,
        description=" ".join(description.split()),
    )


def check_against(spec: SweepSpec, base: Mapping[str, Any], build) -> Config:
    """Check every value the space can produce against the config rules.

    ``base`` is CONFIG's raw dict with ``set`` and ``--set`` applied, ``build(raw)`` makes
    a Config from a raw dict (raising ConfigError). Returns the config of the first value
    of each dimension (what the report's header shows as the base)."""
    from rlkit.config import apply_overrides

    first = {d.key: d.extremes()[0] for d in spec.dimensions}
    config = build(apply_overrides(dict(base), first))
    for dim in spec.dimensions:
        for value in dim.extremes():
            try:
                build(apply_overrides(dict(base), {**first, dim.key: value}))
            except ConfigError as exc:
                raise ConfigError(
                    f"{spec.path}: space: {dim.key}: the value {value!r} is not valid: {exc}"
                ) from None
    return config
