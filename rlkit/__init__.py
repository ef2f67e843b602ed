"""rlkit: Rainbow-style DQN agents in PyTorch.

Components live in submodules and are importable on their own:
``rlkit.replay`` (sum-tree, uniform/prioritized replay, n-step accumulator),
``rlkit.nn`` (NoisyLinear, QNetwork), ``rlkit.losses`` (TD targets, C51 projection),
``rlkit.schedules`` and ``rlkit.learner``.
"""

__version__ = "0.1.0"
