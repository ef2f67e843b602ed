"""The ``rlkit ablate`` command line: its arguments and the call of ``ablate`` (the
experiments package is imported only when the command runs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_ablate(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    ablate = sub.add_parser(
        "ablate",
        parents=[common],
        help="run an ablation suite (variants x envs x seeds) and write its report",
        description=(
            "Train every (variant, env, seed) of a suite file as its own run dir "
            "OUT/<env>/<variant>/seed<k>, WORKERS at a time, skipping finished runs (those "
            "with done.json); then write OUT/results.csv, OUT/report.md and OUT/curves.png. "
            "Re-running the same command continues an interrupted suite."
        ),
        epilog=(
            "suite file keys: variants (config files relative to the suite; name = file "
            "stem), envs (ids or {id, name, set}), seeds (a count or a list), set (overrides "
            "for every run), description. Example: rlkit ablate "
            "configs/ablations/cartpole_td.yaml --workers 4"
        ),
    )
    ablate.add_argument(
        "suite", type=Path, help="suite YAML file, e.g. configs/ablations/cartpole_td.yaml"
    )
    ablate.add_argument(
        "--seeds", type=int, metavar="N", help="use seeds 0..N-1 instead of the suite's seeds"
    )
    ablate.add_argument(
        "--workers", type=int, default=1, metavar="K", help="runs trained in parallel (default: 1)"
    )
    ablate.add_argument(
        "--variants",
        nargs="+",
        default=[],
        metavar="NAME",
        help="train only these variants' runs (names = file stems); the report still "
        "covers every finished run in OUT",
    )
    add_out_and_set(ablate, "runs/ablate/<suite name>", "run", "suite")
    ablate.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing: write the report from the runs that have finished",
    )
    ablate.add_argument(
        "--export",
        type=Path,
        metavar="DIR",
        help="also copy each finished run's config.yaml, done.json and metrics.jsonl to "
        "DIR/<env>/<variant>/seed<k> (no checkpoints): small enough to commit; "
        "--out DIR --report-only rebuilds the report from them",
    )
    ablate.add_argument(
        "--at-step",
        type=int,
        metavar="N",
        help="write the report at N env steps instead (report_at_N.md, results_at_N.csv, "
        "curves_at_N.png): every run that has trained N steps counts, finished or not, "
        "with its last evaluation at or before N; with --export, export those runs",
    )
    _add_ray_options(ablate)


def add_out_and_set(parser: argparse.ArgumentParser, default: str, each: str, file: str) -> None:
    """``--out DIR`` and ``--set KEY=VALUE ...`` of the commands that train many runs."""
    parser.add_argument("--out", type=Path, metavar="DIR", help=f"output dir (default: {default})")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="extend",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a config field in every {each} (after the {file}'s set:); repeatable",
    )


def _add_ray_options(ablate: argparse.ArgumentParser) -> None:
    ray = ablate.add_argument_group(
        "on Ray (pip install 'rlkit[ray]'; on a cluster OUT must be on a filesystem every node sees)"
    )
    ray.add_argument(
        "--backend",
        choices=["local", "ray"],
        default="local",
        help="local: --workers processes here; ray: one Ray task per run (default: local)",
    )
    ray.add_argument(
        "--address", metavar="ADDR", default="", help="Ray cluster to join (default: a local Ray)"
    )
    ray.add_argument(
        "--cpus-per-run",
        type=float,
        default=1.0,
        metavar="C",
        help="CPUs each run declares (default: 1)",
    )
    ray.add_argument(
        "--gpus-per-run",
        type=float,
        default=0.0,
        metavar="G",
        help="GPUs each run declares, e.g. 0.25 (default: 0)",
    )


def cmd_ablate(args: argparse.Namespace) -> int:
    from rlkit.app.experiments import ablate, command_line

    fallback = [str(args.suite)]
    for flag, value in (("--seeds", args.seeds), ("--out", args.out)):
        if value is not None:
            fallback += [flag, str(value)]
    fallback += ["--workers", str(args.workers)]
    if args.variants:
        fallback += ["--variants", *args.variants]
    if args.overrides:
        fallback += ["--set", *args.overrides]
    if args.report_only:
        fallback.append("--report-only")
    if args.export is not None:
        fallback += ["--export", str(args.export)]
    if args.at_step is not None:
        fallback += ["--at-step", str(args.at_step)]
    if args.backend == "ray":
        fallback += ["--backend", "ray", "--cpus-per-run", str(args.cpus_per_run)]
        fallback += ["--gpus-per-run", str(args.gpus_per_run)]
        fallback += ["--address", args.address] if args.address else []
    ray_options = dict(
        address=args.address, cpus_per_run=args.cpus_per_run, gpus_per_run=args.gpus_per_run
    )
    return ablate(
        args.suite,
        out=args.out,
        seeds=args.seeds,
        workers=args.workers,
        overrides=args.overrides,
        report_only=args.report_only,
        command=command_line(sys.argv, fallback),
        backend=args.backend,
        ray_options=ray_options,
        variants=args.variants,
        export=args.export,
        at_step=args.at_step,
    )
