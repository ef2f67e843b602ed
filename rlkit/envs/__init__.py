"""Environments: one VecEnv protocol over several backends (``rlkit.envs.base``).

``make(backend, ...)`` builds a ``VecEnv`` of any backend (``backend_names()`` lists
them: ``gymnasium``, ``ale_vector``, ``envpool``); ``make_vec_env`` here is the Gymnasium
``SyncVectorEnv`` itself, kept for callers that step Gymnasium vector envs directly.
"""

from rlkit.envs.atari import AtariOptions, LifeLossSignal
from rlkit.envs.base import EnvError, VecEnv, VecStep, backend_names, make
from rlkit.envs.gymnasium import (
    GymnasiumVecEnv,
    MinAtarObservation,
    autoreset_mode,
    check_spaces,
    layout_of,
    space_info,
)
from rlkit.envs.gymnasium import make_sync_vec_env as make_vec_env
from rlkit.envs.state import capture_env_state, restore_env_state
from rlkit.envs.suites import SUITES, check_env_id, ensure_registered, suite_of

__all__ = [
    "SUITES",
    "AtariOptions",
    "EnvError",
    "GymnasiumVecEnv",
    "LifeLossSignal",
    "MinAtarObservation",
    "VecEnv",
    "VecStep",
    "autoreset_mode",
    "backend_names",
    "capture_env_state",
    "check_env_id",
    "check_spaces",
    "ensure_registered",
    "layout_of",
    "make",
    "make_vec_env",
    "restore_env_state",
    "space_info",
    "suite_of",
]
