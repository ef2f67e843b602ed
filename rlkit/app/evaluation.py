"""Greedy evaluation of a trained run: ``evaluate_run`` (what ``rlkit eval`` does) and
``evaluate_network`` (a network on the run's evaluation envs)."""

from __future__ import annotations

from pathlib import Path

import torch

from rlkit.build import build_policy, make_envs
from rlkit.config import Config
from rlkit.loops.evaluate import EvalResult, evaluate

__all__ = ["evaluate_network", "evaluate_run"]


def evaluate_network(
    net: torch.nn.Module, config: Config, episodes: int, seed: int, device: torch.device
) -> EvalResult:
    """Greedy evaluation of ``net`` for ``episodes`` episodes on the run's evaluation envs
    (at most 10 in parallel): the one place the eval entry point calls ``evaluate``."""
    envs = make_envs(config, min(episodes, 10), evaluation=True)
    policy = build_policy(config, net, envs.num_actions, device, evaluation=True, rng_seed=seed)
    try:
        return evaluate(policy, envs, episodes, seed=seed, gamma=config.learner.gamma)
    finally:
        envs.close()


def evaluate_run(
    run_dir: Path,
    checkpoint: Path | None = None,
    episodes: int | None = None,
    seed: int | None = None,
    device: str | None = None,
) -> tuple[EvalResult, Path]:
    """Greedy evaluation of a run's newest (or the given) checkpoint, as ``rlkit eval``
    does it (``rlkit.app.agent``: ``Agent.load`` then ``evaluate``)."""
    from rlkit.app.agent import Agent
    from rlkit.app.agent import evaluate as evaluate_agent

    if checkpoint is None:
        agent = Agent.load(run_dir, device)
    else:
        agent = Agent.load(checkpoint, device, run_dir=run_dir)
    config = agent.config
    episodes = episodes or config.eval.episodes
    seed = config.trainer.seed + 7 if seed is None else seed
    return evaluate_agent(agent, None, episodes, seed), agent.checkpoint
