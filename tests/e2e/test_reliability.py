"""Resume edge cases, crash safety of checkpoint writes, numerical faults and the
remaining bad-input cases of docs/reliability.md (each: exit code 2, one line, nothing
on disk lost)."""

from __future__ import annotations

import io
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from rlkit.agent import builder as agent_builder
from rlkit.agent.replay import PrioritizedReplayBuffer
from rlkit.app import checkpoint as ckpt
from rlkit.app import run as run_module
from rlkit.app.loggers import JSONLLogger
from rlkit.config import ConfigError, load_config
from tests.e2e.tiny import (  # noqa: F401 - _isolated is an autouse fixture
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
    from rlkit.app.cli import main

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
    ckpt.save_checkpoint(good, {"format": ckpt.FORMAT_VERSION, "x": torch.ones(3)})

    def crash(src, dst):  # interrupted between writing the temp file and renaming it
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(
            ckpt.checkpoint_path(directory, 200),
            {"format": ckpt.FORMAT_VERSION, "x": torch.zeros(3)},
        )
    monkeypatch.undo()
    assert sorted(p.name for p in directory.iterdir()) == [good.name]  # no temp file left
    assert torch.equal(ckpt.load_checkpoint(good)["x"], torch.ones(3))


def test_a_failing_torch_save_leaves_no_temp_file_and_the_previous_checkpoint(
    tmp_path, monkeypatch
):
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    good = ckpt.checkpoint_path(directory, 100)
    ckpt.save_checkpoint(good, {"format": ckpt.FORMAT_VERSION, "x": torch.ones(3)})
    real_save = torch.save

    def fail_mid_write(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)  # half of what a real write would leave
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", fail_mid_write)
    with pytest.raises(OSError, match="No space"):
        ckpt.save_checkpoint(ckpt.checkpoint_path(directory, 200), {"x": torch.zeros(1000)})
    monkeypatch.undo()
    assert sorted(p.name for p in directory.iterdir()) == [good.name]
    assert torch.equal(ckpt.load_checkpoint(good)["x"], torch.ones(3))


def test_checkpoints_are_streamed_into_the_temp_file_not_built_in_memory(tmp_path, monkeypatch):
    seen = []
    real_save = torch.save

    def spy(obj, f, *args, **kwargs):
        seen.append(f)
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", spy)
    path = tmp_path / "ckpt_000000000007.pt"
    size = ckpt.save_checkpoint(path, {"format": ckpt.FORMAT_VERSION, "x": torch.ones(10)})
    monkeypatch.undo()
    assert len(seen) == 1
    target = seen[0]
    assert not isinstance(target, io.BytesIO)
    assert Path(target.name).parent == tmp_path and Path(target.name).name.startswith(".")
    assert size == path.stat().st_size
    assert torch.equal(ckpt.load_checkpoint(path)["x"], torch.ones(10))


@pytest.mark.parametrize("version", [1, 3])  # this rlkit writes format 2
def test_a_checkpoint_of_another_format_version_names_both(tmp_path, version):
    path = tmp_path / "ckpt_000000000001.pt"
    ckpt.save_checkpoint(path, {"format": version, "x": torch.ones(1)})
    with pytest.raises(ckpt.CheckpointError) as info:
        ckpt.load_checkpoint(path)
    message = str(info.value)
    assert f"format version {version}" in message and "reads format version 2" in message
    assert "\n" not in message


def test_resume_skips_a_newest_checkpoint_of_another_format_naming_both(
    capsys, tmp_path, small_run
):
    run_dir = copy_of(small_run, tmp_path)
    newest = ckpt.list_checkpoints(run_dir / "checkpoints")[-1]  # 1200
    state = ckpt.load_checkpoint(newest)
    state["format"] = 1
    ckpt.save_checkpoint(newest, state)
    code, out, err = cli(
        capsys, "train", "--resume", str(run_dir), "--force", "--set", "trainer.total_steps=1300"
    )
    assert code == 0, err
    assert "warning: skipping" in out and "format version 1" in out and "at env step 900" in out


@pytest.mark.parametrize(
    ("installed", "refused"),
    [("2.9.1+cu121", True), ("2.6.0", True), ("2.10.0", False), ("2.13.0+cpu", False)],
)
def test_an_older_torch_refuses_to_load_checkpoints(tmp_path, monkeypatch, installed, refused):
    path = tmp_path / "ckpt_000000000001.pt"
    ckpt.save_checkpoint(path, {"format": ckpt.FORMAT_VERSION})
    monkeypatch.setattr(torch, "__version__", installed)
    if not refused:
        assert ckpt.load_checkpoint(path)["format"] == ckpt.FORMAT_VERSION
        return
    with pytest.raises(ckpt.CheckpointError) as info:
        ckpt.load_checkpoint(path)
    message = str(info.value)
    assert f"torch {installed}" in message and "torch>=2.10" in message and "\n" not in message


def test_resume_on_an_older_torch_is_one_line_naming_both_versions(
    capsys, tmp_path, small_run, monkeypatch
):
    run_dir = copy_of(small_run, tmp_path)
    before = snapshot(run_dir)
    monkeypatch.setattr(torch, "__version__", "2.5.1")
    code, _, err = cli(capsys, "train", "--resume", str(run_dir))
    assert_one_line_error(code, err, "torch 2.5.1", "torch>=2.10")
    assert snapshot(run_dir) == before


# ---------------------------------------------------------------- replay memory check


def _cartpole_config(capacity: int):
    return load_config("configs/cartpole_dqn.yaml", [f"replay.capacity={capacity}"])


def test_available_memory_reads_memavailable_not_free_memory(tmp_path, monkeypatch):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  16000 kB\nMemFree:  100 kB\nMemAvailable:  600 kB\n")
    assert agent_builder.available_memory(meminfo) == 600 * 1024
    meminfo.write_text("MemTotal:  16000 kB\nMemFree:  100 kB\n")  # an old kernel
    pages = {"SC_AVPHYS_PAGES": 10, "SC_PAGE_SIZE": 4096}
    monkeypatch.setattr(os, "sysconf", lambda name: pages[name])
    assert agent_builder.available_memory(meminfo) == 10 * 4096
    assert agent_builder.available_memory(tmp_path / "missing") == 10 * 4096


def test_the_replay_check_uses_available_memory(tmp_path, monkeypatch):
    # CartPole obs (4,) float32, uniform replay: 2 * 16 (obs, next_obs) + 8 + 4 + 4 = 48 B
    meminfo = tmp_path / "meminfo"
    monkeypatch.setattr(agent_builder, "MEMINFO", meminfo)
    # plenty available (100 TiB) but little free: 10 TiB of replay fits
    meminfo.write_text(f"MemFree:  1024 kB\nMemAvailable:  {100 * 2**30} kB\n")
    capacity = 10 * 2**40 // 48
    need = agent_builder.check_replay_fits(_cartpole_config(capacity), (4,), np.float32)
    assert need == capacity * 48
    # 1 MiB available: 10 MiB of replay is refused, naming the available figure
    meminfo.write_text(f"MemFree:  {100 * 2**30} kB\nMemAvailable:  1024 kB\n")
    with pytest.raises(ConfigError, match=r"replay.capacity.*only 1.0 MiB"):
        agent_builder.check_replay_fits(_cartpole_config(10 * 2**20 // 48), (4,), np.float32)


# ---------------------------------------------------------------- in-process training


def train_here(run_dir: Path, items: list[str], resume: bool = False):
    """``rlkit train`` in-process (configs/cartpole_dqn.yaml + ``items``): (components,
    stdout text). Restores the torch globals that training sets process-wide."""
    threads = torch.get_num_threads()
    out = io.StringIO()
    try:
        if resume:
            config = run_module.resume_config(run_dir, None, items, force=True)
        else:
            config = load_config("configs/cartpole_dqn.yaml", items)
        components, _ = run_module.train(config, run_dir, resume=resume, stream=out)
    finally:
        torch.set_num_threads(threads)
        torch.set_flush_denormal(False)
    return components, out.getvalue()


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def tensorboard_points(run_dir: Path) -> set[tuple[str, int]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    return {(tag, e.step) for tag in acc.Tags()["scalars"] for e in acc.Scalars(tag)}


def test_logs_reach_the_disk_before_the_checkpoint_that_covers_them(tmp_path, monkeypatch):
    from rlkit.app.loggers import TensorBoardLogger

    run_dir = tmp_path / "flush"
    seen: list[tuple[int, list[dict], set]] = []
    events: list[str] = []  # the order of logging, flushing and checkpointing
    for cls, name in ((JSONLLogger, "jsonl"), (TensorBoardLogger, "tb")):
        for method in ("log", "flush"):
            real = getattr(cls, method)

            def spy(self, *args, _real=real, _event=f"{name}.{method}"):
                events.append(_event)
                return _real(self, *args)

            monkeypatch.setattr(cls, method, spy)
    real_save = ckpt.save_checkpoint

    def inspecting_save(path, state):
        events.append("save")
        # what a kill right now would leave on disk
        on_disk = read_jsonl(run_dir / "metrics.jsonl"), tensorboard_points(run_dir)
        seen.append((state["env_steps"], *on_disk))
        return real_save(path, state)

    monkeypatch.setattr(ckpt, "save_checkpoint", inspecting_save)
    train_here(run_dir, [*SMALL, "trainer.log_every=100", "trainer.total_steps=900"])
    monkeypatch.undo()
    final = read_jsonl(run_dir / "metrics.jsonl")
    final_tb = tensorboard_points(run_dir)
    assert [steps for steps, _, _ in seen] == [300, 600, 900]
    for steps, on_disk, tb_on_disk in seen:
        covered = [r for r in final if r["env_steps"] <= steps]
        assert on_disk == covered, steps
        tb_covered = {(t, s) for t, s in final_tb if s <= steps and not t.startswith("hparam/")}
        assert tb_covered and tb_covered <= tb_on_disk, steps
    # both loggers flushed after their last point and before each checkpoint was written
    # (their buffers may drain on their own; the order must not depend on it)
    saves = [i for i, event in enumerate(events) if event == "save"]
    assert len(saves) == 3
    for i in saves:
        before = events[:i]
        for name in ("jsonl", "tb"):
            last_log = max(k for k, e in enumerate(before) if e == f"{name}.log")
            assert f"{name}.flush" in before[last_log:], (name, i)


def test_metrics_jsonl_writes_nan_and_inf_as_null(tmp_path):
    path = tmp_path / "metrics.jsonl"
    logger = JSONLLogger(path)
    logger.log(5, {"a": float("nan"), "b": float("inf"), "c": -math.inf, "d": 1.5})
    logger.close()
    line = path.read_text().strip()
    assert line == '{"env_steps": 5, "a": null, "b": null, "c": null, "d": 1.5}'
    json.loads(line, parse_constant=lambda name: pytest.fail(f"non-JSON constant {name}"))


def test_the_final_progress_line_is_printed_once(tmp_path):
    _, out = train_here(tmp_path / "progress", [*SMALL, "trainer.total_steps=600"])
    final = [line for line in out.splitlines() if line.startswith("100.0%")]
    assert len(final) == 1, out
    assert "600/600 env steps" in final[0]


def test_resume_without_saved_replay_waits_for_learning_starts_and_keeps_max_priority(
    tmp_path, monkeypatch
):
    run_dir = tmp_path / "noreplay"
    items = [
        *SMALL,
        "replay.prioritized=true",
        "replay.save_in_checkpoint=false",
        "trainer.learning_starts=250",
        "learner.batch_size=32",
        "trainer.train_every=10",
        "trainer.total_steps=600",
    ]
    first, _ = train_here(run_dir, items)
    saved_max = first.replay.max_priority  # the live value when the last checkpoint was written
    assert saved_max > 1.0  # priorities grew past the initial 1.0, so restoring it matters
    restored = {}
    real_restore = run_module.restore_state

    def spy_restore(components, state):
        warnings = real_restore(components, state)
        restored["max_priority"] = components.replay.max_priority
        return warnings

    sizes: list[int] = []
    real_sample = PrioritizedReplayBuffer.sample

    def spy_sample(self, batch_size, beta=0.4):
        sizes.append(len(self))
        return real_sample(self, batch_size, beta)

    monkeypatch.setattr(run_module, "restore_state", spy_restore)
    monkeypatch.setattr(PrioritizedReplayBuffer, "sample", spy_sample)
    _, out = train_here(run_dir, ["trainer.total_steps=1000"], resume=True)
    assert "learning waits until it holds 250 transitions" in out
    assert restored["max_priority"] == saved_max
    # one env, empty after the resume at 600: the buffer holds 250 transitions at env step
    # 850, so the first phase (train_every=10) is at 850 with 250 >= learning_starts; without
    # the wait it would start as soon as 32 (batch_size) were stored
    assert sizes and sizes[0] == 250


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_resume_never_runs_a_malicious_newest_checkpoint(capsys, tmp_path, small_run):
    from tests.e2e.tiny import write_malicious

    run_dir = copy_of(small_run, tmp_path)
    marker = tmp_path / "pwned"
    write_malicious("torch.save", ckpt.checkpoint_path(run_dir / "checkpoints", 99_999), marker)
    code, out, err = cli(
        capsys, "train", "--resume", str(run_dir), "--force", "--set", "trainer.total_steps=1300"
    )
    assert code == 0, err
    assert "warning: skipping" in out and "refused unrun" in out and "at env step 1200" in out
    assert not marker.exists()
