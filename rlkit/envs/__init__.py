"""Environments: one VecEnv protocol over several backends (``rlkit.envs.base``)."""

from rlkit.envs.gymnasium import (
    SUITES,
    AtariOptions,
    EnvError,
    LifeLossSignal,
    MinAtarObservation,
    autoreset_mode,
    capture_env_state,
    check_env_id,
    check_spaces,
    ensure_registered,
    make_vec_env,
    restore_env_state,
    space_info,
    suite_of,
)

__all__ = [
    "SUITES",
    "AtariOptions",
    "EnvError",
    "LifeLossSignal",
    "MinAtarObservation",
    "autoreset_mode",
    "capture_env_state",
    "check_env_id",
    "check_spaces",
    "ensure_registered",
    "make_vec_env",
    "restore_env_state",
    "space_info",
    "suite_of",
]
