"""``rlkit ablate``: expand a suite, train its unfinished runs, write the report."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from rlkit.app.experiments.planning import check_export, export_records, plan, run_records
from rlkit.app.experiments.report import write_report
from rlkit.app.experiments.runner import run_jobs
from rlkit.app.experiments.suites import (
    Job,
    Suite,
    default_out,
    expand,
    load_suite,
    parse_cli_overrides,
)
from rlkit.config import ConfigError


def command_line(argv: Sequence[str], fallback: Sequence[str]) -> str:
    """``rlkit ablate ...`` as typed: the words after ``ablate`` in ``argv``, else ``fallback``."""
    words = list(argv[1:])
    rest = words[words.index("ablate") + 1 :] if "ablate" in words else list(fallback)
    return shlex.join(["rlkit", "ablate", *rest])


def ablate(
    suite_path: Path,
    *,
    out: Path | None = None,
    seeds: int | None = None,
    workers: int = 1,
    overrides: Sequence[str] = (),
    report_only: bool = False,
    command: str = "rlkit ablate",
    stream: IO[str] | None = None,
    backend: str = "local",
    ray_options: dict | None = None,
    variants: Sequence[str] = (),
    export: Path | None = None,
    at_step: int | None = None,
) -> int:
    """``rlkit ablate``: train the unfinished runs of a suite, then write the report.

    ``backend``: ``local`` (``workers`` processes here) or ``ray`` (one Ray task per run,
    ``rlkit.app.experiments.ray_backend``; ``ray_options``: its ``address``,
    ``cpus_per_run``, ``gpus_per_run``). Returns the exit code: 0, 1 when a run failed,
    130 when interrupted (the report is written in every case). ``variants``: train only
    these variants' runs (file stems); the report covers every finished run. ``export``:
    copy the finished runs' records there (``planning.export_records``). ``at_step``:
    write the report at that budget instead of the full one, and export the runs it counts
    (``planning.run_records``: those that have trained that far, finished or not). User
    mistakes raise ConfigError / EnvError / RunDirError.
    """
    stream = stream if stream is not None else sys.stdout
    _check_backend(backend, workers)
    if at_step is not None and at_step < 1:
        raise ConfigError(f"--at-step: must be >= 1 env step, got {at_step}")
    suite = load_suite(Path(suite_path))
    out = out if out is not None else default_out(suite)
    check_export(export, out)
    jobs = expand(suite, out, seeds=seeds, overrides=parse_cli_overrides(overrides))
    finished, todo = plan(jobs)
    todo, later = _only(todo, variants, suite)
    code = 0
    if report_only:
        _check_something_to_report(suite, out, jobs, bool(finished), at_step)
    else:
        partial = sum(j.run_dir.exists() for j in todo)
        shape = f"{len(suite.variants)} variants x {len(suite.envs)} envs x "
        shape += f"{len({j.seed for j in jobs})} seeds"
        how = f"{min(workers, max(len(todo), 1))} worker(s)" if backend == "local" else ""
        stream.write(
            f"{suite.name}: {len(jobs)} runs ({shape}) in {out}: {len(finished)} finished "
            f"(skipped), {partial} unfinished (resumed), {len(todo) - partial} new; "
            f"{how or 'one Ray task per run'}\n"
        )
        if later:
            stream.write(f"--variants {' '.join(variants)}: {later} other run(s) left for later\n")
        stream.flush()
        if todo:
            code = _train(todo, backend, workers, ray_options or {}, stream, command)
    results = write_report(suite, jobs, out, command=command, stream=stream, at_step=at_step)
    _export(suite, jobs, export, stream, at_step, set(results.missing))
    return code


def _check_something_to_report(
    suite: Suite, out: Path, jobs: Sequence[Job], finished: bool, at_step: int | None
) -> None:
    """RunDirError when --report-only has no run to report on."""
    from rlkit.app.run import RunDirError

    if at_step is not None and not any(run_records(j, at_step) is not None for j in jobs):
        raise RunDirError(
            f"--at-step {at_step}: no run of {suite.path} under {out} has trained "
            f"{at_step:,} env steps (pass the --out and --set it used)"
        )
    if at_step is None and not finished:
        raise RunDirError(
            f"no finished runs of {suite.path} under {out} (run 'rlkit ablate "
            f"{suite.path}' first, or pass the --out and --set it used)"
        )


def _export(
    suite: Suite,
    jobs: Sequence[Job],
    export: Path | None,
    stream: IO[str],
    at_step: int | None,
    left_out: set[str],
) -> None:
    """--export: the finished runs; with --at-step, the runs its report counted (those not
    in ``left_out``, the report's missing runs)."""
    if export is None:
        return
    if at_step is None:
        copied = export_records(jobs, Path(export))
        which, flags = "finished runs", "--report-only"
    else:
        copied = export_records(jobs, Path(export), include=lambda j: j.key not in left_out)
        which = f"runs that have trained {at_step:,} env steps"
        flags = f"--report-only --at-step {at_step}"
    stream.write(
        f"exported the records of {copied} {which} to {export} (rebuild the "
        f"report with: rlkit ablate {suite.path} --out {export} {flags})\n"
    )


def _only(todo: list[Job], variants: Sequence[str], suite: Suite) -> tuple[list[Job], int]:
    """The runs of ``todo`` whose variant is in ``variants`` (all when empty) and how many
    were left out; ConfigError for a name that is not one of the suite's variants."""
    if not variants:
        return todo, 0
    known = [v.stem for v in suite.variants]
    for name in variants:
        if name not in known:
            raise ConfigError(
                f"--variants: no variant {name!r} in {suite.path} (its variants: "
                f"{', '.join(known)})"
            )
    kept = [j for j in todo if j.variant in variants]
    return kept, len(todo) - len(kept)


def _check_backend(backend: str, workers: int) -> None:
    """ConfigError for a bad --workers or --backend; a missing Ray before anything runs."""
    if workers < 1:
        raise ConfigError(f"--workers: must be >= 1, got {workers}")
    if backend not in ("local", "ray"):
        raise ConfigError(f"--backend: local or ray, got {backend!r}")
    if backend == "ray":
        from rlkit.distributed import require_ray

        require_ray("rlkit ablate --backend ray")


def _train(
    todo: list, backend: str, workers: int, ray_options: dict, stream: IO[str], command: str
) -> int:
    """Train the unfinished runs on ``backend``; the exit code (0, 1 failed, 130)."""
    if backend == "ray":
        from rlkit.app.experiments.ray_backend import run_jobs_ray

        outcome = run_jobs_ray(todo, stream=stream, **ray_options)
    else:
        outcome = run_jobs(todo, workers=workers, stream=stream)
    code = 0
    failed = outcome.count("failed")
    if failed:
        stream.write(f"{failed} run(s) failed; see the train.log in their run dirs\n")
        code = 1
    if outcome.interrupted:
        stream.write(f"interrupted; run the same command again to continue: {command}\n")
        code = 130
    return code
