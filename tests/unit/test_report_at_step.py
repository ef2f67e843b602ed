"""``rlkit ablate --at-step N``: the report that compares every run at N env steps, counting
runs that have trained that far whether they finished or not."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from rlkit.app.cli import main
from rlkit.app.experiments import Job, collect_results, expand, load_suite, run_records
from rlkit.config import ConfigError, dump_config
from tests.unit.test_suite import fake_finished, suite_dir, suite_file  # noqa: F401

BODY = "variants: [variants/max.yaml, variants/dbl.yaml]\nenvs: [CartPole-v1]\nseeds: 2\n"


def write_records(job: Job, records: list[tuple[int, dict]], finished: bool) -> None:
    """metrics.jsonl with the given (env_steps, values) lines, and config.yaml."""
    job.run_dir.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"env_steps": step, **values}) for step, values in records]
    (job.run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    if finished:
        fake_finished(job)
    else:
        (job.run_dir / "config.yaml").write_text(dump_config(job.config))


def ret(value: float) -> dict:
    return {"eval/return_mean": value}


TRAIN = {"train/loss": 1.0}


def four_runs(root: Path, out: Path) -> tuple[object, dict[str, Job]]:
    """max/seed0 finished: evals 0, 5, 10 at 100, 200, 300.
    max/seed1 unfinished at 250: evals 4, 8 at 100, 200 (a train record at 250).
    dbl/seed0 unfinished: logged to 300 (evals 7, 7, 7), then resumed from its checkpoint
      at 100 and now at 150: its last record is at 150, short of 200.
    dbl/seed1 finished: evals 1, 2, 30 at 100, 200, 300."""
    suite = load_suite(suite_file(root, BODY))
    jobs = {j.key: j for j in expand(suite, out)}
    three = [(100, ret(0)), (200, ret(5)), (300, ret(10))]
    write_records(jobs["CartPole-v1/max/seed0"], three, finished=True)
    two = [(50, TRAIN), (100, ret(4)), (200, ret(8)), (250, TRAIN)]
    write_records(jobs["CartPole-v1/max/seed1"], two, finished=False)
    resumed = [(100, ret(7)), (200, ret(7)), (300, ret(7)), (100, ret(7)), (150, TRAIN)]
    write_records(jobs["CartPole-v1/dbl/seed0"], resumed, finished=False)
    done = [(100, ret(1)), (200, ret(2)), (300, ret(30))]
    write_records(jobs["CartPole-v1/dbl/seed1"], done, finished=True)
    return suite, jobs


def test_runs_count_once_they_have_trained_that_far(suite_dir, tmp_path):  # noqa: F811
    suite, jobs = four_runs(suite_dir, tmp_path / "out")
    full = collect_results(suite, list(jobs.values()))
    by_variant = {r.variant: r for r in full.rows}
    # the full report: only the finished runs, with their last evaluations 10 and 30
    assert (by_variant["max"].n_seeds, by_variant["max"].final_mean) == (1, 10.0)
    assert (by_variant["dbl"].n_seeds, by_variant["dbl"].final_mean) == (1, 30.0)

    at = collect_results(suite, list(jobs.values()), at_step=200)
    by_variant = {r.variant: r for r in at.rows}
    # at 200: max/seed0 scores 5 (its eval at 200), max/seed1 8 although unfinished;
    # mean (5 + 8) / 2 = 6.5; AUC over [100, 200]: (0 + 5) / 2 = 2.5 and (4 + 8) / 2 = 6,
    # mean 4.25. dbl/seed0 is left out (now at 150), dbl/seed1 scores 2.
    assert by_variant["max"].n_seeds == 2 and by_variant["max"].final_mean == 6.5
    assert by_variant["max"].auc_mean == 4.25
    assert by_variant["dbl"].n_seeds == 1 and by_variant["dbl"].final_mean == 2.0
    assert at.missing == ["CartPole-v1/dbl/seed0"] and at.finished == 3
    # at 250 max/seed1 has no evaluation after 200: still 8; at 251 it is short
    at_250 = {r.variant: r for r in collect_results(suite, list(jobs.values()), 250).rows}
    assert at_250["max"].final_mean == 6.5
    assert run_records(jobs["CartPole-v1/max/seed1"], 251) is None
    # curves end at the budget
    curve = at.curves["CartPole-v1"]["max"]["eval/return_mean"]
    assert [s.steps.tolist() for s in curve] == [[100, 200], [100, 200]]


def test_an_unfinished_run_with_another_config_is_refused(suite_dir, tmp_path):  # noqa: F811
    suite, jobs = four_runs(suite_dir, tmp_path / "out")
    job = jobs["CartPole-v1/max/seed1"]
    other = dump_config(job.config).replace("lr: 0.01", "lr: 0.5")
    (job.run_dir / "config.yaml").write_text(other)
    with pytest.raises(ConfigError, match=r"seed1 was trained with a different config"):
        collect_results(suite, list(jobs.values()), at_step=200)


def test_the_cli_writes_the_report_at_a_step_beside_the_full_one(
    suite_dir,  # noqa: F811
    tmp_path,
    capsys,
):
    four_runs(suite_dir, tmp_path / "out")
    suite = str(suite_dir / "suite.yaml")
    out = tmp_path / "out"
    assert main(["ablate", suite, "--out", str(out), "--report-only"]) == 0
    full = (out / "report.md").read_text()
    args = ["ablate", suite, "--out", str(out), "--report-only", "--at-step", "200"]
    assert main([*args, "--export", str(tmp_path / "kept")]) == 0
    stdout = capsys.readouterr().out
    assert "(3 runs at 200 env steps)" in stdout
    assert "exported the records of 3 runs that have trained 200 env steps" in stdout
    assert (out / "report.md").read_text() == full  # the full report is left as it was
    text = (out / "report_at_200.md").read_text()
    assert text.startswith("# Ablation report: suite at 200 env steps")
    assert "3 of 4 runs have trained 200 env steps (finished or not)" in text
    assert "- short of 200 env steps (left out): CartPole-v1/dbl/seed0" in text
    assert "| max | 2 | 6.5 |" in text and "| dbl | 1 | 2.0 |" in text
    rows = list(csv.DictReader(open(out / "results_at_200.csv")))
    assert [(r["variant"], r["n_seeds"], r["final_mean"]) for r in rows] == [
        ("max", "2", "6.5"),
        ("dbl", "1", "2"),
    ]
    # the export holds the three counted runs (one unfinished) and rebuilds the same table
    kept = tmp_path / "kept"
    assert sorted(str(p.parent.relative_to(kept)) for p in kept.rglob("metrics.jsonl")) == [
        "CartPole-v1/dbl/seed1",
        "CartPole-v1/max/seed0",
        "CartPole-v1/max/seed1",
    ]
    assert not (kept / "CartPole-v1" / "max" / "seed1" / "done.json").exists()
    rebuild = ["ablate", suite, "--out", str(kept), "--report-only", "--at-step", "200"]
    assert main(rebuild) == 0
    assert (kept / "results_at_200.csv").read_text() == (out / "results_at_200.csv").read_text()


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ("0", "rlkit: error: --at-step: must be >= 1 env step, got 0"),
        ("301", "rlkit: error: --at-step 301: no run of "),
    ],
)
def test_at_step_errors_are_one_line(suite_dir, tmp_path, capsys, step, message):  # noqa: F811
    four_runs(suite_dir, tmp_path / "out")
    args = ["ablate", str(suite_dir / "suite.yaml"), "--out", str(tmp_path / "out")]
    assert main([*args, "--report-only", "--at-step", step]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(message) and len(err.splitlines()) == 1
    assert not (tmp_path / "out" / f"report_at_{step}.md").exists()
