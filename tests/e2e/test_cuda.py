"""CUDA: the learner gives the CPU's numbers on a GPU, and `rlkit train`, `eval` and
`--resume` work with ``trainer.device=cuda``.

Skipped where torch sees no CUDA device (CI has none). On a GPU machine:
``python -m pytest tests/e2e/test_cuda.py tests/component/test_replay.py -k cuda``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rlkit.agent.learner import DQNLearner
from rlkit.agent.nn import QNetwork
from rlkit.app.checkpoint import list_checkpoints
from rlkit.types import Batch
from tests.e2e.tiny import (  # noqa: F401 - _isolated is an autouse fixture
    TINY,
    _isolated,
    cli,
    parse_eval,
    read_metrics,
    sets,
    without_timing,
)
from tests.unit.test_plain_mlp import make_batch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

NETS = {
    # plain MLP: the hand-written backward and direct Adam step on the GPU
    "plain": dict(dueling=False, noisy=False, atoms=1),
    # Rainbow: noisy dueling C51 through the hand-written C51 backward
    "rainbow": dict(dueling=True, noisy=True, atoms=11, v_min=-5.0, v_max=5.0),
}


def batch_on(batch: Batch, device: str) -> Batch:
    """``batch`` with every tensor field moved to ``device``."""
    fields = {f.name: getattr(batch, f.name) for f in dataclasses.fields(batch)}
    return Batch(**{k: v.to(device) if torch.is_tensor(v) else v for k, v in fields.items()})


@pytest.mark.parametrize("kind", sorted(NETS))
def test_learner_on_cuda_matches_cpu(kind):
    torch.manual_seed(0)
    net = QNetwork((4,), 3, hidden_sizes=(32, 32), head_hidden=16, **NETS[kind])
    net.reset_noise(torch.Generator().manual_seed(1))  # fixed noise, copied to the GPU
    learners = []
    for device in ("cpu", "cuda"):
        online = copy.deepcopy(net).to(device)
        opt = torch.optim.Adam(online.parameters(), lr=1e-2, fused=True)
        learners.append(DQNLearner(online, opt, max_grad_norm=1.0, reset_noise=False))
    cpu, gpu = learners
    assert cpu._manual is not None and gpu._manual is not None  # both hand-written paths
    for k in range(3):
        batch = make_batch(4 * 32, seed=k)
        outs_cpu = cpu.update_many(batch, 4)
        outs_gpu = gpu.update_many(batch_on(batch, "cuda"), 4)
        for a, b in zip(outs_cpu, outs_gpu, strict=True):
            np.testing.assert_allclose(a.priorities, b.priorities, rtol=1e-4, atol=1e-5)
            for key in ("loss", "q_mean", "td_abs_mean", "grad_norm"):
                assert a.metrics[key] == pytest.approx(b.metrics[key], rel=1e-4, abs=1e-5), key
        cpu.sync_target()
        gpu.sync_target()
    for a, b in zip(cpu.online.parameters(), gpu.online.parameters(), strict=True):
        torch.testing.assert_close(a, b.cpu(), rtol=1e-4, atol=1e-5)


def test_train_and_eval_on_cuda(capsys, tmp_path):
    run_dir = tmp_path / "run"
    code, out, err = cli(
        capsys, "train", "--run-dir", str(run_dir), *sets(*TINY, "trainer.device=cuda")
    )
    assert code == 0, err
    assert "device: cuda" in out
    assert "device: cuda" in (run_dir / "config.yaml").read_text()
    records = read_metrics(run_dir)
    assert records[-1]["env_steps"] == 300
    losses = [r["train/loss"] for r in records if "train/loss" in r]
    assert losses and all(math.isfinite(x) for x in losses)
    assert any("eval/return_mean" in r for r in records)
    # the checkpoint evaluates on the GPU and, mapped, on the CPU
    for device in ("cuda", "cpu"):
        code, out, err = cli(capsys, "eval", str(run_dir), "--episodes", "3", "--device", device)
        assert code == 0, err
        mean, _, episodes, _ = parse_eval(out)
        assert episodes == 3 and 1 <= mean <= 500


def test_resume_on_cuda_continues_exactly(capsys, tmp_path):
    """Plain DQN on the GPU: resuming from the middle checkpoint reproduces the rest."""
    small = [
        "trainer.device=cuda",
        "trainer.total_steps=800",
        "trainer.learning_starts=200",
        "trainer.train_every=50",
        "trainer.updates_per_train=5",
        "trainer.checkpoint_every=400",
        "trainer.keep_checkpoints=3",
        "network.hidden_sizes=[16]",
        "eval.every=400",
        "eval.episodes=2",
        "trainer.log_every=100",
    ]
    config = str(Path(__file__).resolve().parents[2] / "configs" / "cartpole_dqn.yaml")
    run_dir = tmp_path / "run"
    code, _, err = cli(capsys, "train", config, "--run-dir", str(run_dir), *sets(*small))
    assert code == 0, err
    full = without_timing(read_metrics(run_dir))
    checkpoints = list_checkpoints(run_dir / "checkpoints")
    assert [p.name for p in checkpoints][-1].endswith(f"{800:012d}.pt")
    for p in checkpoints:
        if not p.name.endswith(f"{400:012d}.pt"):
            p.unlink()
    code, out, err = cli(capsys, "train", "--resume", str(run_dir))
    assert code == 0, err
    assert "at env step 400" in out
    resumed = without_timing(read_metrics(run_dir))
    assert json.dumps(resumed) == json.dumps(full)


# ---------------------------------------------------------------- issue: throughput


def test_compiled_learner_on_cuda_equals_eager_with_cuda_graphs():
    from tests.component.test_compiled_learner import CASES, assert_same_updates

    for name in ("scalar huber double-q", "c51 cross-entropy, noisy dueling"):
        case = CASES[name]
        torch.manual_seed(0)
        net = QNetwork((4,), 2, hidden_sizes=(32, 32), v_min=-5.0, v_max=5.0, **case["net"])
        nets = [net.cuda(), copy.deepcopy(net).cuda()]
        learners = [
            DQNLearner(
                n,
                torch.optim.Adam(n.parameters(), lr=1e-2, fused=True),
                manual_gradients=False,
                **case["learner"],
                **extra,
            )
            for n, extra in zip(nets, [{}, {"compile": {"mode": "reduce-overhead"}}], strict=True)
        ]
        assert_same_updates(*learners, tol=1e-4, device="cuda")


def test_frames_on_device_on_cuda_gathers_the_host_pools_stacks():
    from rlkit.agent.replay import PrioritizedReplayBuffer
    from tests.component.test_frame_replay import filled_host_and_mirrored

    host, mirrored = filled_host_and_mirrored(PrioritizedReplayBuffer, device="cuda")
    a, b = host.sample(48, beta=0.5), mirrored.sample(48, beta=0.5)
    assert b.obs.is_cuda and b.next_obs.is_cuda
    assert torch.equal(a.obs, b.obs) and torch.equal(a.next_obs, b.next_obs)


def test_async_training_on_cuda(capsys, tmp_path):
    run_dir = tmp_path / "async"
    code, _, err = cli(
        capsys,
        "train",
        "--run-dir",
        str(run_dir),
        *sets(*TINY, "trainer.device=cuda", "trainer.mode=async", "learner.compile=true"),
    )
    assert code == 0, err
    assert any("train/loss" in r for r in read_metrics(run_dir))
