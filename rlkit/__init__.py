"""rlkit: Rainbow-style DQN agents in PyTorch.

Layers, each importing only those below it (docs/architecture.md):

- ``rlkit.agent``: networks (``rlkit.agent.nn``), objectives (losses), replay, the policy,
  the learner, schedules, and the builder that makes them from a config;
- ``rlkit.envs``: one ``VecEnv`` protocol over Gymnasium, ALE's AtariVectorEnv, EnvPool;
- ``rlkit.loops``: the loops that drive envs, policy, replay and learner (``sync``);
- ``rlkit.app``: run dirs, checkpoints, loggers, the CLI, experiments (``rlkit ablate``).

The older flat paths (``rlkit.replay``, ``rlkit.nn``, ``rlkit.learner``, ...) still import
the same modules (``rlkit._compat``).

The Python API (``rlkit.app.api``), imported on first use so that ``import rlkit`` stays
cheap: ``rlkit.train``, ``rlkit.Agent``, ``rlkit.evaluate``, ``rlkit.export``,
``rlkit.TrainResult``.
"""

import sys
import types
from typing import Any

from rlkit import _compat

_compat.install()

__version__ = "0.1.0"

_API = ("Agent", "TrainResult", "evaluate", "export", "train")
__all__ = ["__version__", *_API]


class _Package(types.ModuleType):
    """Importing the old flat path ``rlkit.evaluate`` (a module) does not replace the
    API's ``rlkit.evaluate`` (a function) on the package."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _API and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    if name in _API:
        from rlkit.app import api

        return getattr(api, name)
    raise AttributeError(f"module 'rlkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
