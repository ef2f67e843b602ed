"""The runner (main process): runs of a suite in spawned worker processes, with progress.

One process per run, up to ``workers`` at a time (``run_jobs``); each run's progress is
read from its ``metrics.jsonl`` (``MetricsTail``) and summed into one bar
(``SuiteProgress``).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import IO, Any

from rlkit.app.experiments.suites import Job
from rlkit.app.experiments.worker import LOG_FILE, JobResult, worker_main
from rlkit.app.loggers import TerminalProgress, fmt_duration


class Terminated(KeyboardInterrupt):
    """SIGTERM reached the runner (``kill``, a scheduler's stop): handled as Ctrl-C."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated


class MetricsTail:
    """The latest ``env_steps`` of a run, read incrementally from its ``metrics.jsonl``.

    A file last modified before ``since_ns`` is left over from an earlier attempt and
    counts as 0 until the new attempt replaces (or appends to) it. ``start`` is the
    ``env_steps`` that file had reached when the tail was made (0 without one): what a
    resumed run had done before, which the suite's steps/s leaves out.
    """

    def __init__(self, path: Path, since_ns: int) -> None:
        self.path = path
        self.since_ns = since_ns
        self.steps = 0
        self._inode: int | None = None
        self._offset = 0
        try:
            self.start = _last_env_steps(path.read_bytes())
        except OSError:
            self.start = 0

    def new_steps(self) -> int:
        """Env steps this attempt added beyond ``start`` as of the last ``poll`` (never
        negative)."""
        return max(self.steps - self.start, 0)

    def poll(self) -> int:
        try:
            st = os.stat(self.path)
        except OSError:
            self.steps, self._inode, self._offset = 0, None, 0
            return 0
        if st.st_mtime_ns < self.since_ns:
            return 0
        if st.st_ino != self._inode or st.st_size < self._offset:
            self.steps, self._inode, self._offset = 0, st.st_ino, 0
        if st.st_size > self._offset:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read(st.st_size - self._offset)
            end = chunk.rfind(b"\n") + 1  # complete lines only
            self._offset += end
            self.steps = _last_env_steps(chunk, self.steps)
        return self.steps


def _last_env_steps(data: bytes, default: int = 0) -> int:
    """The ``env_steps`` of the last complete JSON line in ``data`` that has one."""
    steps = default
    for line in data[: data.rfind(b"\n") + 1].splitlines():
        try:
            steps = int(json.loads(line)["env_steps"])
        except (ValueError, KeyError, TypeError):
            continue
    return steps


class SuiteProgress(TerminalProgress):
    """One progress bar over all runs (env steps summed); plain lines when not a TTY.

    The percentage counts every env step the runs have reached, those of earlier attempts
    of resumed runs included; steps/s and the ETA count only the steps trained since
    the suite started (``new_steps``), so a resumed suite shows its real rate.
    """

    def __init__(
        self, total_steps: int, total_runs: int, stream: IO[str], every_frac: float = 0.05
    ) -> None:
        super().__init__(total_steps, stream, every_frac)
        self.total_steps = self.total
        self.total_runs = total_runs

    def line(self, steps: int, new_steps: int, finished: int, running: int, failed: int) -> str:
        elapsed = time.perf_counter() - self.start
        sps = new_steps / elapsed if elapsed > 0 else 0.0
        eta = (self.total_steps - steps) / sps if sps > 0 else float("inf")
        failed_text = f", {failed} failed" if failed else ""
        return (
            f"{100.0 * steps / self.total_steps:5.1f}% | {steps:,}/{self.total_steps:,} env "
            f"steps | runs: {finished}/{self.total_runs} done, {running} running{failed_text} "
            f"| {sps:,.0f} steps/s | ETA {fmt_duration(eta)}"
        )

    def update(
        self,
        steps: int,
        new_steps: int,
        finished: int,
        running: int,
        failed: int,
        force: bool = False,
    ) -> None:
        self.draw(steps, self.line(steps, new_steps, finished, running, failed), force)


# ---------------------------------------------------------------- runner (main process)


@dataclass
class _Active:
    job: Job
    process: Any  # multiprocessing SpawnProcess
    conn: Connection
    tail: MetricsTail
    started: float


@dataclass
class RunnerOutcome:
    results: dict[str, JobResult]  # by Job.key
    interrupted: bool = False

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results.values())


def _collect(active: _Active, interrupted: bool) -> JobResult:
    """The JobResult of a process that has exited (or a failure naming its exit code)."""
    result = None
    if active.conn.poll():
        try:
            result = active.conn.recv()
        except (EOFError, OSError):
            result = None
    active.process.join()
    active.conn.close()
    if isinstance(result, JobResult):
        return result
    if interrupted:
        return JobResult("stopped", "interrupted")
    return JobResult("failed", f"worker exited with code {active.process.exitcode}")


@dataclass
class _Pool:
    """The runner's state: runs waiting, runs in their processes, results so far."""

    ctx: Any  # multiprocessing spawn context
    target: Any  # the worker entry point: target(job, threads, conn)
    workers: int
    threads: int  # torch threads per worker (for num_threads: 0)
    progress: SuiteProgress
    pending: deque[Job]
    active: list[_Active] = field(default_factory=list)
    outcome: RunnerOutcome = field(default_factory=lambda: RunnerOutcome({}))
    done_steps: int = 0  # env steps of the runs that have ended
    done_new: int = 0  # of those, the steps trained since the suite started

    def launch(self) -> None:
        """Start pending runs until ``workers`` are busy (none once interrupted)."""
        while self.pending and len(self.active) < self.workers and not self.outcome.interrupted:
            job = self.pending.popleft()
            reader, writer = self.ctx.Pipe(duplex=False)
            tail = MetricsTail(job.run_dir / "metrics.jsonl", time.time_ns())
            process = self.ctx.Process(
                target=self.target, args=(job, self.threads, writer), name=f"rlkit-{job.key}"
            )
            process.start()
            writer.close()
            self.active.append(_Active(job, process, reader, tail, time.perf_counter()))
            if not self.progress.tty:
                self.progress.message(f"started {job.key} -> {job.run_dir}")

    def reap(self) -> None:
        """Collect the results of the processes that have exited and report each."""
        for a in [a for a in self.active if a.process.exitcode is not None]:
            self.active.remove(a)
            result = _collect(a, self.outcome.interrupted)
            self.outcome.results[a.job.key] = result
            planned = a.job.config.trainer.total_steps
            if result.status == "finished":
                reached = planned
            else:  # the rest of this run will not happen
                reached = min(max(result.env_steps, a.tail.poll()), planned)
                self.progress.total_steps = max(self.progress.total_steps - (planned - reached), 1)
            self.done_steps += reached
            self.done_new += max(reached - a.tail.start, 0)
            took = fmt_duration(time.perf_counter() - a.started)
            where = "" if result.status == "finished" else f" (log: {a.job.run_dir / LOG_FILE})"
            self.progress.message(f"{result.status} {a.job.key} in {took}: {result.message}{where}")

    def show(self) -> None:
        """Update the progress bar: ended runs in full plus the running runs' env steps."""
        running = sum(a.tail.poll() for a in self.active)
        self.progress.update(
            self.done_steps + running,
            self.done_new + sum(a.tail.new_steps() for a in self.active),
            self.outcome.count("finished"),
            len(self.active),
            self.outcome.count("failed"),
        )

    def interrupt(self, forward: bool = False) -> None:
        """First Ctrl-C: start no more runs; a second one terminates the running ones.

        ``forward``: the signal reached this process only (SIGTERM from ``kill``, where
        Ctrl-C reaches the whole process group), so the first one is passed on to the
        running workers as SIGINT: they checkpoint and stop as on Ctrl-C.
        """
        if forward and not self.outcome.interrupted:
            for a in self.active:
                if a.process.pid is not None:
                    os.kill(a.process.pid, signal.SIGINT)
        if self.outcome.interrupted:
            for a in self.active:
                a.process.terminate()
            for a in self.active:
                a.process.join(timeout=30)
                if a.process.exitcode is None:
                    a.process.kill()
            return
        self.outcome.interrupted = True
        self.pending.clear()
        self.progress.message(
            f"interrupted: starting no more runs; waiting for {len(self.active)} running "
            "run(s) to stop (Ctrl-C again to terminate them)"
        )


def run_jobs(
    jobs: Sequence[Job],
    *,
    workers: int,
    stream: IO[str],
    target: Any = worker_main,
) -> RunnerOutcome:
    """Run ``jobs`` in up to ``workers`` spawned processes, one process per run.

    Progress is the sum over runs of the newest ``env_steps`` in their ``metrics.jsonl``
    (finished runs count in full). Ctrl-C (which also reaches the workers, so their
    ``train`` checkpoints and returns) stops launching runs and waits for the running
    ones; a second Ctrl-C terminates them. SIGTERM does the same (the first one is passed
    on to the workers as SIGINT), so ``kill`` of the runner leaves no run behind.
    """
    total = sum(j.config.trainer.total_steps for j in jobs)
    pool = _Pool(
        ctx=mp.get_context("spawn"),
        target=target,
        workers=workers,
        threads=max(1, (os.cpu_count() or 1) // workers),
        progress=SuiteProgress(total, len(jobs), stream),
        pending=deque(jobs),
    )
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if main else None
    try:
        while pool.pending or pool.active:
            try:
                pool.launch()
                wait([a.process.sentinel for a in pool.active], timeout=0.5)
                pool.reap()
                pool.show()
            except KeyboardInterrupt as exc:
                pool.interrupt(forward=isinstance(exc, Terminated))
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
    pool.progress.close()
    return pool.outcome
