"""Pixel environments end to end: tiny Atari (Pong) and MinAtar runs on CPU, and the
one-line error when an extra is missing."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rlkit import envs as rlkit_envs
from rlkit.app.checkpoint import list_checkpoints, load_checkpoint
from rlkit.config import load_config
from tests.e2e.tiny import (  # noqa: F401 - _isolated is an autouse fixture
    _isolated,
    assert_one_line_error,
    cli,
    sets,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TINY = [
    "trainer.device=cpu",
    "trainer.total_steps=240",
    "trainer.learning_starts=100",
    "trainer.checkpoint_every=0",
    "learner.batch_size=8",
    "replay.capacity=1000",
    "eval.every=0",
    "eval.episodes=1",
    "env.max_episode_steps=60",  # agent steps: bounds the evaluation episode
]


def train_tiny(capsys, config: str, run_dir: Path, items: list[str]) -> tuple[int, str, str]:
    """``rlkit train configs/CONFIG --run-dir RUN_DIR --set ITEMS...`` in-process."""
    return cli(capsys, "train", str(CONFIGS / config), "--run-dir", str(run_dir), *sets(*items))


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_pong_rainbow_tiny_run(capsys, tmp_path):
    pytest.importorskip("ale_py")
    pytest.importorskip("cv2")
    run_dir = tmp_path / "pong"
    items = [*TINY, "replay.save_in_checkpoint=true", "network.head_hidden=32"]
    code, out, err = train_tiny(capsys, "atari/pong_rainbow.yaml", run_dir, items)
    assert code == 0, err
    assert "replay: 1000 transitions" in out  # estimated before allocation
    evals = [r for r in metrics(run_dir) if "eval/return_mean" in r]
    assert evals and evals[-1]["env_steps"] == 240
    assert any("train/loss" in r for r in metrics(run_dir))
    state = load_checkpoint(list_checkpoints(run_dir / "checkpoints")[-1])
    frames = state["replay"]["frames"]
    assert frames.dtype == torch.uint8 and tuple(frames.shape[1:]) == (84, 84)
    stored = int(state["replay"]["size"])
    assert stored == 240  # one transition per env step: every n-step tail was flushed
    assert len(frames) < 1.2 * stored  # about one frame per transition, not 8
    code, out, err = cli(capsys, "eval", str(run_dir), "--episodes", "1")
    assert code == 0, err
    assert "return:" in out


def test_atari_observations_are_preprocessed_frame_stacks():
    pytest.importorskip("ale_py")
    pytest.importorskip("cv2")
    from rlkit.envs.builder import make_envs

    config = load_config(CONFIGS / "atari" / "pong_rainbow.yaml", ["env.max_episode_steps=5"])
    envs = make_envs(config, 2)
    obs = envs.reset(seed=0)
    assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
    for _ in range(5):
        out = envs.step(np.zeros(2, dtype=np.int64))
    assert out.obs.shape == (2, 4, 84, 84) and out.obs.dtype == np.uint8
    assert out.truncated.all() and not out.terminated.any()  # the limit counts agent steps
    envs.close()


def test_breakout_der_100k_counts_whole_games_and_learns_from_lost_lives(tmp_path):
    """der_100k (life loss terminal for learning) on Breakout with random actions: the
    logged episodes are whole games (a random policy loses a life in ~35 agent steps and
    a game of 5 lives lasts well over 100), and every lost life is a learning terminal."""
    pytest.importorskip("ale_py")
    pytest.importorskip("cv2")
    from rlkit.app import run as run

    steps = 1200
    items = [
        "env.id=ALE/Breakout-v5",
        "trainer.device=cpu",
        f"trainer.total_steps={steps}",
        f"trainer.learning_starts={10 * steps}",  # no updates: the policy stays random
        "trainer.checkpoint_every=0",  # the final checkpoint only
        "trainer.log_every=200",
        "replay.capacity=2000",  # holds every transition of the run
        "replay.n_step=1",  # one stored transition per env step: terminals can be counted
        "learner.batch_size=8",
        "exploration.epsilon_start=1.0",
        "exploration.epsilon_end=1.0",
        "eval.every=0",
        "eval.episodes=1",
        "eval.epsilon=1.0",  # a random final evaluation game ends in a few hundred steps
    ]
    config = load_config(CONFIGS / "atari" / "der_100k.yaml", items)
    assert config.env.terminal_on_life_loss and config.env.protocol == "atari100k"
    run_dir = tmp_path / "breakout"
    run.train(config, run_dir, stream=io.StringIO())
    lengths = [r["train/episode_length"] for r in metrics(run_dir) if "train/episode_length" in r]
    assert lengths and min(lengths) > 100, lengths
    state = load_checkpoint(list_checkpoints(run_dir / "checkpoints")[-1])
    games = int(state["trainer"]["counters"]["episodes"])
    size = int(state["replay"]["size"])
    terminals = int((state["replay"]["discount"][:size] == 0).sum())
    # Breakout has 5 lives: each finished game holds 4 life-loss terminals and 1 game over;
    # the unfinished game at the end adds at most 4 more
    assert games >= 3
    assert 5 * games <= terminals <= 5 * games + 4, (games, terminals)


def test_minatar_tiny_run(capsys, tmp_path):
    pytest.importorskip("minatar")
    run_dir = tmp_path / "breakout"
    code, out, err = train_tiny(capsys, "minatar/breakout.yaml", run_dir, TINY)
    assert code == 0, err
    config = load_config(run_dir / "config.yaml")
    assert config.network.torso == "minatar_cnn"
    assert any("train/loss" in r for r in metrics(run_dir))


@pytest.mark.parametrize("prefix, extra", [("ALE/", "atari"), ("MinAtar/", "minatar")])
def test_missing_extra_is_a_one_line_error_naming_it(capsys, tmp_path, monkeypatch, prefix, extra):
    def missing() -> None:
        raise ImportError(f"No module named '{extra}_module'")

    monkeypatch.setitem(rlkit_envs.SUITES, prefix, (extra, missing))
    env_id = f"{prefix}Pong-v5"
    code, _, err = cli(
        capsys,
        "train",
        "--run-dir",
        str(tmp_path / "r"),
        *sets("trainer.device=cpu", f"env.id={env_id}"),
    )
    assert_one_line_error(code, err, env_id, f"needs the {extra} extra", f"rlkit[{extra}]")
    assert not (tmp_path / "r").exists()


def test_frames_on_device_reaches_the_replay_and_is_refused_without_frames(capsys, tmp_path):
    pytest.importorskip("ale_py")
    pytest.importorskip("cv2")
    from rlkit.agent.replay.device_frames import DeviceFrameStorage
    from rlkit.build import build

    class Quiet:
        def log(self, *a):
            pass

        def close(self):
            pass

    items = [*TINY, "replay.frames_on_device=true", "network.head_hidden=32"]
    items += ["trainer.total_steps=120"]
    config = load_config(CONFIGS / "atari" / "pong_rainbow.yaml", items)
    c = build(config, Quiet())
    assert isinstance(c.replay._storage, DeviceFrameStorage)
    c.trainer.run()  # learning from step 100: batches gathered from the device pool
    assert c.trainer.counters.updates > 0
    c.close()
    # CartPole's observations are not frame stacks: a one-line error naming the key
    code, _, err = cli(
        capsys,
        "train",
        str(CONFIGS / "cartpole_rainbow.yaml"),
        "--run-dir",
        str(tmp_path / "cartpole"),
        *sets("replay.frames_on_device=true", "trainer.total_steps=10"),
    )
    assert_one_line_error(code, err, "replay.frames_on_device needs frame replay")
    assert not (tmp_path / "cartpole").exists()
