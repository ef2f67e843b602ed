"""The ``rlkit sweep`` command line: its arguments and the call of the sweep (the
experiments package, and Ray Tune, are imported only when the command runs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rlkit.app.ablate_cli import add_out_and_set


def add_sweep(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    sweep = sub.add_parser(
        "sweep",
        parents=[common],
        help="search hyperparameters with Ray Tune (each trial a normal run dir)",
        description=(
            "Search the hyperparameters of SPACE (a sweep file) on top of CONFIG with Ray "
            "Tune: random, grid or Optuna search, optionally ASHA early stopping on the "
            "evaluation return. Each trial trains into OUT/trials/<trial>; OUT/sweep.csv "
            "lists the trials best first and OUT/best.yaml is the best trial's config. "
            "Re-running the same command continues an interrupted sweep."
        ),
        epilog=(
            "sweep file keys: space (section.field: {choice|grid: [...]} or "
            "{uniform|loguniform|randint: [low, high]}), search (random|grid|optuna), "
            "samples, seed, metric, mode, scheduler (asha|none), asha (grace_period, "
            "reduction_factor), max_concurrent, set, description. Example: rlkit sweep "
            "configs/cartpole_rainbow.yaml configs/sweeps/cartpole_rainbow.yaml"
        ),
    )
    sweep.add_argument("config", type=Path, help="run config, e.g. configs/cartpole_rainbow.yaml")
    sweep.add_argument(
        "space", type=Path, help="sweep file, e.g. configs/sweeps/cartpole_rainbow.yaml"
    )
    add_out_and_set(sweep, "runs/sweep/<sweep file name>", "trial", "sweep file")
    sweep.add_argument("--samples", type=int, metavar="N", help="trials, instead of the file's")
    sweep.add_argument(
        "--address", metavar="ADDR", default="", help="Ray cluster to join (default: a local Ray)"
    )
    sweep.add_argument("--cpus-per-trial", type=float, default=1.0, metavar="C", help="default: 1")
    sweep.add_argument(
        "--gpus-per-trial", type=float, default=0.0, metavar="G", help="e.g. 0.25 (default: 0)"
    )


def cmd_sweep(args: argparse.Namespace) -> int:
    from rlkit.app.experiments.sweep import prepare, sweep

    plan = prepare(
        args.config, args.space, out=args.out, overrides=args.overrides, samples=args.samples
    )
    sweep(
        plan,
        address=args.address,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        stream=sys.stdout,
    )
    return 0
