"""Typed, frozen run configuration: YAML files with ``extends:``, ``--set a.b=c`` overrides.

Every field has a one-line docstring (meaning, unit, range) in the ``#:`` comment above it.
Step counts are **env steps** (one step of one environment, i.e. one transition) unless
the name says otherwise. ``rlkit train --help`` lists all fields (``describe()``).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A user-facing configuration mistake; the message is one line naming the key or file."""


@dataclass(frozen=True)
class EnvConfig:
    #: Gymnasium environment id, e.g. "CartPole-v1" (must have a discrete action space).
    id: str = "CartPole-v1"
    #: number of parallel training environments (>= 1); each vector step is num_envs env steps.
    num_envs: int = 1
    #: vector env backend: gymnasium (Gymnasium's SyncVectorEnv and wrappers; any env), ale_vector (ALE's AtariVectorEnv, C++ threads; ALE/ ids), envpool (pip install 'rlkit[envpool]'; ALE/ ids); a module rlkit/envs/<name>.py adds one.
    backend: str = "gymnasium"
    #: episode time limit in env steps (None = the environment's own limit); truncation, not termination.
    max_episode_steps: int | None = None
    #: extra keyword arguments for gymnasium.make (e.g. {continuous: false}).
    kwargs: dict = field(default_factory=dict)
    #: learn from sign(reward) (Atari); returns are still reported unclipped.
    clip_rewards: bool = False
    #: Atari (ALE/ ids): frames each agent step repeats its action (>= 1; max-pooled over the last two).
    frame_skip: int = 4
    #: Atari: 84x84 grayscale frames per observation (>= 1).
    frame_stack: int = 4
    #: Atari: named evaluation protocol that sets the five protocol keys below (machado2018, rainbow2018, atari100k; custom = set each key yourself); an explicit key that contradicts the preset is an error (values: rlkit.config.ATARI_PROTOCOLS).
    protocol: Literal["custom", "machado2018", "rainbow2018", "atari100k"] = "custom"
    #: Atari: at most this many no-op actions after a reset (>= 0; 0 = none).
    noop_max: int = 30
    #: Atari: a lost life ends the learning episode (terminal for n-step returns and the TD target) while the game goes on; training env only, episode statistics and evaluation count whole games.
    terminal_on_life_loss: bool = False
    #: Atari: probability of repeating the previous action at each emulator frame (sticky actions, Machado et al. 2018), in [0, 1].
    sticky_actions: float = 0.25
    #: Atari: act with all 18 joystick actions (true) or the game's minimal action set (false).
    full_action_space: bool = False
    #: Atari: episode cap in emulator frames, no-op starts included (>= 1; None = no cap); the capped step is a truncation, not a termination. 108,000 frames = 27,000 agent steps at frame_skip 4.
    max_frames_per_episode: int | None = 108_000


# Named Atari protocols: the values ``env.protocol`` gives the protocol keys.
#  - machado2018: Machado et al. 2018, "Revisiting the Arcade Learning Environment", JAIR 61
#    (sticky actions 0.25 instead of no-op starts, all 18 actions, no life-loss signal,
#    results reported at the end of training; capped at 108,000 frames = 30 minutes).
#  - rainbow2018: Hessel et al. 2018 (Rainbow) and Mnih et al. 2015 (DQN Nature): up to 30
#    no-op starts, no sticky actions, the minimal action set, a lost life terminal for
#    learning only. Rainbow truncates episodes at 108,000 frames (30 minutes of play,
#    following van Hasselt et al. 2016); DQN Nature evaluated for up to 5 minutes.
#  - atari100k: the Atari 100k benchmark (Kaiser et al. 2020; van Hasselt et al. 2019's
#    data-efficient Rainbow): the rainbow2018 env settings (no sticky actions, life loss
#    terminal for learning, 108,000-frame cap) with 100,000 agent steps of training.
ATARI_PROTOCOLS: dict[str, dict[str, Any]] = {
    "machado2018": {
        "sticky_actions": 0.25,
        "noop_max": 0,
        "full_action_space": True,
        "max_frames_per_episode": 108_000,
        "terminal_on_life_loss": False,
    },
    "rainbow2018": {
        "sticky_actions": 0.0,
        "noop_max": 30,
        "full_action_space": False,
        "max_frames_per_episode": 108_000,
        "terminal_on_life_loss": True,
    },
    "atari100k": {
        "sticky_actions": 0.0,
        "noop_max": 30,
        "full_action_space": False,
        "max_frames_per_episode": 108_000,
        "terminal_on_life_loss": True,
    },
}


def apply_protocol(env: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """The coerced ``env`` section with the keys of its ``protocol`` preset filled in.

    A key given explicitly must equal the preset's value (so a resolved config.yaml,
    which lists every key, loads again); otherwise ConfigError naming the key.
    """
    name = env.get("protocol", "custom")
    if name == "custom":
        return env
    env_id = env.get("id", EnvConfig.id)
    if not str(env_id).startswith("ALE/"):
        raise ConfigError(
            f"{source}: env.protocol {name!r} is an Atari protocol but env.id {env_id!r} "
            "is not an ALE/ id (use env.protocol=custom)"
        )
    preset = ATARI_PROTOCOLS[name]
    for key, value in preset.items():
        if key in env and env[key] != value:
            raise ConfigError(
                f"{source}: env.{key} is {env[key]!r} but env.protocol {name!r} sets {value!r} "
                "(remove the key, or set env.protocol=custom)"
            )
    return {**env, **preset}


@dataclass(frozen=True)
class NetworkConfig:
    #: widths of the MLP torso's hidden layers (vector observations).
    hidden_sizes: tuple[int, ...] = (128, 128)
    #: dueling head Q = V + A - mean A (Wang et al. 2016).
    dueling: bool = True
    #: noisy linear layers for exploration (Fortunato et al. 2018); usually with epsilon 0.
    noisy: bool = True
    #: initial noise scale sigma0 of noisy layers (> 0).
    sigma0: float = 0.5
    #: C51 atoms; 1 = no distributional head (scalar Q-values), else >= 2.
    atoms: int = 51
    #: the objective (loss) and how the head's outputs read as Q-values: auto (scalar when atoms is 1, else c51), scalar, c51; a module rlkit/agent/objectives/<name>.py adds one.
    head: str = "auto"
    #: smallest return on the C51 support.
    v_min: float = -10.0
    #: largest return on the C51 support (> v_min).
    v_max: float = 10.0
    #: feature extractor: auto (MLP for vectors, Nature CNN for images >= 36 px, MinAtar CNN below), mlp, nature_cnn or minatar_cnn.
    torso: Literal["auto", "mlp", "nature_cnn", "minatar_cnn"] = "auto"
    #: hidden width inside each head stream (0 = none; None = 512 for the CNN, 0 for the MLP).
    head_hidden: int | None = None
    #: when noisy layers draw new noise: paper (Fortunato et al. 2018: fresh noise at every acting step; independent draws for the online net, the target net and the online net's next-action selection in every update) or per_update (one online and one target draw per update, reused by acting).
    noise_cadence: Literal["paper", "per_update"] = "paper"


@dataclass(frozen=True)
class LearnerConfig:
    #: discount factor gamma per env step, in (0, 1].
    gamma: float = 0.99
    #: Adam learning rate (> 0).
    lr: float = 1e-3
    #: Adam epsilon (> 0).
    adam_eps: float = 1.5e-4
    #: transitions per gradient step (>= 1, <= replay.capacity).
    batch_size: int = 64
    #: double-Q target: the online net picks the next action, the target net evaluates it.
    double_q: bool = True
    #: env steps between target-network syncs; 0 = no target network (bootstrap from the online net).
    target_update_period: int = 500
    #: fraction of the way the target net moves at each sync, in (0, 1]; 1 = hard copy.
    target_tau: float = 1.0
    #: TD loss for scalar nets: huber or mse (C51 always uses cross-entropy).
    loss: Literal["huber", "mse"] = "huber"
    #: clip the global gradient norm to this value (> 0; None = no clipping).
    max_grad_norm: float | None = 10.0
    #: C51 priority of a sample: kl (KL divergence of the projected target from the prediction, Hessel et al. 2018) or cross_entropy (KL + the target's entropy, as many implementations use).
    c51_priority: Literal["kl", "cross_entropy"] = "kl"


@dataclass(frozen=True)
class ReplayConfig:
    #: stored transitions (>= 1); the oldest are overwritten when full.
    capacity: int = 100_000
    #: prioritized replay (Schaul et al. 2016) instead of uniform sampling.
    prioritized: bool = True
    #: priority exponent alpha >= 0 (0 = uniform).
    alpha: float = 0.5
    #: importance-sampling exponent beta at the start of training, in [0, 1].
    beta_start: float = 0.4
    #: beta at the end of the anneal, in [0, 1].
    beta_end: float = 1.0
    #: env steps over which beta anneals (None = trainer.total_steps).
    beta_steps: int | None = None
    #: small constant added to |TD| before the exponent (> 0).
    eps: float = 1e-6
    #: n of n-step returns (>= 1; 1 = one-step TD).
    n_step: int = 3
    #: keep replay contents in checkpoints (false = resume restarts with an empty buffer).
    save_in_checkpoint: bool = True
    #: uint8 frame-stack observations [S, H, W] (Atari): store each distinct frame once (~1 frame per transition).
    dedup_frames: bool = True


@dataclass(frozen=True)
class ExplorationConfig:
    #: epsilon of epsilon-greedy at env step 0, in [0, 1].
    epsilon_start: float = 0.0
    #: epsilon after epsilon_steps env steps, in [0, 1].
    epsilon_end: float = 0.0
    #: env steps of the decay (>= 0).
    epsilon_steps: int = 0
    #: shape of the decay: linear, or exponential (99% of the gap closed at epsilon_steps).
    schedule: Literal["linear", "exponential"] = "linear"


@dataclass(frozen=True)
class TrainerConfig:
    #: env steps to train for (>= 1).
    total_steps: int = 50_000
    #: env steps collected before the first gradient step (>= 0).
    learning_starts: int = 1_000
    #: env steps between training phases (>= 1).
    train_every: int = 1
    #: gradient steps (updates) per training phase (>= 1).
    updates_per_train: int = 1
    #: random seed for networks, replay sampling, exploration and environments.
    seed: int = 0
    #: auto (cuda if available, else cpu), cpu or cuda.
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: env steps between checkpoints (0 = only at the end of training).
    checkpoint_every: int = 0
    #: checkpoints to keep (>= 1); older ones are deleted.
    keep_checkpoints: int = 3
    #: env steps between logged training points (>= 1).
    log_every: int = 1_000
    #: CPU threads for torch (0 = torch's default); 1 is fastest for small MLPs.
    num_threads: int = 1
    #: plain ReLU MLP nets: hand-written backward pass and NumPy acting on CPU (same maths; false = torch autograd throughout).
    fast_mlp: bool = True


@dataclass(frozen=True)
class EvalConfig:
    #: env steps between greedy evaluations (0 = only at the end of training).
    every: int = 5_000
    #: greedy episodes per evaluation (>= 1).
    episodes: int = 10
    #: epsilon used during evaluation, in [0, 1] (0 = fully greedy).
    epsilon: float = 0.0


@dataclass(frozen=True)
class Config:
    env: EnvConfig = field(default_factory=EnvConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    exploration: ExplorationConfig = field(default_factory=ExplorationConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


_SECTION_TYPES = {
    "env": EnvConfig,
    "network": NetworkConfig,
    "learner": LearnerConfig,
    "replay": ReplayConfig,
    "exploration": ExplorationConfig,
    "trainer": TrainerConfig,
    "eval": EvalConfig,
}


# ---------------------------------------------------------------- field docs


def field_docs(cls: type) -> dict[str, str]:
    """The ``#:`` comment above each field of a config dataclass."""
    import inspect

    docs: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(cls).splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
        elif ":" in stripped and pending and not stripped.startswith(("class", "@", '"')):
            docs[stripped.split(":", 1)[0].strip()] = " ".join(pending)
            pending = []
    return docs


def describe() -> str:
    """All config keys with their defaults and docs, one per line."""
    lines = []
    for section, cls in _SECTION_TYPES.items():
        docs = field_docs(cls)
        for f in dataclasses.fields(cls):
            default = getattr(cls(), f.name)
            lines.append(f"  {section}.{f.name} = {default!r}: {docs.get(f.name, '')}")
    return "\n".join(lines)


# ---------------------------------------------------------------- coercion


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _yaml11_number(value: Any) -> Any:
    """YAML 1.1 reads ``3e-4`` and ``1e5`` (no dot) as strings; read them as numbers."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Check ``value`` against the annotation ``tp``; return it converted (list -> tuple)."""
    if tp in (int, float):
        value = _yaml11_number(value)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(key, value, arg)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: expected {_type_name(tp)}")
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ConfigError(f"{key}: must be one of {choices}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return tuple(_coerce(f"{key}[{i}]", v, args[0]) for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
                return int(value)  # 1e5 in YAML
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(float(value)):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    raise ConfigError(f"{key}: unsupported type {_type_name(tp)}")


def _suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def from_dict(data: dict, source: str = "config") -> Config:
    """Build a validated Config from nested dicts; unknown keys raise ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(data).__name__}")
    sections = {}
    for name, values in data.items():
        if name not in _SECTION_TYPES:
            raise ConfigError(
                f"{source}: unknown section {name!r}{_suggest(str(name), list(_SECTION_TYPES))}"
            )
        cls = _SECTION_TYPES[name]
        if values is None:
            values = {}
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: section {name!r} must be a mapping")
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for key, value in values.items():
            if key not in hints:
                raise ConfigError(
                    f"{source}: unknown key '{name}.{key}'{_suggest(str(key), list(hints))}"
                )
            kwargs[key] = _coerce(f"{name}.{key}", value, hints[key])
        if name == "env":
            kwargs = apply_protocol(kwargs, source)
        sections[name] = cls(**kwargs)
    config = Config(**sections)
    validate(config)
    return config


def to_dict(config: Config) -> dict:
    """Nested plain dict (tuples as lists) suitable for YAML."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return {
        s: {
            f.name: plain(getattr(getattr(config, s), f.name))
            for f in dataclasses.fields(_SECTION_TYPES[s])
        }
        for s in _SECTION_TYPES
    }


# ---------------------------------------------------------------- validation


def _check(cond: bool, key: str, message: str, value: Any) -> None:
    if not cond:
        raise ConfigError(f"{key}: {message}, got {value!r}")


# gymnasium.make keywords of ALE envs that rlkit sets from its own env keys.
_ALE_KWARGS = {
    "repeat_action_probability": "env.sticky_actions",
    "full_action_space": "env.full_action_space",
    "max_num_frames_per_episode": "env.max_frames_per_episode",
    "frameskip": "env.frame_skip",
}


def _check_ale_kwargs(env: EnvConfig) -> None:
    """ConfigError when env.kwargs of an ALE id sets what an rlkit env key controls."""
    if not env.id.startswith("ALE/"):
        return
    for key, instead in _ALE_KWARGS.items():
        if key in env.kwargs:
            raise ConfigError(f"env.kwargs.{key}: rlkit sets it for ALE ids; use {instead}")


def _validate_env(e: EnvConfig) -> None:
    """Range checks of the env section."""
    _check(e.num_envs >= 1, "env.num_envs", "must be >= 1", e.num_envs)
    _check(e.frame_skip >= 1, "env.frame_skip", "must be >= 1", e.frame_skip)
    _check(e.frame_stack >= 1, "env.frame_stack", "must be >= 1", e.frame_stack)
    _check(e.noop_max >= 0, "env.noop_max", "must be >= 0", e.noop_max)
    _check(
        0.0 <= e.sticky_actions <= 1.0,
        "env.sticky_actions",
        "must be in [0, 1]",
        e.sticky_actions,
    )
    if e.max_frames_per_episode is not None:
        _check(
            e.max_frames_per_episode >= 1,
            "env.max_frames_per_episode",
            "must be >= 1 (None = no cap)",
            e.max_frames_per_episode,
        )
    _check_ale_kwargs(e)
    if e.max_episode_steps is not None:
        _check(
            e.max_episode_steps >= 1,
            "env.max_episode_steps",
            "must be >= 1",
            e.max_episode_steps,
        )


def validate(c: Config) -> None:
    """Range checks; raises ConfigError naming the first offending key."""
    _validate_env(c.env)
    _check(
        all(h >= 1 for h in c.network.hidden_sizes),
        "network.hidden_sizes",
        "widths must be >= 1",
        c.network.hidden_sizes,
    )
    _check(c.network.sigma0 > 0, "network.sigma0", "must be > 0", c.network.sigma0)
    _check(
        c.network.atoms >= 1,
        "network.atoms",
        "must be >= 1 (1 = no distributional head)",
        c.network.atoms,
    )
    _check(
        c.network.v_min < c.network.v_max,
        "network.v_max",
        "must be > network.v_min",
        c.network.v_max,
    )
    if c.network.head_hidden is not None:
        _check(
            c.network.head_hidden >= 0, "network.head_hidden", "must be >= 0", c.network.head_hidden
        )
    _check(0 < c.learner.gamma <= 1, "learner.gamma", "must be in (0, 1]", c.learner.gamma)
    _check(c.learner.lr > 0, "learner.lr", "must be > 0", c.learner.lr)
    _check(c.learner.adam_eps > 0, "learner.adam_eps", "must be > 0", c.learner.adam_eps)
    _check(c.learner.batch_size >= 1, "learner.batch_size", "must be >= 1", c.learner.batch_size)
    _check(
        c.learner.batch_size <= c.replay.capacity,
        "learner.batch_size",
        f"must not exceed replay.capacity ({c.replay.capacity})",
        c.learner.batch_size,
    )
    _check(
        c.learner.target_update_period >= 0,
        "learner.target_update_period",
        "must be >= 0",
        c.learner.target_update_period,
    )
    _check(
        0 < c.learner.target_tau <= 1,
        "learner.target_tau",
        "must be in (0, 1]",
        c.learner.target_tau,
    )
    if c.learner.max_grad_norm is not None:
        _check(
            c.learner.max_grad_norm > 0,
            "learner.max_grad_norm",
            "must be > 0",
            c.learner.max_grad_norm,
        )
    _check(c.replay.capacity >= 1, "replay.capacity", "must be >= 1", c.replay.capacity)
    _check(c.replay.alpha >= 0, "replay.alpha", "must be >= 0", c.replay.alpha)
    _check(
        0 <= c.replay.beta_start <= 1, "replay.beta_start", "must be in [0, 1]", c.replay.beta_start
    )
    _check(0 <= c.replay.beta_end <= 1, "replay.beta_end", "must be in [0, 1]", c.replay.beta_end)
    if c.replay.beta_steps is not None:
        _check(c.replay.beta_steps >= 0, "replay.beta_steps", "must be >= 0", c.replay.beta_steps)
    _check(c.replay.eps > 0, "replay.eps", "must be > 0", c.replay.eps)
    _check(c.replay.n_step >= 1, "replay.n_step", "must be >= 1", c.replay.n_step)
    for key in ("epsilon_start", "epsilon_end"):
        value = getattr(c.exploration, key)
        _check(0 <= value <= 1, f"exploration.{key}", "must be in [0, 1]", value)
    _check(
        c.exploration.epsilon_steps >= 0,
        "exploration.epsilon_steps",
        "must be >= 0",
        c.exploration.epsilon_steps,
    )
    t = c.trainer
    _check(t.total_steps >= 1, "trainer.total_steps", "must be >= 1", t.total_steps)
    for key in ("learning_starts", "checkpoint_every", "num_threads"):
        _check(getattr(t, key) >= 0, f"trainer.{key}", "must be >= 0", getattr(t, key))
    for key in ("train_every", "updates_per_train", "keep_checkpoints", "log_every"):
        _check(getattr(t, key) >= 1, f"trainer.{key}", "must be >= 1", getattr(t, key))
    _check(c.eval.every >= 0, "eval.every", "must be >= 0", c.eval.every)
    _check(c.eval.episodes >= 1, "eval.episodes", "must be >= 1", c.eval.episodes)
    _check(0 <= c.eval.epsilon <= 1, "eval.epsilon", "must be in [0, 1]", c.eval.epsilon)


# ---------------------------------------------------------------- YAML files


def _deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def read_yaml(path: Path) -> Any:
    """Safe-load one YAML file; errors name the file (and line for syntax errors)."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}{where}: malformed YAML: {problem}") from exc


def load_raw(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict:
    """The merged nested dict of a YAML file and its ``extends:`` chain (relative paths)."""
    path = Path(path)
    resolved = path.resolve()
    if resolved in _seen:
        raise ConfigError(f"{path}: circular 'extends:'")
    data = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: 'extends' must be a path string")
    base = load_raw(path.parent / parent, (*_seen, resolved))
    return _deep_merge(base, data)


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"a.b=c"`` -> (["a", "b"], yaml-parsed c)."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. trainer.seed=3")
    key, _, text = item.partition("=")
    parts = key.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"--set {item!r}: key must be section.field, e.g. learner.lr")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: cannot parse value {text!r}") from exc
    return parts, value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for item in overrides:
        (section, key), value = parse_override(item)
        out.setdefault(section, {})
        if not isinstance(out[section], dict):
            out[section] = {}
        out[section][key] = value
    return out


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load a YAML config (or the defaults when ``path`` is None) and apply ``--set`` items."""
    data = load_raw(path) if path is not None else {}
    data = apply_overrides(data, list(overrides))
    source = str(path) if path is not None else "defaults"
    if overrides:
        source += " + --set"
    return from_dict(data, source)


def dump_config(config: Config) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)
