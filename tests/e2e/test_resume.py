"""Exact resume: a run killed (SIGKILL) or stopped (SIGINT) after a checkpoint and
resumed with ``rlkit train --resume`` ends with the same metrics and parameters as the
same run left alone. Runs are real ``python -m rlkit`` processes on CPU."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from rlkit.app.checkpoint import list_checkpoints, load_checkpoint
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


def start(run_dir: Path, config: str, items: list[str], stdout=subprocess.PIPE) -> subprocess.Popen:
    env = dict(os.environ)  # keep a PYTHONPATH that provides dependencies
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-m", "rlkit", "train", config, "--run-dir", str(run_dir), *sets(items)],
        cwd=run_dir.parent,
        env=env,
        stdout=stdout,
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


class Reference:
    """The same run left alone, in a process of its own started first: it runs beside
    the interrupted one (each uses one torch thread, so two cores run both at once)."""

    def __init__(self, tmp_path: Path, config: str, items: list[str]) -> None:
        self.run_dir = tmp_path / "reference"
        self._out = open(tmp_path / "reference.out", "w")  # never a full pipe
        self.proc = start(self.run_dir, config, items, stdout=self._out)

    def finished(self) -> Path:
        """Its run dir, once it ended with exit code 0."""
        _, err = self.proc.communicate(timeout=300)
        self._out.close()
        assert self.proc.returncode == 0, err
        return self.run_dir

    def close(self) -> None:
        """Kill it if still running (a test failed before ``finished``)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()
        self._out.close()


@pytest.fixture
def reference(tmp_path):
    """``reference(config, items)`` starts the test's Reference; closed at teardown."""
    started: list[Reference] = []

    def begin(config: str, items: list[str]) -> Reference:
        started.append(Reference(tmp_path, config, items))
        return started[-1]

    yield begin
    for ref in started:
        ref.close()


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


def test_sigkill_after_a_checkpoint_then_resume_is_identical(tmp_path, reference):
    config = "configs/cartpole_dqn.yaml"
    config = str(ROOT / config)
    ref = reference(config, DQN)
    run_dir = tmp_path / "killed"
    proc = start(run_dir, config, DQN)
    wait_for_checkpoint(proc, run_dir, 4000)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL  # killed mid-run, not finished
    resumed = rlkit("train", "--resume", str(run_dir), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout
    assert_same_run(ref.finished(), run_dir)
    ref_tb = tensorboard_steps(ref.run_dir, "train/loss")
    assert tensorboard_steps(run_dir, "train/loss") == ref_tb


# IQN draws fractions from torch's generator in every forward, acting included
IQN = ["network.head=iqn", "network.iqn_target_quantiles=6", "network.iqn_acting_quantiles=4"]


@pytest.mark.parametrize("head", ["c51", "iqn"])
def test_sigint_stops_cleanly_then_resume_is_identical(tmp_path, head, reference):
    config = str(ROOT / "configs" / "cartpole_rainbow.yaml")
    items = RAINBOW if head == "c51" else [*RAINBOW, *IQN]
    ref = reference(config, items)
    run_dir = tmp_path / "stopped"
    proc = start(run_dir, config, items)
    wait_for_checkpoint(proc, run_dir, 800)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert f"continue with: rlkit train --resume {run_dir}" in out
    stopped_at = int(list_checkpoints(run_dir / "checkpoints")[-1].stem.split("_")[1])
    assert stopped_at < 2400
    resumed = rlkit("train", "--resume", str(run_dir), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(ref.finished(), run_dir)


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


# ---------------------------------------------------------------- every generator, in-process

GENERATORS = [
    "trainer.device=cpu",
    "trainer.total_steps=600",
    "trainer.learning_starts=200",
    "trainer.train_every=20",
    "trainer.checkpoint_every=300",
    "network.hidden_sizes=[16]",
    "network.noisy=true",  # training draws from torch's generator (noise), not only build
    "replay.prioritized=true",
    "eval.every=300",
    "eval.episodes=2",
    "eval.epsilon=0.3",  # evaluation draws from its own generator too
]


def _train_and_keep_open(run_dir: Path, items: list[str], monkeypatch):
    """``rlkit.app.run.train`` in-process, with the components left open (envs usable)."""
    from rlkit import build as build_module
    from rlkit.app.run import train
    from rlkit.config import load_config

    monkeypatch.setattr(build_module.Components, "close", lambda self: None)
    threads = torch.get_num_threads()
    try:
        config = load_config(ROOT / "configs" / "cartpole_dqn.yaml", items)
        components, _ = train(config, run_dir, stream=io.StringIO())
    finally:
        torch.set_num_threads(threads)
        torch.set_flush_denormal(False)
    monkeypatch.undo()
    return config, components


def _play(envs, steps: int) -> list:
    """Step ``envs`` with a fixed action sequence; everything they return."""
    actions = np.random.default_rng(123).integers(0, 2, size=(steps, envs.num_envs))
    return [envs.step(a)[:4] for a in actions]


@pytest.mark.parametrize("save_replay", [True, False])
def test_restore_puts_back_every_generator(tmp_path, monkeypatch, save_replay):
    """After ``restore_state`` each generator draws what the uninterrupted run would:
    Python, NumPy, torch, the env, the evaluation envs and epsilon, the policy and the
    replay sampler (also when the replay contents are not saved)."""
    import random

    from rlkit.app.loggers import MultiLogger
    from rlkit.app.run import restore_state
    from rlkit.build import build

    items = [*GENERATORS, f"replay.save_in_checkpoint={str(save_replay).lower()}"]
    config, a = _train_and_keep_open(tmp_path / "run", items, monkeypatch)
    # the run's last act was its final checkpoint: a's generators are where it left them
    expected = {
        "python": random.random(),
        "numpy": np.random.random(),
        "torch": torch.rand(3),
        "policy": a.trainer.collector.policy.rng.random(3),
    }
    sampler = np.random.Generator(np.random.PCG64())
    sampler.bit_generator.state = a.replay.meta_state_dict()["rng"]
    expected["sampler"] = sampler.random(3)
    # a new process: the global generators start elsewhere
    random.seed(999)
    np.random.seed(999)
    torch.manual_seed(999)
    b = build(config, MultiLogger())
    try:
        restore_state(b, load_checkpoint(list_checkpoints(tmp_path / "run" / "checkpoints")[-1]))
        assert random.random() == expected["python"]
        assert np.random.random() == expected["numpy"]
        assert torch.equal(torch.rand(3), expected["torch"])
        np.testing.assert_array_equal(b.trainer.collector.policy.rng.random(3), expected["policy"])
        sampler.bit_generator.state = b.replay.meta_state_dict()["rng"]
        np.testing.assert_array_equal(sampler.random(3), expected["sampler"])
        assert b.replay.max_priority == a.replay.max_priority > 1.0
        # the env: 60 steps of CartPole with fixed actions end episodes, whose resets draw
        # from the env's generator
        for ra, rb in zip(_play(a.envs, 60), _play(b.envs, 60)):
            for xa, xb in zip(ra, rb):
                np.testing.assert_array_equal(xa, xb)
        # evaluation: its envs are seeded by the evaluation's index, epsilon draws from
        # its own generator
        a.trainer.logger = MultiLogger()  # the run closed its own loggers
        ea, eb = a.trainer.run_evaluation(), b.trainer.run_evaluation()
        assert eb.returns == ea.returns and eb.lengths == ea.lengths
    finally:
        a.close()
        b.close()


def test_async_lockstep_stopped_and_resumed_equals_the_sync_run(tmp_path, reference):
    # trainer.actor_lag=0: the actor waits for the learner at every step, so the async
    # loop reproduces the sync loop exactly, across a stop, a checkpoint and a resume
    config = str(ROOT / "configs" / "cartpole_rainbow.yaml")
    ref = reference(config, RAINBOW)
    run_dir = tmp_path / "async_stopped"
    proc = start(run_dir, config, [*RAINBOW, "trainer.mode=async", "trainer.actor_lag=0"])
    wait_for_checkpoint(proc, run_dir, 800)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert int(list_checkpoints(run_dir / "checkpoints")[-1].stem.split("_")[1]) < 2400
    resumed = rlkit("train", "--resume", str(run_dir), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(ref.finished(), run_dir)


def test_async_killed_and_resumed_logs_every_point_once(tmp_path):
    # with a lag the interleaving is not reproducible, but the run resumes from its
    # checkpoint and ends with the sync run's log points, each once
    config = str(ROOT / "configs" / "cartpole_rainbow.yaml")
    run_dir = tmp_path / "async_killed"
    proc = start(run_dir, config, [*RAINBOW, "trainer.mode=async", "trainer.actor_lag=32"])
    wait_for_checkpoint(proc, run_dir, 800)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    resumed = rlkit("train", "--resume", str(run_dir), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    steps = [r["env_steps"] for r in metrics(run_dir) if "train/loss" in r]
    # log_every 150 with 2 envs: a point at every vector step crossing a multiple of 150
    expected = [s for s in range(2, 2401, 2) if s // 150 > (s - 2) // 150 and s > 200]
    assert steps == expected
    state = load_checkpoint(list_checkpoints(run_dir / "checkpoints")[-1])
    assert state["env_steps"] == 2400


# MinAtar DQN (the game and its sticky-action generator are saved with the checkpoint)
MINATAR = [
    "trainer.device=cpu",
    "trainer.total_steps=2000",
    "trainer.learning_starts=300",
    "trainer.train_every=4",
    "trainer.checkpoint_every=500",
    "trainer.log_every=250",
    "replay.capacity=5000",
    "network.head_hidden=16",
    "exploration.epsilon_steps=1000",
    "eval.every=1000",
    "eval.episodes=2",
]


def test_minatar_killed_and_resumed_is_identical(tmp_path, reference):
    pytest.importorskip("minatar")
    config = str(ROOT / "configs" / "minatar" / "breakout.yaml")
    ref = reference(config, MINATAR)
    run_dir = tmp_path / "killed"
    proc = start(run_dir, config, MINATAR)
    wait_for_checkpoint(proc, run_dir, 1000)  # mid-episode, past the first updates
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    resumed = rlkit("train", "--resume", str(run_dir), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "could not be saved" not in resumed.stdout + resumed.stderr
    assert_same_run(ref.finished(), run_dir)
