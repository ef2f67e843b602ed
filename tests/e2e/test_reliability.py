"""Resume edge cases, crash safety of checkpoint writes, numerical faults and the
remaining bad-input cases of docs/reliability.md (each: exit code 2, one line, nothing
on disk lost)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from rlkit import checkpoint as ckpt
from tests.e2e.test_cli import (  # noqa: F401 - _isolated is an autouse fixture
    _isolated,
    assert_one_line_error,
    cli,
    sets,
    snapshot,
)

SMALL = [
    "trainer.device=cpu",
    "trainer.total_steps=1200",
    "trainer.learning_starts=200",
    "trainer.train_every=50",
    "trainer.updates_per_train=5",
    "trainer.checkpoint_every=300",
    "trainer.keep_checkpoints=2",
    "network.hidden_sizes=[16]",
    "eval.every=600",
    "eval.episodes=2",
]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    """A finished plain-DQN run of 1,200 env steps with checkpoints every 300."""
    from rlkit.cli import main

    run_dir = tmp_path_factory.mktemp("small") / "run"
    threads = torch.get_num_threads()
    try:
        code = main(
            ["train", "configs/cartpole_dqn.yaml", "--run-dir", str(run_dir), *sets(*SMALL)]
        )
    finally:
        torch.set_num_threads(threads)
        torch.set_flush_denormal(False)
    assert code == 0
    return run_dir


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # configs/ paths resolve


def copy_of(run_dir: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "run"
    shutil.copytree(run_dir, dest)
    return dest


def checkpoint_steps(run_dir: Path) -> list[int]:
    return [int(p.stem.split("_")[1]) for p in ckpt.list_checkpoints(run_dir / "checkpoints")]


def test_keeps_the_last_k_checkpoints(small_run):
    assert checkpoint_steps(small_run) == [900, 1200]


def test_resume_of_a_missing_run_dir(capsys, tmp_path):
    code, _, err = cli(capsys, "train", "--resume", str(tmp_path / "nope"))
    assert_one_line_error(code, err, "--resume", "run dir not found", "nope")


def test_resume_of_a_dir_without_checkpoints_touches_nothing(capsys, tmp_path, small_run):
    run_dir = copy_of(small_run, tmp_path)
    for path in ckpt.list_checkpoints(run_dir / "checkpoints"):
        path.unlink()
    before = snapshot(run_dir)
    code, _, err = cli(capsys, "train", "--resume", str(run_dir))
    assert_one_line_error(code, err, "no complete checkpoint", "--overwrite")
    assert snapshot(run_dir) == before


def test_resume_of_a_dir_that_is_not_a_run(capsys, tmp_path):
    (tmp_path / "junk").mkdir()
    code, _, err = cli(capsys, "train", "--resume", str(tmp_path / "junk"))
    assert_one_line_error(code, err, "not an rlkit run dir")


def test_resume_with_a_changed_config_is_refused_without_force(capsys, tmp_path, small_run):
    run_dir = copy_of(small_run, tmp_path)
    before = snapshot(run_dir)
    code, _, err = cli(capsys, "train", "--resume", str(run_dir), "--set", "learner.lr=0.5")
    assert_one_line_error(code, err, "learner.lr: 0.0023 -> 0.5", "--force")
    assert snapshot(run_dir) == before


def test_resume_with_force_continues_and_keeps_the_old_config(capsys, tmp_path, small_run):
    run_dir = copy_of(small_run, tmp_path)
    old_config = (run_dir / "config.yaml").read_text()
    code, out, err = cli(
        capsys, "train", "--resume", str(run_dir), "--force", "--set", "trainer.total_steps=1500"
    )
    assert code == 0, err
    assert "resumed from" in out and "at env step 1200" in out
    assert checkpoint_steps(run_dir)[-1] == 1500
    kept = list(run_dir.glob("config.before-resume-*.yaml"))
    assert len(kept) == 1 and kept[0].read_text() == old_config
    assert "total_steps: 1500" in (run_dir / "config.yaml").read_text()


def test_resume_of_a_finished_run_says_so(capsys, tmp_path, small_run):
    run_dir = copy_of(small_run, tmp_path)
    code, out, _ = cli(capsys, "train", "--resume", str(run_dir))
    assert code == 0
    assert "already finished" in out and "--force" in out


def test_resume_skips_a_truncated_newest_checkpoint(capsys, tmp_path, small_run):
    run_dir = copy_of(small_run, tmp_path)
    newest = ckpt.list_checkpoints(run_dir / "checkpoints")[-1]
    newest.write_bytes(newest.read_bytes()[:1000])
    code, out, err = cli(
        capsys, "train", "--resume", str(run_dir), "--force", "--set", "trainer.total_steps=1300"
    )
    assert code == 0, err
    assert "warning: skipping" in out and "at env step 900" in out


def test_resume_with_a_checkpoint_of_another_network(capsys, tmp_path, small_run):
    run_dir = copy_of(small_run, tmp_path)
    other = tmp_path / "other"
    code, _, err = cli(
        capsys,
        "train",
        "configs/cartpole_dqn.yaml",
        "--run-dir",
        str(other),
        *sets(*SMALL, "network.hidden_sizes=[8]", "trainer.total_steps=300"),
    )
    assert code == 0, err
    for path in ckpt.list_checkpoints(run_dir / "checkpoints"):
        path.unlink()
    shutil.copy(ckpt.list_checkpoints(other / "checkpoints")[-1], run_dir / "checkpoints")
    code, _, err = cli(capsys, "train", "--resume", str(run_dir))
    assert_one_line_error(code, err, "checkpoint does not match this run")


def test_resume_without_saved_replay_warns_that_it_restarts_empty(capsys, tmp_path):
    run_dir = tmp_path / "noreplay"
    items = [*SMALL, "replay.save_in_checkpoint=false", "trainer.total_steps=600"]
    code, out, err = cli(
        capsys, "train", "configs/cartpole_dqn.yaml", "--run-dir", str(run_dir), *sets(*items)
    )
    assert code == 0, err
    assert "replay" not in ckpt.load_checkpoint(ckpt.list_checkpoints(run_dir / "checkpoints")[-1])
    code, out, err = cli(
        capsys, "train", "--resume", str(run_dir), "--force", "--set", "trainer.total_steps=900"
    )
    assert code == 0, err
    assert "the replay buffer restarts empty" in out


def test_checkpoint_messages_print_the_replay_size(capsys, tmp_path):
    code, out, _ = cli(
        capsys,
        "train",
        "configs/cartpole_dqn.yaml",
        "--run-dir",
        str(tmp_path / "r"),
        *sets(*SMALL, "trainer.total_steps=300"),
    )
    assert code == 0
    assert "MiB, replay " in out


def test_existing_run_dir_message_offers_resume(capsys, tmp_path, small_run):
    before = snapshot(small_run)
    code, _, err = cli(
        capsys, "train", "configs/cartpole_dqn.yaml", "--run-dir", str(small_run), *sets(*SMALL)
    )
    assert_one_line_error(code, err, "already exists", f"--resume {small_run}", "--overwrite")
    assert snapshot(small_run) == before


def test_force_without_resume_is_refused(capsys):
    code, _, err = cli(capsys, "train", "--force")
    assert_one_line_error(code, err, "--force only applies to --resume")


def test_replay_that_does_not_fit_in_memory_is_refused_before_anything_is_written(capsys, tmp_path):
    run_dir = tmp_path / "huge"
    code, _, err = cli(
        capsys,
        "train",
        "--run-dir",
        str(run_dir),
        *sets("trainer.device=cpu", "replay.capacity=100000000000"),
    )
    line = assert_one_line_error(code, err, "replay.capacity", "need", "available")
    assert "GiB" in line or "TiB" in line
    assert not run_dir.exists()


def test_nan_stops_training_and_names_the_last_good_checkpoint(capsys, tmp_path):
    run_dir = tmp_path / "nan"
    items = [
        *SMALL,
        "trainer.learning_starts=400",
        "learner.lr=1e30",
        "learner.max_grad_norm=null",
    ]
    code, _, err = cli(
        capsys, "train", "configs/cartpole_dqn.yaml", "--run-dir", str(run_dir), *sets(*items)
    )
    line = assert_one_line_error(code, err, "at env step", "learning rate", "last good checkpoint")
    last = ckpt.list_checkpoints(run_dir / "checkpoints")[-1]
    assert str(last) in line
    state = ckpt.load_checkpoint(last)
    assert all(torch.isfinite(t).all() for t in state["learner"]["online"].values())


def test_a_crash_while_writing_leaves_the_previous_checkpoint_loadable(tmp_path, monkeypatch):
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    good = ckpt.checkpoint_path(directory, 100)
    ckpt.save_checkpoint(good, {"format": 1, "x": torch.ones(3)})

    def crash(src, dst):  # the process dies between writing the temp file and renaming it
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(
            ckpt.checkpoint_path(directory, 200), {"format": 1, "x": torch.zeros(3)}
        )
    monkeypatch.undo()
    assert ckpt.list_checkpoints(directory) == [good]  # the temp file is not a checkpoint
    assert torch.equal(ckpt.load_checkpoint(good)["x"], torch.ones(3))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_resume_never_runs_a_malicious_newest_checkpoint(capsys, tmp_path, small_run):
    from tests.e2e.test_cli import write_malicious

    run_dir = copy_of(small_run, tmp_path)
    marker = tmp_path / "pwned"
    write_malicious("torch.save", ckpt.checkpoint_path(run_dir / "checkpoints", 99_999), marker)
    code, out, err = cli(
        capsys, "train", "--resume", str(run_dir), "--force", "--set", "trainer.total_steps=1300"
    )
    assert code == 0, err
    assert "warning: skipping" in out and "refused unrun" in out and "at env step 1200" in out
    assert not marker.exists()
