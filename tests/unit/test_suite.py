"""Ablation suites: file validation, expansion into runs, skipping finished runs, the
runner's bookkeeping, and aggregation checked against hand-computed numbers."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from rlkit.app.experiments import (
    DONE_FILE,
    RESULT_NEUTRAL_KEYS,
    Job,
    MetricsTail,
    RunSummary,
    aggregate,
    collect_results,
    command_line,
    config_diff,
    expand,
    is_finished,
    load_suite,
    parse_cli_overrides,
    plan,
    render_markdown,
    run_jobs,
    summarize_run,
    write_csv,
    write_report,
)
from rlkit.app.experiments import statistics as stats
from rlkit.app.experiments.plots import Series, mean_band, series_from_records
from rlkit.app.loggers import JSONLLogger
from rlkit.config import ConfigError, dump_config, load_config
from rlkit.envs import EnvError
from tests.e2e.cli_process import process_gone

ABLATIONS = Path(__file__).resolve().parents[2] / "configs" / "ablations"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def suite_dir(tmp_path: Path) -> Path:
    """Two tiny variants that differ only in learner.double_q."""
    write(
        tmp_path / "base.yaml",
        "network:\n  hidden_sizes: [8]\n  atoms: 1\n  noisy: false\n"
        "learner:\n  lr: 0.01\ntrainer:\n  total_steps: 1000\n",
    )
    write(
        tmp_path / "variants" / "max.yaml", "extends: ../base.yaml\nlearner:\n  double_q: false\n"
    )
    write(tmp_path / "variants" / "dbl.yaml", "extends: ../base.yaml\nlearner:\n  double_q: true\n")
    return tmp_path


def suite_file(suite_dir: Path, body: str) -> Path:
    return write(suite_dir / "suite.yaml", body)


GOOD = """
description: >-
  two variants,
  two envs
variants: [variants/max.yaml, variants/dbl.yaml]
envs:
  - CartPole-v1
  - {id: Acrobot-v1, set: {learner.lr: 0.5, trainer: {total_steps: 3000}}}
seeds: 2
set:
  learner.lr: 0.2
  eval: {episodes: 3}
"""


# ---------------------------------------------------------------- parsing and expansion


def test_load_suite_reads_every_key(suite_dir):
    suite = load_suite(suite_file(suite_dir, GOOD))
    assert suite.name == "suite"
    assert suite.variant_names == ["max", "dbl"]
    assert [e.id for e in suite.envs] == ["CartPole-v1", "Acrobot-v1"]
    assert suite.envs[1].overrides == {"learner.lr": 0.5, "trainer.total_steps": 3000}
    assert suite.seeds == (0, 1)
    assert suite.overrides == {"learner.lr": 0.2, "eval.episodes": 3}
    assert suite.description == "two variants, two envs"


def test_expand_layout_order_and_override_precedence(suite_dir, tmp_path):
    suite = load_suite(suite_file(suite_dir, GOOD))
    out = tmp_path / "out"
    jobs = expand(suite, out, overrides=parse_cli_overrides(["eval.episodes=4"]))
    # seed-major, then env, then variant
    assert [j.key for j in jobs] == [
        "CartPole-v1/max/seed0",
        "CartPole-v1/dbl/seed0",
        "Acrobot-v1/max/seed0",
        "Acrobot-v1/dbl/seed0",
        "CartPole-v1/max/seed1",
        "CartPole-v1/dbl/seed1",
        "Acrobot-v1/max/seed1",
        "Acrobot-v1/dbl/seed1",
    ]
    assert jobs[5].run_dir == out / "CartPole-v1" / "dbl" / "seed1"
    by_key = {j.key: j.config for j in jobs}
    cart, acro = by_key["CartPole-v1/dbl/seed1"], by_key["Acrobot-v1/max/seed0"]
    assert (cart.env.id, acro.env.id) == ("CartPole-v1", "Acrobot-v1")
    assert (cart.trainer.seed, acro.trainer.seed) == (1, 0)
    assert cart.learner.lr == 0.2  # suite set beats the variant file
    assert acro.learner.lr == 0.5  # env set beats suite set
    assert (cart.trainer.total_steps, acro.trainer.total_steps) == (1000, 3000)
    assert cart.eval.episodes == acro.eval.episodes == 4  # --set comes last
    assert cart.learner.double_q and not acro.learner.double_q
    assert cart.network.hidden_sizes == (8,)  # from the extends: chain


def test_seeds_option_and_seed_list(suite_dir, tmp_path):
    body = "variants: [variants/max.yaml]\nenvs: [CartPole-v1]\nseeds: [3, 7]\n"
    suite = load_suite(suite_file(suite_dir, body))
    assert [j.seed for j in expand(suite, tmp_path)] == [3, 7]
    assert [j.seed for j in expand(suite, tmp_path, seeds=3)] == [0, 1, 2]
    with pytest.raises(ConfigError, match="--seeds: must be >= 1"):
        expand(suite, tmp_path, seeds=0)


def test_env_names_and_slashes(suite_dir, tmp_path):
    body = (
        "variants: [variants/max.yaml]\nenvs:\n  - CartPole-v1\n"
        "  - {id: CartPole-v1, name: cartpole-short, set: {env.max_episode_steps: 50}}\n"
    )
    suite = load_suite(suite_file(suite_dir, body))
    jobs = expand(suite, tmp_path, seeds=1)
    assert [j.run_dir.parent.parent.name for j in jobs] == ["CartPole-v1", "cartpole-short"]
    assert jobs[1].config.env.max_episode_steps == 50
    assert jobs[0].config.env.max_episode_steps is None


V = "variants: [variants/max.yaml]\n"
E = "envs: [CartPole-v1]\n"
BAD_SUITES = [
    ("variant: [variants/max.yaml]\n" + E, r"unknown key 'variant' \(did you mean 'variants'\?\)"),
    (E, "missing key 'variants'"),
    (V, "missing key 'envs'"),
    ("variants: []\n" + E, "variants: expected a non-empty list"),
    ("variants: [variants/max.yaml, no.yaml]\n" + E, r"variants\[1\]: config file not found: .*no"),
    (
        "variants: [variants/max.yaml, base.yaml, variants/../variants/max.yaml]\n" + E,
        r"variants\[2\]: two variants are named 'max'",
    ),
    (V + "envs: CartPole-v1\n", "envs: expected a non-empty list"),
    (V + "envs: [{idd: CartPole-v1}]\n", r"envs\[0\]: unknown key 'idd' \(did you mean 'id'\?\)"),
    (V + "envs: [{set: {}}]\n", r"envs\[0\]: 'id' must be a Gymnasium env id"),
    (V + "envs: [CartPole-v1, CartPole-v1]\n", r"envs\[1\]: env 'CartPole-v1' listed twice"),
    (V + E + "seeds: 0\n", "seeds: must be >= 1"),
    (V + E + "seeds: [1, 1]\n", "seeds: seeds must be distinct"),
    (V + E + "seeds: true\n", "seeds: expected a number of seeds"),
    (
        V + E + "set: {learner.lrr: 1}\n",
        r"set: unknown key 'learner.lrr' \(did you mean 'learner.lr'\?\)",
    ),
    (
        V + E + "set: {lerner.lr: 1}\n",
        r"set: unknown section 'lerner' \(did you mean 'learner'\?\)",
    ),
    (V + E + "set: {lr: 1}\n", "set: key 'lr' must be section.field"),
    (V + E + "set: {trainer.seed: 1}\n", "trainer.seed is set per run by the suite; use seeds:"),
    (V + "envs: [{id: CartPole-v1, set: {env.id: A}}]\n", r"envs\[0\].set: env.id is set per run"),
    ("extends: base.yaml\nlearner:\n  lr: 0.1\n", "looks like a run config, not a suite"),
    ("- a\n- b\n", "expected a mapping with 'variants'"),
    ("variants: [variants/max.yaml\n", r"suite.yaml:\d+: malformed YAML"),
]


@pytest.mark.parametrize(("body", "message"), BAD_SUITES)
def test_suite_errors_are_one_line_and_name_file_and_key(suite_dir, body, message):
    path = suite_file(suite_dir, body)
    with pytest.raises(ConfigError, match=message) as info:
        load_suite(path)
    text = str(info.value)
    assert "\n" not in text
    assert "suite.yaml" in text


def test_config_errors_name_suite_variant_and_env(suite_dir, tmp_path):
    body = "variants: [variants/max.yaml]\nenvs: [CartPole-v1]\nset: {learner.lr: -1}\n"
    suite = load_suite(suite_file(suite_dir, body))
    with pytest.raises(
        ConfigError, match=r"suite.yaml: variant 'max' on CartPole-v1: the suite's set: learner.lr"
    ):
        expand(suite, tmp_path)
    body = "variants: [variants/max.yaml]\nenvs: [CartPol-v1]\n"
    with pytest.raises(EnvError, match="CartPole-v1"):
        expand(load_suite(suite_file(suite_dir, body)), tmp_path)


def test_cli_overrides_are_checked():
    assert parse_cli_overrides(["network.hidden_sizes=[16]", "learner.lr=0.001"]) == {
        "network.hidden_sizes": [16],
        "learner.lr": 0.001,
    }
    with pytest.raises(ConfigError, match=r"--set: unknown key 'trainer.total_step'"):
        parse_cli_overrides(["trainer.total_step=5"])
    with pytest.raises(ConfigError, match="use seeds:/--seeds"):
        parse_cli_overrides(["trainer.seed=5"])
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_cli_overrides(["trainer.total_steps"])


def test_shipped_suites_change_only_their_switches():
    rainbow_jobs = expand(load_suite(ABLATIONS / "cartpole_rainbow.yaml"), Path("out"), seeds=1)
    base = {j.variant: j.config for j in rainbow_jobs}["rainbow"]
    assert base == load_config(ABLATIONS.parent / "cartpole_rainbow.yaml")
    expected = {
        "no_noisy": {
            "network.noisy",
            "exploration.epsilon_start",
            "exploration.epsilon_end",
            "exploration.epsilon_steps",
        },
        "no_dueling": {"network.dueling"},
        "no_double": {"learner.double_q"},
        "no_per": {"replay.prioritized"},
        "no_nstep": {"replay.n_step"},
        "no_distributional": {"network.atoms"},
    }
    variants = {j.variant: j.config for j in rainbow_jobs}
    assert set(variants) == {"rainbow", *expected}
    for name, keys in expected.items():
        changed = {d.key for d in config_diff(variants[name], base, ignore=RESULT_NEUTRAL_KEYS)}
        assert changed == keys, name
    no_noisy = variants["no_noisy"].exploration
    assert (no_noisy.epsilon_start, no_noisy.epsilon_end, no_noisy.epsilon_steps) == (
        1.0,
        0.05,
        5000,
    )

    # (train_every, updates_per_train, epsilon_end, epsilon_steps, lr): td_base's for
    # CartPole; the SB3 zoo's Acrobot settings via the suite's env `set:` for Acrobot.
    cadence = {
        "cartpole_td": (1, 1, 0.05, 10000, 2.3e-3),
        "acrobot_td": (4, 4, 0.1, 12000, 6.3e-4),
    }
    for suite_name, env_id in (("cartpole_td", "CartPole-v1"), ("acrobot_td", "Acrobot-v1")):
        suite = load_suite(ABLATIONS / f"{suite_name}.yaml")
        assert suite.seeds == (0, 1, 2, 3, 4)
        trio = {j.variant: j.config for j in expand(suite, Path("out"), seeds=1)}
        assert list(trio) == ["q_learning", "q_learning_target", "double_q"]
        learners = {
            n: (c.learner.double_q, c.learner.target_update_period) for n, c in trio.items()
        }
        assert learners == {
            "q_learning": (False, 0),
            "q_learning_target": (False, 500),
            "double_q": (True, 500),
        }
        for config in trio.values():
            assert config.env.id == env_id
            t, e = config.trainer, config.exploration
            every, updates, eps_end, eps_steps, lr = cadence[suite_name]
            assert (t.train_every, t.updates_per_train, t.total_steps) == (every, updates, 50000)
            assert config.replay.capacity == 50000 and config.learner.lr == lr
            assert (e.epsilon_start, e.epsilon_end, e.epsilon_steps) == (1.0, eps_end, eps_steps)
        ref = trio["q_learning_target"]
        neutral = RESULT_NEUTRAL_KEYS
        assert {d.key for d in config_diff(trio["q_learning"], ref, ignore=neutral)} == {
            "learner.target_update_period"
        }
        assert {d.key for d in config_diff(trio["double_q"], ref, ignore=neutral)} == {
            "learner.double_q"
        }


# ---------------------------------------------------------------- finished runs


def fake_finished(job: Job, config=None) -> None:
    job.run_dir.mkdir(parents=True, exist_ok=True)
    (job.run_dir / "config.yaml").write_text(dump_config(config or job.config))
    (job.run_dir / DONE_FILE).write_text(json.dumps({"env_steps": 1000}))


@pytest.fixture
def two_jobs(suite_dir, tmp_path):
    body = "variants: [variants/max.yaml, variants/dbl.yaml]\nenvs: [CartPole-v1]\nseeds: 1\n"
    return expand(load_suite(suite_file(suite_dir, body)), tmp_path / "out")


def test_is_finished_needs_a_readable_marker_and_config(two_jobs):
    job = two_jobs[0]
    assert not is_finished(job.run_dir)
    fake_finished(job)
    assert is_finished(job.run_dir)
    (job.run_dir / DONE_FILE).write_text('{"env_steps": 10')  # torn write
    assert not is_finished(job.run_dir)
    fake_finished(job)
    (job.run_dir / "config.yaml").unlink()
    assert not is_finished(job.run_dir)


def test_a_failed_marker_write_keeps_the_old_marker_and_leaves_no_temp_file(tmp_path, monkeypatch):
    from rlkit.app.experiments import write_json_atomic

    marker = tmp_path / DONE_FILE
    write_json_atomic(marker, {"env_steps": 10})
    assert json.loads(marker.read_text()) == {"env_steps": 10}

    def crash(src, dst):  # interrupted between writing the temp file and renaming it
        raise OSError("No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="No space"):
        write_json_atomic(marker, {"env_steps": 20})
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == [DONE_FILE]
    assert json.loads(marker.read_text()) == {"env_steps": 10}


def test_plan_skips_finished_and_reruns_unfinished(two_jobs):
    done, partial = two_jobs
    fake_finished(done)
    partial.run_dir.mkdir(parents=True)
    (partial.run_dir / "metrics.jsonl").write_text('{"env_steps": 10}\n')  # no marker
    finished, todo = plan(two_jobs)
    assert finished == [done]
    assert todo == [partial]


def test_plan_refuses_a_finished_run_with_another_config(two_jobs):
    import dataclasses

    job = two_jobs[0]
    other = dataclasses.replace(job.config, learner=dataclasses.replace(job.config.learner, lr=0.5))
    fake_finished(job, other)
    expected = (
        r"seed0 finished with a different config \(learner.lr: run has 0.5, suite gives 0.01\)"
    )
    with pytest.raises(ConfigError, match=expected):
        plan(two_jobs)
    # a device or thread count difference does not change results: still skipped
    neutral = dataclasses.replace(
        job.config, trainer=dataclasses.replace(job.config.trainer, device="cpu", num_threads=3)
    )
    fake_finished(job, neutral)
    assert plan(two_jobs)[0] == [job]


# ---------------------------------------------------------------- runner (fake workers)


def fake_worker(job: Job, threads: int, conn) -> None:
    """Stands in for ablate.worker_main in a spawned process: logs, finishes or fails."""
    from rlkit.app.experiments import JobResult, write_json_atomic

    assert threads >= 1
    job.run_dir.mkdir(parents=True, exist_ok=True)
    if job.variant == "dbl":
        conn.send(JobResult("failed", "ValueError: boom", 40))
        conn.close()
        return
    total = job.config.trainer.total_steps
    with open(job.run_dir / "metrics.jsonl", "w") as f:
        f.write(json.dumps({"env_steps": total, "eval/return_mean": 7.0}) + "\n")
    write_json_atomic(job.run_dir / DONE_FILE, {"env_steps": total})
    conn.send(JobResult("finished", "final eval return 7.0", total))
    conn.close()


def resuming_worker(job: Job, threads: int, conn) -> None:
    """A resumed run: appends its last line to the metrics of an earlier attempt."""
    from rlkit.app.experiments import JobResult

    total = job.config.trainer.total_steps
    with open(job.run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"env_steps": total}) + "\n")
    conn.send(JobResult("finished", "done", total))
    conn.close()


def test_run_jobs_rate_leaves_out_the_steps_of_an_earlier_attempt(two_jobs):
    # one run of 10^9 steps whose earlier attempt logged 10^9 - 10: this attempt trains
    # 10 steps, so its rate is 10 / (seconds taken) -- under 1,000 steps/s unless the
    # run took under 10 ms. Counting the earlier 10^9 would show 10^9 / seconds taken.
    job = two_jobs[0]
    total = 10**9
    trainer = dataclasses.replace(job.config.trainer, total_steps=total)
    job = dataclasses.replace(job, config=dataclasses.replace(job.config, trainer=trainer))
    job.run_dir.mkdir(parents=True)
    (job.run_dir / "metrics.jsonl").write_text(json.dumps({"env_steps": total - 10}) + "\n")
    stream = io.StringIO()
    run_jobs([job], workers=1, stream=stream, target=resuming_worker)
    bars = [line for line in stream.getvalue().splitlines() if "steps/s" in line]
    last = bars[-1]
    assert last.startswith("100.0% | 1,000,000,000/1,000,000,000 env steps"), last
    rate = float(last.split("| ")[3].split(" steps/s")[0].replace(",", ""))
    assert rate < 1000, last


def crashing_worker(job: Job, threads: int, conn) -> None:
    os._exit(3)  # dies without sending a result


def test_run_jobs_reports_finished_and_failed_runs(two_jobs):
    stream = io.StringIO()
    outcome = run_jobs(two_jobs, workers=2, stream=stream, target=fake_worker)
    assert {k: r.status for k, r in outcome.results.items()} == {
        "CartPole-v1/max/seed0": "finished",
        "CartPole-v1/dbl/seed0": "failed",
    }
    text = stream.getvalue()
    assert "failed CartPole-v1/dbl/seed0" in text and "ValueError: boom" in text
    assert "train.log" in text
    assert is_finished(two_jobs[0].run_dir) is False  # fake wrote no config.yaml
    assert (two_jobs[0].run_dir / DONE_FILE).is_file()
    # a worker that dies is a failure naming its exit code
    outcome = run_jobs(two_jobs[:1], workers=1, stream=io.StringIO(), target=crashing_worker)
    result = outcome.results["CartPole-v1/max/seed0"]
    assert (result.status, result.message) == ("failed", "worker exited with code 3")


def sleeping_worker(job: Job, threads: int, conn) -> None:
    """Stands in for a run that trains until it is told to stop: records its pid, and on
    SIGINT (KeyboardInterrupt) records that it stopped and reports ``stopped``."""
    from rlkit.app.experiments import JobResult

    job.run_dir.mkdir(parents=True, exist_ok=True)
    (job.run_dir / "pid").write_text(str(os.getpid()))
    try:
        while True:
            time.sleep(0.02)
    except KeyboardInterrupt:
        (job.run_dir / "stopped").write_text("checkpointed")
        conn.send(JobResult("stopped", "interrupted"))
        conn.close()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_sigterm_to_the_runner_stops_its_running_runs_gracefully_and_starts_no_more(tmp_path):
    # `kill PID` reaches the runner only (Ctrl-C reaches the whole process group): the
    # runner must pass the stop on, or its workers train on with nobody watching them
    code = f"""
import io
from pathlib import Path
from rlkit.app.experiments import Job, run_jobs
from rlkit.config import Config
from tests.unit.test_suite import sleeping_worker
out = Path({str(tmp_path)!r})
jobs = [Job(v, "CartPole-v1", 0, Config(), out / v) for v in ("a", "b", "c")]
outcome = run_jobs(jobs, workers=2, stream=io.StringIO(), target=sleeping_worker)
print(sorted((k, r.status) for k, r in outcome.results.items()))
"""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=root, stdout=subprocess.PIPE, text=True
    )
    pid_files = [tmp_path / v / "pid" for v in ("a", "b")]
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while not all(p.is_file() and p.read_text() for p in pid_files):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        workers = [int(p.read_text()) for p in pid_files]
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:  # on a failure, leave no process behind
        for pid in [proc.pid, *workers]:
            if not process_gone(pid):
                os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 0
    assert out.strip() == str(
        [("CartPole-v1/a/seed0", "stopped"), ("CartPole-v1/b/seed0", "stopped")]
    )
    assert [(tmp_path / v / "stopped").is_file() for v in ("a", "b")] == [True, True]
    assert not (tmp_path / "c").exists()  # the third run never started
    assert all(process_gone(pid) for pid in workers)


def test_a_worker_whose_runner_is_gone_stops_as_on_ctrl_c():
    from rlkit.app.experiments.worker import watch_parent

    # its parent unchanged: the watcher never interrupts and ends when told to
    stop = threading.Event()
    watcher = threading.Thread(target=watch_parent, args=(os.getppid(), stop, 0.01))
    watcher.start()
    time.sleep(0.2)
    stop.set()
    watcher.join(timeout=5)
    assert not watcher.is_alive()
    # its parent changed (the runner died, the worker was reparented): KeyboardInterrupt
    # in the main thread, which a run handles as Ctrl-C (checkpoint, stop)
    # (under Python's own SIGINT handler: an earlier test's library may have left its own)
    stop = threading.Event()
    watcher = threading.Thread(target=watch_parent, args=(os.getppid() + 1, stop, 0.01))
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            watcher.start()
            for _ in range(500):
                time.sleep(0.01)
    finally:
        signal.signal(signal.SIGINT, previous)
        stop.set()
        watcher.join(timeout=5)


def test_metrics_tail_ignores_stale_files_and_follows_rewrites(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"env_steps": 900}\n')
    old = time.time_ns() - 10**9
    os.utime(path, ns=(old, old))
    tail = MetricsTail(path, since_ns=time.time_ns())
    assert tail.poll() == 0  # left over from an earlier attempt
    path.unlink()
    assert tail.poll() == 0
    with open(path, "w") as f:
        f.write('{"env_steps": 100}\n{"env_steps": 200}\n{"env_st')  # torn last line
        f.flush()
        assert tail.poll() == 200
        f.write('eps": 300}\n')
        f.flush()
        assert tail.poll() == 300
    path.write_text('{"env_steps": 50}\n')  # replaced by a new attempt
    assert tail.poll() == 50


def test_metrics_tail_start_is_what_an_earlier_attempt_reached(tmp_path):
    path = tmp_path / "metrics.jsonl"
    assert MetricsTail(path, since_ns=time.time_ns()).start == 0  # no file: a fresh run
    path.write_text('{"env_steps": 700}\n{"eval/x": 1}\n{"env_steps": 900}\n{"env_st')
    old = time.time_ns() - 10**9
    os.utime(path, ns=(old, old))
    tail = MetricsTail(path, since_ns=time.time_ns())
    assert tail.start == 900  # last complete line with env_steps (the torn one is not)
    assert tail.poll() == 0 and tail.new_steps() == 0  # stale file; never negative
    with open(path, "a") as f:
        f.write('eps": 950}\n{"env_steps": 960}\n')  # the resumed attempt appends
    assert tail.poll() == 960 and tail.new_steps() == 960 - 900


# ---------------------------------------------------------------- aggregation


def write_metrics(run_dir: Path, evals: list[dict[str, float]], steps=(100, 200, 300)) -> None:
    """metrics.jsonl through the real JSONL logger (which writes NaN as null)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    logger = JSONLLogger(run_dir / "metrics.jsonl")
    for i, step in enumerate(steps):
        logger.log(step - 50, {"train/loss": 1.0})
        logger.log(step, {k: float(v[i]) for k, v in evals.items()})
    logger.close()


NAN = math.nan
# four seeds: final returns 10, 20, 40, 100
SEEDS = [
    {
        "eval/return_mean": [0, 0, 10],
        "eval/overestimation": [1, 2, 3],
        "eval/q_pred": [0, 0, 5],
        "eval/return_discounted": [0, 0, 4],
    },
    {
        "eval/return_mean": [0, 10, 20],
        "eval/overestimation": [NAN, 4, 2],
        "eval/q_pred": [0, 0, 6],
        "eval/return_discounted": [0, 0, 4],
    },
    {
        "eval/return_mean": [20, 40, 40],
        "eval/overestimation": [NAN, NAN, NAN],
        "eval/q_pred": [0, 0, 7],
        "eval/return_discounted": [0, 0, 4],
    },
    {
        "eval/return_mean": [100, 100, 100],
        "eval/overestimation": [0, 0, -1],
        "eval/q_pred": [0, 0, 8],
        "eval/return_discounted": [0, 0, 9],
    },
]


def summaries(tmp_path: Path) -> list[RunSummary]:
    out = []
    for i, evals in enumerate(SEEDS):
        write_metrics(tmp_path / f"seed{i}", evals)
        records = [json.loads(line) for line in open(tmp_path / f"seed{i}" / "metrics.jsonl")]
        out.append(summarize_run(records))
    return out


def test_summarize_run_hand_computed(tmp_path):
    s = summaries(tmp_path)
    assert [r.final_return for r in s] == [10, 20, 40, 100]
    # trapezoids over 200 env steps: (100*0 + 100*5)/200, (100*5 + 100*15)/200, ...
    assert [r.auc for r in s] == [2.5, 10.0, 35.0, 100.0]
    assert s[0].overestimation_final == 3 and s[0].overestimation_mean == 2
    assert s[1].overestimation_final == 2 and s[1].overestimation_mean == 3  # NaN skipped
    assert math.isnan(s[2].overestimation_final) and math.isnan(s[2].overestimation_mean)
    assert s[3].overestimation_mean == pytest.approx(-1 / 3)
    assert [r.q_pred_final for r in s] == [5, 6, 7, 8]
    assert summarize_run([{"env_steps": 5, "train/loss": 1.0}]) is None


def test_aggregate_hand_computed(tmp_path):
    row = aggregate("CartPole-v1", "rainbow", summaries(tmp_path))
    assert row.n_seeds == 4
    assert row.final_mean == 42.5
    assert row.final_iqm == 30.0  # mean of the middle two of 10, 20, 40, 100
    ci = stats.stratified_bootstrap_ci([[10, 20, 40, 100]], stats.iqm)
    assert (row.final_iqm_ci_low, row.final_iqm_ci_high) == ci
    assert 10 <= row.final_iqm_ci_low < 30 < row.final_iqm_ci_high <= 100
    assert row.auc_mean == pytest.approx((2.5 + 10 + 35 + 100) / 4)
    assert row.overestimation_final == pytest.approx((3 + 2 - 1) / 3)
    assert row.overestimation_mean == pytest.approx((2 + 3 - 1 / 3) / 3)
    assert row.q_pred_final == 6.5
    assert row.return_discounted_final == 5.25
    empty = aggregate("CartPole-v1", "none", [])
    assert empty.n_seeds == 0 and math.isnan(empty.final_mean)


def test_series_drops_points_superseded_after_a_resume():
    records = [
        {"env_steps": 100, "eval/return_mean": 1.0},
        {"env_steps": 150, "train/loss": 0.5},
        {"env_steps": 200, "eval/return_mean": 2.0},
        {"env_steps": 300, "eval/return_mean": 3.0},
        # resumed from a checkpoint at 150: steps 200 and 300 are logged again
        {"env_steps": 200, "eval/return_mean": 20.0},
        {"env_steps": 300, "eval/return_mean": None},  # NaN, as metrics.jsonl writes it
    ]
    s = series_from_records(records, "eval/return_mean")
    assert s.steps.tolist() == [100, 200, 300]
    assert s.values[:2].tolist() == [1.0, 20.0] and math.isnan(s.values[2])
    # files of older versions wrote non-finite values as strings
    old = [{"env_steps": 1, "x": "nan"}, {"env_steps": 2, "x": "-inf"}]
    values = series_from_records(old, "x").values
    assert math.isnan(values[0]) and values[1] == -math.inf


def test_mean_band_min_max_and_bootstrap():
    a = Series(np.array([0, 100, 200]), np.array([0.0, 10.0, 20.0]))
    b = Series(np.array([0, 100, 200]), np.array([2.0, 30.0, 20.0]))
    band = mean_band([a, b])
    assert band.n == 2
    assert band.mean.tolist() == [1.0, 20.0, 20.0]
    assert band.low.tolist() == [0.0, 10.0, 20.0] and band.high.tolist() == [2.0, 30.0, 20.0]
    # a seed that logged other steps is interpolated on the common range [0, 200]
    c = Series(np.array([0, 50, 200, 300]), np.array([4.0, 5.0, 8.0, 9.0]))
    band = mean_band([a, c])
    assert band.steps.tolist() == [0, 50, 100, 200]
    assert band.mean.tolist() == [2.0, 5.0, 8.0, 14.0]  # c at 100 is 6 (interpolated)
    # with >= 3 seeds: a bootstrap CI of the mean, inside [min, max]
    d = Series(np.array([0, 100, 200]), np.array([1.0, 50.0, 20.0]))
    band = mean_band([a, b, d])
    assert band.n == 3
    assert np.all(band.low <= band.mean) and np.all(band.mean <= band.high)
    assert band.low[1] >= 10.0 and band.high[1] <= 50.0 and band.high[1] > band.low[1]
    assert band.low[2] == band.high[2] == 20.0
    assert mean_band([]) is None


def test_collect_write_csv_and_markdown(suite_dir, tmp_path):
    body = "variants: [variants/max.yaml, variants/dbl.yaml]\nenvs: [CartPole-v1]\nseeds: 4\n"
    suite = load_suite(suite_file(suite_dir, body))
    out = tmp_path / "out"
    jobs = expand(suite, out)
    for job in jobs:
        if job.variant == "max":
            write_metrics(job.run_dir, SEEDS[job.seed])
            fake_finished(job)
        elif job.seed == 0:  # unfinished: has metrics but no marker, must be left out
            write_metrics(job.run_dir, SEEDS[3])
    results = collect_results(suite, jobs)
    assert results.finished == 4
    assert results.missing == [j.key for j in jobs if j.variant == "dbl"]
    write_csv(results.rows, out / "results.csv")
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [(r["env"], r["variant"], r["n_seeds"]) for r in rows] == [
        ("CartPole-v1", "max", "4"),
        ("CartPole-v1", "dbl", "0"),
    ]
    assert float(rows[0]["final_mean"]) == 42.5 and float(rows[0]["final_iqm"]) == 30.0
    assert float(rows[0]["auc_mean"]) == pytest.approx(36.875)
    assert float(rows[0]["q_pred_final"]) == 6.5
    assert rows[1]["final_mean"] == ""  # no finished seed: empty cells
    text = render_markdown(
        suite,
        results,
        out=out,
        seeds=[0, 1, 2, 3],
        command="rlkit ablate suite.yaml --workers 2",
        curves_file="curves.png",
        date="2024-01-02 03:04",
    )
    assert "`rlkit ablate suite.yaml --workers 2`" in text
    assert "2024-01-02 03:04" in text
    assert "4 per variant and env (0, 1, 2, 3); 4 of 8 runs finished" in text
    assert "| max | 4 | 42.5 | 30.0 [" in text
    assert "| dbl | 0 | – |" in text
    assert "![learning curves and overestimation](curves.png)" in text


def test_probability_of_improvement_over_the_first_variant(suite_dir, tmp_path):
    """Final returns (last eval) per seed 0, 1; max is the suite's first variant:
    CartPole  max [10, 20]     dbl [20, 30]: 20>10 1, 20=20 1/2, 30>10 1, 30>20 1 -> 3.5/4
    Acrobot   max [-100, -200] dbl [-300, -50]: -300 loses both, -50 wins both -> 2/4
    over both envs: (0.875 + 0.5) / 2 = 0.6875; max against itself: 1/2 on each env.
    Seed 1 of dbl on Acrobot is unfinished in a second pass: Acrobot then has
    dbl [-300] (0 of 2) and the overall value is (0.875 + 0) / 2 = 0.4375."""
    body = "variants: [variants/max.yaml, variants/dbl.yaml]\n"
    body += "envs: [CartPole-v1, Acrobot-v1]\nseeds: 2\n"
    suite = load_suite(suite_file(suite_dir, body))
    finals = {
        ("CartPole-v1", "max"): [10, 20],
        ("CartPole-v1", "dbl"): [20, 30],
        ("Acrobot-v1", "max"): [-100, -200],
        ("Acrobot-v1", "dbl"): [-300, -50],
    }
    out = tmp_path / "out"
    jobs = expand(suite, out)
    for job in jobs:
        write_metrics(
            job.run_dir, {"eval/return_mean": [0, 0, finals[(job.env, job.variant)][job.seed]]}
        )
        fake_finished(job)
    results = collect_results(suite, jobs)
    p = {(r.env, r.variant): r.p_improvement for r in results.rows}
    assert p == {
        ("CartPole-v1", "max"): 0.5,
        ("CartPole-v1", "dbl"): 0.875,
        ("Acrobot-v1", "max"): 0.5,
        ("Acrobot-v1", "dbl"): 0.5,
    }
    assert results.reference == "max"
    (overall,) = results.improvements
    assert (overall.variant, overall.envs) == ("dbl", ("CartPole-v1", "Acrobot-v1"))
    assert overall.p == 0.6875 and overall.ci_low <= 0.6875 <= overall.ci_high
    write_csv(results.rows, out / "results.csv")
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [float(r["p_improvement"]) for r in rows] == [0.5, 0.875, 0.5, 0.5]
    text = render_markdown(
        suite, results, out=out, seeds=[0, 1], command="c", curves_file=None, date="d"
    )
    assert "## Probability of improvement over max" in text
    assert "| variant | CartPole-v1 | Acrobot-v1 | all envs |" in text
    assert "| dbl | 0.88 [" in text and "| 0.69 [" in text
    (out / "Acrobot-v1" / "dbl" / "seed1" / "done.json").unlink()
    results = collect_results(suite, jobs)
    assert results.improvements[0].p == 0.4375


def test_report_without_matplotlib_still_writes_csv_and_md(suite_dir, tmp_path, monkeypatch):
    body = "variants: [variants/max.yaml]\nenvs: [CartPole-v1]\nseeds: 1\n"
    suite = load_suite(suite_file(suite_dir, body))
    jobs = expand(suite, tmp_path / "out")
    write_metrics(jobs[0].run_dir, SEEDS[0])
    fake_finished(jobs[0])
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    stream = io.StringIO()
    write_report(suite, jobs, tmp_path / "out", command="rlkit ablate x", stream=stream)
    assert "curves.png not written" in stream.getvalue()
    assert "pip install 'rlkit[plot]'" in stream.getvalue()
    assert (tmp_path / "out" / "results.csv").is_file()
    assert "curves.png" not in (tmp_path / "out" / "report.md").read_text()
    assert not (tmp_path / "out" / "curves.png").exists()


def test_command_line_reconstruction():
    argv = ["/venv/bin/rlkit", "ablate", "s.yaml", "--set", "network.hidden_sizes=[16]"]
    assert (
        command_line(argv, ["ignored"]) == "rlkit ablate s.yaml --set 'network.hidden_sizes=[16]'"
    )
    assert command_line(["pytest", "-q"], ["s.yaml", "--workers", "2"]) == (
        "rlkit ablate s.yaml --workers 2"
    )


def test_the_loop_modes_suite_differs_only_in_the_loop():
    suite = load_suite(ABLATIONS / "minatar_modes.yaml")
    assert suite.seeds == (0, 1, 2)
    runs = {j.variant: j.config for j in expand(suite, Path("out"), seeds=1)}
    assert list(runs) == ["minatar_sync", "minatar_async"]
    sync, asynchronous = runs["minatar_sync"], runs["minatar_async"]
    assert (sync.trainer.mode, asynchronous.trainer.mode) == ("sync", "async")
    assert asynchronous.trainer.actor_lag == 64
    same_trainer = dataclasses.replace(asynchronous.trainer, mode="sync")
    assert dataclasses.replace(asynchronous, trainer=same_trainer) == sync
    assert sync.env.id == "MinAtar/Breakout-v1" and sync.trainer.total_steps == 60000


def test_heads_suite_swaps_only_the_head():
    """configs/ablations/heads.yaml: C51, QR, IQN, scalar and scalar and IQN with
    Munchausen inside the same Rainbow; every other key equal to the default config's."""
    suite = load_suite(ABLATIONS / "heads.yaml")
    jobs = expand(suite, Path("out"), seeds=1)
    base = load_config(ABLATIONS.parent / "cartpole_rainbow.yaml")
    heads = {}
    for job in jobs:
        n, lc = job.config.network, job.config.learner
        heads[(job.config.env.id, job.variant)] = (n.head, n.atoms, lc.munchausen)
        head_keys = ("head", "atoms", "iqn_target_quantiles", "iqn_acting_quantiles")
        same = dataclasses.replace(
            job.config,
            env=base.env,
            network=dataclasses.replace(n, **{k: getattr(base.network, k) for k in head_keys}),
            learner=dataclasses.replace(lc, munchausen=False),
        )
        assert same == base, job.variant
    expected = {
        "rainbow": ("auto", 51, False),
        "rainbow_qr": ("qr", 32, False),
        "rainbow_iqn": ("iqn", 32, False),
        "no_distributional": ("auto", 1, False),
        "rainbow_munchausen": ("auto", 1, True),
        "rainbow_miqn": ("iqn", 32, True),
    }
    for env_id in ("CartPole-v1", "Acrobot-v1"):
        assert {v: heads[(env_id, v)] for v in expected} == expected


def test_minatar_heads_suite_swaps_only_the_head():
    """configs/ablations/minatar_heads.yaml: Rainbow-C51, Rainbow-IQN and M-DQN on
    MinAtar differ in the head keys (and Munchausen) only, at 1M env steps."""
    suite = load_suite(ABLATIONS / "minatar_heads.yaml")
    assert suite.seeds == (0, 1, 2)
    jobs = expand(suite, Path("out"), seeds=1)
    runs = {(j.env, j.variant): j.config for j in jobs}
    assert sorted({v for _, v in runs}) == ["rainbow", "rainbow_iqn", "rainbow_munchausen"]
    c51 = runs[("MinAtar-Breakout-v1", "rainbow")]
    assert (c51.network.head, c51.network.atoms, c51.network.v_min) == ("auto", 51, -100.0)
    assert c51.trainer.total_steps == 1_000_000 and c51.replay.prioritized
    keys = ("head", "atoms", "iqn_target_quantiles", "iqn_acting_quantiles", "iqn_cosines")
    for (env_name, variant), config in runs.items():
        base = runs[(env_name, "rainbow")]
        network = dataclasses.replace(config.network, **{k: getattr(base.network, k) for k in keys})
        learner = dataclasses.replace(config.learner, munchausen=False)
        assert dataclasses.replace(config, network=network, learner=learner) == base, variant
    iqn = runs[("MinAtar-Breakout-v1", "rainbow_iqn")].network
    assert (iqn.head, iqn.atoms, iqn.iqn_target_quantiles, iqn.iqn_acting_quantiles) == (
        "iqn",
        32,
        32,
        32,
    )
    assert runs[("MinAtar-Asterix-v1", "rainbow_munchausen")].learner.munchausen


def test_minatar_breakout_suite_is_the_heads_suite_on_breakout():
    """configs/ablations/minatar_breakout_heads.yaml (behind docs/results/minatar_breakout/):
    exactly the Breakout runs of minatar_heads.yaml, nine of them, configs equal."""
    full = {
        (j.env, j.variant, j.seed): j.config
        for j in expand(load_suite(ABLATIONS / "minatar_heads.yaml"), Path("out"), seeds=3)
    }
    small = expand(load_suite(ABLATIONS / "minatar_breakout_heads.yaml"), Path("out"), seeds=3)
    assert len(small) == 3 * 3 and {j.env for j in small} == {"MinAtar-Breakout-v1"}
    assert {j.variant for j in small} == {"rainbow", "rainbow_iqn", "rainbow_munchausen"}
    for job in small:
        assert job.config == full[(job.env, job.variant, job.seed)], job.variant
        assert job.config.trainer.total_steps == 1_000_000


def test_munchausen_suite_crosses_the_target_with_the_exploration():
    """configs/ablations/munchausen.yaml: Munchausen on/off x noisy nets / epsilon-greedy
    on the scalar head; each variant is the default config with exactly its switches."""
    suite = load_suite(ABLATIONS / "munchausen.yaml")
    jobs = expand(suite, Path("out"), seeds=1)
    base = load_config(ABLATIONS.parent / "cartpole_rainbow.yaml")
    scalar = dataclasses.replace(base, network=dataclasses.replace(base.network, atoms=1))
    # epsilon-greedy: 1 -> 0.01 over the first 10,000 env steps in place of noisy layers
    greedy = dataclasses.replace(
        scalar,
        network=dataclasses.replace(scalar.network, noisy=False),
        exploration=dataclasses.replace(
            base.exploration, epsilon_start=1.0, epsilon_end=0.01, epsilon_steps=10000
        ),
    )
    expected = {
        "no_distributional": (scalar, False),
        "rainbow_munchausen": (scalar, True),
        "scalar_egreedy": (greedy, False),
        "munchausen_egreedy": (greedy, True),
    }
    assert sorted({(j.env, j.variant) for j in jobs}) == sorted(
        (env, v) for env in ("CartPole-v1", "Acrobot-v1") for v in expected
    )
    for job in jobs:
        config, munchausen = expected[job.variant]
        assert job.config.learner.munchausen is munchausen, job.variant
        learner = dataclasses.replace(job.config.learner, munchausen=False)
        assert dataclasses.replace(job.config, env=base.env, learner=learner) == config
