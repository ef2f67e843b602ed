"""Ablation suites: variants x envs x seeds, run in parallel, aggregated into a report.

A **suite** is a YAML file (see ``load_suite``)::

    description: TD targets on CartPole-v1     # optional, shown in report.md
    variants: [q_learning.yaml, double_q.yaml] # run configs, relative to the suite file
    envs:                                      # env ids, or mappings with overrides
      - CartPole-v1
      - {id: Acrobot-v1, set: {learner.lr: 6.3e-4}}
    seeds: 5                                   # seeds 0..4, or a list [0, 3, 7]
    set: {trainer.total_steps: 20000}          # optional, applied to every run

A variant's name is its file stem. A run's config is the variant file (with its
``extends:`` chain), then the suite's ``set``, then the env's id and ``set``, then the
command line's ``--set``, and finally ``trainer.seed`` = the run's seed. Each run gets its
own run dir ``OUT/<env>/<variant>/seed<k>`` with the usual contents plus ``train.log``
(the run's console output) and, once ``train`` has returned after the last env step,
the completion marker ``done.json``. Re-running a suite skips runs that hold the marker;
unfinished runs continue exactly from their newest checkpoint (``rlkit train --resume``),
or start again when they have none.

Aggregation reads each finished run's ``metrics.jsonl``: the final score of a run is its
last ``eval/return_mean``; ``results.csv``, ``report.md`` and ``curves.png`` summarise the
runs per (env, variant) with the statistics of ``rlkit.stats``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import multiprocessing as mp
import os
import shlex
import sys
import time
import traceback
import typing
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np

from rlkit.app.experiments import statistics as stats
from rlkit.app.experiments.plots import Series, read_records, series_from_records
from rlkit.app.loggers import TerminalProgress, fmt_duration
from rlkit.config import (
    Config,
    ConfigError,
    from_dict,
    load_raw,
    parse_override,
    read_yaml,
    to_dict,
)

DONE_FILE = "done.json"
LOG_FILE = "train.log"
SUITE_KEYS = ("description", "variants", "envs", "seeds", "set")
ENV_KEYS = ("id", "name", "set")
DEFAULT_SEEDS = 5
#: keys set per run by the suite itself, so ``set:`` / ``--set`` may not touch them.
RESERVED_KEYS = {"trainer.seed": "seeds:/--seeds", "env.id": "envs:"}
#: keys that do not change what a run computes; a finished run may differ in them.
RESULT_NEUTRAL_KEYS = frozenset(
    {
        "trainer.device",
        "trainer.num_threads",
        "trainer.checkpoint_every",
        "trainer.keep_checkpoints",
        "trainer.log_every",
    }
)


# ---------------------------------------------------------------- suite files


@dataclass(frozen=True)
class EnvEntry:
    """One env of a suite: the Gymnasium id, its directory name and its overrides."""

    id: str
    name: str  # directory under OUT (the id with "/" replaced), unique in the suite
    overrides: dict[str, Any]  # "section.field" -> value


@dataclass(frozen=True)
class Suite:
    path: Path
    variants: tuple[Path, ...]  # run config files, resolved against the suite's folder
    envs: tuple[EnvEntry, ...]
    seeds: tuple[int, ...]
    overrides: dict[str, Any]  # "section.field" -> value, for every run
    description: str = ""

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def variant_names(self) -> list[str]:
        return [p.stem for p in self.variants]


def _suggest(name: str, choices: Sequence[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _config_keys() -> dict[str, list[str]]:
    """Section name -> its field names, from the Config dataclasses."""
    sections = typing.get_type_hints(Config)
    return {s: [f.name for f in dataclasses.fields(cls)] for s, cls in sections.items()}


def check_override_key(where: str, key: str) -> None:
    """Raise ConfigError unless ``key`` is a settable ``section.field`` of a run config."""
    sections = _config_keys()
    parts = key.split(".")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"{where}: key {key!r} must be section.field, e.g. learner.lr")
    section, name = parts
    if section not in sections:
        raise ConfigError(f"{where}: unknown section in {key!r}{_suggest(section, sections)}")
    if name not in sections[section]:
        raise ConfigError(f"{where}: unknown key {key!r}{_suggest(name, sections[section])}")
    if key in RESERVED_KEYS:
        raise ConfigError(f"{where}: {key} is set per run by the suite; use {RESERVED_KEYS[key]}")


def parse_set_mapping(where: str, value: Any) -> dict[str, Any]:
    """A suite ``set:`` mapping -> ``{"section.field": value}``, checked.

    Accepts dotted keys (``learner.lr: 1e-3``) and sections (``learner: {lr: 1e-3}``).
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping of section.field: value")
    flat: dict[str, Any] = {}
    for key, item in value.items():
        key = str(key)
        if "." not in key and isinstance(item, dict):
            flat.update({f"{key}.{k}": v for k, v in item.items()})
        else:
            flat[key] = item
    for key in flat:
        check_override_key(where, key)
    return flat


def parse_cli_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``--set a.b=c`` items -> ``{"a.b": yaml-parsed c}``, checked like a suite's ``set:``."""
    flat: dict[str, Any] = {}
    for item in items:
        (section, name), value = parse_override(item)
        check_override_key("--set", f"{section}.{name}")
        flat[f"{section}.{name}"] = value
    return flat


def _parse_seeds(where: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ConfigError(f"{where}: must be >= 1 (the number of seeds), got {value}")
        return tuple(range(value))
    if isinstance(value, list) and value:
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value):
            raise ConfigError(f"{where}: seeds must be integers >= 0, got {value!r}")
        if len(set(value)) != len(value):
            raise ConfigError(f"{where}: seeds must be distinct, got {value!r}")
        return tuple(value)
    raise ConfigError(f"{where}: expected a number of seeds or a list of seeds, got {value!r}")


def _parse_env(where: str, item: Any) -> EnvEntry:
    if isinstance(item, str) and item:
        return EnvEntry(item, item.replace("/", "-"), {})
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: expected an env id or a mapping with 'id', got {item!r}")
    for key in item:
        if key not in ENV_KEYS:
            raise ConfigError(f"{where}: unknown key {key!r}{_suggest(str(key), ENV_KEYS)}")
    env_id = item.get("id")
    if not isinstance(env_id, str) or not env_id:
        raise ConfigError(f"{where}: 'id' must be a Gymnasium env id, got {env_id!r}")
    name = item.get("name", env_id.replace("/", "-"))
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise ConfigError(f"{where}: 'name' must be a plain directory name, got {name!r}")
    return EnvEntry(env_id, name, parse_set_mapping(f"{where}.set", item.get("set")))


def _parse_variants(where: str, value: Any, base: Path) -> tuple[Path, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: expected a non-empty list of config files")
    paths: list[Path] = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise ConfigError(f"{where}[{i}]: expected a config file path, got {item!r}")
        path = base / item
        if not path.is_file():
            raise ConfigError(f"{where}[{i}]: config file not found: {path}")
        if path.stem in [p.stem for p in paths]:
            raise ConfigError(f"{where}[{i}]: two variants are named {path.stem!r} (file stem)")
        paths.append(path)
    return tuple(paths)


def load_suite(path: Path) -> Suite:
    """Read and check a suite file; mistakes raise a one-line ConfigError naming file and key."""
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with 'variants', 'envs' and 'seeds'")
    sections = _config_keys()
    for key in data:
        if key not in SUITE_KEYS:
            if key in sections or key == "extends":
                raise ConfigError(
                    f"{path}: {key!r} is a run-config key; this looks like a run config, "
                    "not a suite (use 'rlkit train' for it, or list it under 'variants:')"
                )
            raise ConfigError(f"{path}: unknown key {key!r}{_suggest(str(key), SUITE_KEYS)}")
    for key in ("variants", "envs"):
        if key not in data:
            raise ConfigError(f"{path}: missing key {key!r}")
    variants = _parse_variants(f"{path}: variants", data["variants"], path.parent)
    if not isinstance(data["envs"], list) or not data["envs"]:
        raise ConfigError(f"{path}: envs: expected a non-empty list of env ids")
    envs = tuple(_parse_env(f"{path}: envs[{i}]", e) for i, e in enumerate(data["envs"]))
    names = [e.name for e in envs]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(
                f"{path}: envs[{i}]: env {name!r} listed twice (give one a distinct 'name:')"
            )
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise ConfigError(f"{path}: description: expected a string")
    return Suite(
        path=path,
        variants=variants,
        envs=envs,
        seeds=_parse_seeds(f"{path}: seeds", data.get("seeds", DEFAULT_SEEDS)),
        overrides=parse_set_mapping(f"{path}: set", data.get("set")),
        description=" ".join(description.split()),
    )


# ---------------------------------------------------------------- expansion into runs


@dataclass(frozen=True)
class Job:
    """One run of a suite: a resolved config and the run dir it trains into."""

    variant: str
    env: str  # EnvEntry.name
    seed: int
    config: Config
    run_dir: Path

    @property
    def key(self) -> str:
        return f"{self.env}/{self.variant}/seed{self.seed}"


def _apply(raw: dict, overrides: Mapping[str, Any]) -> None:
    for key, value in overrides.items():
        section, name = key.split(".")
        if not isinstance(raw.get(section), dict):
            raw[section] = {}
        raw[section] = {**raw[section], name: value}


def resolve_config(
    suite: Suite, variant: Path, env: EnvEntry, overrides: Mapping[str, Any]
) -> Config:
    """The config of (variant, env) before the seed: file, suite set, env, ``--set``."""
    where = f"{suite.path}: variant {variant.stem!r} on {env.name}"
    try:
        raw = load_raw(variant)
        _apply(raw, suite.overrides)
        _apply(raw, {"env.id": env.id})
        _apply(raw, env.overrides)
        _apply(raw, overrides)
        return from_dict(raw, str(variant))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def default_out(suite: Suite) -> Path:
    """``runs/ablate/<suite name>``: where a suite's run dirs go without ``--out``."""
    return Path("runs") / "ablate" / suite.name


def expand(
    suite: Suite,
    out: Path,
    *,
    seeds: int | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> list[Job]:
    """Every (seed, env, variant) run, seed-major so early results cover every variant.

    ``seeds`` (``--seeds N``) replaces the suite's seeds by 0..N-1. Every config is
    resolved and checked here, before anything runs; unknown env ids raise EnvError, an
    unavailable device ConfigError.
    """
    from rlkit.build import resolve_device
    from rlkit.envs import check_env_id

    if seeds is not None and seeds < 1:
        raise ConfigError(f"--seeds: must be >= 1, got {seeds}")
    seed_list = tuple(range(seeds)) if seeds is not None else suite.seeds
    for env in suite.envs:
        check_env_id(env.id)
    configs = {
        (env.name, variant.stem): resolve_config(suite, variant, env, overrides or {})
        for env in suite.envs
        for variant in suite.variants
    }
    for config in configs.values():
        resolve_device(config.trainer.device)  # e.g. cuda on a machine without it
    jobs = []
    for seed in seed_list:
        for env in suite.envs:
            for variant in suite.variant_names:
                config = configs[env.name, variant]
                config = dataclasses.replace(
                    config, trainer=dataclasses.replace(config.trainer, seed=seed)
                )
                run_dir = out / env.name / variant / f"seed{seed}"
                jobs.append(Job(variant, env.name, seed, config, run_dir))
    return jobs


# ---------------------------------------------------------------- finished runs


def is_finished(run_dir: Path) -> bool:
    """True when ``run_dir`` holds a readable completion marker and its config."""
    try:
        marker = json.loads((run_dir / DONE_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and (run_dir / "config.yaml").is_file()


def config_diff(expected: Config, actual: Config) -> list[str]:
    """``section.field: run has X, suite gives Y`` for each result-relevant difference."""
    a, b = to_dict(expected), to_dict(actual)
    diffs = []
    for section, fields in a.items():
        for name, value in fields.items():
            key = f"{section}.{name}"
            if key not in RESULT_NEUTRAL_KEYS and b[section][name] != value:
                diffs.append(f"{key}: run has {b[section][name]!r}, suite gives {value!r}")
    return diffs


def check_finished_config(job: Job) -> None:
    """Raise ConfigError when a finished run was trained with a different config."""
    path = job.run_dir / "config.yaml"
    actual = from_dict(read_yaml(path) or {}, str(path))
    diffs = config_diff(job.config, actual)
    if diffs:
        more = f" and {len(diffs) - 1} more" if len(diffs) > 1 else ""
        raise ConfigError(
            f"{job.run_dir} finished with a different config ({diffs[0]}{more}); pass the "
            "same --set as before, choose another --out, or delete that run dir"
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


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON to ``path`` with ``rlkit.app.checkpoint.atomic_write``
    (never half-written; a failed write leaves the old file and no temp file)."""
    from rlkit.app.checkpoint import atomic_write_bytes

    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())


# ---------------------------------------------------------------- one run (worker side)


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


def start_or_resume(config: Config, run_dir: Path, stream: IO[str]) -> tuple[Any, Any]:
    """Train ``run_dir`` to the end; returns ``rlkit.app.run.train``'s (components, result).

    An unfinished run dir with a complete checkpoint and the same config continues
    exactly where it stopped (``rlkit train --resume``); anything else there (no
    checkpoint yet, another config) is replaced and trained from scratch.
    """
    from rlkit.app import checkpoint as ckpt
    from rlkit.app.run import RunDirError, config_changes, load_run_config, train

    if ckpt.list_checkpoints(run_dir / "checkpoints"):
        try:
            same = not config_changes(load_run_config(run_dir), config)
        except (RunDirError, ValueError):
            same = False
        if same:
            try:
                return train(config, run_dir, resume=True, stream=stream)
            except (RunDirError, ckpt.CheckpointError) as exc:
                stream.write(f"{run_dir}: cannot resume ({exc}); starting again\n")
    return train(config, run_dir, overwrite=True, stream=stream)


def run_job(job: Job, stream: IO[str]) -> JobResult:
    """Train one run; write ``done.json`` only when it reached ``trainer.total_steps``."""
    start = time.time()
    components, result = start_or_resume(job.config, job.run_dir, stream)
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
    write_json_atomic(job.run_dir / DONE_FILE, marker)
    ret = final.get("eval/return_mean")
    ret = "-" if ret is None else f"{ret:.1f}"
    return JobResult("finished", f"final eval return {ret}", steps)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def worker_main(job: Job, threads: int, conn: Connection) -> None:
    """Process entry point: run ``job`` with its output in ``train.log``; send a JobResult."""
    log = LogFile(job.run_dir / LOG_FILE)
    sys.stdout = sys.stderr = log  # type: ignore[assignment]  # warnings go to the log too
    try:
        if job.config.trainer.num_threads == 0:
            import torch

            torch.set_num_threads(threads)
        outcome = run_job(job, log)
    except KeyboardInterrupt:
        outcome = JobResult("stopped", "interrupted")
    except BaseException as exc:  # reported to the main process, traceback in the log
        traceback.print_exc(file=log)
        outcome = JobResult("failed", _one_line(exc))
    try:
        conn.send(outcome)
    finally:
        conn.close()
        log.close()


# ---------------------------------------------------------------- progress


class MetricsTail:
    """The latest ``env_steps`` of a run, read incrementally from its ``metrics.jsonl``.

    A file last modified before ``since_ns`` is left over from an earlier attempt and
    counts as 0 until the new attempt replaces (or appends to) it.
    """

    def __init__(self, path: Path, since_ns: int) -> None:
        self.path = path
        self.since_ns = since_ns
        self.steps = 0
        self._inode: int | None = None
        self._offset = 0

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
            for line in chunk[:end].splitlines():
                try:
                    self.steps = int(json.loads(line)["env_steps"])
                except (ValueError, KeyError, TypeError):
                    continue
        return self.steps


class SuiteProgress(TerminalProgress):
    """One progress bar over all runs (env steps summed); plain lines when not a TTY."""

    def __init__(
        self, total_steps: int, total_runs: int, stream: IO[str], every_frac: float = 0.05
    ) -> None:
        super().__init__(total_steps, stream, every_frac)
        self.total_steps = self.total
        self.total_runs = total_runs

    def line(self, steps: int, finished: int, running: int, failed: int) -> str:
        elapsed = time.perf_counter() - self.start
        sps = steps / elapsed if elapsed > 0 else 0.0
        eta = (self.total_steps - steps) / sps if sps > 0 else float("inf")
        failed_text = f", {failed} failed" if failed else ""
        return (
            f"{100.0 * steps / self.total_steps:5.1f}% | {steps:,}/{self.total_steps:,} env "
            f"steps | runs: {finished}/{self.total_runs} done, {running} running{failed_text} "
            f"| {sps:,.0f} steps/s | ETA {fmt_duration(eta)}"
        )

    def update(
        self, steps: int, finished: int, running: int, failed: int, force: bool = False
    ) -> None:
        self.draw(steps, self.line(steps, finished, running, failed), force)


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
    ones; a second Ctrl-C terminates them.
    """
    ctx = mp.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // workers)
    total = sum(j.config.trainer.total_steps for j in jobs)
    progress = SuiteProgress(total, len(jobs), stream)
    pending: deque[Job] = deque(jobs)
    active: list[_Active] = []
    outcome = RunnerOutcome({})
    done_steps = 0
    while pending or active:
        try:
            while pending and len(active) < workers and not outcome.interrupted:
                job = pending.popleft()
                reader, writer = ctx.Pipe(duplex=False)
                since = time.time_ns()
                process = ctx.Process(
                    target=target, args=(job, threads, writer), name=f"rlkit-{job.key}"
                )
                process.start()
                writer.close()
                tail = MetricsTail(job.run_dir / "metrics.jsonl", since)
                active.append(_Active(job, process, reader, tail, time.perf_counter()))
                if not progress.tty:
                    progress.message(f"started {job.key} -> {job.run_dir}")
            wait([a.process.sentinel for a in active], timeout=0.5)
            for a in [a for a in active if a.process.exitcode is not None]:
                active.remove(a)
                result = _collect(a, outcome.interrupted)
                outcome.results[a.job.key] = result
                planned = a.job.config.trainer.total_steps
                if result.status == "finished":
                    done_steps += planned
                else:  # the rest of this run will not happen
                    reached = min(max(result.env_steps, a.tail.poll()), planned)
                    done_steps += reached
                    progress.total_steps = max(progress.total_steps - (planned - reached), 1)
                took = fmt_duration(time.perf_counter() - a.started)
                where = "" if result.status == "finished" else f" (log: {a.job.run_dir / LOG_FILE})"
                progress.message(f"{result.status} {a.job.key} in {took}: {result.message}{where}")
            running = sum(a.tail.poll() for a in active)
            progress.update(
                done_steps + running,
                outcome.count("finished"),
                len(active),
                outcome.count("failed"),
            )
        except KeyboardInterrupt:
            if outcome.interrupted:
                for a in active:
                    a.process.terminate()
                for a in active:
                    a.process.join(timeout=30)
                    if a.process.exitcode is None:
                        a.process.kill()
                continue
            outcome.interrupted = True
            pending.clear()
            progress.message(
                f"interrupted: starting no more runs; waiting for {len(active)} running "
                "run(s) to stop (Ctrl-C again to terminate them)"
            )
    progress.close()
    return outcome


# ---------------------------------------------------------------- aggregation


@dataclass(frozen=True)
class RunSummary:
    """What one finished run contributes to the report (from its ``metrics.jsonl``)."""

    final_return: float  # last eval/return_mean
    auc: float  # stats.curve_auc of eval/return_mean vs env steps
    overestimation_final: float  # last eval/overestimation (NaN if none)
    overestimation_mean: float  # mean of eval/overestimation over evaluations
    q_pred_final: float  # last eval/q_pred
    return_discounted_final: float  # last eval/return_discounted


def _last(series: Series) -> float:
    return float(series.values[-1]) if series.values.size else math.nan


def _nanmean(values: Sequence[float] | np.ndarray) -> float:
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else math.nan


def summarize_run(records: Sequence[dict[str, Any]]) -> RunSummary | None:
    """The summary of one run's metric records; None if it logged no evaluation."""
    ret = series_from_records(records, "eval/return_mean")
    if not ret.steps.size:
        return None
    over = series_from_records(records, "eval/overestimation")
    return RunSummary(
        final_return=float(ret.values[-1]),
        auc=stats.curve_auc(ret.steps, ret.values),
        overestimation_final=_last(over),
        overestimation_mean=_nanmean(over.values),
        q_pred_final=_last(series_from_records(records, "eval/q_pred")),
        return_discounted_final=_last(series_from_records(records, "eval/return_discounted")),
    )


@dataclass(frozen=True)
class ResultRow:
    """One (env, variant) line of results.csv; NaN where no seed has the value."""

    env: str
    variant: str
    n_seeds: int
    final_mean: float
    final_iqm: float
    final_iqm_ci_low: float  # 95% stratified-bootstrap CI of the IQM of final scores
    final_iqm_ci_high: float
    auc_mean: float  # mean over seeds of the normalised area under eval/return_mean
    overestimation_final: float  # mean over seeds of the last eval/overestimation
    overestimation_mean: float  # mean over seeds of its mean over all evaluations
    q_pred_final: float  # mean over seeds of the last eval/q_pred
    return_discounted_final: float  # mean over seeds of the last eval/return_discounted


def aggregate(env: str, variant: str, runs: Sequence[RunSummary]) -> ResultRow:
    """Seed statistics of one (env, variant); the CI resamples seeds (one stratum)."""
    if not runs:
        nan = math.nan
        return ResultRow(env, variant, 0, nan, nan, nan, nan, nan, nan, nan, nan, nan)
    finals = np.array([r.final_return for r in runs])
    low, high = stats.stratified_bootstrap_ci([finals], stats.iqm)
    return ResultRow(
        env=env,
        variant=variant,
        n_seeds=len(runs),
        final_mean=stats.mean(finals),
        final_iqm=stats.iqm(finals),
        final_iqm_ci_low=low,
        final_iqm_ci_high=high,
        auc_mean=stats.mean([r.auc for r in runs]),
        overestimation_final=_nanmean([r.overestimation_final for r in runs]),
        overestimation_mean=_nanmean([r.overestimation_mean for r in runs]),
        q_pred_final=_nanmean([r.q_pred_final for r in runs]),
        return_discounted_final=_nanmean([r.return_discounted_final for r in runs]),
    )


CurveSet = dict[str, dict[str, dict[str, list[Series]]]]  # env -> variant -> tag -> seeds


@dataclass
class SuiteResults:
    rows: list[ResultRow]
    curves: CurveSet
    finished: int  # finished runs with at least one evaluation
    missing: list[str]  # Job.key of runs not (yet) finished


def collect_results(suite: Suite, jobs: Sequence[Job]) -> SuiteResults:
    """Summaries and curves of the finished runs among ``jobs``, per (env, variant)."""
    from rlkit.app.experiments.plots import SUITE_ROWS

    summaries: dict[tuple[str, str], list[RunSummary]] = {}
    curves: CurveSet = {e.name: {v: {} for v in suite.variant_names} for e in suite.envs}
    missing = []
    for job in jobs:
        summary = None
        if is_finished(job.run_dir) and (job.run_dir / "metrics.jsonl").is_file():
            records = read_records(job.run_dir / "metrics.jsonl")
            summary = summarize_run(records)
        if summary is None:
            missing.append(job.key)
            continue
        summaries.setdefault((job.env, job.variant), []).append(summary)
        for tag, _ in SUITE_ROWS:
            by_tag = curves[job.env][job.variant]
            by_tag.setdefault(tag, []).append(series_from_records(records, tag))
    rows = [
        aggregate(e.name, v, summaries.get((e.name, v), []))
        for e in suite.envs
        for v in suite.variant_names
    ]
    return SuiteResults(rows, curves, sum(r.n_seeds for r in rows), missing)


# ---------------------------------------------------------------- report files


def _csv_cell(value: Any) -> Any:
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.6g}"
    return value


def write_csv(rows: Sequence[ResultRow], path: Path) -> None:
    """results.csv: one row per (env, variant); empty cells where a value is missing."""
    names = [f.name for f in dataclasses.fields(ResultRow)]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(names)
        for row in rows:
            writer.writerow([_csv_cell(getattr(row, n)) for n in names])


def _fmt(value: float, digits: int) -> str:
    return "–" if not math.isfinite(value) else f"{value:.{digits}f}"


MD_HEADER = (
    "| variant | seeds | final return (mean) | final return (IQM [95% CI]) | AUC | "
    "overest. (final) | overest. (mean over evals) | Q pred (final) | G (final) |"
)
MD_COLUMNS = """Columns (over the finished seeds; means unless stated): a run's *final
return* is its last `eval/return_mean` (greedy evaluation); *IQM* is the interquartile mean
of the final returns with a 95% stratified-bootstrap CI; *AUC* is the area under the
`eval/return_mean` curve divided by its env-step range (the average return over training);
*overest.* is the measured overestimation `eval/overestimation`, the mean of Q(s,a) - G
over evaluation states (> 0: overestimates), at the last evaluation and averaged over all
evaluations; *Q pred* and *G* are the last evaluation's mean predicted Q(s,a) and mean
realised discounted return G. "–": no value (no finished seed, or no counted states)."""


def markdown_table(rows: Sequence[ResultRow]) -> list[str]:
    """The lines of report.md's results table (header, rule, one line per row)."""
    lines = [MD_HEADER, "|" + " --- |" * 9]
    for r in rows:
        iqm_text = "–"
        if r.n_seeds:
            iqm_text = f"{r.final_iqm:.1f} [{r.final_iqm_ci_low:.1f}, {r.final_iqm_ci_high:.1f}]"
        cells = [
            r.variant,
            str(r.n_seeds),
            _fmt(r.final_mean, 1),
            iqm_text,
            _fmt(r.auc_mean, 1),
            _fmt(r.overestimation_final, 2),
            _fmt(r.overestimation_mean, 2),
            _fmt(r.q_pred_final, 2),
            _fmt(r.return_discounted_final, 2),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_markdown(
    suite: Suite,
    results: SuiteResults,
    *,
    out: Path,
    seeds: Sequence[int],
    command: str,
    curves_file: str | None,
    date: str,
) -> str:
    """report.md: header (command, date, seeds, variants), one table per env, curves."""
    total = results.finished + len(results.missing)
    seed_text = ", ".join(str(s) for s in seeds)
    lines = [f"# Ablation report: {suite.name}", ""]
    if suite.description:
        lines += [suite.description, ""]
    lines += [
        f"- command: `{command}`",
        f"- date: {date}",
        f"- seeds: {len(seeds)} per variant and env ({seed_text}); "
        f"{results.finished} of {total} runs finished",
        f"- suite: `{suite.path}`; run dirs: `{out}/<env>/<variant>/seed<k>`",
        "- variants: " + ", ".join(f"{p.stem} (`{p}`)" for p in suite.variants),
    ]
    if results.missing:
        shown = ", ".join(results.missing[:10])
        more = f" and {len(results.missing) - 10} more" if len(results.missing) > 10 else ""
        lines.append(f"- not finished (left out): {shown}{more}")
    for env in suite.envs:
        title = env.id if env.name == env.id else f"{env.name} ({env.id})"
        lines += ["", f"## {title}", ""]
        lines += markdown_table([r for r in results.rows if r.env == env.name])
    lines += ["", MD_COLUMNS]
    if curves_file:
        lines += ["", f"![learning curves and overestimation]({curves_file})"]
    return "\n".join(lines) + "\n"


def write_report(
    suite: Suite,
    jobs: Sequence[Job],
    out: Path,
    *,
    command: str,
    stream: IO[str],
) -> SuiteResults:
    """Write results.csv, report.md and (with matplotlib) curves.png into ``out``."""
    from rlkit.app.experiments.plots import PlotUnavailable, plot_suite

    results = collect_results(suite, jobs)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(results.rows, out / "results.csv")
    curves_file: str | None = "curves.png"
    try:
        plot_suite(results.curves, out / "curves.png", title=suite.name)
    except PlotUnavailable as exc:
        stream.write(f"rlkit: warning: curves.png not written: {exc}\n")
        curves_file = None
    seeds = sorted({j.seed for j in jobs})
    date = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    text = render_markdown(
        suite, results, out=out, seeds=seeds, command=command, curves_file=curves_file, date=date
    )
    (out / "report.md").write_text(text)
    written = ", ".join(
        str(out / n) for n in ("results.csv", "report.md", curves_file) if n is not None
    )
    stream.write(f"wrote {written} ({results.finished} finished runs)\n")
    return results


# ---------------------------------------------------------------- entry point


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
) -> int:
    """``rlkit ablate``: train the unfinished runs of a suite, then write the report.

    Returns the exit code: 0, 1 when a run failed, 130 when interrupted (the report is
    written in every case). User mistakes raise ConfigError / EnvError / RunDirError.
    """
    from rlkit.app.run import RunDirError

    stream = stream if stream is not None else sys.stdout
    if workers < 1:
        raise ConfigError(f"--workers: must be >= 1, got {workers}")
    suite = load_suite(Path(suite_path))
    out = out if out is not None else default_out(suite)
    jobs = expand(suite, out, seeds=seeds, overrides=parse_cli_overrides(overrides))
    finished, todo = plan(jobs)
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
        stream.write(
            f"{suite.name}: {len(jobs)} runs ({shape}) in {out}: {len(finished)} finished "
            f"(skipped), {partial} unfinished (resumed), {len(todo) - partial} new; "
            f"{min(workers, max(len(todo), 1))} worker(s)\n"
        )
        stream.flush()
        if todo:
            outcome = run_jobs(todo, workers=workers, stream=stream)
            failed = outcome.count("failed")
            if failed:
                stream.write(f"{failed} run(s) failed; see the train.log in their run dirs\n")
                code = 1
            if outcome.interrupted:
                stream.write(f"interrupted; run the same command again to continue: {command}\n")
                code = 130
    write_report(suite, jobs, out, command=command, stream=stream)
    return code
