"""Exact resume: a run killed (SIGKILL) or stopped (SIGINT) after a checkpoint and
resumed with ``rlkit train --resume`` ends with the same metrics and parameters as the
same run left alone. Runs are real ``python -m rlkit`` processes on CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rlkit.checkpoint import list_checkpoints, load_checkpoint
from tests.e2e.cli_process import ROOT, rlkit

# Plain DQN (uniform replay, phases of updates, the fast MLP path), small and quick.
DQN = [
    "trainer.device=cpu",
    "trainer.total_steps=12000",
    "trainer.learning_starts=500",
    "trainer.train_every=64",
    "trainer.updates_per_train=16",
    "trainer.checkpoint_every=1000",
    "trainer.log_every=300",  # logging windows straddle checkpoints
    "network.hidden_sizes=[32, 32]",
    "eval.every=3000",
    "eval.episodes=3",
]
# Rainbow (noisy nets, PER, 3-step, C51, one update per step), two envs.
RAINBOW = [
    "trainer.device=cpu",
    "trainer.total_steps=2400",
    "trainer.learning_starts=200",
    "trainer.checkpoint_every=400",
    "trainer.log_every=150",
    "env.num_envs=2",
    "network.hidden_sizes=[32]",
    "network.head_hidden=32",
    "network.atoms=11",
    "learner.batch_size=32",
    "eval.every=800",
    "eval.episodes=3",
]


def sets(items: list[str]) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


def start(run_dir: Path, config: str, items: list[str]) -> subprocess.Popen:
    env = dict(os.environ)  # keep a PYTHONPATH that provides dependencies
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-m", "rlkit", "train", config, "--run-dir", str(run_dir), *sets(items)],
        cwd=run_dir.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_checkpoint(proc: subprocess.Popen, run_dir: Path, min_steps: int) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        found = list_checkpoints(run_dir / "checkpoints")
        if found and int(found[-1].stem.split("_")[1]) >= min_steps:
            return
        if proc.poll() is not None:
            pytest.fail(f"run ended before a checkpoint at {min_steps}: {proc.stderr.read()}")
        time.sleep(0.01)
    proc.kill()
    pytest.fail("no checkpoint in time")


def metrics(run_dir: Path) -> list[dict]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in records]


def final_params(run_dir: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(list_checkpoints(run_dir / "checkpoints")[-1])
    return {
        **{f"online.{k}": v for k, v in state["learner"]["online"].items()},
        **{f"target.{k}": v for k, v in state["learner"]["target"].items()},
    }


def reference(tmp_path: Path, config: str, items: list[str]) -> Path:
    run_dir = tmp_path / "reference"
    done = rlkit("train", config, "--run-dir", str(run_dir), *sets(items), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return run_dir


def assert_same_run(a: Path, b: Path) -> None:
    ma, mb = metrics(a), metrics(b)
    assert [r["env_steps"] for r in mb] == [r["env_steps"] for r in ma]  # no point twice
    assert mb == ma
    pa, pb = final_params(a), final_params(b)
    assert pa.keys() == pb.keys()
    for key in pa:
        assert torch.equal(pa[key], pb[key]), key


def tensorboard_steps(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir))  # applies purge_step like TensorBoard does
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_sigkill_after_a_checkpoint_then_resume_is_identical(tmp_path):
    config = "configs/cartpole_dqn.yaml"
    config = str(ROOT / config)
    ref = reference(tmp_path, config, DQN)
    run_dir = tmp_path / "killed"
    proc = start(run_dir, config, DQN)
    wait_for_checkpoint(proc, run_dir, 4000)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL  # killed mid-run, not finished
    resumed = rlkit("train", "--resume", str(run_dir), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout
    assert_same_run(ref, run_dir)
    ref_tb = tensorboard_steps(ref, "train/loss")
    assert tensorboard_steps(run_dir, "train/loss") == ref_tb


def test_sigint_stops_cleanly_then_resume_is_identical(tmp_path):
    config = str(ROOT / "configs" / "cartpole_rainbow.yaml")
    ref = reference(tmp_path, config, RAINBOW)
    run_dir = tmp_path / "stopped"
    proc = start(run_dir, config, RAINBOW)
    wait_for_checkpoint(proc, run_dir, 800)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert f"continue with: rlkit train --resume {run_dir}" in out
    stopped_at = int(list_checkpoints(run_dir / "checkpoints")[-1].stem.split("_")[1])
    assert stopped_at < 2400
    resumed = rlkit("train", "--resume", str(run_dir), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(ref, run_dir)


def test_sigterm_checkpoints_and_says_how_to_resume(tmp_path):
    run_dir = tmp_path / "terminated"
    proc = start(run_dir, str(ROOT / "configs" / "cartpole_dqn.yaml"), DQN)
    wait_for_checkpoint(proc, run_dir, 1000)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert f"continue with: rlkit train --resume {run_dir}" in out
    last = list_checkpoints(run_dir / "checkpoints")[-1]
    steps = int(last.stem.split("_")[1])
    assert 1000 <= steps < 12000
    assert load_checkpoint(last)["env_steps"] == steps  # the stop step was checkpointed
