"""``rlkit ablate --backend ray``: a suite's runs as Ray tasks on a cluster.

One task per unfinished (variant, env, seed) run, with the resources it declares
(``--cpus-per-run``, ``--gpus-per-run``; fractions allowed). A task runs the same code as
a local worker process (``rlkit.app.experiments.worker.run_logged``): the run trains into
its own run dir ``OUT/<env>/<variant>/seed<k>``, resumes from its checkpoint when one is
there, and writes ``done.json`` at its last env step. So OUT must be a directory every
node sees at the same path (a shared filesystem) on a cluster; on one machine (a local
Ray instance) it is just OUT. A task whose node (or worker process) is lost is retried by
Ray (``max_retries``) and resumes the run from its newest checkpoint; finished runs are
skipped by the planner before anything is submitted, so they never run again. The
report is the local backend's, written from the run dirs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import IO

from rlkit.app.experiments.runner import MetricsTail, RunnerOutcome, SuiteProgress
from rlkit.app.experiments.suites import Job
from rlkit.app.experiments.worker import JobResult, run_logged
from rlkit.app.loggers import fmt_duration
from rlkit.config import ConfigError
from rlkit.distributed import connect, require_ray

#: times Ray runs a task again after its worker or node died
MAX_RETRIES = 3


def ray_task(job: Job, threads: int) -> JobResult:
    """The body of one Ray task: ``run_logged`` (what a local worker process runs)."""
    return run_logged(job, threads)


def _submit(ray, jobs: Sequence[Job], cpus: float, gpus: float) -> dict:
    task = ray.remote(ray_task).options(
        num_cpus=cpus, num_gpus=gpus, max_retries=MAX_RETRIES, retry_exceptions=False
    )
    threads = max(1, math.floor(cpus))
    return {task.remote(job, threads): job for job in jobs}


def run_jobs_ray(
    jobs: Sequence[Job],
    *,
    address: str = "",
    cpus_per_run: float = 1.0,
    gpus_per_run: float = 0.0,
    stream: IO[str],
) -> RunnerOutcome:
    """Run ``jobs`` as Ray tasks (on the cluster at ``address``, or a local Ray instance);
    the same ``RunnerOutcome`` and progress as the local runner. Ctrl-C cancels the tasks
    (their runs checkpoint when they can and resume next time)."""
    if cpus_per_run <= 0 or gpus_per_run < 0:
        raise ConfigError("--cpus-per-run must be > 0 and --gpus-per-run >= 0")
    ray = require_ray("rlkit ablate --backend ray")
    started = connect(address, num_cpus=cpus_per_run)
    total = sum(j.config.trainer.total_steps for j in jobs)
    progress = SuiteProgress(total, len(jobs), stream)
    outcome = RunnerOutcome({})
    try:
        since, began = time.time_ns(), time.perf_counter()
        tails = {job.key: MetricsTail(job.run_dir / "metrics.jsonl", since) for job in jobs}
        pending = _submit(ray, jobs, cpus_per_run, gpus_per_run)
        done_steps = done_new = 0
        while pending:
            try:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            except KeyboardInterrupt:
                outcome.interrupted = True
                for ref in pending:
                    ray.cancel(ref)
                progress.message("interrupted: the runs were cancelled; run the command again")
                break
            for ref in ready:
                job = pending.pop(ref)
                result = _result(ray, ref)
                outcome.results[job.key] = result
                done_steps += job.config.trainer.total_steps
                done_new += max(job.config.trainer.total_steps - tails[job.key].start, 0)
                took = fmt_duration(time.perf_counter() - began)
                progress.message(f"{result.status} {job.key} after {took}: {result.message}")
            running = sum(tails[j.key].poll() for j in pending.values())
            progress.update(
                done_steps + running,
                done_new + sum(tails[j.key].new_steps() for j in pending.values()),
                outcome.count("finished"),
                len(pending),
                outcome.count("failed"),
            )
    finally:
        progress.close()
        if started:
            ray.shutdown()
    return outcome


def _result(ray, ref) -> JobResult:
    """The task's JobResult, or a failure naming what Ray reported (retries used up)."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return JobResult("failed", f"{type(exc).__name__}: {first}")
