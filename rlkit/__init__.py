"""rlkit: Rainbow-style DQN agents in PyTorch.

Layers, each importing only those below it (docs/architecture.md):

- ``rlkit.agent``: networks (``rlkit.agent.nn``), objectives (losses), replay, the policy,
  the learner, schedules, and the builder that makes them from a config;
- ``rlkit.envs``: one ``VecEnv`` protocol over Gymnasium, ALE's AtariVectorEnv, EnvPool;
- ``rlkit.loops``: the loops that drive envs, policy, replay and learner (``sync``);
- ``rlkit.app``: run dirs, checkpoints, loggers, the CLI, experiments (``rlkit ablate``).

The older flat paths (``rlkit.replay``, ``rlkit.nn``, ``rlkit.learner``, ...) still import
the same modules (``rlkit._compat``).
"""

from rlkit import _compat

_compat.install()

__version__ = "0.1.0"
