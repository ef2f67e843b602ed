"""Exact resume of Gymnasium vector envs: capture and restore every sub-env's state.

The state is plain values and tensors (checkpoints hold nothing else); an env whose
wrappers hold objects this cannot save says so (``restorable: False``) and resuming then
restarts its episodes. Plain Python objects inside an env (all of whose attributes are
plain, e.g. MinAtar's game) and generators (``numpy.random.RandomState``, Python's
``random.Random``) are saved attribute by attribute, or through the generator's state,
and restored in place, into the objects the rebuilt env holds. An object reached twice
is saved once and restored as one object, even where the rebuilt env holds two (MinAtar
shares one generator between the game and its sticky actions only after a seeded
reset). The ALE emulator of Gymnasium's Atari envs is saved with its own
``cloneState(include_rng=True)``.
"""

from __future__ import annotations

import random
from collections import deque
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
        "_action_set",  # an Atari env's actions (ALE enums), fixed by the game
    }
)
_SPACE_ATTRS = ("action_space", "observation_space", "_action_space", "_observation_space")
_PLAIN = (bool, int, float, str, type(None))
#: how deep a plain Python object may sit inside an env layer (deeper: not restorable)
_MAX_DEPTH = 6
_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class defined in Python, not in C


def _is_plain_object(value: Any) -> bool:
    """An instance of classes defined in Python whose state is all in ``__dict__`` (no
    C base holding hidden state, no ``__slots__``)."""
    classes = type(value).__mro__[:-1]  # without object
    return (
        hasattr(value, "__dict__")
        and not isinstance(value, type)
        and all(c.__flags__ & _HEAPTYPE and "__slots__" not in vars(c) for c in classes)
    )


def _plain_value(value: Any, memo: dict[int, int], depth: int = 0) -> tuple[bool, Any]:
    """(ok, checkpointable form) of one attribute value; ok False for other objects.
    ``memo`` numbers the objects saved so far (id -> number), so that an object reached
    twice is saved once and then as ``{"__ref__": number}``."""
    if isinstance(value, np.generic):  # before _PLAIN: np.float64 subclasses float
        return True, value.item()
    if isinstance(value, _PLAIN):
        return True, value
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return True, {"__ndarray__": _tensor_copy(value)}
    if isinstance(value, np.random.Generator):
        return True, {"__generator__": value.bit_generator.state}
    generator = isinstance(value, np.random.RandomState) or type(value) is random.Random
    shared = generator or _is_plain_object(value)
    if shared and id(value) in memo:  # saved already (the objects are alive meanwhile)
        return True, {"__ref__": memo[id(value)]}
    if generator:  # numpy's legacy RandomState or Python's random.Random
        memo[id(value)] = number = len(memo)
        raw = value.get_state() if isinstance(value, np.random.RandomState) else value.getstate()
        state = _plain_value(raw, memo, depth + 1)[1]
        kind = type(value).__name__  # RandomState or Random
        return True, {"__randomstate__": state, "__id__": number, "kind": kind}
    if _is_emulator(value) and _unsaved_emulator(value) is None:
        return True, {"__ale__": _emulator_state(value)}
    if isinstance(value, (tuple, list, deque)):
        items = [_plain_value(v, memo, depth + 1) for v in value]
        if all(ok for ok, _ in items):
            seq = {"__seq__": type(value).__name__, "items": [v for _, v in items]}
            if isinstance(value, deque):
                seq["maxlen"] = value.maxlen
            return True, seq
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        entries = {k: _plain_value(v, memo, depth + 1) for k, v in value.items()}
        if all(ok for ok, _ in entries.values()):
            return True, {"__dict__": {k: v for k, (_, v) in entries.items()}}
    if _is_plain_object(value) and depth < _MAX_DEPTH:
        memo[id(value)] = number = len(memo)
        attrs = {k: _plain_value(v, memo, depth + 1) for k, v in vars(value).items()}
        if all(ok for ok, _ in attrs.values()):
            saved = {k: v for k, (_, v) in attrs.items()}
            return True, {"__object__": type(value).__qualname__, "attrs": saved, "__id__": number}
    return False, None


def _restore_value(current: Any, saved: Any, memo: dict[int, Any]) -> Any:
    """The value to set for ``saved``, restored into ``current`` (the rebuilt env's)
    where it is a mutable object; ``memo`` maps saved object numbers to the objects
    restored, so that what was one object is one object again."""
    if isinstance(saved, dict) and "__ndarray__" in saved:
        return saved["__ndarray__"].numpy().copy()
    if isinstance(saved, dict) and "__generator__" in saved:
        gen = current if isinstance(current, np.random.Generator) else np.random.default_rng()
        if gen.bit_generator.state["bit_generator"] != saved["__generator__"]["bit_generator"]:
            gen = np.random.Generator(getattr(np.random, saved["__generator__"]["bit_generator"])())
        gen.bit_generator.state = saved["__generator__"]
        return gen
    if isinstance(saved, dict) and "__ale__" in saved:
        return _restore_emulator(current, saved["__ale__"])
    if isinstance(saved, dict) and "__ref__" in saved:
        return memo[saved["__ref__"]]
    if isinstance(saved, dict) and "__randomstate__" in saved:
        state = _restore_value(None, saved["__randomstate__"], memo)
        if saved.get("kind") == "Random":
            rs = current if isinstance(current, random.Random) else random.Random()
            rs.setstate(state)
        else:
            rs = current if isinstance(current, np.random.RandomState) else np.random.RandomState()
            rs.set_state(state)
        memo[saved["__id__"]] = rs
        return rs
    if isinstance(saved, dict) and "__object__" in saved:
        return _restore_object(current, saved, memo)
    if isinstance(saved, dict) and "__seq__" in saved:
        olds = list(current) if isinstance(current, (tuple, list)) else []
        olds += [None] * (len(saved["items"]) - len(olds))
        items = [_restore_value(old, v, memo) for old, v in zip(olds, saved["items"])]
        if saved["__seq__"] == "deque":
            return deque(items, maxlen=saved["maxlen"])
        return tuple(items) if saved["__seq__"] == "tuple" else items
    if isinstance(saved, dict) and "__dict__" in saved:
        olds = current if isinstance(current, dict) else {}
        return {k: _restore_value(olds.get(k), v, memo) for k, v in saved["__dict__"].items()}
    return saved


def _restore_object(current: Any, saved: dict[str, Any], memo: dict[int, Any]) -> Any:
    """Restore a saved plain object's attributes into ``current``, the same kind of
    object in the rebuilt env (a saved object cannot be created from nothing)."""
    if type(current).__qualname__ != saved["__object__"]:
        raise ValueError(
            f"env state holds a {saved['__object__']}, the rebuilt env a {type(current).__name__}"
        )
    memo[saved["__id__"]] = current
    for key, value in saved["attrs"].items():
        setattr(current, key, _restore_value(getattr(current, key, None), value, memo))
    return current


def _is_emulator(value: Any) -> bool:
    """An ALE emulator (``ale_py.ALEInterface``, what Gymnasium's Atari envs hold)."""
    return type(value).__name__ == "ALEInterface" and hasattr(value, "cloneState")


def _unsaved_emulator(value: Any) -> str | None:
    """Why this ALE emulator's state cannot be saved exactly, or None when it can. With
    sticky actions the ALE repeats its previous action, which ``cloneState`` leaves out
    (a restored emulator would repeat another action on its first frame)."""
    sticky = value.getFloat("repeat_action_probability")
    if sticky > 0:
        return (
            f"an ALE emulator with sticky actions (repeat_action_probability {sticky:g}), "
            "whose previous action the ALE does not save"
        )
    return None


def _emulator_state(ale: Any):
    """The emulator's whole state, its RNG (sticky actions) included, as uint8 [n]."""
    import torch

    data = ale.cloneState(include_rng=True).serialize()
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).clone()


def _restore_emulator(current: Any, data) -> Any:
    """Put an ``_emulator_state`` back into ``current``, the rebuilt env's emulator."""
    if not _is_emulator(current):
        raise ValueError(
            f"env state holds an ALE emulator, the rebuilt env a {type(current).__name__}"
        )
    from ale_py import ALEState

    current.restoreState(ALEState(bytes(data.numpy().tobytes())))
    return current


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
    save (a physics engine, an emulator with sticky actions, a subprocess): resuming
    then restarts episodes.
    """
    sub_envs = getattr(envs, "envs", None)
    if sub_envs is None:
        return {"restorable": False, "reason": f"{type(envs).__name__} has no sub-env list"}
    out: list[list[dict[str, Any]]] = []
    for env in sub_envs:
        layers, memo = [], {}
        for layer in _layers(env):
            attrs: dict[str, Any] = {}
            for key, value in vars(layer).items():
                if key in _STATIC_ATTRS or key in _SPACE_ATTRS:
                    continue
                ok, plain = _plain_value(value, memo)
                if not ok:
                    what = _is_emulator(value) and _unsaved_emulator(value)
                    what = what or f"a {type(value).__name__}"
                    reason = f"{type(layer).__name__}.{key} is {what}"
                    return {"restorable": False, "reason": reason}
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
        layers, memo = _layers(env), {}
        names = [type(layer).__name__ for layer in layers]
        if names != [saved["type"] for saved in saved_layers]:
            raise ValueError(
                f"env state was saved for wrappers {[s['type'] for s in saved_layers]}, not {names}"
            )
        for layer, saved in zip(layers, saved_layers):
            for key, value in saved["attrs"].items():
                setattr(layer, key, _restore_value(getattr(layer, key, None), value, memo))
            for key, rng_state in saved["spaces"].items():
                space = getattr(layer, key)
                if getattr(space, "_np_random", None) is None:
                    space.seed(0)  # creates the generator, then overwritten
                space._np_random.bit_generator.state = rng_state
