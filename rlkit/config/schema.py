"""The run configuration's schema: frozen section dataclasses and the Atari protocol presets.

Every field has a one-line docstring (meaning, unit, range) in the ``#:`` comment above it,
and its range or set of names as field metadata (``rlkit.config.rules``), which
``rlkit.config.validate`` checks. Step counts are **env steps** (one step of one
environment, i.e. one transition) unless the name says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from rlkit.config.rules import (
    above,
    at_least,
    backend_names,
    objective_names,
    one_of,
    torso_names,
    within,
)


class ConfigError(ValueError):
    """A user-facing configuration mistake; the message is one line naming the key or file."""


@dataclass(frozen=True)
class EnvConfig:
    #: Gymnasium environment id, e.g. "CartPole-v1", or "module:EnvId" (Gymnasium imports the module first, e.g. "minigrid:MiniGrid-Empty-5x5-v0"); discrete (or small MultiDiscrete) actions.
    id: str = "CartPole-v1"
    #: modules imported before the env is made, for packages that register their envs on import (e.g. [highway_env]); recorded in the run's config, so eval and export import them too.
    imports: tuple[str, ...] = ()
    #: number of parallel training environments (>= 1); each vector step is num_envs env steps.
    num_envs: int = field(default=1, metadata=at_least(1))
    #: vector env backend: gymnasium (Gymnasium's SyncVectorEnv and wrappers; any env), ale_vector (ALE's AtariVectorEnv, C++ threads; ALE/ ids), envpool (pip install 'rlkit[envpool]'; ALE/ ids); a module rlkit/envs/<name>.py adds one.
    backend: str = field(default="gymnasium", metadata=one_of(backend_names, "backend"))
    #: episode time limit in env steps (None = the environment's own limit); truncation, not termination.
    max_episode_steps: int | None = field(default=None, metadata=at_least(1))
    #: extra keyword arguments for gymnasium.make (e.g. {continuous: false}).
    kwargs: dict = field(default_factory=dict)
    #: Gymnasium wrappers applied in order to every env (training and evaluation): [{target: "module:Callable", kwargs: {...}}, ...]; each is called as target(env, **kwargs).
    wrappers: tuple[dict, ...] = ()
    #: learn from sign(reward) (Atari); returns are still reported unclipped.
    clip_rewards: bool = False
    #: Atari (ALE/ ids): frames each agent step repeats its action (>= 1; max-pooled over the last two).
    frame_skip: int = field(default=4, metadata=at_least(1))
    #: Atari: 84x84 grayscale frames per observation (>= 1).
    frame_stack: int = field(default=4, metadata=at_least(1))
    #: Atari: named evaluation protocol that sets the five protocol keys below (machado2018, rainbow2018, atari100k; custom = set each key yourself); an explicit key that contradicts the preset is an error (values: rlkit.config.ATARI_PROTOCOLS).
    protocol: Literal["custom", "machado2018", "rainbow2018", "atari100k"] = "custom"
    #: Atari: at most this many no-op actions after a reset (>= 0; 0 = none).
    noop_max: int = field(default=30, metadata=at_least(0))
    #: Atari: a lost life ends the learning episode (terminal for n-step returns and the TD target) while the game goes on; training env only, episode statistics and evaluation count whole games.
    terminal_on_life_loss: bool = False
    #: Atari: probability of repeating the previous action at each emulator frame (sticky actions, Machado et al. 2018), in [0, 1].
    sticky_actions: float = field(default=0.25, metadata=within(0, 1))
    #: Atari: act with all 18 joystick actions (true) or the game's minimal action set (false).
    full_action_space: bool = False
    #: Atari: episode cap in emulator frames, no-op starts included (>= 1; None = no cap); the capped step is a truncation, not a termination. 108,000 frames = 27,000 agent steps at frame_skip 4.
    max_frames_per_episode: int | None = field(
        default=108_000, metadata=at_least(1, note=" (None = no cap)")
    )


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
    hidden_sizes: tuple[int, ...] = field(
        default=(128, 128), metadata=at_least(1, subject="widths", each=True)
    )
    #: dueling head Q = V + A - mean A (Wang et al. 2016).
    dueling: bool = True
    #: noisy linear layers for exploration (Fortunato et al. 2018); usually with epsilon 0.
    noisy: bool = True
    #: initial noise scale sigma0 of noisy layers (> 0).
    sigma0: float = field(default=0.5, metadata=above(0))
    #: C51 atoms; 1 = no distributional head (scalar Q-values), else >= 2.
    atoms: int = field(default=51, metadata=at_least(1, note=" (1 = no distributional head)"))
    #: the objective (loss) and how the head's outputs read as Q-values: auto (scalar when atoms is 1, else c51), scalar, c51, qr (QR-DQN: network.atoms quantiles, the quantile Huber loss), iqn (IQN: network.atoms = N sampled fractions per loss forward, the iqn_* keys; v_min/v_max unused by qr and iqn); a module rlkit/agent/objectives/<name>.py adds one.
    head: str = field(default="auto", metadata=one_of(objective_names, "head"))
    #: IQN: N', the target net's sampled fractions per update (>= 1; Dabney et al. 2018b: 64).
    iqn_target_quantiles: int = field(default=64, metadata=at_least(1))
    #: IQN: K, fractions per acting forward and to select the next action in the target (>= 1; the paper's 32).
    iqn_acting_quantiles: int = field(default=32, metadata=at_least(1))
    #: IQN: n, cosines of the fraction embedding cos(pi i tau), i = 0..n-1 (>= 1; the paper's 64).
    iqn_cosines: int = field(default=64, metadata=at_least(1))
    #: IQN: eta of the CVaR distortion beta(tau) = eta * tau of acting and selection fractions, in (0, 1]; 1 = risk-neutral.
    iqn_cvar_eta: float = field(default=1.0, metadata=within(0, 1, low_open=True))
    #: smallest return on the C51 support, or auto: from a seeded random-policy probe of the env before building (per-step reward range x discounted horizon (1 - gamma^T) / (1 - gamma), with the probe's returns, 0 and a 10% margin; recorded in the run's checkpoints; see docs/architecture.md). Unused by scalar heads.
    v_min: float | Literal["auto"] = "auto"
    #: largest return on the C51 support (> v_min), or auto (as v_min; one end auto and the other a number is allowed, and an empty result is an error).
    v_max: float | Literal["auto"] = "auto"
    #: feature extractor: auto (MLP for vectors, Nature CNN for images >= 36 px, MinAtar CNN below), mlp, nature_cnn or minatar_cnn.
    torso: str = field(default="auto", metadata=one_of(torso_names))
    #: hidden width inside each head stream (0 = none; None = 512 for the CNN, 0 for the MLP).
    head_hidden: int | None = field(default=None, metadata=at_least(0))
    #: when noisy layers draw new noise: paper (Fortunato et al. 2018: fresh noise at every acting step; independent draws for the online net, the target net and the online net's next-action selection in every update) or per_update (one online and one target draw per update, reused by acting).
    noise_cadence: Literal["paper", "per_update"] = "paper"


@dataclass(frozen=True)
class LearnerConfig:
    #: discount factor gamma per env step, in (0, 1].
    gamma: float = field(default=0.99, metadata=within(0, 1, low_open=True))
    #: Adam learning rate (> 0).
    lr: float = field(default=1e-3, metadata=above(0))
    #: Adam epsilon (> 0).
    adam_eps: float = field(default=1.5e-4, metadata=above(0))
    #: transitions per gradient step (>= 1, <= replay.capacity).
    batch_size: int = field(default=64, metadata=at_least(1))
    #: double-Q target: the online net picks the next action, the target net evaluates it.
    double_q: bool = True
    #: env steps between target-network syncs; 0 = no target network (bootstrap from the online net).
    target_update_period: int = field(default=500, metadata=at_least(0))
    #: fraction of the way the target net moves at each sync, in (0, 1]; 1 = hard copy.
    target_tau: float = field(default=1.0, metadata=within(0, 1, low_open=True))
    #: TD loss for scalar nets: huber or mse (C51 always uses cross-entropy).
    loss: Literal["huber", "mse"] = "huber"
    #: clip the global gradient norm to this value (> 0; None = no clipping).
    max_grad_norm: float | None = field(default=10.0, metadata=above(0))
    #: C51 priority of a sample: kl (KL divergence of the projected target from the prediction, Hessel et al. 2018) or cross_entropy (KL + the target's entropy, as many implementations use).
    c51_priority: Literal["kl", "cross_entropy"] = "kl"
    #: Munchausen-DQN (Vieillard et al. 2020): add alpha * clip(tau * log pi(a|s), log_floor, 0) to the reward and bootstrap from the soft value of pi = softmax(q_target / tau); the scalar head (M-DQN) or iqn (M-IQN).
    munchausen: bool = False
    #: Munchausen entropy temperature tau (> 0; the paper's 0.03).
    munchausen_tau: float = field(default=0.03, metadata=above(0))
    #: Munchausen bonus scale alpha, in [0, 1] (the paper's 0.9; 0 = soft DQN).
    munchausen_alpha: float = field(default=0.9, metadata=within(0, 1))
    #: Munchausen floor l0 of the scaled log-policy tau * log pi (< 0; the paper's -1).
    munchausen_log_floor: float = -1.0
    #: compile the objective (forwards, target, loss, priorities, and its backward) with torch.compile; false = eager.
    compile: bool = False
    #: torch.compile mode when learner.compile: auto (reduce-overhead, i.e. CUDA graphs, on cuda; default on cpu), default, reduce-overhead or max-autotune.
    compile_mode: Literal["auto", "default", "reduce-overhead", "max-autotune"] = "auto"
    #: arithmetic of the objective: fp32, or bf16 (torch.autocast in bfloat16; weights, gradients and Adam stay float32; for GPUs and CPUs with AMX / AVX512-BF16, elsewhere emulated and several times slower).
    precision: Literal["fp32", "bf16"] = "fp32"


@dataclass(frozen=True)
class ReplayConfig:
    #: stored transitions (>= 1); the oldest are overwritten when full.
    capacity: int = field(default=100_000, metadata=at_least(1))
    #: prioritized replay (Schaul et al. 2016) instead of uniform sampling.
    prioritized: bool = True
    #: priority exponent alpha >= 0 (0 = uniform).
    alpha: float = field(default=0.5, metadata=at_least(0))
    #: importance-sampling exponent beta at the start of training, in [0, 1].
    beta_start: float = field(default=0.4, metadata=within(0, 1))
    #: beta at the end of the anneal, in [0, 1].
    beta_end: float = field(default=1.0, metadata=within(0, 1))
    #: env steps over which beta anneals (None = trainer.total_steps).
    beta_steps: int | None = field(default=None, metadata=at_least(0))
    #: small constant added to |TD| before the exponent (> 0).
    eps: float = field(default=1e-6, metadata=above(0))
    #: n of n-step returns (>= 1; 1 = one-step TD).
    n_step: int = field(default=3, metadata=at_least(1))
    #: keep replay contents in checkpoints (false = resume restarts with an empty buffer).
    save_in_checkpoint: bool = True
    #: uint8 frame-stack observations [S, H, W] (Atari): store each distinct frame once (~1 frame per transition).
    dedup_frames: bool = True
    #: frame replay only: also keep the frame pool on trainer.device (uint8; ~7.3 GB per 1M transitions on a GPU) and gather the stacks of each batch there.
    frames_on_device: bool = False


@dataclass(frozen=True)
class ExplorationConfig:
    #: epsilon of epsilon-greedy at env step 0, in [0, 1].
    epsilon_start: float = field(default=0.0, metadata=within(0, 1))
    #: epsilon after epsilon_steps env steps, in [0, 1].
    epsilon_end: float = field(default=0.0, metadata=within(0, 1))
    #: env steps of the decay (>= 0).
    epsilon_steps: int = field(default=0, metadata=at_least(0))
    #: shape of the decay: linear, or exponential (99% of the gap closed at epsilon_steps).
    schedule: Literal["linear", "exponential"] = "linear"


@dataclass(frozen=True)
class TrainerConfig:
    #: env steps to train for (>= 1).
    total_steps: int = field(default=50_000, metadata=at_least(1))
    #: env steps collected before the first gradient step (>= 0).
    learning_starts: int = field(default=1_000, metadata=at_least(0))
    #: env steps between training phases (>= 1).
    train_every: int = field(default=1, metadata=at_least(1))
    #: gradient steps (updates) per training phase (>= 1).
    updates_per_train: int = field(default=1, metadata=at_least(1))
    #: random seed for networks, replay sampling, exploration and environments.
    seed: int = 0
    #: auto (cuda if available, else cpu), cpu or cuda.
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: env steps between checkpoints (0 = only at the end of training).
    checkpoint_every: int = field(default=0, metadata=at_least(0))
    #: checkpoints to keep (>= 1); older ones are deleted.
    keep_checkpoints: int = field(default=3, metadata=at_least(1))
    #: env steps between logged training points (>= 1).
    log_every: int = field(default=1_000, metadata=at_least(1))
    #: CPU threads for torch (0 = torch's default); 1 is fastest for small MLPs.
    num_threads: int = field(default=1, metadata=at_least(0))
    #: Linux (glibc): keep memory that an update frees for the next one instead of returning it to the OS (rlkit.malloc; fewer page faults, 1.25-1.38x on MinAtar IQN; changes no result).
    hold_freed_memory: bool = True
    #: hand-written backward passes for plain ReLU MLP nets (and NumPy acting on CPU) and for C51 on MLP-torso nets with noisy/dueling heads (same maths; false = torch autograd throughout).
    fast_mlp: bool = True
    #: sync (act, then learn, in one thread; deterministic) or async (an actor thread acts while the learner trains; the same replay ratio and schedules, counted in the env steps the learner has taken in).
    mode: Literal["sync", "async"] = "sync"
    #: async: env steps the actor may run ahead of the learner (>= 0; 0 = lockstep, which equals sync); acting uses parameters at most this much older than in sync.
    actor_lag: int = field(default=64, metadata=at_least(0))
    #: async: updates between the parameter snapshots the actor acts with (>= 1), published at the end of a training phase.
    publish_every: int = field(default=1, metadata=at_least(1))


@dataclass(frozen=True)
class EvalConfig:
    #: env steps between greedy evaluations (0 = only at the end of training).
    every: int = field(default=5_000, metadata=at_least(0))
    #: greedy episodes per evaluation (>= 1).
    episodes: int = field(default=10, metadata=at_least(1))
    #: epsilon used during evaluation, in [0, 1] (0 = fully greedy).
    epsilon: float = field(default=0.0, metadata=within(0, 1))
    #: env steps between recorded greedy episodes (videos/ in the run dir and TensorBoard;
    #: needs the video extra); 0 = off.
    video_every: int = field(default=0, metadata=at_least(0))


@dataclass(frozen=True)
class DistributedConfig:
    #: where training runs: none (this process; trainer.mode sync or async) or ray (Ape-X, Horgan et al. 2018: actors, replay shards and an evaluator as Ray actors, the learner in this process; pip install 'rlkit[ray]').
    backend: Literal["none", "ray"] = "none"
    #: the Ray cluster to join (an address such as "auto" or "ray://host:10001"; rlkit train --address sets it); empty = start a local Ray instance.
    address: str = ""
    #: Ape-X actors (>= 1), each stepping env.num_envs envs with its own copy of the policy.
    actors: int = field(default=2, metadata=at_least(1))
    #: replay shards (>= 1), each a Ray actor holding replay.capacity / replay_shards transitions.
    replay_shards: int = field(default=1, metadata=at_least(1))
    #: Ape-X base epsilon, in [0, 1]: with network.noisy false actor i of N acts epsilon-greedily with epsilon ** (1 + epsilon_alpha * i / (N - 1)) (the exploration schedule is not used); noisy actors draw their own noise instead.
    epsilon: float = field(default=0.4, metadata=within(0, 1))
    #: Ape-X's exponent spread alpha of the per-actor epsilons (>= 0; the paper's 7).
    epsilon_alpha: float = field(default=7.0, metadata=at_least(0))
    #: vector steps an actor takes per call before it sends the chunk's transitions, with its own initial priorities, to a replay shard (>= 1).
    chunk: int = field(default=50, metadata=at_least(1))
    #: learner updates between weight publications to the parameter server (>= 1).
    publish_every: int = field(default=25, metadata=at_least(1))
    #: env steps an actor takes between weight pulls (>= 1; checked before each chunk).
    pull_every: int = field(default=400, metadata=at_least(1))
    #: replay sample requests the learner keeps in flight (>= 1).
    in_flight: int = field(default=4, metadata=at_least(1))
    #: keep the replay ratio (trainer.updates_per_train / train_every): an actor waits while the learner is more than one round of chunks behind; false = free-running actors (Ape-X), the ratio falls when the learner cannot keep up.
    throttle: bool = True
    #: CPUs each actor and replay shard declares to Ray (> 0; fractions allowed).
    actor_cpus: float = field(default=1.0, metadata=above(0))
    #: object store of a local Ray instance in MiB (>= 75, Ray's minimum).
    object_store_mb: int = field(default=128, metadata=at_least(75))


@dataclass(frozen=True)
class Config:
    env: EnvConfig = field(default_factory=EnvConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    exploration: ExplorationConfig = field(default_factory=ExplorationConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)


SECTION_TYPES: dict[str, type] = {
    "env": EnvConfig,
    "network": NetworkConfig,
    "learner": LearnerConfig,
    "replay": ReplayConfig,
    "exploration": ExplorationConfig,
    "trainer": TrainerConfig,
    "eval": EvalConfig,
    "distributed": DistributedConfig,
}
