"""Agent steps/s of the sync and async loops (``trainer.mode``), interleaved in one run.

For each workload the same config is built twice (``trainer.mode=sync`` and ``async``),
warmed up past ``trainer.learning_starts``, then timed in alternating rounds of
``--steps`` agent steps each (training included: updates, target syncs; no evaluation,
no checkpoints). Prints agent steps/s and updates/s (medians over the rounds) and the
async/sync ratio (the median of the ratios within each round).

    python scripts/bench_loops.py                          # cartpole, minatar, pong
    python scripts/bench_loops.py --workloads pong --steps 400 --rounds 3

Workloads: ``cartpole`` (configs/cartpole_rainbow.yaml), ``minatar``
(configs/minatar/breakout.yaml; needs the minatar extra), ``pong``
(configs/atari/pong_rainbow.yaml on ``env.backend=ale_vector``; needs the atari extra).
"""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from benchlib import NullLogger, missing, train_more, workload_parser  # noqa: E402

WORKLOADS = {
    "cartpole": ("configs/cartpole_rainbow.yaml", None, ["trainer.learning_starts=500"]),
    "minatar": ("configs/minatar/breakout.yaml", "minatar", ["trainer.learning_starts=1000"]),
    "pong": (
        "configs/atari/pong_rainbow.yaml",
        "ale_py",
        [
            "env.backend=ale_vector",
            "trainer.learning_starts=400",
            "replay.capacity=20000",
        ],
    ),
}


class Loop:
    """One built run in ``mode``; ``run(steps)`` trains ``steps`` more agent steps."""

    def __init__(self, name: str, mode: str, args) -> None:
        from rlkit.build import build
        from rlkit.config import load_config

        config, _, extra = WORKLOADS[name]
        sets = [
            f"trainer.mode={mode}",
            f"trainer.actor_lag={args.lag}",
            f"trainer.device={args.device}",
            f"trainer.num_threads={args.threads}",
            "trainer.total_steps=1",
            "trainer.checkpoint_every=0",
            "trainer.log_every=1000000000",
            "eval.every=0",
            "eval.episodes=1",
            *extra,
        ]
        self.components = build(load_config(REPO / config, sets), NullLogger())
        self.trainer = self.components.trainer
        self.trainer._finish_run = lambda: None  # no final evaluation or checkpoint
        self.run(self.trainer.cadence.learning_starts + 200)  # past the warm-up

    def run(self, steps: int) -> None:
        train_more(self.trainer, steps)

    def close(self) -> None:
        self.components.close()


def measure(name: str, args) -> dict[str, float]:
    loops = {mode: Loop(name, mode, args) for mode in ("sync", "async")}
    times: dict[str, list[float]] = {mode: [] for mode in loops}
    updates: dict[str, list[int]] = {mode: [] for mode in loops}
    for r in range(args.rounds):
        for mode in ("sync", "async") if r % 2 == 0 else ("async", "sync"):
            loop = loops[mode]
            before = loop.trainer.counters.updates
            start = time.perf_counter()
            loop.run(args.steps)
            times[mode].append(time.perf_counter() - start)
            updates[mode].append(loop.trainer.counters.updates - before)
    for loop in loops.values():
        loop.close()
    row = {}
    for mode in loops:
        row[f"{mode} sps"] = float(np.median([args.steps / t for t in times[mode]]))
        row[f"{mode} ups"] = float(np.median(np.array(updates[mode]) / np.array(times[mode])))
    row["ratio"] = float(np.median(np.array(times["sync"]) / np.array(times["async"])))
    return row


def main(argv: list[str] | None = None) -> int:
    parser = workload_parser(__doc__, WORKLOADS)
    parser.add_argument("--steps", type=int, default=1000, help="agent steps per round")
    parser.add_argument("--lag", type=int, default=64, help="trainer.actor_lag of async")
    args = parser.parse_args(argv)
    import torch

    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}")
    print(
        "command: python scripts/bench_loops.py --workloads "
        f"{' '.join(args.workloads)} --steps {args.steps} --rounds {args.rounds} "
        f"--lag {args.lag} --threads {args.threads} --device {args.device}"
    )
    print()
    print(
        "| workload | sync steps/s | async steps/s | async / sync | sync updates/s | async updates/s |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name in args.workloads:
        if missing(WORKLOADS[name][1]):
            print(f"| {name} | skipped: needs {WORKLOADS[name][1]} | | | | |")
            continue
        r = measure(name, args)
        print(
            f"| {name} | {r['sync sps']:,.0f} | {r['async sps']:,.0f} | {r['ratio']:.2f}x "
            f"| {r['sync ups']:,.0f} | {r['async ups']:,.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
