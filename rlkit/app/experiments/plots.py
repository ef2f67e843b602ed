"""Learning curves from run dirs: reading ``metrics.jsonl`` series and drawing them.

Reading and band computation use numpy only; matplotlib (the optional ``plot`` extra) is
imported inside the drawing functions, and figures are rendered with the Agg canvas
without touching pyplot's global backend.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

INSTALL_HINT = "pip install 'rlkit[plot]'"


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed; the message names the extra that provides it."""


@dataclass(frozen=True)
class Series:
    """One scalar tag of one run: values at increasing env steps."""

    steps: np.ndarray  # [T] env steps, strictly increasing
    values: np.ndarray  # [T] float64; NaN where the logger wrote a non-finite value


@dataclass(frozen=True)
class Band:
    """Mean over seeds of several series on a common step grid, with a band around it."""

    steps: np.ndarray  # [T]
    mean: np.ndarray  # [T]
    low: np.ndarray  # [T]
    high: np.ndarray  # [T]
    n: int  # number of series (seeds)


# ---------------------------------------------------------------- reading


def read_records(metrics_path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a ``metrics.jsonl`` file; a torn last line is ignored."""
    records = []
    with open(metrics_path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash
            if isinstance(record, dict) and "env_steps" in record:
                records.append(record)
    return records


def series_from_records(records: Sequence[dict[str, Any]], tag: str) -> Series:
    """The points of ``tag`` in logging order, keyed by ``env_steps``.

    Missing values (``null``, how the JSONL logger writes NaN/Inf; or the strings
    ``"nan"``/``"inf"`` of files written before that) become NaN or the float they name.
    If the steps go back (a resumed run re-logs the steps after its checkpoint), the
    earlier points at or after the repeated step are dropped, so the series is the
    history of the run that actually finished.
    """
    steps: list[int] = []
    values: list[float] = []
    for record in records:
        if tag not in record:
            continue
        step = int(record["env_steps"])
        while steps and steps[-1] >= step:
            steps.pop()
            values.pop()
        steps.append(step)
        value = record[tag]
        values.append(math.nan if value is None else float(value))
    return Series(np.asarray(steps, dtype=np.int64), np.asarray(values, dtype=np.float64))


def read_series(run_dir: Path, tag: str) -> Series:
    """``tag`` from ``run_dir/metrics.jsonl`` (see ``series_from_records``)."""
    return series_from_records(read_records(run_dir / "metrics.jsonl"), tag)


def load_runs(run_dirs: Sequence[Path], tags: Sequence[str]) -> dict[str, dict[str, Series]]:
    """``{label: {tag: Series}}`` for ``rlkit plot``; user mistakes raise one-line errors.

    Raises RunDirError for a missing run dir or one without ``metrics.jsonl``, and
    ConfigError for a tag that no run logged (naming close matches).
    """
    from rlkit.app.run import RunDirError
    from rlkit.config import ConfigError, suggest

    run_dirs = list(dict.fromkeys(run_dirs))  # a run dir given twice is drawn once
    records = {}
    for run_dir in run_dirs:
        if not run_dir.is_dir():
            raise RunDirError(f"run dir not found: {run_dir}")
        path = run_dir / "metrics.jsonl"
        if not path.is_file():
            raise RunDirError(f"{run_dir} has no metrics.jsonl (not an rlkit run dir?)")
        records[run_dir] = read_records(path)
    known = sorted({k for recs in records.values() for r in recs for k in r} - {"env_steps"})
    for tag in tags:
        if tag not in known:
            raise ConfigError(f"--tag {tag!r}: no run logged it{suggest(tag, known)}")
    labels = run_labels(run_dirs)
    return {
        label: {tag: series_from_records(recs, tag) for tag in tags}
        for label, recs in zip(labels, records.values(), strict=True)
    }


# ---------------------------------------------------------------- bands


def bootstrap_mean_ci(
    values_ST: np.ndarray, *, reps: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap CI of the mean over seeds, per column.

    ``values_ST`` is ``[S seeds, T steps]``; each replicate resamples S seeds with
    replacement (the same seeds for every step, as a run is one unit) and takes the
    mean per step. Returns ``(low [T], high [T])``.
    """
    values_ST = np.asarray(values_ST, dtype=np.float64)
    num_seeds = values_ST.shape[0]
    rng = np.random.default_rng(seed)
    idx_RS = rng.integers(0, num_seeds, size=(reps, num_seeds))
    means_RT = values_ST[idx_RS].mean(axis=1)  # [reps, S, T] -> [reps, T]
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means_RT, [alpha, 1.0 - alpha], axis=0)
    return low, high


def mean_band(series: Sequence[Series], *, min_seeds_for_ci: int = 3) -> Band | None:
    """Mean of ``series`` on their common step range, with a band.

    The grid is every step any series logged inside the range all of them cover; each
    series is linearly interpolated onto it (the identity when all logged the same
    steps). The band is a 95% bootstrap CI of the mean with at least
    ``min_seeds_for_ci`` series, else the min/max. NaN points are dropped per series.
    Returns None when there is nothing to draw.
    """
    clean = []
    for s in series:
        keep = np.isfinite(s.values)
        if keep.any():
            clean.append(Series(s.steps[keep], s.values[keep]))
    if not clean:
        return None
    start = max(int(s.steps[0]) for s in clean)
    stop = min(int(s.steps[-1]) for s in clean)
    if start > stop:
        return None
    grid = np.unique(np.concatenate([s.steps for s in clean]))
    grid = grid[(grid >= start) & (grid <= stop)]
    values_ST = np.stack([np.interp(grid, s.steps, s.values) for s in clean])
    mean = values_ST.mean(axis=0)
    if len(clean) >= min_seeds_for_ci:
        low, high = bootstrap_mean_ci(values_ST)
    else:
        low, high = values_ST.min(axis=0), values_ST.max(axis=0)
    return Band(grid, mean, low, high, len(clean))


# ---------------------------------------------------------------- drawing


def _new_figure(rows: int, cols: int, width: float, height: float) -> tuple[Any, np.ndarray]:
    """A matplotlib Figure on the Agg canvas and its ``[rows, cols]`` array of axes."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise PlotUnavailable(f"plotting needs matplotlib: {INSTALL_HINT}") from exc
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


def require_matplotlib() -> None:
    """Raise PlotUnavailable (naming the extra) when matplotlib cannot be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise PlotUnavailable(f"plotting needs matplotlib: {INSTALL_HINT}") from exc


def _save(fig: Any, out: Path) -> None:
    """Write ``fig`` as a PNG to ``out`` with ``rlkit.app.checkpoint.atomic_write``."""
    from rlkit.app.checkpoint import atomic_write

    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda f: fig.savefig(f, dpi=120, format="png"))


def run_labels(run_dirs: Sequence[Path]) -> list[str]:
    """Short, distinct labels: each path relative to the runs' common parent."""
    resolved = [p.resolve() for p in run_dirs]
    if len(resolved) == 1:
        return [resolved[0].name]
    common = Path(os.path.commonpath(resolved))
    return [str(p.relative_to(common)) or p.name for p in resolved]


def plot_runs(runs: dict[str, dict[str, Series]], tags: Sequence[str], out: Path) -> None:
    """One subplot per tag, one line per run: ``runs[label][tag]`` -> PNG at ``out``."""
    fig, axes = _new_figure(len(tags), 1, 8.0, 3.6 * len(tags))
    for ax, tag in zip(axes[:, 0], tags, strict=True):
        for label, by_tag in runs.items():
            s = by_tag.get(tag)
            if s is not None and s.steps.size:
                ax.plot(s.steps, s.values, marker="." if s.steps.size < 30 else None, label=label)
        ax.set_title(tag)
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize="small")
    _save(fig, out)


SUITE_ROWS = (
    ("eval/return_mean", "eval return"),
    ("eval/overestimation", "overestimation Q(s,a) - G (symlog)"),
)


def plot_suite(
    curves: dict[str, dict[str, dict[str, list[Series]]]],
    out: Path,
    title: str = "",
) -> None:
    """The ablation figure: ``curves[env][variant][tag]`` holds one series per seed.

    One column per env; the first row is the eval return, the second the measured
    overestimation (``SUITE_ROWS``) on a symmetric-log scale. Each variant is its mean over seeds with a band
    (95% bootstrap CI of the mean with >= 3 seeds, else min/max).
    """
    envs = list(curves)
    fig, axes = _new_figure(len(SUITE_ROWS), len(envs), 6.0 * len(envs), 7.5)
    variants: list[str] = []
    for by_variant in curves.values():
        variants += [v for v in by_variant if v not in variants]
    colors = {v: f"C{i % 10}" for i, v in enumerate(variants)}
    for col, env in enumerate(envs):
        for row, (tag, ylabel) in enumerate(SUITE_ROWS):
            ax = axes[row, col]
            drawn = False
            for variant, by_tag in curves[env].items():
                band = mean_band(by_tag.get(tag, []))
                if band is None:
                    continue
                label = f"{variant} (n={band.n})"
                ax.plot(band.steps, band.mean, color=colors[variant], label=label)
                ax.fill_between(band.steps, band.low, band.high, color=colors[variant], alpha=0.2)
                drawn = True
            if row == 0:
                ax.set_title(env)
            if tag == "eval/overestimation":
                ax.axhline(0.0, color="black", linewidth=0.8, alpha=0.6)
                # Symmetric log: a diverging variant (Q-learning without a target net can
                # reach 1e14) does not flatten the others; linear within +-1.
                ax.set_yscale("symlog", linthresh=1.0)
            if not drawn:
                ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
            ax.set_xlabel("env steps")
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
            if drawn and row == 0:
                ax.legend(fontsize="small")
    caption = "mean over seeds; band: 95% bootstrap CI of the mean (min-max with < 3 seeds)"
    fig.suptitle(f"{title}\n{caption}" if title else caption, fontsize="medium")
    _save(fig, out)
