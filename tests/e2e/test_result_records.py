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
#: MinAtar Breakout: every head at 200k and 750k env steps, IQN runs unfinished
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
