"""Benchmark Rainbow on Atari Pong: training (env steps/s, updates/s, peak memory) or the
acting path alone.

Trains ``configs/atari/pong_rainbow.yaml`` for a fixed number of agent steps (frame skip
4) with several envs stepping at once, and prints a markdown table. The clock covers
``trainer.run()`` only (no periodic evaluation or checkpoints); learning starts early
so that most of the measured steps include updates. Peak memory is the process's
maximum resident set (and, on CUDA, the peak allocated GPU memory). Frame replay stores
each 84x84 frame once; the table also shows the replay's bytes per stored transition.

    python scripts/bench_atari.py                      # CPU, 2,000 agent steps, 4 envs
    python scripts/bench_atari.py --device cuda        # on a GPU (exit 2 without one)
    python scripts/bench_atari.py --steps 500 --envs 2 # shorter
    python scripts/bench_atari.py --backend ale_vector # training on ALE's AtariVectorEnv

``--acting`` times rlkit's acting path instead (policy forward, env step, n-step and
replay add through ``Trainer.run`` with learning never starting), interleaved in rounds
with raw ``AtariVectorEnv`` stepping at the same env count and protocol (plus the same
network forward when epsilon is 0) and with the Gymnasium backend's acting path; it
prints agent steps/s (medians over the rounds) and the ratios (medians of the ratios
within each round), for epsilon 1 (random actions: the policy skips the network, so the
ratio is rlkit's overhead) and epsilon 0
(a greedy forward pass of the Rainbow network on every step). A further column runs the
same acting path with ``replay.dedup_frames=false`` (whole stacks stored verbatim);
``--epsilons 1`` times only the epsilon-1 row; ``--prefault`` touches the replay's memory
before timing, so that storing a new frame costs what it does once the replay has been
filled once (not the first write's page faults):

    python scripts/bench_atari.py --acting --backend ale_vector --envs 4 --rounds 7
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "configs" / "atari" / "pong_rainbow.yaml"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import NullLogger, train_more  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="agent steps to time")
    parser.add_argument("--envs", type=int, default=4, help="envs stepped together")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: all cores)")
    parser.add_argument("--capacity", type=int, default=100_000, help="replay capacity")
    parser.add_argument(
        "--backend",
        choices=("gymnasium", "ale_vector", "envpool"),
        default="gymnasium",
        help="env.backend",
    )
    parser.add_argument("--acting", action="store_true", help="time the acting path only")
    parser.add_argument("--rounds", type=int, default=7, help="--acting: interleaved rounds")
    parser.add_argument(
        "--prefault",
        action="store_true",
        help="--acting: touch the replay's memory before timing (as after its first fill)",
    )
    parser.add_argument(
        "--epsilons",
        type=float,
        nargs="+",
        default=[1.0, 0.0],
        help="--acting: the exploration epsilons to time (one table row each)",
    )
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO))
    if args.acting:
        return acting_benchmark(args)
    import numpy as np
    import torch

    from rlkit.build import build, replay_bytes
    from rlkit.config import load_config
    from rlkit.envs import EnvError

    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_atari: --device cuda needs a CUDA GPU; none is available", file=sys.stderr)
        return 2
    learning_starts = max(args.steps // 10, 4 * args.envs)
    sets = [
        f"trainer.device={args.device}",
        f"trainer.num_threads={args.threads}",
        f"env.num_envs={args.envs}",
        f"env.backend={args.backend}",
        f"trainer.total_steps={learning_starts + args.steps}",
        f"trainer.learning_starts={learning_starts}",
        f"replay.capacity={args.capacity}",
        "trainer.checkpoint_every=0",
        "eval.every=0",
    ]
    config = load_config(CONFIG, sets)
    try:
        components = build(config, NullLogger())
    except EnvError as exc:
        print(f"bench_atari: {exc}", file=sys.stderr)
        return 2
    trainer = components.trainer
    trainer.run_evaluation = lambda: None  # time training only
    # warm-up: fill replay up to learning_starts (not timed)
    trainer.cadence = type(trainer.cadence)(
        **{**trainer.cadence.__dict__, "total_steps": learning_starts}
    )
    trainer.run()
    trainer.cadence = type(trainer.cadence)(
        **{**trainer.cadence.__dict__, "total_steps": learning_starts + args.steps}
    )
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    steps0, updates0 = trainer.counters.env_steps, trainer.counters.updates
    start = time.perf_counter()
    trainer.run()
    if args.device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    steps = trainer.counters.env_steps - steps0
    updates = trainer.counters.updates - updates0
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    replay = components.replay
    obs_shape = replay.obs_shape
    per_transition = replay.nbytes / replay.capacity
    million = load_config(CONFIG, [*sets, "replay.capacity=1000000"])
    estimate = replay_bytes(million, obs_shape, np.dtype(np.uint8))
    components.close()

    cpu = platform.processor() or platform.machine()
    print(f"# {cpu}, {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    print(
        f"command: python scripts/bench_atari.py --steps {args.steps} --envs {args.envs} "
        f"--device {args.device} --capacity {args.capacity}"
    )
    print()
    print("| measure | value |")
    print("|---|---:|")
    print(f"| device | {components.device} |")
    print(f"| envs | {args.envs} |")
    print(f"| timed agent steps (after {learning_starts} warm-up steps) | {steps:,} |")
    print(f"| env steps/s | {steps / seconds:,.1f} |")
    print(f"| frames/s (x4 frame skip) | {4 * steps / seconds:,.1f} |")
    print(f"| updates/s (batch {config.learner.batch_size}) | {updates / seconds:,.2f} |")
    print(f"| peak resident memory (MiB) | {rss_mib:,.0f} |")
    if args.device == "cuda":
        print(f"| peak GPU memory (MiB) | {torch.cuda.max_memory_allocated() / 2**20:,.0f} |")
    print(f"| replay capacity | {replay.capacity:,} |")
    print(f"| replay bytes per transition (allocated) | {per_transition:,.0f} |")
    print(f"| replay estimate for 1M transitions (GB) | {estimate / 1e9:.2f} |")
    print(
        f"| frames stored now / transitions stored | {replay._storage.num_frames:,} / {len(replay):,} |"
    )
    return 0


# ---------------------------------------------------------------- acting path


def acting_sets(args, backend: str, epsilon: float, dedup: bool = True) -> list[str]:
    """Config overrides of one acting-path run: learning never starts, constant epsilon;
    ``dedup``: frame replay (each frame stored once) or whole stacks stored verbatim."""
    return [
        f"replay.dedup_frames={str(dedup).lower()}",
        "trainer.device=cpu",
        f"trainer.num_threads={args.threads or 1}",  # the emulators need the other cores
        f"env.num_envs={args.envs}",
        f"env.backend={backend}",
        "trainer.total_steps=1",
        "trainer.learning_starts=1000000000",
        f"replay.capacity={min(args.capacity, 20_000)}",
        "trainer.checkpoint_every=0",
        "trainer.log_every=1000000000",
        "eval.every=0",
        "eval.episodes=1",
        f"exploration.epsilon_start={epsilon}",
        f"exploration.epsilon_end={epsilon}",
    ]


class RlkitActing:
    """rlkit's acting path on one backend: ``Trainer.run`` for ``steps`` more agent steps
    (collector -> policy -> env -> n-step -> replay; no updates, no evaluation)."""

    def __init__(self, args, backend: str, epsilon: float, dedup: bool = True) -> None:
        from rlkit.build import build
        from rlkit.config import load_config

        self.components = build(
            load_config(CONFIG, acting_sets(args, backend, epsilon, dedup)), NullLogger()
        )
        self.trainer = self.components.trainer
        self.trainer.run_evaluation = lambda: None
        self.trainer._save = lambda: None
        # act as after the first update: with the latest update's noise, not fresh noise
        # drawn at every step (what happens only before learning starts)
        self.trainer.counters.updates = 1
        policy = self.trainer.collector.policy
        if hasattr(policy, "load_params"):
            policy.load_params(self.components.learner.params())
        if args.prefault:  # the replay's pages exist, as in a run past its first fill
            storage = self.components.replay._storage
            for value in vars(storage).values():
                if hasattr(value, "fill") and getattr(value, "nbytes", 0) > 2**20:
                    value.fill(0)

    def run(self, steps: int) -> None:
        train_more(self.trainer, steps)

    def close(self) -> None:
        self.components.close()


class RawAleVector:
    """Raw ``AtariVectorEnv`` stepping with the same settings the ``ale_vector`` adapter
    uses; actions uniform (epsilon 1) or ``argmax`` of the same network's forward pass
    (epsilon 0). Nothing else: no n-step, no replay."""

    def __init__(self, args, network, config) -> None:
        import numpy as np
        import torch
        from ale_py.vector_env import AtariVectorEnv

        from rlkit.envs.ale_vector import _settings
        from rlkit.envs.atari import AtariOptions, ale_game, snake_case

        options = AtariOptions(
            frame_skip=config.env.frame_skip,
            frame_stack=config.env.frame_stack,
            noop_max=config.env.noop_max,
            sticky_actions=config.env.sticky_actions,
            full_action_space=config.env.full_action_space,
            max_frames_per_episode=config.env.max_frames_per_episode,
        )
        game = snake_case(ale_game(config.env.id, "ale_vector"))
        self.envs = AtariVectorEnv(game, args.envs, **_settings(options))
        self.num_actions = int(self.envs.single_action_space.n)
        self.network, self.torch, self.rng = network, torch, np.random.default_rng(0)
        self.obs, _ = self.envs.reset(seed=0)
        self.num_envs = args.envs

    def run(self, steps: int, greedy: bool) -> None:
        torch = self.torch
        for _ in range(steps // self.num_envs):
            if greedy:
                with torch.inference_mode():
                    q = self.network(torch.as_tensor(self.obs))
                actions = q.argmax(1).numpy()
            else:
                actions = self.rng.integers(0, self.num_actions, self.num_envs)
            self.obs, *_ = self.envs.step(actions)

    def close(self) -> None:
        self.envs.close()


def timed(fn, *fn_args) -> float:
    start = time.perf_counter()
    fn(*fn_args)
    return time.perf_counter() - start


def acting_row(args, epsilon: float) -> dict[str, float]:
    """Median agent steps/s of raw AtariVectorEnv, rlkit on ``args.backend`` (frame replay,
    and whole stacks stored: ``replay.dedup_frames=false``) and rlkit on the Gymnasium
    backend, timed in interleaved rounds of ``args.steps`` agent steps."""
    import numpy as np

    ours = RlkitActing(args, args.backend, epsilon)
    stacks = RlkitActing(args, args.backend, epsilon, dedup=False)
    gym_path = RlkitActing(args, "gymnasium", epsilon)
    raw = RawAleVector(args, ours.components.network, ours.components.config)
    greedy = epsilon == 0.0
    runs = {
        "raw": lambda n: raw.run(n, greedy),
        "rlkit": ours.run,
        "no dedup": stacks.run,
        "gymnasium": gym_path.run,
    }
    for run in runs.values():  # warm-up
        run(4 * args.envs)
    times: dict[str, list[float]] = {k: [] for k in runs}
    for r in range(args.rounds):  # odd rounds in reverse order: no variant always first
        for key in list(runs) if r % 2 == 0 else list(runs)[::-1]:
            times[key].append(timed(runs[key], args.steps))
    for variant in (raw, ours, stacks, gym_path):
        variant.close()
    steps = args.steps // args.envs * args.envs
    row = {k: float(np.median([steps / t for t in v])) for k, v in times.items()}
    # ratios paired within each round (the machine's load drifts between rounds)
    for name, num, den in (
        ("rlkit/raw", "raw", "rlkit"),
        ("rlkit/gym", "gymnasium", "rlkit"),
        ("no dedup/raw", "raw", "no dedup"),
    ):
        row[name] = float(np.median(np.array(times[num]) / np.array(times[den])))
    return row


def acting_breakdown(args) -> dict[str, float]:
    """Milliseconds per vector step spent in each part of the acting path (random
    actions, ``args.backend``): the raw env step, the adapter around it, the policy, the
    rest of the collector, n-step, replay add, and the loop's own bookkeeping."""
    import collections

    ours = RlkitActing(args, args.backend, 1.0)
    ours.run(4 * args.envs)
    spent: collections.Counter = collections.Counter()

    def wrap(obj, name: str, key: str) -> None:
        fn = getattr(obj, name)

        def timed_fn(*a, **k):
            start = time.perf_counter()
            out = fn(*a, **k)
            spent[key] += time.perf_counter() - start
            return out

        setattr(obj, name, timed_fn)

    collector, trainer = ours.trainer.collector, ours.trainer
    inner = getattr(collector.envs, "envs", None)
    if inner is not None:  # the backend's own calls (raw stepping makes them too)
        for name in ("send", "recv") if hasattr(inner, "recv") else ("step",):
            wrap(inner, name, "env")
    for obj, name, key in (
        (collector.envs, "step_async", "adapter+env"),
        (collector.envs, "step_wait", "adapter+env"),
        (collector.policy, "act", "policy"),
        (collector, "begin", "collector"),
        (collector, "finish", "collector"),
        (trainer.nstep, "push", "n-step"),
        (trainer.replay, "add", "replay add"),
    ):
        wrap(obj, name, key)
    vector_steps = args.rounds * args.steps // args.envs
    total = timed(ours.run, vector_steps * args.envs)
    ours.close()
    ms = {k: 1000 * v / vector_steps for k, v in spent.items()}
    env = ms.get("env", ms["adapter+env"])
    return {
        "the backend's own calls (send + recv: raw stepping less the overlapped work)": env,
        "adapter": ms["adapter+env"] - env,
        "policy": ms["policy"],
        "collector (rest)": ms["collector"] - ms["adapter+env"] - ms["policy"],
        "n-step (while the envs step)": ms["n-step"],
        "replay add (while the envs step)": ms["replay add"],
        "loop (rest)": 1000 * total / vector_steps
        - ms["collector"]
        - ms["n-step"]
        - ms["replay add"],
    }


def acting_benchmark(args) -> int:
    """Print the acting-path table (see the module docstring)."""
    import torch

    rows = [(eps, acting_row(args, eps)) for eps in args.epsilons]
    cpu = platform.processor() or platform.machine()
    print(f"# {cpu}, {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    print(
        f"command: python scripts/bench_atari.py --acting --backend {args.backend} "
        f"--envs {args.envs} --steps {args.steps} --rounds {args.rounds}"
        + (f" --epsilons {' '.join(f'{e:g}' for e in args.epsilons)}" if len(rows) != 2 else "")
        + (" --prefault" if args.prefault else "")
    )
    print()
    print(
        f"| epsilon | raw AtariVectorEnv | rlkit {args.backend} | rlkit gymnasium "
        f"| {args.backend} / raw | {args.backend} / gymnasium "
        f"| {args.backend}, dedup_frames=false | its / raw |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for eps, r in rows:
        print(
            f"| {eps:g} | {r['raw']:,.0f} | {r['rlkit']:,.0f} | {r['gymnasium']:,.0f} "
            f"| {r['rlkit/raw']:.0%} | {r['rlkit/gym']:.2f}x "
            f"| {r['no dedup']:,.0f} | {r['no dedup/raw']:.0%} |"
        )
    print()
    print(
        "agent steps/s, medians over the rounds; ratios: medians of the ratios within each"
        " round; raw at epsilon 0 includes the same forward"
    )
    print()
    print(f"| part of the acting path (epsilon 1, {args.backend}) | ms per vector step |")
    print("|---|---:|")
    for part, ms in acting_breakdown(args).items():
        print(f"| {part} | {ms:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
