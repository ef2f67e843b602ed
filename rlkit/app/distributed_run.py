"""A training run on Ray (``distributed.backend: ray``): the learner here, the Ape-X roles
as Ray actors (``rlkit.distributed``).

``build_distributed`` returns an ``ApexRun``, which the run's code treats like the
one-machine ``Components`` (``config``, ``trainer`` with ``run``/``counters``/
``last_eval``, ``close``). Its checkpoints (``capture_distributed``) hold the learner
(networks, optimizer, update count), the counters and torch's generator; the replay
shards, the actors' envs and their generators are not saved, so a resumed run refills
its shards (``min(trainer.learning_starts, replay.capacity)`` env steps before learning
goes on) and its actors start new episodes: it is not bit-exact with an uninterrupted
run (nor is an uninterrupted Ape-X run with another: the actors' timing decides the
order of everything the learner sees).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import torch

from rlkit.agent.builder import build_beta, build_learner, build_network, resolve_device
from rlkit.app.checkpoint_state import FORMAT_VERSION
from rlkit.config import Config, ConfigError, to_dict
from rlkit.distributed import connect, probe, require_ray
from rlkit.distributed.apex import ApexTrainer
from rlkit.distributed.launch import Handles, ray_cpus, start_roles, stop_roles
from rlkit.envs import layout_of, space_info
from rlkit.envs.builder import make_envs

__all__ = ["ApexRun", "build_distributed", "capture_distributed", "check_distributed"]


@dataclass
class ApexRun:
    """What a distributed run is made of (the counterpart of ``rlkit.build.Components``)."""

    config: Config
    device: torch.device
    learner: Any
    trainer: ApexTrainer
    handles: Handles
    started_ray: bool

    def close(self) -> None:
        stop_roles(self.handles)
        if self.started_ray:
            self.handles.ray.shutdown()


def check_distributed(config: Config) -> None:
    """ConfigError for settings a distributed run does not support; DistributedError when
    Ray is missing (before anything is written)."""
    if config.distributed.backend != "ray":
        return
    require_ray()
    if config.distributed.address:
        probe(config.distributed.address)  # before the run dir is written
    if config.eval.video_every > 0:
        raise ConfigError("eval.video_every: not available with distributed.backend=ray")
    if config.trainer.mode != "sync":
        raise ConfigError(
            "trainer.mode: async is the one-machine actor thread; with "
            "distributed.backend=ray the actors are Ray actors (leave trainer.mode sync)"
        )


def capture_distributed(run: ApexRun) -> dict[str, Any]:
    """A checkpoint of a distributed run (see the module docstring for what it holds)."""
    return {
        "format": FORMAT_VERSION,
        "config": to_dict(run.config),
        "env_steps": run.trainer.counters.env_steps,
        "distributed": True,
        "trainer": run.trainer.state_dict(),
        "learner": run.learner.state_dict(),
        "rng": {"torch": torch.get_rng_state()},
    }


def build_distributed(config: Config, logs, save, start, stream: IO[str]) -> ApexRun:
    """Start (or join) Ray, build the learner here and the roles there; restore the
    learner and counters when resuming."""
    d = config.distributed
    started = connect(d.address, num_cpus=ray_cpus(config), object_store_mb=d.object_store_mb)
    ray = require_ray()
    handles = None
    try:
        device = resolve_device(config.trainer.device)
        torch.manual_seed(config.trainer.seed)
        random.seed(config.trainer.seed)
        np.random.seed(config.trainer.seed)
        envs = make_envs(config, 1)
        obs_shape, obs_dtype, num_actions = space_info(envs)
        layout = layout_of(envs)
        envs.close()
        net = build_network(config, obs_shape, num_actions, layout).to(device)
        learner = build_learner(config, net, device)
        handles = start_roles(ray, config, obs_shape, obs_dtype)
        trainer = ApexTrainer(
            config,
            learner,
            device,
            logs.logger,
            handles,
            build_beta(config),
            save=save,
            warn=lambda text: logs.progress.message(f"warning: {text}"),
            progress=logs.on_step,
        )
        run = ApexRun(config, device, learner, trainer, handles, started)
        if start.state is not None:
            learner.load_state_dict(start.state["learner"])
            trainer.load_state_dict(start.state["trainer"])
            stream.write(f"resumed from {start.path} at env step {start.steps}\n")
    except BaseException:
        if handles is not None:
            stop_roles(handles)
        if started:
            ray.shutdown()
        raise
    where = d.address or "a local Ray instance"
    stream.write(f"Ape-X on {where}: {d.actors} actors, {d.replay_shards} replay shards\n")
    return run
