"""The run records committed under docs/results/<suite>/runs/ (``rlkit ablate --export``)
rebuild the committed results.csv: the tables in the docs come from the runs beside them,
and a change to how reports are computed shows here until the docs are regenerated."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rlkit.app.cli import main

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "results"
#: MinAtar Breakout: the reports at 200k and 750k env steps beside the 1M one
AT_STEPS = [200000, 750000]
#: results dir -> (suite file, the --set of its report's command, the steps of the
#: reports at a budget beside it: results_at_<N>.csv from --at-step N)
RECORDS = {
    "munchausen": ("munchausen.yaml", ["trainer.total_steps=25000", "eval.every=2500"], []),
    "minatar_breakout": ("minatar_breakout_heads.yaml", [], AT_STEPS),
    "heads_miqn": ("heads.yaml", ["trainer.total_steps=25000", "eval.every=2500"], []),
}


@pytest.mark.parametrize("name", list(RECORDS))
def test_committed_run_records_rebuild_the_committed_results(name, tmp_path):
    suite, sets, budgets = RECORDS[name]
    copy = tmp_path / "runs"
    shutil.copytree(RESULTS / name / "runs", copy)
    args = ["ablate", str(ROOT / "configs" / "ablations" / suite), "--out", str(copy)]
    args += ["--report-only", *(["--set", *sets] if sets else [])]
    assert main(args) == 0
    assert (copy / "results.csv").read_text() == (RESULTS / name / "results.csv").read_text()
    for step in budgets:
        assert main([*args, "--at-step", str(step)]) == 0
        csv_name = f"results_at_{step}.csv"
        assert (copy / csv_name).read_text() == (RESULTS / name / csv_name).read_text()


def test_every_records_dir_is_checked():
    assert sorted(p.parent.name for p in RESULTS.glob("*/runs")) == sorted(RECORDS)


def load_script(name: str):
    """A module of scripts/ (not a package) loaded from its file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_training_return_at_a_step_is_the_mean_of_the_last_log_windows():
    import numpy as np

    from rlkit.app.experiments.plots import Series

    at_step = load_script("train_returns").at_step
    series = Series(np.array([10, 20, 30, 40]), np.array([1.0, 2.0, 4.0, np.nan]))
    assert at_step(series, 30, windows=2) == (2.0 + 4.0) / 2  # records at 20 and 30
    assert at_step(series, 35, windows=5) == (1.0 + 2.0 + 4.0) / 3  # all up to 35
    assert at_step(series, 40, windows=2) == 4.0  # a window without episodes is skipped
    assert np.isnan(at_step(series, 50, windows=2))  # not reached


#: the training returns quoted in docs/results/minatar_breakout/report.md's Reading
#: (mean over seeds of the five 10k-step log windows ending at the step)
BREAKOUT_TRAIN_RETURNS = {
    ("rainbow", 500000): 7.55,
    ("rainbow", 1000000): 12.86,
    ("rainbow_munchausen", 500000): 10.12,
    ("rainbow_munchausen", 1000000): 13.73,
    ("rainbow_iqn", 500000): 10.48,
    ("rainbow_iqn", 1000000): 17.38,
}


def test_the_quoted_training_returns_come_from_the_committed_records(capsys):
    script = load_script("train_returns")
    env_dir = RESULTS / "minatar_breakout" / "runs" / "MinAtar-Breakout-v1"
    steps = sorted({step for _, step in BREAKOUT_TRAIN_RETURNS})
    assert script.main([str(env_dir), *[f"--at={s}" for s in steps]]) == 0
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines()[2:]]
    table = {(r[0].strip("| "), int(r[1].replace(",", ""))): r[3].strip(" |") for r in rows}
    for key, expected in BREAKOUT_TRAIN_RETURNS.items():
        assert table[key] == f"{expected:.2f}", key
