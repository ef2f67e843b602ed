"""Benchmark Rainbow on Atari Pong: env steps/s, updates/s and peak memory.

Trains ``configs/atari/pong_rainbow.yaml`` for a fixed number of agent steps (frame skip
4) with several envs stepping at once, and prints a markdown table. The clock covers
``trainer.run()`` only (no periodic evaluation or checkpoints); learning starts early
so that most of the measured steps include updates. Peak memory is the process's
maximum resident set (and, on CUDA, the peak allocated GPU memory). Frame replay stores
each 84x84 frame once; the table also shows the replay's bytes per stored transition.

    python scripts/bench_atari.py                      # CPU, 2,000 agent steps, 4 envs
    python scripts/bench_atari.py --device cuda        # on a GPU (exit 2 without one)
    python scripts/bench_atari.py --steps 500 --envs 2 # shorter
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


class NullLogger:
    def log(self, env_steps: int, scalars: dict[str, float]) -> None:
        pass

    def close(self) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="agent steps to time")
    parser.add_argument("--envs", type=int, default=4, help="envs stepped together")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: all cores)")
    parser.add_argument("--capacity", type=int, default=100_000, help="replay capacity")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO))
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


if __name__ == "__main__":
    sys.exit(main())
