"""Which runs of a suite are finished, and how an unfinished one restarts.

A run dir holds the completion marker ``done.json`` once ``train`` has returned after the
last env step. Re-running a suite skips runs that hold the marker (after checking that
they were trained with the config the suite gives now); unfinished runs continue exactly
from their newest checkpoint (``rlkit train --resume``), or start again when they have
none.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from rlkit.app.experiments.plots import read_records
from rlkit.app.experiments.suites import Job
from rlkit.config import Config, ConfigError, config_diff, from_dict, read_yaml
from rlkit.types import Logger

DONE_FILE = "done.json"
#: what ``--export`` copies of a finished run: enough for the report and for the skip check
RECORD_FILES = ("config.yaml", DONE_FILE, "metrics.jsonl")
#: keys that do not change what a run computes; a finished run may differ in them.
RESULT_NEUTRAL_KEYS = frozenset(
    {
        "trainer.device",
        "trainer.num_threads",
        "trainer.hold_freed_memory",
        "trainer.checkpoint_every",
        "trainer.keep_checkpoints",
        "trainer.log_every",
    }
)


def is_finished(run_dir: Path) -> bool:
    """True when ``run_dir`` holds a readable completion marker and its config."""
    try:
        marker = json.loads((run_dir / DONE_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and (run_dir / "config.yaml").is_file()


def check_finished_config(job: Job, done: str = "finished") -> None:
    """Raise ConfigError when a finished run (or, with ``done="was trained"``, one that a
    report counts unfinished) was trained with a different config."""
    path = job.run_dir / "config.yaml"
    actual = from_dict(read_yaml(path) or {}, str(path))
    diffs = config_diff(job.config, actual, ignore=RESULT_NEUTRAL_KEYS)
    if diffs:
        first = diffs[0]
        more = f" and {len(diffs) - 1} more" if len(diffs) > 1 else ""
        raise ConfigError(
            f"{job.run_dir} {done} with a different config ({first.key}: run has "
            f"{first.new!r}, suite gives {first.old!r}{more}); pass the same --set as "
            "before, choose another --out, or delete that run dir"
        )


def plan(jobs: Sequence[Job]) -> tuple[list[Job], list[Job]]:
    """Split into (finished, to run); finished runs must match their current config."""
    finished, todo = [], []
    for job in jobs:
        if is_finished(job.run_dir):
            check_finished_config(job)
            finished.append(job)
        else:
            todo.append(job)
    return finished, todo


def run_records(job: Job, at_step: int | None = None) -> list[dict[str, Any]] | None:
    """The metric records that a report counts for ``job``, or None when it leaves the run
    out. Without ``at_step``: all records of a finished run. With it: the records at or
    before ``at_step`` of a run whose last record is at ``at_step`` or later (it has trained
    that far), finished or not; such a run must have been trained with the job's config
    (ConfigError otherwise, as for a finished run)."""
    path = job.run_dir / "metrics.jsonl"
    if not path.is_file():
        return None
    if at_step is None:
        return read_records(path) if is_finished(job.run_dir) else None
    if not (job.run_dir / "config.yaml").is_file():
        return None
    records = read_records(path)
    # the last record, not the largest step: a resumed run re-logs from its checkpoint
    if not records or int(records[-1]["env_steps"]) < at_step:
        return None
    check_finished_config(job, "finished" if is_finished(job.run_dir) else "was trained")
    return [r for r in records if int(r["env_steps"]) <= at_step]


def check_export(export: Path | None, out: Path) -> None:
    """ConfigError when ``--export`` names the output dir itself."""
    if export is not None and Path(export).resolve() == out.resolve():
        raise ConfigError(f"--export: {export} is the output dir; name another dir")


def export_records(
    jobs: Sequence[Job], dest: Path, include: Callable[[Job], bool] | None = None
) -> int:
    """Copy ``RECORD_FILES`` of every finished run (of every run ``include`` accepts, when
    given) to ``dest/<env>/<variant>/seed<k>`` (no checkpoints or event files): a copy of
    a suite's results small enough to commit. ``--out dest --report-only`` rebuilds the
    report from it, and a later ``rlkit ablate`` into a copy of it trains only the runs it
    lacks (an unfinished run from scratch). Returns the number of runs copied."""
    copied = 0
    for job in jobs:
        if not (include(job) if include is not None else is_finished(job.run_dir)):
            continue
        target = dest / job.key
        target.mkdir(parents=True, exist_ok=True)
        for name in RECORD_FILES:
            if (job.run_dir / name).is_file():
                shutil.copy2(job.run_dir / name, target / name)
        copied += 1
    return copied


def start_or_resume(
    config: Config, run_dir: Path, stream: IO[str], logger: Logger | None = None
) -> tuple[Any, Any]:
    """Train ``run_dir`` to the end; returns ``rlkit.app.run.train``'s (components, result).

    An unfinished run dir with a complete checkpoint and the same config continues
    exactly where it stopped (``rlkit train --resume``); anything else there (no
    checkpoint yet, another config) is replaced and trained from scratch.
    """
    from rlkit.app import checkpoint as ckpt
    from rlkit.app.run import RunDirError, load_run_config, train

    if ckpt.list_checkpoints(run_dir / "checkpoints"):
        try:
            same = not config_diff(load_run_config(run_dir), config)
        except (RunDirError, ValueError):
            same = False
        if same:
            try:
                return train(config, run_dir, resume=True, stream=stream, logger=logger)
            except (RunDirError, ckpt.CheckpointError) as exc:
                stream.write(f"{run_dir}: cannot resume ({exc}); starting again\n")
    return train(config, run_dir, overwrite=True, stream=stream, logger=logger)
