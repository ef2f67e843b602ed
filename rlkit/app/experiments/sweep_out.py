"""The out dir of ``rlkit sweep``: the sweep's definition (``sweep.yaml``, which lets a
rerun of the same command continue and refuses a different one), and the results read
back from the trials' run dirs (``sweep.csv``, best first, and ``best.yaml``)."""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from pathlib import Path
from typing import Any

import yaml

from rlkit.app.checkpoint import atomic_write_bytes
from rlkit.app.experiments.planning import DONE_FILE
from rlkit.app.experiments.plots import read_records
from rlkit.app.experiments.sweep_space import SweepSpec
from rlkit.config import Config, ConfigError

TRIALS_DIR = "trials"
SPEC_FILE = "sweep.yaml"
RESULTS_FILE = "sweep.csv"
BEST_FILE = "best.yaml"


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A checked sweep: the space, CONFIG's raw dict with ``set`` and ``--set`` applied,
    where it came from, and the out dir."""

    spec: SweepSpec
    base: dict[str, Any]
    source: str  # CONFIG's path, named by config errors inside a trial
    out: Path

    @property
    def total_steps(self) -> int:
        return int(self.base.get("trainer", {}).get("total_steps", Config().trainer.total_steps))


def short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _definition(sweep: Sweep) -> dict[str, Any]:
    space = yaml.safe_load(sweep.spec.path.read_text())
    samples = {"samples": sweep.spec.samples}
    return {"config": sweep.base, "sweep": {**space, **samples}}


def claim_out(sweep: Sweep) -> None:
    """Write ``sweep.yaml`` into a new out dir; in an existing one, refuse a different
    sweep (nothing there is touched) and let the same one continue."""
    path = sweep.out / SPEC_FILE
    mine = _definition(sweep)
    if path.exists():
        theirs = yaml.safe_load(path.read_text())
        if theirs != mine:
            raise ConfigError(
                f"{sweep.out}: holds a different sweep (its {SPEC_FILE} differs from "
                "CONFIG, SPACE and --set/--samples); use another --out"
            )
        return
    if sweep.out.exists() and any(sweep.out.iterdir()):
        raise ConfigError(f"{sweep.out}: exists and holds no {SPEC_FILE}; use another --out")
    sweep.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, yaml.safe_dump(mine, sort_keys=False).encode())


@dataclasses.dataclass(frozen=True)
class TrialRow:
    trial: str
    status: str  # finished | stopped | failed
    env_steps: int
    last: float  # the metric at the trial's last evaluation (nan: none)
    best: float  # its best value over the trial's evaluations
    params: dict[str, Any]


def collect(sweep: Sweep, failed: set[str] = frozenset()) -> list[TrialRow]:
    """One row per trial run dir, read from its config.yaml and metrics.jsonl; finished
    trials first, then by the metric at the last evaluation (best first)."""
    spec, rows = sweep.spec, []
    for run_dir in sorted((sweep.out / TRIALS_DIR).glob("trial_*")):
        if not (run_dir / "config.yaml").is_file():
            continue
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        params = {}
        for dim in spec.dimensions:
            section, name = dim.key.split(".")
            params[dim.key] = config.get(section, {}).get(name)
        records = read_records(run_dir / "metrics.jsonl")
        values = [r[spec.metric] for r in records if r.get(spec.metric) is not None]
        steps = max((int(r["env_steps"]) for r in records), default=0)
        status = "finished" if (run_dir / DONE_FILE).is_file() else "stopped"
        status = "failed" if run_dir.name in failed else status
        pick = max if spec.mode == "max" else min
        last = values[-1] if values else math.nan
        rows.append(
            TrialRow(run_dir.name, status, steps, last, pick(values, default=math.nan), params)
        )
    sign = -1.0 if spec.mode == "max" else 1.0

    def order(row: TrialRow) -> tuple:
        value = row.last if math.isfinite(row.last) else math.inf * -sign
        return ({"finished": 0, "stopped": 1, "failed": 2}[row.status], sign * value, row.trial)

    return sorted(rows, key=order)


def write_results(sweep: Sweep, rows: list[TrialRow]) -> None:
    """``sweep.csv`` (one row per trial, best first) and ``best.yaml`` (the config of the
    first row)."""
    metric = sweep.spec.metric
    keys = [d.key for d in sweep.spec.dimensions]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["trial", "status", "env_steps", f"{metric} (last)", f"{metric} (best)", *keys])
    for r in rows:
        writer.writerow([r.trial, r.status, r.env_steps, r.last, r.best, *r.params.values()])
    atomic_write_bytes(sweep.out / RESULTS_FILE, text.getvalue().encode())
    if rows:
        best = (sweep.out / TRIALS_DIR / rows[0].trial / "config.yaml").read_bytes()
        atomic_write_bytes(sweep.out / BEST_FILE, best)


def render_table(sweep: Sweep, rows: list[TrialRow], limit: int = 10) -> str:
    metric = sweep.spec.metric
    keys = [d.key for d in sweep.spec.dimensions]
    lines = [" | ".join(["trial", "status", "env steps", f"{metric} (last)", *keys])]
    for r in rows[:limit]:
        cells = [r.trial, r.status, str(r.env_steps), f"{r.last:.2f}"]
        lines.append(" | ".join(cells + [short(r.params[k]) for k in keys]))
    if len(rows) > limit:
        lines.append(f"... {len(rows) - limit} more in {sweep.out / RESULTS_FILE}")
    return "\n".join(lines) + "\n"
