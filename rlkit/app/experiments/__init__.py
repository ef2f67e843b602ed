"""Experiments: ablation suites (variants x envs x seeds), run in parallel, reported.

- ``suites``: suite files (``load_suite``) and their expansion into runs (``expand``);
- ``planning``: finished runs (``done.json``), skipping them, resuming unfinished ones;
- ``worker``: one run in its own process, its ``train.log`` and completion marker;
- ``runner``: the process pool of the main process and its progress (``run_jobs``);
- ``statistics``: IQM, bootstrap CIs, curve AUC;
- ``report``: per-run summaries, seed aggregates, results.csv and report.md;
- ``plots``: learning curves (``rlkit plot``, curves.png);
- ``entry``: the ``rlkit ablate`` command (``ablate``).

Each run gets its own run dir ``OUT/<env>/<variant>/seed<k>`` with the usual contents plus
``train.log`` (the run's console output) and, once ``train`` has returned after the last
env step, the completion marker ``done.json``. Nothing below the app layer imports this
package; the CLI imports it when ``rlkit ablate`` or ``rlkit plot`` runs.
"""

from rlkit.app.checkpoint import atomic_write_json as write_json_atomic
from rlkit.app.experiments.entry import ablate, command_line
from rlkit.app.experiments.planning import (
    DONE_FILE,
    RESULT_NEUTRAL_KEYS,
    check_finished_config,
    is_finished,
    plan,
    run_records,
    start_or_resume,
)
from rlkit.app.experiments.report import (
    MD_COLUMNS,
    MD_HEADER,
    CurveSet,
    ResultRow,
    RunSummary,
    SuiteResults,
    aggregate,
    collect_results,
    markdown_table,
    render_markdown,
    summarize_run,
    write_csv,
    write_report,
)
from rlkit.app.experiments.runner import MetricsTail, RunnerOutcome, SuiteProgress, run_jobs
from rlkit.app.experiments.suites import (
    DEFAULT_SEEDS,
    ENV_KEYS,
    RESERVED_KEYS,
    SUITE_KEYS,
    EnvEntry,
    Job,
    Suite,
    check_override_key,
    default_out,
    expand,
    load_suite,
    parse_cli_overrides,
    parse_set_mapping,
    resolve_config,
)
from rlkit.app.experiments.worker import LOG_FILE, JobResult, LogFile, run_job, worker_main
from rlkit.config import config_diff

__all__ = [
    "DEFAULT_SEEDS",
    "DONE_FILE",
    "ENV_KEYS",
    "LOG_FILE",
    "MD_COLUMNS",
    "MD_HEADER",
    "RESERVED_KEYS",
    "RESULT_NEUTRAL_KEYS",
    "SUITE_KEYS",
    "CurveSet",
    "EnvEntry",
    "Job",
    "JobResult",
    "LogFile",
    "MetricsTail",
    "ResultRow",
    "RunSummary",
    "RunnerOutcome",
    "Suite",
    "SuiteProgress",
    "SuiteResults",
    "ablate",
    "aggregate",
    "check_finished_config",
    "check_override_key",
    "collect_results",
    "command_line",
    "config_diff",
    "default_out",
    "expand",
    "is_finished",
    "load_suite",
    "markdown_table",
    "parse_cli_overrides",
    "parse_set_mapping",
    "plan",
    "render_markdown",
    "run_records",
    "resolve_config",
    "run_job",
    "run_jobs",
    "start_or_resume",
    "summarize_run",
    "worker_main",
    "write_csv",
    "write_json_atomic",
    "write_report",
]
