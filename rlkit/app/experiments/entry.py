"""``rlkit ablate``: expand a suite, train its unfinished runs, write the report."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from rlkit.app.experiments.planning import check_export, export_records, plan
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
) -> int:
    """``rlkit ablate``: train the unfinished runs of a suite, then write the report.

    ``backend``: ``local`` (``workers`` processes here) or ``ray`` (one Ray task per run,
    ``rlkit.app.experiments.ray_backend``; ``ray_options``: its ``address``,
    ``cpus_per_run``, ``gpus_per_run``). Returns the exit code: 0, 1 when a run failed,
    130 when interrupted (the report is written in every case). ``variants``: train only
    these variants' runs (file stems); the report covers every finished run. ``export``:
    copy the finished runs' records there (``planning.export_records``). User mistakes
    raise ConfigError / EnvError / RunDirError.
    """
    from rlkit.app.run import RunDirError

    stream = stream if stream is not None else sys.stdout
    _check_backend(backend, workers)
    suite = load_suite(Path(suite_path))
    out = out if out is not None else default_out(suite)
    check_export(export, out)
    jobs = expand(suite, out, seeds=seeds, overrides=parse_cli_overrides(overrides))
    finished, todo = plan(jobs)
    todo, later = _only(todo, variants, suite)
    code = 0
    if report_only:
        if not finished:
            raise RunDirError(
                f"no finished runs of {suite.path} under {out} (run 'rlkit ablate "
                f"{suite.path}' first, or pass the --out and --set it used)"
            )
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
    write_report(suite, jobs, out, command=command, stream=stream)
    _export(suite, jobs, export, stream)
    return code


def _export(suite: Suite, jobs: Sequence[Job], export: Path | None, stream: IO[str]) -> None:
    if export is None:
        return
    copied = export_records(jobs, Path(export))
    stream.write(
        f"exported the records of {copied} finished runs to {export} (rebuild the "
        f"report with: rlkit ablate {suite.path} --out {export} --report-only)\n"
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
