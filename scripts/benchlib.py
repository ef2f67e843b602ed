"""Pieces the benchmark scripts share: a logger that drops everything, training a built
run for more steps, and the common command-line options of workload benchmarks."""

from __future__ import annotations

import argparse
import importlib.util
import time
from collections.abc import Callable, Sequence


class NullLogger:
    def log(self, env_steps: int, scalars: dict[str, float]) -> None:
        pass

    def close(self) -> None:
        pass


def train_more(trainer, steps: int) -> None:
    """Run a built ``Trainer`` for ``steps`` more env steps (its cadence's end moved)."""
    total = trainer.counters.env_steps + steps
    trainer.cadence = type(trainer.cadence)(**{**trainer.cadence.__dict__, "total_steps": total})
    trainer.run()


def workload_parser(doc: str, workloads: dict) -> argparse.ArgumentParser:
    """``--workloads``, ``--rounds``, ``--threads`` and ``--device``."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--workloads", nargs="+", default=list(workloads), choices=workloads)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    return parser


def missing(module: str | None) -> bool:
    """Whether the optional ``module`` a workload needs is not installed."""
    return module is not None and importlib.util.find_spec(module) is None


def time_interleaved(
    runs: dict[str, Callable], batches: Sequence, rounds: int, device: str = "cpu"
) -> dict[str, list[float]]:
    """Seconds per call of each of ``runs`` over ``batches``, one figure per round; the
    order of the runs is reversed every other round (so load drifts hit all alike)."""
    import torch

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times: dict[str, list[float]] = {k: [] for k in runs}
    for r in range(rounds):
        for key in list(runs) if r % 2 == 0 else list(runs)[::-1]:
            sync()
            start = time.perf_counter()
            for b in batches:
                runs[key](b)
            sync()
            times[key].append((time.perf_counter() - start) / len(batches))
    return times
