"""Ape-X on a local Ray: env steps/s with 1, 2, ... actors on an env whose step costs a
fixed CPU time (``rlkit.envs.cost.StepCost``), and learner updates/s with 1, 2, ...
replay shards. Prints two tables.

    python scripts/bench_distributed.py --actors 1 2 --shards 1 2 --step-ms 2

Acting: CartPole with ``--step-ms`` of CPU per step, learning off (``learning_starts`` =
the budget), so the figure is the actors' throughput as the learner counts it (the
``perf/sps`` of every logged window but the first). Learning: the default Rainbow config
with free-running actors (``distributed.throttle=false``) and ``--shards`` shards; the
figure is ``perf/updates_per_s`` of the same windows. Each run starts its own Ray
instance; startup is not timed.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(overrides: list[str], key: str) -> float:
    """Median ``key`` over the logged windows of one run (the first window skipped)."""
    sys.path.insert(0, str(ROOT))
    import rlkit

    with tempfile.TemporaryDirectory() as tmp:
        rlkit.train(None, overrides, run_dir=Path(tmp) / "run", stream=io.StringIO())
        lines = (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()
    values = [json.loads(x).get(key) for x in lines]
    values = [v for v in values if v is not None][1:]
    return statistics.median(values)


BASE = [
    "trainer.device=cpu",
    "distributed.backend=ray",
    "distributed.actor_cpus=1",
    "eval.every=0",
    "eval.episodes=1",
    "trainer.checkpoint_every=0",
]


def acting(actors: int, step_ms: float, steps: int) -> float:
    wrapper = f'[{{target: "rlkit.envs.cost:StepCost", kwargs: {{seconds: {step_ms / 1000}}}}}]'
    return run(
        [
            *BASE,
            f"distributed.actors={actors}",
            f"env.wrappers={wrapper}",
            f"trainer.total_steps={steps}",
            f"trainer.learning_starts={steps}",
            f"trainer.log_every={steps // 10}",
        ],
        "perf/sps",
    )


def learning(shards: int, actors: int, steps: int) -> float:
    return run(
        [
            *BASE,
            f"distributed.actors={actors}",
            f"distributed.replay_shards={shards}",
            "distributed.throttle=false",
            f"trainer.total_steps={steps}",
            "trainer.learning_starts=1000",
            f"trainer.log_every={steps // 10}",
        ],
        "perf/updates_per_s",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--step-ms", type=float, default=2.0)
    parser.add_argument("--steps", type=int, default=6000, help="env steps per acting run")
    parser.add_argument("--learn-steps", type=int, default=8000, help="env steps per learning run")
    args = parser.parse_args()
    print(f"| actors | env steps/s (step {args.step_ms:g} ms of CPU) | vs 1 actor |")
    print("|---:|---:|---:|")
    first = None
    for n in args.actors:
        sps = acting(n, args.step_ms, args.steps)
        first = first or sps
        print(f"| {n} | {sps:,.0f} | {sps / first:.2f}x |", flush=True)
    print()
    print("| replay shards | learner updates/s (2 free actors, Rainbow CartPole) |")
    print("|---:|---:|")
    for k in args.shards:
        print(f"| {k} | {learning(k, 2, args.learn_steps):,.1f} |", flush=True)


if __name__ == "__main__":
    main()
