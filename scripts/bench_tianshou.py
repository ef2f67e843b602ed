"""Rainbow on CartPole-v1: rlkit's default config against Tianshou's RainbowDQN at the same
settings, env steps/s while training, one torch thread each, interleaved in one run.

Installs nothing: Tianshou runs when it is importable (``pip install tianshou``), else the
script says so and exits 2. Settings of both (``configs/cartpole_rainbow.yaml``): one env;
a 128-unit torso, dueling streams with a 128-unit noisy hidden layer (sigma0 0.5); C51
with 51 atoms on [0, 100]; Adam lr 1e-3; batch 128; gamma 0.99, 3-step returns; PER
alpha 0.2, beta 0.6; a hard target sync every 100 updates; one update per env step; no
epsilon. Each round builds both anew, collects ``trainer.learning_starts`` = 1,000 env
steps untimed, then times ``--steps`` env steps of training.

    python scripts/bench_tianshou.py --steps 3000 --rounds 3
    python scripts/bench_tianshou.py --rlkit-set learner.compile=true   # also compiled
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import NullLogger, train_more  # noqa: E402

WARMUP = 1000


def rlkit_run(steps: int, seed: int, extra: tuple[str, ...] = ()) -> float:
    """Seconds for ``steps`` env steps of rlkit's default Rainbow after the warm-up
    (``extra``: more overrides; then 20 more untimed steps, e.g. to compile)."""
    from rlkit.build import build
    from rlkit.config import load_config

    sets = [
        "trainer.device=cpu",
        "trainer.num_threads=1",
        f"trainer.seed={seed}",
        "trainer.checkpoint_every=0",
        "trainer.log_every=1000000000",
        "eval.every=0",
        "eval.episodes=1",
        *extra,
    ]
    c = build(load_config(REPO / "configs" / "cartpole_rainbow.yaml", sets), NullLogger())
    c.trainer._finish_run = lambda: None
    train_more(c.trainer, WARMUP + (20 if extra else 0))
    start = time.perf_counter()
    train_more(c.trainer, steps)
    elapsed = time.perf_counter() - start
    c.close()
    return elapsed


def tianshou_run(steps: int, seed: int) -> float:
    """Seconds for ``steps`` env steps of Tianshou's RainbowDQN at the same settings."""
    import gymnasium as gym
    from tianshou.algorithm import RainbowDQN
    from tianshou.algorithm.modelfree.c51 import C51Policy
    from tianshou.algorithm.optim import AdamOptimizerFactory
    from tianshou.data import Collector, CollectStats, PrioritizedVectorReplayBuffer
    from tianshou.env import DummyVectorEnv
    from tianshou.trainer import OffPolicyTrainerParams
    from tianshou.utils.net.common import Net
    from tianshou.utils.net.discrete import NoisyLinear

    torch.manual_seed(seed)
    envs = DummyVectorEnv([lambda: gym.make("CartPole-v1")])
    envs.seed(seed)
    space = gym.make("CartPole-v1")

    def noisy(i: int, o: int) -> NoisyLinear:
        return NoisyLinear(i, o, 0.5)

    stream = {"hidden_sizes": [128], "linear_layer": noisy}
    net = Net(
        state_shape=space.observation_space.shape,
        action_shape=space.action_space.n,
        hidden_sizes=[128],
        softmax=True,
        num_atoms=51,
        dueling_param=(stream, dict(stream)),
    )
    policy = C51Policy(
        model=net, action_space=space.action_space, num_atoms=51, v_min=0.0, v_max=100.0
    )
    algorithm = RainbowDQN(
        policy=policy,
        optim=AdamOptimizerFactory(lr=1e-3, eps=1.5e-4),
        gamma=0.99,
        n_step_return_horizon=3,
        target_update_freq=100,
    )
    buffer = PrioritizedVectorReplayBuffer(10_000, buffer_num=1, alpha=0.2, beta=0.6)
    collector = Collector[CollectStats](algorithm, envs, buffer, exploration_noise=True)
    collector.reset()
    collector.collect(n_step=WARMUP)
    params = OffPolicyTrainerParams(
        training_collector=collector,
        test_collector=None,
        max_epochs=1,
        epoch_num_steps=steps,
        collection_step_num_env_steps=1,
        update_step_num_gradient_steps_per_sample=1.0,
        batch_size=128,
        test_in_training=False,
        verbose=False,
        show_progress=False,
    )
    start = time.perf_counter()
    algorithm.run_training(params)
    elapsed = time.perf_counter() - start
    envs.close()
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3000, help="timed env steps per run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (seeds)")
    parser.add_argument(
        "--rlkit-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an override for rlkit's run, e.g. learner.compile=true (also times the default)",
    )
    args = parser.parse_args(argv)
    if importlib.util.find_spec("tianshou") is None:
        print("bench_tianshou: Tianshou is not installed (pip install tianshou); nothing run")
        return 2
    import tianshou

    torch.set_num_threads(1)
    runs = {
        "rlkit": lambda seed: rlkit_run(args.steps, seed),
        "tianshou": lambda seed: tianshou_run(args.steps, seed),
    }
    if args.rlkit_set:
        label = "rlkit " + " ".join(args.rlkit_set)
        runs[label] = lambda seed: rlkit_run(args.steps, seed, tuple(args.rlkit_set))
    times: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(args.rounds):
        for name in list(runs) if r % 2 == 0 else list(runs)[::-1]:
            times[name].append(runs[name](r))
    print(
        f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"tianshou {tianshou.__version__}, 1 thread"
    )
    extra = "".join(f" --rlkit-set {item}" for item in args.rlkit_set)
    print(
        f"command: python scripts/bench_tianshou.py --steps {args.steps} --rounds {args.rounds}{extra}"
    )
    print()
    print("| framework | env steps/s (median) | per round |")
    print("|---|---:|---|")
    for name, ts in times.items():
        rates = [args.steps / t for t in ts]
        print(f"| {name} | {np.median(rates):,.0f} | {', '.join(f'{x:,.0f}' for x in rates)} |")
    print()
    for name in times:
        if name.startswith("rlkit"):
            ratio = np.median(np.array(times["tianshou"]) / np.array(times[name]))
            print(f"{name} / tianshou (median of the ratios within each round): {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
