"""Validation of a Config: each field's own rule (field metadata), then the few checks
that relate two keys. Raises ConfigError naming the first offending key."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from rlkit.config.rules import RULE
from rlkit.config.schema import SECTION_TYPES, Config, ConfigError, EnvConfig

# gymnasium.make keywords of ALE envs that rlkit sets from its own env keys.
_ALE_KWARGS = {
    "repeat_action_probability": "env.sticky_actions",
    "full_action_space": "env.full_action_space",
    "max_num_frames_per_episode": "env.max_frames_per_episode",
    "frameskip": "env.frame_skip",
}


def _check(cond: bool, key: str, message: str, value: Any) -> None:
    if not cond:
        raise ConfigError(f"{key}: {message}, got {value!r}")


def check_fields(section: str, values: Any) -> None:
    """ConfigError for the first field of ``values`` (a section dataclass) outside the
    range (or set of names) its field metadata declares."""
    for f in dataclasses.fields(values):
        rule = f.metadata.get(RULE)
        if rule is None:
            continue
        problem = rule.problem(getattr(values, f.name))
        if problem is not None:
            raise ConfigError(f"{section}.{f.name}: {problem}")


def _check_ale_kwargs(env: EnvConfig) -> None:
    """ConfigError when env.kwargs of an ALE id sets what an rlkit env key controls."""
    if not env.id.startswith("ALE/"):
        return
    for key, instead in _ALE_KWARGS.items():
        if key in env.kwargs:
            raise ConfigError(f"env.kwargs.{key}: rlkit sets it for ALE ids; use {instead}")


_WRAPPER_KEYS = ("target", "kwargs")


def _check_wrappers(env: EnvConfig) -> None:
    """ConfigError for an env.wrappers entry that is not {target: "module:Callable",
    kwargs: {...}}."""
    from rlkit.config.loading import suggest  # loading imports this module

    for i, entry in enumerate(env.wrappers):
        key = f"env.wrappers[{i}]"
        for name in entry:
            if name not in _WRAPPER_KEYS:
                raise ConfigError(f"{key}: unknown key {name!r}{suggest(name, _WRAPPER_KEYS)}")
        target = entry.get("target")
        _check(
            isinstance(target, str) and target.count(":") == 1 and all(target.split(":")),
            f"{key}.target",
            'expected "module:Callable", e.g. "gymnasium.wrappers:FlattenObservation"',
            target,
        )
        kwargs = entry.get("kwargs", {})
        _check(isinstance(kwargs, dict), f"{key}.kwargs", "expected a mapping", kwargs)
    for i, name in enumerate(env.imports):
        _check(bool(name.strip()), f"env.imports[{i}]", "expected a module name", name)


def _check_env(env: EnvConfig) -> None:
    _check_ale_kwargs(env)
    _check_wrappers(env)


def _check_network(c: Config) -> None:
    n = c.network
    if "auto" in (n.v_min, n.v_max):
        return  # checked once resolved (rlkit.support.with_support)
    _check(n.v_min < n.v_max, "network.v_max", "must be > network.v_min", n.v_max)


def _check_learner(c: Config) -> None:
    batch = c.learner.batch_size
    capacity = c.replay.capacity
    _check(
        batch <= capacity,
        "learner.batch_size",
        f"must not exceed replay.capacity ({capacity})",
        batch,
    )
    floor = c.learner.munchausen_log_floor
    _check(floor < 0, "learner.munchausen_log_floor", "must be < 0", floor)


#: checks across keys, run after the section's own field rules
_CROSS_CHECKS: dict[str, Callable[[Config], None]] = {
    "env": lambda c: _check_env(c.env),
    "network": _check_network,
    "learner": _check_learner,
}


def validate(c: Config) -> None:
    """Range checks; raises ConfigError naming the first offending key (sections in
    order; within one, its fields' rules in field order, then its cross-key checks)."""
    for section in SECTION_TYPES:
        check_fields(section, getattr(c, section))
        cross = _CROSS_CHECKS.get(section)
        if cross is not None:
            cross(c)
