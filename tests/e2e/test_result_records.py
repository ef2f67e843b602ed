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
#: results dir -> (suite file, the --set of its report's command)
RECORDS = {
    "munchausen": ("munchausen.yaml", ["trainer.total_steps=25000", "eval.every=2500"]),
    "minatar_breakout": ("minatar_breakout_heads.yaml", []),
    "heads_miqn": ("heads.yaml", ["trainer.total_steps=25000", "eval.every=2500"]),
}


@pytest.mark.parametrize("name", list(RECORDS))
def test_committed_run_records_rebuild_the_committed_results(name, tmp_path):
    suite, sets = RECORDS[name]
    copy = tmp_path / "runs"
    shutil.copytree(RESULTS / name / "runs", copy)
    args = ["ablate", str(ROOT / "configs" / "ablations" / suite), "--out", str(copy)]
    assert main([*args, "--report-only", *(["--set", *sets] if sets else [])]) == 0
    assert (copy / "results.csv").read_text() == (RESULTS / name / "results.csv").read_text()


def test_every_records_dir_is_checked():
    assert sorted(p.parent.name for p in RESULTS.glob("*/runs")) == sorted(RECORDS)
