"""trainer.hold_freed_memory: glibc's thresholds raised once per training process, so an
update reuses the memory the previous one freed instead of faulting in fresh pages."""

from __future__ import annotations

import ctypes
import os
import resource
import subprocess
import sys

import pytest

from rlkit import build as build_module
from rlkit import malloc
from rlkit.config import load_config

GLIBC = sys.platform.startswith("linux") and hasattr(ctypes.CDLL(None), "gnu_get_libc_version")


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt only")
def test_the_thresholds_are_set_unless_the_environment_sets_them(monkeypatch):
    for key in malloc.ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    assert malloc.hold_freed_memory() is True
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert malloc.hold_freed_memory() is False  # the user's own tuning wins


def test_not_linux_is_a_no_op(monkeypatch):
    monkeypatch.setattr(malloc.sys, "platform", "darwin")
    assert malloc.hold_freed_memory() is False


@pytest.mark.parametrize("flag", [True, False])
def test_the_switch_reaches_the_process_setup(monkeypatch, flag):
    calls = []
    monkeypatch.setattr(build_module, "hold_freed_memory", lambda: calls.append(1) or True)
    config = load_config(None, [f"trainer.hold_freed_memory={str(flag).lower()}"])
    build_module._setup_torch(config)
    assert calls == ([1] if flag else [])


def _train_faults(tmp_path, flag: str, updates: int) -> int:
    """Minor page faults of a fresh process training CartPole IQN for ``updates`` updates
    (one per env step after 100; 256-unit layers, batch 64, 32 + 32 fractions: 2,048 rows
    per forward)."""
    sets = [
        "network.head=iqn",
        "network.atoms=32",
        "network.hidden_sizes=[256, 256]",
        f"trainer.total_steps={100 + updates}",
        "trainer.learning_starts=100",
        "trainer.train_every=1",
        "eval.every=0",
        "eval.episodes=1",
        f"trainer.hold_freed_memory={flag}",
    ]
    args = [sys.executable, "-m", "rlkit", "train", "--run-dir", str(tmp_path / f"{flag}{updates}")]
    for item in sets:
        args += ["--set", item]
    env = {k: v for k, v in os.environ.items() if k not in malloc.ENV_KEYS}
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt
    subprocess.run(args, check=True, capture_output=True, env=env)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt - before


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt only")
def test_a_run_with_the_switch_faults_in_far_fewer_pages_per_update(tmp_path):
    """The faults of updates 101-250 of a run: those of a 250-update run less those of a
    100-update run with the same flag, so imports, envs and the one-time costs of the first
    updates (autograd, optimizer state) cancel and only the steady per-update cost is left.
    Without the switch every update faults its freed buffers back in (about 2,600 pages an
    update: 390k pages for the 150 updates, seen here); with it the later updates reuse the
    held pages (1.5k). 5x fails if the switch does nothing."""
    marginal = {}
    for flag in ("true", "false"):
        first = _train_faults(tmp_path, flag, 100)
        marginal[flag] = _train_faults(tmp_path, flag, 250) - first
    assert marginal["true"] * 5 < marginal["false"], marginal
