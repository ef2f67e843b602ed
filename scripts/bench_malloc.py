"""What ``trainer.hold_freed_memory`` does to a whole training run on CPU.

Runs the same ``rlkit train`` twice per round, with the switch off and on (the order
reversed every other round), each in a fresh process, and prints per setting the median
wall time, user and kernel CPU seconds and minor page faults of the process (from
``resource.getrusage`` of the child), and the speed relative to the switch off. The
default workload is MinAtar Breakout with the IQN head (configs/minatar/rainbow_iqn.yaml)
for 5,000 env steps, 4,000 of them with an update every 4 steps.

    python scripts/bench_malloc.py                     # MinAtar IQN, 5,000 steps, 1 round
    python scripts/bench_malloc.py --steps 2000 --rounds 3
    python scripts/bench_malloc.py --config configs/minatar/rainbow.yaml   # C51
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENV_KEYS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def run_once(config: str, steps: int, hold: bool, run_dir: Path) -> dict[str, float]:
    args = [sys.executable, "-m", "rlkit", "train", str(REPO / config), "--overwrite"]
    args += ["--run-dir", str(run_dir)]
    sets = [
        f"trainer.total_steps={steps}",
        "eval.every=0",
        "eval.episodes=1",
        "trainer.checkpoint_every=0",
        f"trainer.hold_freed_memory={str(hold).lower()}",
    ]
    for item in sets:
        args += ["--set", item]
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "wall": wall,
        "user": after.ru_utime - before.ru_utime,
        "sys": after.ru_stime - before.ru_stime,
        "faults": after.ru_minflt - before.ru_minflt,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/minatar/rainbow_iqn.yaml")
    parser.add_argument("--steps", type=int, default=5000, help="env steps per run")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    results: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for hold in (False, True) if r % 2 == 0 else (True, False):
                results[hold].append(run_once(args.config, args.steps, hold, Path(tmp) / "run"))
    median = {
        h: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for h, rs in results.items()
    }
    print(f"{args.config}, {args.steps} env steps, {args.rounds} round(s), medians")
    print("| hold_freed_memory | wall (s) | user (s) | kernel (s) | minor faults | speed |")
    print("| --- | --- | --- | --- | --- | --- |")
    for hold in (False, True):
        m = median[hold]
        speed = median[False]["wall"] / m["wall"]
        print(
            f"| {str(hold).lower()} | {m['wall']:.1f} | {m['user']:.1f} | {m['sys']:.1f} | "
            f"{m['faults']:,.0f} | {speed:.2f}x |"
        )


if __name__ == "__main__":
    main()
