"""Checkpoint state: everything a checkpoint holds, captured from and restored into the
built components of a run (networks, optimizer, replay, n-step queues, collector and env
state, counters, and every random generator: Python, NumPy's global one, torch, CUDA,
evaluation).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from rlkit.app import checkpoint as ckpt
from rlkit.config import to_dict

if TYPE_CHECKING:
    from rlkit.build import Components

FORMAT_VERSION = ckpt.FORMAT_VERSION


def _numpy_global_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "name": name,
        "keys": torch.from_numpy(keys.copy()),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached),
    }


def _set_numpy_global_state(state: dict[str, Any]) -> None:
    np.random.set_state(
        (
            state["name"],
            state["keys"].numpy(),
            state["pos"],
            state["has_gauss"],
            state["cached_gaussian"],
        )
    )


def capture_state(components: Components) -> dict[str, Any]:
    """Everything a checkpoint holds, as tensors and plain values: networks, optimizer,
    replay contents (unless ``replay.save_in_checkpoint`` is false), the replay's meta
    state (PER max priority, sampler generator; always), n-step queues, collector and
    env state, counters, the open logging window and every random generator. The replay
    arrays share memory with the live buffer: save the result before training goes on."""
    trainer = components.trainer
    state: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "config": to_dict(components.config),
        "env_steps": trainer.counters.env_steps,
        "trainer": trainer.state_dict(),
        "learner": components.learner.state_dict(),
        "nstep": components.nstep.state_dict(),
        "collector": trainer.collector.state_dict(),
        "replay_meta": components.replay.meta_state_dict(),
        "rng": {
            "python": random.getstate(),
            "numpy": _numpy_global_state(),
            "torch": torch.get_rng_state(),
            "eval": components.eval_rng.bit_generator.state,
        },
    }
    if components.device.type == "cuda":
        state["rng"]["cuda"] = torch.cuda.get_rng_state(components.device)
    if components.config.replay.save_in_checkpoint:
        state["replay"] = components.replay.state_dict()
    return state


def restore_state(components: Components, state: dict[str, Any]) -> list[str]:
    """Put a ``capture_state`` result back into freshly built components. Returns
    warnings for what could not be restored exactly (the run goes on without it)."""
    warnings: list[str] = []
    trainer = components.trainer
    try:
        components.learner.load_state_dict(state["learner"])
        trainer.load_state_dict(state["trainer"])
        exact_envs = trainer.collector.load_state_dict(state["collector"])
        if exact_envs:
            components.nstep.load_state_dict(state["nstep"])
        else:
            reason = state["collector"]["envs"].get("reason", "")
            warnings.append(
                f"the environment state could not be saved ({reason}); episodes restart "
                "from a reset, so this run will differ from an uninterrupted one"
            )
            trainer.collector.reset(
                seed=components.config.trainer.seed + trainer.counters.env_steps
            )
        warnings += _restore_replay(components, state)
        rng = state["rng"]
        random.setstate(_as_python_random_state(rng["python"]))
        _set_numpy_global_state(rng["numpy"])
        torch.set_rng_state(rng["torch"])
        components.eval_rng.bit_generator.state = rng["eval"]
        if "cuda" in rng and components.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], components.device)
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ckpt.CheckpointError(f"checkpoint does not match this run: {first}") from exc
    return warnings


def _restore_replay(components: Components, state: dict[str, Any]) -> list[str]:
    """Replay contents when saved; otherwise only its meta state (max priority, sampler
    generator), and learning waits until the buffer is refilled. Returns warnings."""
    replay = components.replay
    if "replay" in state:
        replay.load_state_dict(state["replay"])
        return []
    replay.load_meta_state_dict(state["replay_meta"])
    refill = min(components.config.trainer.learning_starts, replay.capacity)
    components.trainer.wait_for_replay(refill)
    return [
        "the checkpoint holds no replay contents (replay.save_in_checkpoint: false); "
        f"the replay buffer restarts empty and learning waits until it holds {refill} "
        "transitions again (min of trainer.learning_starts and replay.capacity)"
    ]


def _as_python_random_state(saved: Any) -> tuple:
    """``random.getstate()`` comes back from a checkpoint with lists for tuples."""
    version, internal, gauss = saved
    return (version, tuple(internal), gauss)


def state_mib(state: Any) -> float:
    """MiB of tensor data in a (nested) checkpoint section."""
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size() / 2**20
    if isinstance(state, dict):
        return sum(state_mib(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(state_mib(v) for v in state)
    return 0.0
