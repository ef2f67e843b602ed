"""``rlkit sweep CONFIG SPACE.yaml``: a hyperparameter search on Ray Tune.

Each trial is one normal training run (``rlkit.app.experiments.worker.run_logged``, as
an ablation's run): its own run dir ``OUT/trials/<trial>`` with config.yaml,
metrics.jsonl, TensorBoard events, checkpoints, ``train.log`` and, once it reached its
last env step, ``done.json``. Every evaluation is also reported to Tune
(``TuneReport``: the ``eval/*`` scalars with ``env_steps``), which is what the search
algorithm (random or grid from Tune's variant generator, Optuna's TPE) and the ASHA
scheduler (``time_attr`` = env steps) see. A trial ASHA stops keeps its run dir; when the
config writes periodic checkpoints (``trainer.checkpoint_every``), ``rlkit train
--resume`` continues it from the last one like any run.

OUT also holds Tune's experiment state (``OUT/tune``) and what
``rlkit.app.experiments.sweep_out`` writes: the sweep's definition (``sweep.yaml``), the
results (``sweep.csv``, best first) and the best trial's config (``best.yaml``), ready for
``rlkit train``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import IO, Any

from rlkit.app.experiments.suites import Job
from rlkit.app.experiments.sweep_out import (
    BEST_FILE,
    TRIALS_DIR,
    Sweep,
    TrialRow,
    claim_out,
    collect,
    render_table,
    short,
    write_results,
)
from rlkit.app.experiments.sweep_space import Dimension, SweepSpec, check_against, load_sweep
from rlkit.app.experiments.worker import LOG_FILE, run_logged
from rlkit.config import (
    OVERRIDE,
    Config,
    ConfigError,
    apply_overrides,
    from_dict,
    load_raw_sourced,
    parse_override,
    split_key,
)
from rlkit.distributed import DistributedError, connect, require_ray

TUNE_DIR = "tune"
#: times Tune restarts a trial whose worker or node died (it resumes from its checkpoint)
MAX_FAILURES = 2


def _cli_overrides(items: Sequence[str], spec: SweepSpec) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for item in items:
        (section, name), value = parse_override(item)
        key = f"{section}.{name}"
        split_key(OVERRIDE, key)
        if key in {d.key for d in spec.dimensions}:
            raise ConfigError(f"--set {key}: the key is searched by {spec.path}; drop one")
        flat[key] = value
    return flat


def prepare(
    config_path: Path,
    space_path: Path,
    *,
    out: Path | None = None,
    overrides: Sequence[str] = (),
    samples: int | None = None,
) -> Sweep:
    """Read CONFIG and SPACE and check every value the space can produce, the env ids and
    the device, before anything runs or is written."""
    from rlkit.build import resolve_device
    from rlkit.envs import check_env_id

    spec = load_sweep(space_path)
    if samples is not None:
        if samples < 1:
            raise ConfigError(f"--samples: must be >= 1, got {samples}")
        spec = dataclasses.replace(spec, samples=samples)
    cli = _cli_overrides(overrides, spec)
    raw, sources = load_raw_sourced(config_path)
    base = apply_overrides(apply_overrides(raw, spec.overrides), cli)
    sources.update({k: f"{space_path} (set)" for k in spec.overrides})
    sources.update({k: OVERRIDE for k in cli})

    def build(data: dict) -> Config:
        return from_dict(data, str(config_path), sources)

    config = check_against(spec, base, build)
    env_ids = next((d.args for d in spec.dimensions if d.key == "env.id"), (config.env.id,))
    for env_id in env_ids:
        check_env_id(env_id, config.env.imports)
    resolve_device(config.trainer.device)
    _check_schedule(spec, config)
    out = out if out is not None else Path("runs") / "sweep" / spec.name
    return Sweep(spec, base, str(config_path), out)


def _check_schedule(spec: SweepSpec, config: Config) -> None:
    """Trials are compared (by ASHA, and in sweep.csv) at the same env steps: their
    length is fixed, and ASHA's first rung must come before the end."""
    if any(d.key == "trainer.total_steps" for d in spec.dimensions):
        raise ConfigError(
            f"{spec.path}: space: trainer.total_steps: cannot be searched (trials are "
            "compared at the same env steps); fix it with set:"
        )
    total = config.trainer.total_steps
    if spec.scheduler == "asha":
        grace = grace_period(spec, total, config.eval.every)
        if grace >= total:
            raise ConfigError(
                f"{spec.path}: asha: grace_period: {grace} env steps must be < "
                f"trainer.total_steps ({total})"
            )


# ---------------------------------------------------------------- one trial


class TuneReport:
    """A logger that reports each evaluation (the points holding ``metric``) to Tune."""

    def __init__(self, metric: str) -> None:
        self.metric = metric

    def log(self, env_steps: int, scalars: dict[str, float]) -> None:
        if self.metric not in scalars:
            return
        from ray import tune

        report = {k: float(v) for k, v in scalars.items() if k.startswith("eval/")}
        tune.report({"env_steps": int(env_steps), **report})

    def close(self) -> None:
        pass


def _plain(value: Any) -> Any:
    """numpy scalars (from Tune's samplers) as Python values, for the config's checks."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (list, dict)) else value


def run_trial(params: dict, *, base: dict, source: str, out: str, metric: str, cpus: float) -> None:
    """The Tune trainable: train the trial's run dir (resuming it when Tune restarts the
    trial), reporting every evaluation. A failed run raises, so that Tune records it."""
    from ray import tune

    name = tune.get_context().get_trial_name()
    values = {k: _plain(v) for k, v in params.items()}
    config = from_dict(apply_overrides(base, values), source)
    job = Job(name, config.env.id, config.trainer.seed, config, Path(out) / TRIALS_DIR / name)
    result = run_logged(job, max(1, math.floor(cpus)), logger=TuneReport(metric))
    if result.status == "failed":
        raise RuntimeError(f"{result.message} (see {job.run_dir / LOG_FILE})")


# ---------------------------------------------------------------- Tune


def _trial_name(trial) -> str:
    return f"trial_{trial.trial_id.rsplit('_', 1)[-1]}"


def _domain(tune, dim: Dimension):
    low_high = dim.args
    return {
        "choice": lambda: tune.choice(list(dim.args)),
        "grid": lambda: tune.grid_search(list(dim.args)),
        "uniform": lambda: tune.uniform(*low_high),
        "loguniform": lambda: tune.loguniform(*low_high),
        "randint": lambda: tune.randint(low_high[0], low_high[1] + 1),  # high included
    }[dim.kind]()


def _search_alg(spec: SweepSpec):
    if spec.search != "optuna":
        from ray.tune.search.basic_variant import BasicVariantGenerator

        return BasicVariantGenerator(random_state=spec.seed, max_concurrent=spec.max_concurrent)
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    search = OptunaSearch(seed=spec.seed)
    return ConcurrencyLimiter(search, spec.max_concurrent) if spec.max_concurrent else search


def grace_period(spec: SweepSpec, total_steps: int, eval_every: int) -> int:
    """ASHA's first rung in env steps: the sweep's ``asha.grace_period``, or an eighth of
    the run, at least one evaluation interval."""
    if spec.asha.grace_period is not None:
        return spec.asha.grace_period
    return max(total_steps // 8, eval_every, 1)


def _scheduler(spec: SweepSpec, sweep: Sweep):
    if spec.scheduler == "none":
        return None
    from ray.tune.schedulers import ASHAScheduler

    every = int(sweep.base.get("eval", {}).get("every", Config().eval.every))
    # max_t past the last step: ASHA stops a trial that reaches max_t at once, which
    # would end the run before its last checkpoint and done.json
    return ASHAScheduler(
        time_attr="env_steps",
        max_t=sweep.total_steps + 1,
        grace_period=grace_period(spec, sweep.total_steps, every),
        reduction_factor=spec.asha.reduction_factor,
    )


def _progress(tune, stream: IO[str], sweep: Sweep):
    """A Tune callback that prints one line per trial event."""
    metric, total = sweep.spec.metric, sweep.total_steps

    def params(trial) -> str:
        return ", ".join(f"{k}={short(_plain(v))}" for k, v in trial.config.items())

    class Progress(tune.Callback):
        # Tune pickles its callbacks with the experiment state: the stream stays behind
        # (a restored sweep prints to stdout)
        def __getstate__(self):
            return {}

        def __setstate__(self, state):
            self.stream = sys.stdout

        def on_trial_start(self, iteration, trials, trial, **info):
            self.stream.write(f"started {_trial_name(trial)}: {params(trial)}\n")

        def on_trial_result(self, iteration, trials, trial, result, **info):
            value = result.get(metric, float("nan"))
            steps = result.get("env_steps", 0)
            self.stream.write(f"{_trial_name(trial)} env step {steps}: {metric} {value:.2f}\n")

        def on_trial_complete(self, iteration, trials, trial, **info):
            steps = (trial.last_result or {}).get("env_steps", 0)
            how = "finished" if steps >= total else "stopped early (ASHA)"
            self.stream.write(f"{how} {_trial_name(trial)} at env step {steps}\n")

        def on_trial_error(self, iteration, trials, trial, **info):
            log = sweep.out / TRIALS_DIR / _trial_name(trial) / LOG_FILE
            self.stream.write(f"failed {_trial_name(trial)}: see {log}\n")

    progress = Progress()
    progress.stream = stream
    return progress


def _tuner(tune, sweep: Sweep, cpus: float, gpus: float, stream: IO[str]):
    from ray.tune.logger import JsonLoggerCallback  # Tune's own results (its ResultGrid)

    spec = sweep.spec
    storage = sweep.out.resolve()
    trainable = partial(
        run_trial,
        base=sweep.base,
        source=sweep.source,
        out=str(storage),
        metric=spec.metric,
        cpus=cpus,
    )
    trainable = tune.with_resources(trainable, {"cpu": cpus, "gpu": gpus})
    experiment = storage / TUNE_DIR
    if tune.Tuner.can_restore(str(experiment)):
        stream.write(f"continuing the sweep in {sweep.out} (finished trials are kept)\n")
        return tune.Tuner.restore(str(experiment), trainable, resume_errored=True)
    tune_config = tune.TuneConfig(
        metric=spec.metric,
        mode=spec.mode,
        num_samples=spec.samples,
        search_alg=_search_alg(spec),
        scheduler=_scheduler(spec, sweep),
        trial_name_creator=_trial_name,
        trial_dirname_creator=_trial_name,
    )
    run_config = tune.RunConfig(
        name=TUNE_DIR,
        storage_path=str(storage),
        verbose=0,
        callbacks=[JsonLoggerCallback(), _progress(tune, stream, sweep)],
        failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),
    )
    space = {d.key: _domain(tune, d) for d in spec.dimensions}
    return tune.Tuner(trainable, param_space=space, tune_config=tune_config, run_config=run_config)


def _require_tune(spec: SweepSpec):
    """Ray Tune (and Optuna for ``search: optuna``), or a one-line error naming the extra,
    before anything is written."""
    require_ray("rlkit sweep")
    # the run dirs hold the logs: no TensorBoard or CSV copies in OUT/tune
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    logging.getLogger("ray.tune").setLevel(logging.WARNING)  # not its state-saving lines
    try:
        from ray import tune
    except ImportError:
        raise DistributedError(
            "rlkit sweep needs Ray Tune: pip install 'rlkit[ray]' (or pip install 'ray[tune]')"
        ) from None
    if spec.search == "optuna":
        try:
            import optuna  # noqa: F401
        except ImportError:
            raise DistributedError(
                f"{spec.path}: search: optuna needs Optuna: pip install 'rlkit[optuna]'"
            ) from None
    return tune


# ---------------------------------------------------------------- the command


def sweep(
    sweep: Sweep,
    *,
    address: str = "",
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    stream: IO[str],
) -> list[TrialRow]:
    """Run (or continue) the sweep on Ray Tune; write and return the results."""
    if cpus_per_trial <= 0 or gpus_per_trial < 0:
        raise ConfigError("--cpus-per-trial must be > 0 and --gpus-per-trial >= 0")
    tune = _require_tune(sweep.spec)
    claim_out(sweep)
    ray = require_ray("rlkit sweep")
    started = connect(address, num_cpus=cpus_per_trial)
    try:
        results = _tuner(tune, sweep, cpus_per_trial, gpus_per_trial, stream).fit()
        failed = {Path(r.path).name for r in results if r.error is not None}
    finally:
        if started:
            ray.shutdown()
    rows = collect(sweep, failed)
    write_results(sweep, rows)
    stream.write(render_table(sweep, rows))
    if rows:
        stream.write(
            f"best config: {sweep.out / BEST_FILE} (rlkit train {sweep.out / BEST_FILE})\n"
        )
    return rows
