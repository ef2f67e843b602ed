"""Command line: ``rlkit train | eval | export | config | ablate | plot``.

``train``, ``eval`` and ``export`` call the Python API (``rlkit.app.api``).

User mistakes (bad config, unknown env, existing run dir, unreadable checkpoint) print
one line ``rlkit: error: ...`` and exit with code 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rlkit.app.ablate_cli import add_ablate, cmd_ablate
from rlkit.app.sweep_cli import add_sweep, cmd_sweep

DEFAULT_CONFIG = "cartpole_rainbow.yaml"


def _default_config_path() -> Path | None:
    """configs/cartpole_rainbow.yaml next to the package (source checkout) or in the CWD."""
    for base in (Path(__file__).resolve().parents[2] / "configs", Path.cwd() / "configs"):
        candidate = base / DEFAULT_CONFIG
        if candidate.is_file():
            return candidate
    return None


def _help_config(argv: list[str]) -> tuple[object, str] | None:
    """For ``rlkit train [CONFIG] [--set ...] --help``: the config the command would run
    (the given CONFIG's or the default config's, after --set) and where it came from, so
    that the help lists the values that will be used. None when no help is asked for."""
    if "train" not in argv or not {"-h", "--help"} & set(argv):
        return None
    from rlkit.config import ConfigError, load_config

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("config", nargs="?")
    pre.add_argument("--set", dest="overrides", action="append", default=[])
    for flag in ("--run-dir", "--resume", "--address"):
        pre.add_argument(flag)
    for flag in ("--overwrite", "--force", "--debug"):
        pre.add_argument(flag, action="store_true")
    rest = [a for a in argv[argv.index("train") + 1 :] if a not in ("-h", "--help")]
    known, _ = pre.parse_known_args(rest)
    path = known.config or _default_config_path()
    try:
        config = load_config(path, known.overrides)
    except ConfigError as exc:
        return None, f"the dataclass defaults ({exc})"
    source = str(path) if path is not None else "the dataclass defaults"
    return config, source + (" with --set" if known.overrides else "")


def _add_train(
    sub: argparse._SubParsersAction,
    common: argparse.ArgumentParser,
    shown: tuple[object, str] | None = None,
) -> None:
    from rlkit.config import describe

    config, source = shown if shown is not None else (None, "the dataclass defaults")

    train = sub.add_parser(
        "train",
        parents=[common],
        help="train an agent from a YAML config",
        description=(
            "Train an agent. Without CONFIG, trains the default Rainbow agent on CartPole-v1 "
            f"(configs/{DEFAULT_CONFIG}). Writes config.yaml, metrics.jsonl, TensorBoard "
            "events and checkpoints/ into the run dir."
        ),
        epilog=(
            f"config keys with the values this command uses (from {source}; override "
            "with --set section.key=value):\n" + describe(config)
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument(
        "config", nargs="?", help=f"YAML config file (default: configs/{DEFAULT_CONFIG})"
    )
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set trainer.seed=3 (repeatable)",
    )
    train.add_argument(
        "--run-dir",
        type=Path,
        help="where to write the run (default: runs/<config>-seed<seed>-<time>)",
    )
    train.add_argument("--overwrite", action="store_true", help="replace an existing run dir")
    train.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="continue RUN_DIR from its newest complete checkpoint, with its saved config",
    )
    train.add_argument(
        "--force",
        action="store_true",
        help="with --resume: accept a config that differs from the run's saved one",
    )
    train.add_argument(
        "--address",
        metavar="ADDR",
        help="train Ape-X on the Ray cluster at ADDR (sets distributed.backend=ray and "
        "distributed.address; without it distributed.backend=ray starts a local Ray)",
    )


def _add_eval(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    ev = sub.add_parser(
        "eval",
        parents=[common],
        help="run greedy episodes with a trained agent",
        description="Evaluate a run's newest checkpoint (or --checkpoint) greedily; prints mean ± std.",
    )
    ev.add_argument("run_dir", type=Path, help="a run dir written by 'rlkit train'")
    ev.add_argument(
        "--checkpoint",
        type=Path,
        help="checkpoint file (default: the newest in RUN_DIR/checkpoints)",
    )
    ev.add_argument(
        "--episodes", type=int, help="number of episodes (default: the run's eval.episodes)"
    )
    ev.add_argument("--seed", type=int, help="environment seed for the evaluation episodes")
    ev.add_argument("--device", choices=["auto", "cpu", "cuda"], help="device (default: the run's)")
    ev.add_argument(
        "--video",
        type=Path,
        metavar="PATH",
        help="record the episodes (rendered, one env): PATH.mp4 or .gif holds them all, a "
        "directory one file per episode; GIF without ffmpeg. Needs pip install 'rlkit[video]'",
    )


def _add_export(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    ex = sub.add_parser(
        "export",
        parents=[common],
        help="write a run's greedy policy as TorchScript (runs without rlkit)",
        description=(
            "Write the greedy policy of RUN_DIR's newest checkpoint (or --checkpoint) to OUT "
            "as TorchScript: torch.jit.load(OUT)(obs) takes a batch [N, *obs_shape] of "
            "observations exactly as the env returns them (uint8 or float) and returns "
            "int64 actions [N]; noisy layers use their means. CPU; needs only torch."
        ),
    )
    ex.add_argument("run_dir", type=Path, help="a run dir written by 'rlkit train'")
    ex.add_argument("out", type=Path, help="output file, e.g. policy.pt")
    ex.add_argument("--checkpoint", type=Path, help="checkpoint file (default: the newest)")


def _add_config(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    show = sub.add_parser(
        "config",
        parents=[common],
        help="print a resolved config",
        description="Print the config that 'rlkit train' would use, after extends: and --set.",
    )
    show.add_argument("config", nargs="?", help="YAML config file (default: the default config)")
    show.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")


def _add_plot(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    plot = sub.add_parser(
        "plot",
        parents=[common],
        help="plot learning curves of run dirs (needs the plot extra)",
        description=(
            "Draw TAG against env steps for each RUN_DIR (one line per run, one subplot per "
            "tag) from its metrics.jsonl into a PNG. Needs matplotlib: pip install 'rlkit[plot]'."
        ),
    )
    plot.add_argument(
        "run_dirs",
        type=Path,
        nargs="+",
        metavar="RUN_DIR",
        help="run dirs written by 'rlkit train' or 'rlkit ablate'",
    )
    plot.add_argument(
        "--out",
        type=Path,
        default=Path("curves.png"),
        metavar="PNG",
        help="output file (default: curves.png)",
    )
    plot.add_argument(
        "--tag",
        dest="tags",
        action="append",
        metavar="TAG",
        help="scalar tag to draw (repeatable; default: eval/return_mean)",
    )


def _parser(shown: tuple[object, str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlkit",
        description="Train and evaluate Rainbow-style DQN agents on Gymnasium environments.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Every command also accepts --debug after its name (SUPPRESS: the top-level flag's
    # value stands unless the command's own is given).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks"
    )
    _add_train(sub, common, shown)
    for add in (_add_eval, _add_export, _add_config, add_ablate, add_sweep, _add_plot):
        add(sub, common)
    return parser


def _cmd_train(args: argparse.Namespace) -> int:
    from rlkit.app.api import train
    from rlkit.config import ConfigError

    if args.address:
        args.overrides += ["distributed.backend=ray", f"distributed.address={args.address}"]
    if args.resume is not None:
        if args.run_dir is not None or args.overwrite:
            raise ConfigError("--resume RUN_DIR names the run dir; drop --run-dir/--overwrite")
        train(args.config, args.overrides, run_dir=args.resume, resume=True, force=args.force)
        print(f"evaluate again with: rlkit eval {args.resume}")
        return 0
    if args.force:
        raise ConfigError("--force only applies to --resume")
    run = train(args.config, args.overrides, run_dir=args.run_dir, overwrite=args.overwrite)
    print(f"evaluate again with: rlkit eval {run.run_dir}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from rlkit.app.api import Agent, evaluate

    if args.episodes is not None and args.episodes < 1:
        from rlkit.config import ConfigError

        raise ConfigError(f"--episodes: must be >= 1, got {args.episodes}")
    if args.video is not None:
        from rlkit.app.video import require_imageio

        require_imageio()  # before loading anything
    run_dir = args.run_dir if args.checkpoint is not None else None
    agent = Agent.load(args.checkpoint or args.run_dir, args.device, run_dir=run_dir)
    episodes = args.episodes or agent.config.eval.episodes
    seed = agent.config.trainer.seed + 7 if args.seed is None else args.seed
    if args.video is None:
        result = evaluate(agent, None, episodes, seed)
    else:
        from rlkit.app.video import record_agent

        recording = record_agent(agent, args.video, episodes, seed)
        result = recording.result
        print(f"video: {', '.join(str(p) for p in recording.files)}")
    print(f"checkpoint: {agent.checkpoint}")
    print(
        f"return: {result.mean:.2f} ± {result.std:.2f} over {len(result.returns)} episodes "
        f"(mean length {sum(result.lengths) / len(result.lengths):.1f})"
    )
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from rlkit.app.api import Agent, export

    run_dir = args.run_dir if args.checkpoint is not None else None
    agent = Agent.load(args.checkpoint or args.run_dir, "cpu", run_dir=run_dir)
    print(f"wrote {export(agent, args.out)} (greedy policy of {agent.checkpoint})")
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    from rlkit.config import dump_config, load_config

    path = args.config or _default_config_path()
    sys.stdout.write(dump_config(load_config(path, args.overrides)))
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from rlkit.app.experiments.plots import (
        PlotUnavailable,
        load_runs,
        plot_runs,
        require_matplotlib,
    )

    tags = args.tags or ["eval/return_mean"]
    try:
        require_matplotlib()
    except PlotUnavailable as exc:
        print(f"rlkit: error: {exc}", file=sys.stderr)
        return 2
    plot_runs(load_runs(args.run_dirs, tags), tags, args.out)
    print(f"wrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser(_help_config(list(sys.argv[1:] if argv is None else argv)))
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from rlkit.app.checkpoint import CheckpointError
    from rlkit.app.run import RunDirError
    from rlkit.config import ConfigError
    from rlkit.envs import EnvError
    from rlkit.loops.sync import NumericalError

    commands = {
        "train": _cmd_train,
        "eval": _cmd_eval,
        "export": _cmd_export,
        "config": _cmd_config,
        "ablate": cmd_ablate,
        "sweep": cmd_sweep,
        "plot": _cmd_plot,
    }
    try:
        return commands[args.command](args)
    except (ConfigError, EnvError, RunDirError, CheckpointError, NumericalError) as exc:
        if args.debug:
            raise
        print(f"rlkit: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
