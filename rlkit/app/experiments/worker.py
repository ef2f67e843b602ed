"""One run of a suite, in its own process: train it, log to ``train.log``, write the marker.

The main process (``rlkit.app.experiments.runner``) starts ``worker_main`` per run; the
worker trains the run to its last env step (``planning.start_or_resume``), writes the
completion marker ``done.json`` and sends a ``JobResult`` back through a pipe.
"""

from __future__ import annotations

import _thread
import math
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO, Literal

from rlkit.app.checkpoint import atomic_write_json
from rlkit.app.experiments.planning import DONE_FILE, start_or_resume
from rlkit.app.experiments.plots import read_records
from rlkit.app.experiments.suites import Job
from rlkit.types import Logger

LOG_FILE = "train.log"


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class JobResult:
    status: Literal["finished", "stopped", "failed"]
    message: str  # one line
    env_steps: int = 0


class LogFile:
    """A text stream into ``path`` (append), opened at the first write.

    ``train`` clears an unfinished run dir before it writes anything, so the file is
    created after that; if it disappears anyway, the next write recreates it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def write(self, text: str) -> int:
        if self._file is None or not self.path.exists():
            if self._file is not None:
                self._file.close()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", buffering=1)
        return self._file.write(text)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def isatty(self) -> bool:
        return False

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def run_job(job: Job, stream: IO[str], logger: Logger | None = None) -> JobResult:
    """Train one run; write ``done.json`` only when it reached ``trainer.total_steps``.
    ``logger`` also receives every logged point (``rlkit sweep`` reports to Tune)."""
    start = time.time()
    components, result = start_or_resume(job.config, job.run_dir, stream, logger)
    steps = int(components.trainer.counters.env_steps)
    total = job.config.trainer.total_steps
    if steps < total:
        return JobResult("stopped", f"stopped at env step {steps} of {total}", steps)
    if result is not None:
        final = {k: _finite_or_none(v) for k, v in result.scalars().items()}
    else:  # resumed a run that had already reached its last step: its last evaluation
        evals = [r for r in read_records(job.run_dir / "metrics.jsonl") if "eval/return_mean" in r]
        final = {k: v for k, v in evals[-1].items() if k.startswith("eval/")} if evals else {}
    marker = {
        "env_steps": steps,
        "updates": int(components.trainer.counters.updates),
        "final_eval": final,
        "wall_seconds": round(time.time() - start, 1),
        "finished_at": datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    atomic_write_json(job.run_dir / DONE_FILE, marker)
    ret = final.get("eval/return_mean")
    ret = "-" if ret is None else f"{ret:.1f}"
    return JobResult("finished", f"final eval return {ret}", steps)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def run_logged(job: Job, threads: int, logger: Logger | None = None) -> JobResult:
    """Run ``job`` in this process with its output (and tracebacks) in ``train.log``; its
    JobResult (``failed`` with the error's first line, ``stopped`` when interrupted)."""
    log = LogFile(job.run_dir / LOG_FILE)
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = log  # type: ignore[assignment]  # warnings go to the log too
    try:
        if job.config.trainer.num_threads == 0:
            import torch

            torch.set_num_threads(threads)
        return run_job(job, log, logger)
    except KeyboardInterrupt:
        return JobResult("stopped", "interrupted")
    except SystemExit:  # how Tune ends a trial its scheduler stopped (ASHA): not a failure
        return JobResult("stopped", "stopped by the scheduler")
    except BaseException as exc:  # reported to the main process, traceback in the log
        traceback.print_exc(file=log)
        return JobResult("failed", _one_line(exc))
    finally:
        sys.stdout, sys.stderr = saved
        log.close()


def watch_parent(parent: int, stop: threading.Event, interval: float = 1.0) -> None:
    """Until ``stop`` is set: when this process's parent is no longer ``parent`` (the
    runner died without stopping its workers, e.g. killed with SIGKILL), interrupt the
    main thread as Ctrl-C does, so that the run checkpoints and stops instead of training
    on unwatched."""
    while not stop.wait(interval):
        if os.getppid() != parent:
            _thread.interrupt_main()
            return


def worker_main(job: Job, threads: int, conn: Connection) -> None:
    """Process entry point: ``run_logged(job)``, its JobResult sent over ``conn``; the run
    stops (checkpointed) if the runner goes away (``watch_parent``)."""
    stop = threading.Event()
    watcher = threading.Thread(
        target=watch_parent, args=(os.getppid(), stop), name="rlkit-watch-parent", daemon=True
    )
    watcher.start()
    try:
        outcome = run_logged(job, threads)
    finally:
        stop.set()
    try:
        conn.send(outcome)
    except OSError:  # the runner is gone: nobody to tell
        pass
    finally:
        conn.close()
