"""Sample efficiency: env steps until the greedy evaluation first reaches a threshold.

Runs one config over several seeds (each in its own process, ``--workers`` at a time),
evaluating every ``--eval-every`` env steps, and stops a seed once its evaluation mean
reaches ``--threshold``. Prints a table and the median.

    python scripts/bench_learning.py configs/cartpole_rainbow.yaml --seeds 5 --budget 50000
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(
    config: str, seed: int, budget: int, every: int, threshold: float, sets: list[str]
) -> None:
    sys.path.insert(0, str(ROOT))
    from rlkit.build import build
    from rlkit.config import load_config

    class EvalLog:
        def __init__(self) -> None:
            self.evals: list[tuple[int, float]] = []

        def log(self, env_steps: int, scalars: dict[str, float]) -> None:
            if "eval/return_mean" in scalars:
                self.evals.append((env_steps, scalars["eval/return_mean"]))

        def close(self) -> None:
            pass

    overrides = [
        "trainer.device=cpu",
        f"trainer.seed={seed}",
        f"trainer.total_steps={budget}",
        f"eval.every={every}",
        "trainer.checkpoint_every=0",
        *sets,
    ]
    log = EvalLog()
    components = build(load_config(config, overrides), log)
    start = time.perf_counter()
    components.trainer.run(stop=lambda: bool(log.evals) and log.evals[-1][1] >= threshold)
    hit = next((step for step, ret in log.evals if ret >= threshold), None)
    record = {
        "seed": seed,
        "hit": hit,
        "last": log.evals[-1][1],
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(record))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "config", nargs="?", default=str(ROOT / "configs" / "cartpole_rainbow.yaml")
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=50_000, help="env steps per seed at most")
    parser.add_argument("--eval-every", type=int, default=1_000)
    parser.add_argument("--threshold", type=float, default=475.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--worker-seed", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker_seed is not None:
        worker(
            args.config, args.worker_seed, args.budget, args.eval_every, args.threshold, args.sets
        )
        return 0

    def run(seed: int) -> dict:
        cmd = [
            sys.executable,
            __file__,
            args.config,
            "--worker-seed",
            str(seed),
            "--budget",
            str(args.budget),
            "--eval-every",
            str(args.eval_every),
            "--threshold",
            str(args.threshold),
        ]
        for item in args.sets:
            cmd += ["--set", item]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        results = list(pool.map(run, range(args.seeds)))
    print(f"| seed | env steps to eval >= {args.threshold:g} | last eval | seconds |")
    print("|---:|---:|---:|---:|")
    for r in results:
        hit = r["hit"] if r["hit"] is not None else f"> {args.budget}"
        print(f"| {r['seed']} | {hit} | {r['last']:.1f} | {r['seconds']} |")
    hits = [r["hit"] if r["hit"] is not None else float("inf") for r in results]
    print(f"median env steps to threshold: {statistics.median(hits)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
