"""Exact resume of Gymnasium vector envs: capture and restore every sub-env's state.

The state is plain values and tensors (checkpoints hold nothing else); an env whose
wrappers hold objects this cannot save says so (``restorable: False``) and resuming then
restarts its episodes.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

# Attributes that hold no episode state (static settings, spaces handled separately,
# rendering handles that are None until something is rendered).
_STATIC_ATTRS = frozenset(
    {
        "env",
        "spec",
        "_cached_spec",
        "metadata",
        "render_mode",
        "_metadata",
        "_render_mode",
        "_saved_kwargs",  # constructor arguments of a wrapper
    }
)
_SPACE_ATTRS = ("action_space", "observation_space", "_action_space", "_observation_space")
_PLAIN = (bool, int, float, str, type(None))


def _plain_value(value: Any) -> tuple[bool, Any]:
    """(ok, checkpointable form) of one attribute value; ok False for other objects."""
    if isinstance(value, np.generic):  # before _PLAIN: np.float64 subclasses float
        return True, value.item()
    if isinstance(value, _PLAIN):
        return True, value
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return True, {"__ndarray__": _tensor_copy(value)}
    if isinstance(value, np.random.Generator):
        return True, {"__generator__": value.bit_generator.state}
    if isinstance(value, (tuple, list)):
        items = [_plain_value(v) for v in value]
        if all(ok for ok, _ in items):
            return True, {"__seq__": type(value).__name__, "items": [v for _, v in items]}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        entries = {k: _plain_value(v) for k, v in value.items()}
        if all(ok for ok, _ in entries.values()):
            return True, {"__dict__": {k: v for k, (_, v) in entries.items()}}
    return False, None


def _restore_value(current: Any, saved: Any) -> Any:
    if isinstance(saved, dict) and "__ndarray__" in saved:
        return saved["__ndarray__"].numpy().copy()
    if isinstance(saved, dict) and "__generator__" in saved:
        gen = current if isinstance(current, np.random.Generator) else np.random.default_rng()
        if gen.bit_generator.state["bit_generator"] != saved["__generator__"]["bit_generator"]:
            gen = np.random.Generator(getattr(np.random, saved["__generator__"]["bit_generator"])())
        gen.bit_generator.state = saved["__generator__"]
        return gen
    if isinstance(saved, dict) and "__seq__" in saved:
        items = [_restore_value(None, v) for v in saved["items"]]
        return tuple(items) if saved["__seq__"] == "tuple" else items
    if isinstance(saved, dict) and "__dict__" in saved:
        return {k: _restore_value(None, v) for k, v in saved["__dict__"].items()}
    return saved


def _tensor_copy(array: np.ndarray):
    """A CPU tensor holding a copy of ``array`` (checkpoints store tensors, not arrays)."""
    import torch  # envs.py is usable without importing torch

    return torch.from_numpy(np.array(array, order="C", copy=True))


def _layers(env: gym.Env) -> list[Any]:
    """The wrapper chain of ``env``, outermost first, ending with the unwrapped env."""
    layers = [env]
    while isinstance(layers[-1], gym.Wrapper):
        layers.append(layers[-1].env)
    return layers


def capture_env_state(envs: gym.vector.VectorEnv) -> dict[str, Any]:
    """The state of every sub-env of a SyncVectorEnv as plain values and tensors.

    Every wrapper layer and the unwrapped env contribute their plain-data attributes
    (numbers, arrays, NumPy generators); spaces contribute their generators. The result
    says ``restorable: False`` (and why) when some layer holds an object this cannot
    save (a physics engine, an emulator, a subprocess): resuming then restarts episodes.
    """
    sub_envs = getattr(envs, "envs", None)
    if sub_envs is None:
        return {"restorable": False, "reason": f"{type(envs).__name__} has no sub-env list"}
    out: list[list[dict[str, Any]]] = []
    for env in sub_envs:
        layers = []
        for layer in _layers(env):
            attrs: dict[str, Any] = {}
            for key, value in vars(layer).items():
                if key in _STATIC_ATTRS or key in _SPACE_ATTRS:
                    continue
                ok, plain = _plain_value(value)
                if not ok:
                    return {
                        "restorable": False,
                        "reason": f"{type(layer).__name__}.{key} is a {type(value).__name__}",
                    }
                attrs[key] = plain
            spaces = {}
            for key in _SPACE_ATTRS:
                space = vars(layer).get(key)
                rng = getattr(space, "_np_random", None)
                if isinstance(rng, np.random.Generator):
                    spaces[key] = rng.bit_generator.state
            layers.append({"type": type(layer).__name__, "attrs": attrs, "spaces": spaces})
        out.append(layers)
    return {"restorable": True, "envs": out}


def restore_env_state(envs: gym.vector.VectorEnv, state: dict[str, Any]) -> None:
    """Put ``capture_env_state``'s result back into the same kind of vector env."""
    if not state.get("restorable"):
        raise ValueError(f"env state was not saved: {state.get('reason', 'unknown')}")
    sub_envs = envs.envs
    if len(sub_envs) != len(state["envs"]):
        raise ValueError(
            f"env state holds {len(state['envs'])} envs, this vector env {len(sub_envs)}"
        )
    for env, saved_layers in zip(sub_envs, state["envs"]):
        layers = _layers(env)
        names = [type(layer).__name__ for layer in layers]
        if names != [saved["type"] for saved in saved_layers]:
            raise ValueError(
                f"env state was saved for wrappers {[s['type'] for s in saved_layers]}, not {names}"
            )
        for layer, saved in zip(layers, saved_layers):
            for key, value in saved["attrs"].items():
                setattr(layer, key, _restore_value(getattr(layer, key, None), value))
            for key, rng_state in saved["spaces"].items():
                space = getattr(layer, key)
                if getattr(space, "_np_random", None) is None:
                    space.seed(0)  # creates the generator, then overwritten
                space._np_random.bit_generator.state = rng_state
