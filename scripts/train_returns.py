"""Training returns of a suite's runs at given env steps, from their ``metrics.jsonl``.

A run's training return at step S is the mean of its ``train/episode_return`` (the mean
return of the episodes that ended in each log window) over the ``--windows`` log records
ending at S; the table gives each seed's value and the mean over seeds, per variant. This
is how docs/results/minatar_breakout/ compares with published curves that report
training returns (Young & Tian 2019). ``--out`` also draws the seed-averaged curves.

    python scripts/train_returns.py docs/results/minatar_breakout/runs/MinAtar-Breakout-v1 \\
        --at 500000 --at 1000000 --out train_returns.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from rlkit.app.experiments.plots import Series, mean_band, read_series

TAG = "train/episode_return"


def at_step(series: Series, step: int, windows: int) -> float:
    """Mean of the last ``windows`` points at or before ``step`` (NaN if ``step`` is
    not reached)."""
    if len(series.steps) == 0 or series.steps[-1] < step:
        return float("nan")
    upto = series.values[series.steps <= step][-windows:]
    return float(np.nanmean(upto)) if np.isfinite(upto).any() else float("nan")


def variant_runs(env_dir: Path) -> dict[str, list[Path]]:
    """``{variant: [seed dirs]}`` under ``env_dir`` (the ``<env>`` level of a suite)."""
    out = {}
    for variant in sorted(p for p in env_dir.iterdir() if p.is_dir()):
        seeds = sorted(p for p in variant.glob("seed*") if (p / "metrics.jsonl").is_file())
        if seeds:
            out[variant.name] = seeds
    return out


def table(env_dir: Path, steps: list[int], windows: int) -> list[str]:
    lines = ["| variant | step | seeds | mean over seeds |", "| --- | --- | --- | --- |"]
    for variant, seeds in variant_runs(env_dir).items():
        series = [read_series(s, TAG) for s in seeds]
        for step in steps:
            values = [at_step(s, step, windows) for s in series]
            shown = ", ".join("–" if np.isnan(v) else f"{v:.2f}" for v in values)
            mean = "–" if np.isnan(values).any() else f"{np.mean(values):.2f}"
            lines.append(f"| {variant} | {step:,} | {shown} | {mean} |")
    return lines


def plot(env_dir: Path, out: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for variant, seeds in variant_runs(env_dir).items():
        band = mean_band([read_series(s, TAG) for s in seeds])
        if band is not None:
            ax.plot(band.steps, band.mean, label=variant)
            ax.fill_between(band.steps, band.low, band.high, alpha=0.2)
    ax.set_xlabel("env steps")
    ax.set_ylabel(TAG + " (mean over seeds)")
    ax.set_title(f"{env_dir.name}: training returns (band: 95% CI over seeds)")
    ax.legend()
    fig.savefig(out, dpi=120, format="png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("env_dir", type=Path, help="a suite's <out>/<env> directory")
    parser.add_argument("--at", type=int, action="append", required=True, help="env step")
    parser.add_argument("--windows", type=int, default=5, help="log records averaged")
    parser.add_argument("--out", type=Path, help="also draw the curves to this PNG")
    args = parser.parse_args(argv)
    if not args.env_dir.is_dir():
        print(f"error: {args.env_dir}: not a directory", file=sys.stderr)
        return 2
    print("\n".join(table(args.env_dir, args.at, args.windows)))
    if args.out is not None:
        plot(args.env_dir, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
