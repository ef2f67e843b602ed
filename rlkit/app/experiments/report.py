"""The report of a suite: per-run summaries, seed statistics per (env, variant), and the
files results.csv, report.md and curves.png.

Aggregation reads each finished run's ``metrics.jsonl``: the final score of a run is its
last ``eval/return_mean``; ``results.csv``, ``report.md`` and ``curves.png`` summarise the
runs per (env, variant) with the statistics of ``rlkit.app.experiments.statistics``.

A report at a budget (``at_step``, ``rlkit ablate --at-step N``) compares the runs at N env
steps instead: a run counts once it has trained N steps, finished or not, and its score is
its last evaluation at or before N (``planning.run_records``). Its files are named
``results_at_<N>.csv``, ``report_at_<N>.md`` and ``curves_at_<N>.png``, beside the full
report.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import numpy as np

from rlkit.app.experiments import statistics as stats
from rlkit.app.experiments.planning import run_records
from rlkit.app.experiments.plots import Series, series_from_records
from rlkit.app.experiments.suites import Job, Suite


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
    # P(this variant > the suite's first variant) on this env, of the final returns, with
    # its 95% bootstrap CI (``improvement_over_reference``)
    p_improvement: float = math.nan
    p_improvement_ci_low: float = math.nan
    p_improvement_ci_high: float = math.nan


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


@dataclass(frozen=True)
class Improvement:
    """P(variant > reference) over all envs where both have finished seeds."""

    variant: str
    envs: tuple[str, ...]
    p: float
    ci_low: float
    ci_high: float


@dataclass
class SuiteResults:
    rows: list[ResultRow]
    curves: CurveSet
    finished: int  # finished runs with at least one evaluation
    missing: list[str]  # Job.key of runs not (yet) finished
    reference: str = ""  # the variant the probabilities of improvement compare against
    improvements: list[Improvement] = dataclasses.field(default_factory=list)
    at_step: int | None = None  # the budget of a report at N env steps (None: full runs)


Finals = dict[tuple[str, str], np.ndarray]  # (env, variant) -> final returns of its seeds


def improvement_over_reference(
    rows: Sequence[ResultRow], finals: Finals, variants: Sequence[str], envs: Sequence[str]
) -> tuple[list[ResultRow], list[Improvement]]:
    """The probability of improvement (Agarwal et al. 2021) of every variant over the
    first one: per env into each row, and over the envs where both have finished seeds
    (stratified by env). The reference against itself is 0.5 by definition."""
    reference = variants[0]
    out = []
    for row in rows:
        x, y = finals.get((row.env, row.variant)), finals.get((row.env, reference))
        if x is None or y is None:
            out.append(row)
            continue
        low, high = stats.probability_of_improvement_ci([x], [y])
        p = stats.probability_of_improvement([x], [y])
        out.append(
            dataclasses.replace(
                row, p_improvement=p, p_improvement_ci_low=low, p_improvement_ci_high=high
            )
        )
    overall = []
    for variant in variants[1:]:
        common = tuple(e for e in envs if (e, variant) in finals and (e, reference) in finals)
        if not common:
            continue
        xs = [finals[(e, variant)] for e in common]
        ys = [finals[(e, reference)] for e in common]
        low, high = stats.probability_of_improvement_ci(xs, ys)
        p = stats.probability_of_improvement(xs, ys)
        overall.append(Improvement(variant, common, p, low, high))
    return out, overall


def collect_results(suite: Suite, jobs: Sequence[Job], at_step: int | None = None) -> SuiteResults:
    """Summaries and curves of the runs among ``jobs`` that the report counts (the
    finished ones; with ``at_step``, those that have trained that far, see
    ``run_records``), per (env, variant)."""
    from rlkit.app.experiments.plots import SUITE_ROWS

    summaries: dict[tuple[str, str], list[RunSummary]] = {}
    curves: CurveSet = {e.name: {v: {} for v in suite.variant_names} for e in suite.envs}
    missing = []
    for job in jobs:
        records = run_records(job, at_step)
        summary = summarize_run(records) if records is not None else None
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
    finals = {k: np.array([r.final_return for r in runs]) for k, runs in summaries.items()}
    envs = [e.name for e in suite.envs]
    rows, overall = improvement_over_reference(rows, finals, suite.variant_names, envs)
    finished = sum(r.n_seeds for r in rows)
    reference = suite.variant_names[0]
    return SuiteResults(rows, curves, finished, missing, reference, overall, at_step)


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


def _p_text(p: float, low: float, high: float) -> str:
    return "–" if not math.isfinite(p) else f"{p:.2f} [{low:.2f}, {high:.2f}]"


def improvement_table(results: SuiteResults, envs: Sequence[str]) -> list[str]:
    """The lines of report.md's probability-of-improvement section (empty with fewer than
    two variants)."""
    overall = {i.variant: i for i in results.improvements}
    variants = list(dict.fromkeys(r.variant for r in results.rows))[1:]
    if not variants:
        return []
    ref = results.reference
    lines = [
        f"## Probability of improvement over {ref}",
        "",
        f"P(variant > {ref}): the probability that a run of the variant ends with a higher "
        f"final return than a run of {ref} on the same env (ties count 1/2; Agarwal et al. "
        "2021), with a 95% bootstrap CI over seeds; 0.5 means neither is better. The last "
        "column averages over the envs where both have finished seeds, resampling within "
        "each env.",
        "",
        "| variant | " + " | ".join(envs) + " | all envs |",
        "|" + " --- |" * (len(envs) + 2),
    ]
    by_key = {(r.env, r.variant): r for r in results.rows}
    for v in variants:
        cells = [v]
        for env in envs:
            r = by_key[(env, v)]
            cells.append(_p_text(r.p_improvement, r.p_improvement_ci_low, r.p_improvement_ci_high))
        i = overall.get(v)
        cells.append(_p_text(i.p, i.ci_low, i.ci_high) if i else "–")
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
    n = results.at_step
    budget = f" at {n:,} env steps" if n is not None else ""
    lines = [f"# Ablation report: {suite.name}{budget}", ""]
    if suite.description:
        lines += [suite.description, ""]
    counted = "finished" if n is None else f"have trained {n:,} env steps (finished or not)"
    lines += [
        f"- command: `{command}`",
        f"- date: {date}",
        f"- seeds: {len(seeds)} per variant and env ({seed_text}); "
        f"{results.finished} of {total} runs {counted}",
        f"- suite: `{suite.path}`; run dirs: `{out}/<env>/<variant>/seed<k>`",
        "- variants: " + ", ".join(f"{p.stem} (`{p}`)" for p in suite.variants),
    ]
    if n is not None:
        lines.append(
            f"- budget: every run is compared at {n:,} env steps; its *final* values below "
            f"are those of its last evaluation at or before {n:,}, and its curve ends there"
        )
    if results.missing:
        shown = ", ".join(results.missing[:10])
        more = f" and {len(results.missing) - 10} more" if len(results.missing) > 10 else ""
        why = "not finished" if n is None else f"short of {n:,} env steps"
        lines.append(f"- {why} (left out): {shown}{more}")
    for env in suite.envs:
        title = env.id if env.name == env.id else f"{env.name} ({env.id})"
        lines += ["", f"## {title}", ""]
        lines += markdown_table([r for r in results.rows if r.env == env.name])
    lines += ["", MD_COLUMNS]
    improvement = improvement_table(results, [e.name for e in suite.envs])
    if improvement:
        lines += [""] + improvement
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
    at_step: int | None = None,
) -> SuiteResults:
    """Write results.csv, report.md and (with matplotlib) curves.png into ``out``; with
    ``at_step``, the report at that budget as results_at_<N>.csv, report_at_<N>.md and
    curves_at_<N>.png (the full report's files are left as they are)."""
    from rlkit.app.experiments.plots import PlotUnavailable, plot_suite

    results = collect_results(suite, jobs, at_step)
    suffix = "" if at_step is None else f"_at_{at_step}"
    csv_file, md_file = f"results{suffix}.csv", f"report{suffix}.md"
    out.mkdir(parents=True, exist_ok=True)
    write_csv(results.rows, out / csv_file)
    curves_file: str | None = f"curves{suffix}.png"
    title = suite.name if at_step is None else f"{suite.name} at {at_step:,} env steps"
    try:
        plot_suite(results.curves, out / curves_file, title=title)
    except PlotUnavailable as exc:
        stream.write(f"rlkit: warning: {curves_file} not written: {exc}\n")
        curves_file = None
    seeds = sorted({j.seed for j in jobs})
    date = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    text = render_markdown(
        suite, results, out=out, seeds=seeds, command=command, curves_file=curves_file, date=date
    )
    (out / md_file).write_text(text)
    written = ", ".join(str(out / n) for n in (csv_file, md_file, curves_file) if n is not None)
    counted = "finished runs" if at_step is None else f"runs at {at_step:,} env steps"
    stream.write(f"wrote {written} ({results.finished} {counted})\n")
    return results
