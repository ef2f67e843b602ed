"""`rlkit ablate` and `rlkit plot` through the command line.

One tiny suite (2 variants x 1 env x 2 seeds, 300 env steps each) is trained with two
worker processes; re-running it skips the finished runs and resumes an unfinished one.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rlkit.app.cli import main
from rlkit.app.loggers import JSONLLogger
from tests.e2e.cli_process import ROOT, process_gone, rlkit
from tests.e2e.tiny import CONFIGS, TINY, TOTAL_STEPS

ABLATIONS = CONFIGS / "ablations"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def eval_points(run_dir: Path, tag: str) -> list[float]:
    """The values of ``tag`` in ``run_dir/metrics.jsonl``, in order (null -> NaN)."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    values = [json.loads(line).get(tag, "absent") for line in lines]
    return [math.nan if v is None else float(v) for v in values if v != "absent"]


def test_ablate_trains_reports_and_skips_finished_runs(tmp_path):
    suite = tmp_path / "tiny.yaml"
    suite.write_text(
        f"variants:\n  - {ABLATIONS / 'rainbow.yaml'}\n  - {ABLATIONS / 'q_learning.yaml'}\n"
        "envs: [CartPole-v1]\nseeds: 2\n"
    )
    args = ["ablate", "tiny.yaml", "--workers", "2", "--out", "out", "--set", *TINY]
    first = rlkit(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "4 new; 2 worker(s)" in first.stdout
    out = tmp_path / "out"
    run_dirs = sorted(out.glob("CartPole-v1/*/seed*"))
    assert [str(p.relative_to(out)) for p in run_dirs] == [
        "CartPole-v1/q_learning/seed0",
        "CartPole-v1/q_learning/seed1",
        "CartPole-v1/rainbow/seed0",
        "CartPole-v1/rainbow/seed1",
    ]
    for run_dir in run_dirs:
        assert (run_dir / "done.json").is_file()
        assert "run dir:" in (run_dir / "train.log").read_text()  # run output went to its log
        config = (run_dir / "config.yaml").read_text()
        assert f"seed: {run_dir.name[-1]}" in config and f"total_steps: {TOTAL_STEPS}" in config

    # results.csv agrees with the final evaluations the runs themselves reported
    rows = {r["variant"]: r for r in csv.DictReader(open(out / "results.csv"))}
    assert set(rows) == {"rainbow", "q_learning"}
    for variant, row in rows.items():
        seeds = [out / "CartPole-v1" / variant / f"seed{s}" for s in (0, 1)]
        finals = [
            json.loads((d / "done.json").read_text())["final_eval"]["eval/return_mean"]
            for d in seeds
        ]
        returns = [eval_points(d, "eval/return_mean") for d in seeds]
        assert [r[-1] for r in returns] == finals  # the marker's figure is the last eval's
        assert row["n_seeds"] == "2"
        # results.csv holds 6 significant digits
        assert float(row["final_mean"]) == pytest.approx((finals[0] + finals[1]) / 2, rel=1e-5)
        # IQM of 2 scores: floor(0.25 * 2) = 0 dropped from each end, so their mean. Its
        # bootstrap resamples {a, a}, {a, b}, {b, b} (p = 1/4, 1/2, 1/4): the 2.5% and
        # 97.5% quantiles of 2000 of them are min and max
        assert float(row["final_iqm"]) == pytest.approx(float(row["final_mean"]), rel=1e-5)
        low, high = float(row["final_iqm_ci_low"]), float(row["final_iqm_ci_high"])
        assert (low, high) == pytest.approx((min(finals), max(finals)), rel=1e-5)
        # evaluations at env steps 150 and 300: AUC = trapezoid / range = (r150 + r300) / 2
        assert all(len(r) == 2 for r in returns), returns
        auc = [(r[0] + r[1]) / 2 for r in returns]
        assert float(row["auc_mean"]) == pytest.approx((auc[0] + auc[1]) / 2, rel=1e-5)
        # overestimation: mean over the evaluations of each seed, then over the seeds
        over = [np.nanmean(eval_points(d, "eval/overestimation")) for d in seeds]
        assert float(row["overestimation_mean"]) == pytest.approx(np.nanmean(over), rel=1e-5)
    report = (out / "report.md").read_text()
    assert "`rlkit ablate tiny.yaml --workers 2 --out out --set trainer.total_steps=300" in report
    assert "2 per variant and env (0, 1); 4 of 4 runs finished" in report
    assert "| rainbow | 2 |" in report and "| q_learning | 2 |" in report
    assert (out / "curves.png").read_bytes()[:8] == PNG_MAGIC

    # re-run: three finished runs are skipped untouched, the unfinished one is resumed
    unfinished = out / "CartPole-v1" / "rainbow" / "seed1"
    (unfinished / "done.json").unlink()
    kept = {p: (p / "done.json").stat().st_mtime_ns for p in run_dirs if p != unfinished}
    second = rlkit(*args, cwd=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "3 finished (skipped), 1 unfinished (resumed), 0 new" in second.stdout
    assert {p: (p / "done.json").stat().st_mtime_ns for p in kept} == kept
    assert (unfinished / "done.json").is_file()
    assert "started CartPole-v1/rainbow/seed1" in second.stdout
    assert second.stdout.count("started ") == 1

    # the report alone, from the run dirs; a different --set is refused, not mixed in
    (out / "report.md").unlink()
    third = rlkit(
        "ablate", "tiny.yaml", "--out", "out", "--report-only", "--set", *TINY, cwd=tmp_path
    )
    assert third.returncode == 0, third.stdout + third.stderr
    assert "4 of 4 runs finished" in (out / "report.md").read_text()
    bad = rlkit("ablate", "tiny.yaml", "--out", "out", "--report-only", cwd=tmp_path)
    assert bad.returncode == 2
    assert "finished with a different config (network.hidden_sizes" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1

    # rlkit plot on two of the runs
    png = tmp_path / "two.png"
    code = main(
        [
            "plot",
            str(run_dirs[0]),
            str(run_dirs[2]),
            "--out",
            str(png),
            "--tag",
            "eval/return_mean",
            "--tag",
            "eval/overestimation",
        ]
    )
    assert code == 0
    assert png.read_bytes()[:8] == PNG_MAGIC


def _children(pid: int) -> list[int]:
    """The pids of ``pid``'s worker processes (spawned runs), from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and b"spawn_main" in cmdline:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_run_whose_runner_was_killed_checkpoints_and_stops(tmp_path):
    # SIGKILL of `rlkit ablate` cannot be handled by the runner: its worker, training,
    # notices that it was reparented and stops as on Ctrl-C (checkpoint, no done.json)
    suite = tmp_path / "one.yaml"
    suite.write_text(
        f"variants:\n  - {ABLATIONS / 'rainbow.yaml'}\nenvs: [CartPole-v1]\nseeds: 1\n"
    )
    sets = [s for s in TINY if not s.startswith("trainer.total_steps=")]
    args = ["ablate", "one.yaml", "--out", "out", "--set", *sets, "trainer.total_steps=10000000"]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    runner = subprocess.Popen(
        [sys.executable, "-m", "rlkit", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    run_dir = tmp_path / "out" / "CartPole-v1" / "rainbow" / "seed0"
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        metrics = run_dir / "metrics.jsonl"
        while not (metrics.is_file() and "env_steps" in metrics.read_text()) or not workers:
            assert runner.poll() is None and time.monotonic() < deadline
            workers = _children(runner.pid)
            time.sleep(0.1)
        runner.kill()
        runner.wait(timeout=10)
        deadline = time.monotonic() + 60
        while not all(process_gone(pid) for pid in workers):
            assert time.monotonic() < deadline, "the orphaned run kept training"
            time.sleep(0.1)
    finally:
        for pid in [runner.pid, *workers]:
            if not process_gone(pid):
                os.kill(pid, signal.SIGKILL)
    assert list((run_dir / "checkpoints").glob("ckpt_*.pt")), "stopped without a checkpoint"
    assert not (run_dir / "done.json").exists()


def test_ablate_user_errors_are_one_line(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text(f"variants: [{ABLATIONS / 'rainbow.yaml'}]\nenvs: [CartPole-v1]\nseed: 2\n")
    result = rlkit("ablate", "s.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "rlkit: error: s.yaml: unknown key 'seed' (did you mean 'seeds'?)"
    )
    suite.write_text(f"variants: [{ABLATIONS / 'rainbow.yaml'}]\nenvs: [CartPole-v1]\n")
    result = rlkit("ablate", "s.yaml", "--report-only", "--out", "nowhere", cwd=tmp_path)
    assert result.returncode == 2
    assert "no finished runs of s.yaml under nowhere" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_cli_imports_the_experiments_package_only_for_its_commands():
    import subprocess

    code = (
        "import sys, rlkit.app.cli as cli; "
        "cli._parser(); "
        "print(sorted(m for m in sys.modules if m.startswith('rlkit.app.experiments')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_ablate_on_cuda_without_cuda_is_refused_before_anything_runs(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.chdir(tmp_path)
    suite = tmp_path / "s.yaml"
    suite.write_text(f"variants: [{ABLATIONS / 'rainbow.yaml'}]\nenvs: [CartPole-v1]\n")
    code = main(["ablate", "s.yaml", "--out", "out", "--set", "trainer.device=cuda"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "trainer.device" in err and "no CUDA device" in err
    assert not (tmp_path / "out").exists()


def fake_run(run_dir: Path, values: list[float]) -> Path:
    run_dir.mkdir(parents=True)
    logger = JSONLLogger(run_dir / "metrics.jsonl")
    for i, v in enumerate(values):
        logger.log(100 * (i + 1), {"eval/return_mean": v})
    logger.close()
    return run_dir


def test_plot_command_and_its_errors(tmp_path, capsys, monkeypatch):
    a = fake_run(tmp_path / "a", [1.0, 2.0, 3.0])
    b = fake_run(tmp_path / "b", [3.0, 1.0])
    out = tmp_path / "plots" / "curves.png"
    assert main(["plot", str(a), str(b), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == PNG_MAGIC

    assert main(["plot", str(a), "--tag", "eval/return_man", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--tag 'eval/return_man': no run logged it (did you mean 'eval/return_mean'?)" in err
    assert main(["plot", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "run dir not found" in capsys.readouterr().err

    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["plot", str(a), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "rlkit: error: plotting needs matplotlib: pip install 'rlkit[plot]'"


def two_variant_suite(tmp_path: Path, monkeypatch) -> None:
    """``two.yaml`` in ``tmp_path``, the working dir: rainbow and q_learning, CartPole, 1 seed."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "two.yaml").write_text(
        f"variants:\n  - {ABLATIONS / 'rainbow.yaml'}\n  - {ABLATIONS / 'q_learning.yaml'}\n"
        "envs: [CartPole-v1]\nseeds: 1\n"
    )


def test_variants_trains_only_the_named_variants_and_reports_every_finished_run(
    tmp_path, capsys, monkeypatch
):
    two_variant_suite(tmp_path, monkeypatch)
    out = tmp_path / "out"
    args = ["ablate", "two.yaml", "--out", "out", "--set", *TINY]
    assert main([*args, "--variants", "q_learning"]) == 0
    stdout = capsys.readouterr().out
    assert "2 runs (2 variants x 1 envs x 1 seeds)" in stdout
    assert "--variants q_learning: 1 other run(s) left for later" in stdout
    assert (out / "CartPole-v1" / "q_learning" / "seed0" / "done.json").is_file()
    assert not (out / "CartPole-v1" / "rainbow").exists()
    rows = list(csv.DictReader(open(out / "results.csv")))
    # every variant has its row; the one not trained has no finished seed yet
    assert [(r["variant"], r["n_seeds"]) for r in rows] == [("rainbow", "0"), ("q_learning", "1")]
    assert "--variants q_learning" in (out / "report.md").read_text()  # the command as typed

    # a name that is not a variant of the suite: one line naming it, nothing trained
    assert main([*args, "--variants", "q_learnin"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "rlkit: error: --variants: no variant 'q_learnin' in two.yaml "
        "(its variants: rainbow, q_learning)"
    )
    assert not (out / "CartPole-v1" / "rainbow").exists()


def test_export_copies_the_records_that_rebuild_the_report_and_resume_the_suite(
    tmp_path, capsys, monkeypatch
):
    two_variant_suite(tmp_path, monkeypatch)
    args = ["ablate", "two.yaml", "--set", *TINY]
    assert main([*args, "--out", "out", "--variants", "q_learning", "--export", "kept"]) == 0
    assert "exported the records of 1 finished runs to kept" in capsys.readouterr().out
    run, copy = (tmp_path / d / "CartPole-v1" / "q_learning" / "seed0" for d in ("out", "kept"))
    assert sorted(p.name for p in copy.iterdir()) == ["config.yaml", "done.json", "metrics.jsonl"]
    assert (run / "checkpoints").is_dir()  # the run had more than the copy takes
    for name in ("config.yaml", "done.json", "metrics.jsonl"):
        assert (copy / name).read_bytes() == (run / name).read_bytes()

    # the copy alone rebuilds the same results.csv
    assert main([*args, "--out", "kept", "--report-only"]) == 0
    assert (tmp_path / "kept" / "results.csv").read_text() == (
        tmp_path / "out" / "results.csv"
    ).read_text()
    # training into the copy skips its finished run and adds only the missing one
    capsys.readouterr()
    assert main([*args, "--out", "kept"]) == 0
    stdout = capsys.readouterr().out
    assert "1 finished (skipped), 0 unfinished (resumed), 1 new" in stdout
    assert "started CartPole-v1/rainbow/seed0" in stdout and "q_learning/seed0" not in stdout
    rows = list(csv.DictReader(open(tmp_path / "kept" / "results.csv")))
    assert [(r["variant"], r["n_seeds"]) for r in rows] == [("rainbow", "1"), ("q_learning", "1")]

    # --export onto the output dir itself: one line, exit 2, nothing trained or touched
    before = (tmp_path / "kept" / "results.csv").read_text()
    assert main([*args, "--out", "kept", "--export", "kept"]) == 2
    assert capsys.readouterr().err.strip() == (
        "rlkit: error: --export: kept is the output dir; name another dir"
    )
    assert (tmp_path / "kept" / "results.csv").read_text() == before
