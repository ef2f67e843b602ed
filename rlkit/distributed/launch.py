"""Starting and stopping the Ape-X roles as Ray actors (``rlkit.distributed.roles``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from rlkit.config import Config
from rlkit.distributed.roles import ActorRole, EvaluatorRole, ParameterServer, ReplayShardRole

__all__ = ["Handles", "RayActorRole", "ray_cpus", "start_roles", "stop_roles"]


@dataclass
class Handles:
    """The Ray actors of a run and the ``ray`` module."""

    ray: Any
    actors: list
    shards: list
    server: Any
    evaluator: Any


class RayActorRole(ActorRole):
    """``ActorRole`` inside a Ray actor: weights come through ``ray.get``; after a restart
    by Ray (the actor died) its seed is drawn afresh, so it does not replay its old
    episodes."""

    def __init__(self, config: Config, index: int, shards: list, server: Any) -> None:
        import ray

        context = ray.get_runtime_context()
        restart = (
            int.from_bytes(os.urandom(3), "little")
            if context.was_current_actor_reconstructed
            else 0
        )
        super().__init__(config, index, shards, server, get=ray.get, restart_seed=restart)


def ray_cpus(config: Config) -> float:
    """Logical CPUs the roles declare: actor_cpus per actor and per shard, 1 evaluator."""
    d = config.distributed
    return d.actor_cpus * (d.actors + d.replay_shards) + 1.0


def start_roles(ray, config: Config, obs_shape, obs_dtype) -> Handles:
    """The Ray actors of an Ape-X run (restarted by Ray when they die; a call that was
    running when one died fails and the learner sends it again)."""
    d = config.distributed
    opts = dict(num_cpus=d.actor_cpus, max_restarts=-1, max_task_retries=0)
    shard_cls = ray.remote(ReplayShardRole).options(**opts)
    shards = [shard_cls.remote(config, obs_shape, obs_dtype, k) for k in range(d.replay_shards)]
    server = ray.remote(ParameterServer).options(num_cpus=0, max_restarts=-1).remote()
    actor_cls = ray.remote(RayActorRole).options(**opts)
    actors = [actor_cls.remote(config, i, shards, server) for i in range(d.actors)]
    evaluator = ray.remote(EvaluatorRole).options(num_cpus=1, max_restarts=-1).remote(config)
    return Handles(ray, actors, shards, server, evaluator)


def stop_roles(handles: Handles) -> None:
    """Kill every role of a run (no restarts)."""
    for handle in [*handles.actors, *handles.shards, handles.server, handles.evaluator]:
        try:
            handles.ray.kill(handle, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass
