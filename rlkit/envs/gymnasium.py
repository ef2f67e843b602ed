"""Environment construction: Gymnasium vector envs with same-step autoreset.

Training and evaluation both use ``gymnasium.vector.SyncVectorEnv`` in SAME_STEP
autoreset mode: a step that ends an episode returns the first observation of the next
episode, and the real last observation is in ``info["final_obs"]``. So every step is a
real transition for every env. The collector also handles NEXT_STEP vector envs.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode


class EnvError(ValueError):
    """A user-facing environment problem (unknown id, unsupported spaces, missing extra)."""


# Third-party suites: id prefix -> (extra that installs it, registration function).
def _register_ale() -> None:
    import ale_py

    gym.register_envs(ale_py)


def _register_minatar() -> None:
    import logging

    logging.disable(logging.WARNING)  # MinAtar warns at import when seaborn is missing
    try:
        import minatar.gym as minatar_gym
    finally:
        logging.disable(logging.NOTSET)
    if not any(k.startswith("MinAtar/") for k in gym.registry):
        minatar_gym.register_envs()


SUITES: dict[str, tuple[str, Any]] = {
    "ALE/": ("atari", _register_ale),
    "MinAtar/": ("minatar", _register_minatar),
}


def _suite(env_id: str) -> tuple[str, Any] | None:
    """(extra, registration function) of the suite ``env_id`` belongs to, if any."""
    return next((v for prefix, v in SUITES.items() if env_id.startswith(prefix)), None)


def suite_of(env_id: str) -> str | None:
    """The extra ("atari", "minatar") an env id belongs to, or None for Gymnasium's own."""
    suite = _suite(env_id)
    return None if suite is None else suite[0]


def ensure_registered(env_id: str) -> None:
    """Register the third-party suite of ``env_id`` with Gymnasium (explicitly, as
    Gymnasium >= 1.0 requires); EnvError naming the extra when it is not installed."""
    suite = _suite(env_id)
    if suite is None:
        return
    extra, register = suite
    try:
        register()
    except ImportError as exc:
        raise EnvError(
            f"env.id {env_id!r} needs the {extra} extra: pip install 'rlkit[{extra}]' ({exc})"
        ) from exc


def check_env_id(env_id: str) -> None:
    """Raise EnvError naming close matches when ``env_id`` is not registered."""
    ensure_registered(env_id)
    if env_id in gym.registry:
        return
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
    raise EnvError(f"env.id: unknown Gymnasium environment {env_id!r}{hint}")


@dataclass(frozen=True)
class AtariOptions:
    """Atari preprocessing (Mnih et al. 2015; Machado et al. 2018) and ALE settings."""

    frame_skip: int = 4  # env steps are agent steps: each repeats the action frame_skip times
    frame_stack: int = 4  # observations stack this many 84x84 frames: [stack, 84, 84] uint8
    noop_max: int = 30  # up to this many no-op actions after each reset
    screen_size: int = 84
    sticky_actions: float = 0.25  # per emulator frame: probability of repeating the previous action
    full_action_space: bool = False  # all 18 joystick actions instead of the game's minimal set
    max_frames_per_episode: int | None = 108_000  # emulator frames, then truncation (None: no cap)
    life_loss_signal: bool = False  # add info["life_loss"] (LifeLossSignal); the game goes on


class LifeLossSignal(gym.Wrapper):
    """Reports a lost life without ending the game: ``info["life_loss"]`` is True on a step
    where the ALE's life counter went down and the game is not over (``terminated`` False),
    False on every other step and after a reset.

    The episode is not ended here: learning code treats ``terminated | life_loss`` as the
    end of a learning episode (the DQN papers' "life loss as terminal"), while the game,
    and the episode statistics, run on to game over.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.lives = 0

    def _ale_lives(self) -> int:
        return int(self.env.unwrapped.ale.lives())

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self.lives = self._ale_lives()
        info["life_loss"] = False
        return obs, info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        lives = self._ale_lives()
        info["life_loss"] = bool(lives < self.lives and not terminated)
        self.lives = lives
        return obs, reward, terminated, truncated, info


class MinAtarObservation(gym.ObservationWrapper):
    """MinAtar's [10, 10, C] bool grid as channels-first float32 [C, 10, 10]."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        h, w, c = env.observation_space.shape
        self.observation_space = gym.spaces.Box(0.0, 1.0, (c, h, w), np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.moveaxis(observation, -1, 0), dtype=np.float32)


def _make_one(
    env_id: str,
    max_episode_steps: int | None,
    kwargs: dict[str, Any],
    atari: AtariOptions | None = None,
) -> gym.Env:
    suite = suite_of(env_id)
    try:
        if suite == "atari":
            return _make_atari(env_id, max_episode_steps, kwargs, atari or AtariOptions())
        env = gym.make(env_id, max_episode_steps=max_episode_steps, **kwargs)
        return MinAtarObservation(env) if suite == "minatar" else env
    except gym.error.DependencyNotInstalled as exc:
        raise EnvError(f"env.id {env_id!r} needs an extra dependency: {exc}") from exc
    except TypeError as exc:
        raise EnvError(f"env.kwargs for {env_id!r} rejected: {exc}") from exc


def _make_atari(
    env_id: str, max_episode_steps: int | None, kwargs: dict[str, Any], options: AtariOptions
) -> gym.Env:
    """One ALE env: emulator settings, AtariPreprocessing, time limit, frame stack, and the
    life-loss signal when asked for. A life loss never ends the episode here."""
    env = gym.make(
        env_id,
        frameskip=1,  # AtariPreprocessing skips (and max-pools the last two frames)
        repeat_action_probability=options.sticky_actions,
        full_action_space=options.full_action_space,
        max_num_frames_per_episode=options.max_frames_per_episode,  # frames, incl. no-ops
        **kwargs,
    )
    env = gym.wrappers.AtariPreprocessing(
        env,
        noop_max=options.noop_max,
        frame_skip=options.frame_skip,
        screen_size=options.screen_size,
        terminal_on_life_loss=False,  # it would end (and reset) the game at every life
        grayscale_obs=True,
        scale_obs=False,
    )
    if max_episode_steps is not None:  # in agent steps, not frames
        env = gym.wrappers.TimeLimit(env, max_episode_steps)
    env = gym.wrappers.FrameStackObservation(env, options.frame_stack)
    return LifeLossSignal(env) if options.life_loss_signal else env


def make_vec_env(
    env_id: str,
    num_envs: int,
    *,
    max_episode_steps: int | None = None,
    kwargs: dict[str, Any] | None = None,
    atari: AtariOptions | None = None,
) -> gym.vector.VectorEnv:
    """``num_envs`` copies of ``env_id`` in a SyncVectorEnv with SAME_STEP autoreset.

    ALE ids ("ALE/Pong-v5") get the Atari preprocessing of ``atari`` (uint8 frame stacks
    [stack, 84, 84]); with ``atari.life_loss_signal`` each step's info also holds
    ``info["life_loss"]``, [num_envs] bool (see LifeLossSignal). MinAtar ids
    ("MinAtar/Breakout-v1") give channels-first float grids.
    Raises EnvError for an unknown id, a missing extra or a non-discrete action space.
    """
    check_env_id(env_id)
    kwargs = dict(kwargs or {})
    probe = _make_one(env_id, max_episode_steps, kwargs, atari)
    check_spaces(env_id, probe.observation_space, probe.action_space)
    fns = [lambda: _make_one(env_id, max_episode_steps, kwargs, atari) for _ in range(num_envs - 1)]
    envs = gym.vector.SyncVectorEnv([lambda: probe, *fns], autoreset_mode=AutoresetMode.SAME_STEP)
    return envs


def check_spaces(env_id: str, obs_space: gym.Space, action_space: gym.Space) -> None:
    if not isinstance(action_space, gym.spaces.Discrete):
        raise EnvError(
            f"env.id {env_id!r} has a {type(action_space).__name__} action space; "
            "DQN needs a discrete action space"
        )
    if not isinstance(obs_space, gym.spaces.Box):
        raise EnvError(
            f"env.id {env_id!r} has a {type(obs_space).__name__} observation space; "
            "rlkit supports Box observations"
        )


def autoreset_mode(envs: gym.vector.VectorEnv) -> AutoresetMode:
    """The vector env's autoreset mode (NEXT_STEP when it does not say)."""
    mode = envs.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    return AutoresetMode(mode) if not isinstance(mode, AutoresetMode) else mode


def space_info(envs: gym.vector.VectorEnv) -> tuple[tuple[int, ...], np.dtype, int]:
    """(single observation shape, observation dtype, number of actions)."""
    obs_space = envs.single_observation_space
    return tuple(obs_space.shape), np.dtype(obs_space.dtype), int(envs.single_action_space.n)


# ---------------------------------------------------------------- env state (exact resume)

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
