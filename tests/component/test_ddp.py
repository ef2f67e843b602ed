"""Data-parallel learners (``rlkit.distributed.ddp``) on CPU with gloo and 2 processes:
one all-reduced update on two halves of a batch equals the single-process update on
the whole batch; ``torchrun`` runs the whole CLI as two ranks whose networks stay equal."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from rlkit.agent.learner import DQNLearner
from rlkit.agent.nn import QNetwork
from rlkit.distributed.ddp import GradAllReduce, broadcast_module
from tests.component.test_learner import make_batch
from tests.e2e.tiny import CONFIGS, ROOT, TINY

BATCH = 16


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _learner(sync=None, seed=0) -> DQNLearner:
    torch.manual_seed(seed)
    net = QNetwork((4,), 2, hidden_sizes=(16,), dueling=True, noisy=False, atoms=1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    return DQNLearner(net, opt, manual_gradients=False, max_grad_norm=0.5, grad_sync=sync)


def _half(batch, rank: int):
    from rlkit.agent.updaters import batch_slice

    half = len(batch) // 2
    return batch_slice(batch, rank * half, (rank + 1) * half)


def _rank(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)
    learner = _learner(GradAllReduce(), seed=rank)  # different inits: rank 0's win
    broadcast_module(learner.online)
    broadcast_module(learner.target)
    priorities = []
    for k in range(3):
        priorities.append(learner.update(_half(make_batch(BATCH, seed=k), rank)).priorities)
    torch.save({"state": learner.online.state_dict(), "priorities": priorities}, f"{out}/{rank}.pt")
    dist.destroy_process_group()


def test_an_all_reduced_update_equals_the_update_on_the_whole_batch(tmp_path):
    mp.spawn(_rank, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    single = _learner()
    expected = [single.update(make_batch(BATCH, seed=k)).priorities for k in range(3)]
    ranks = [torch.load(tmp_path / f"{r}.pt", weights_only=False) for r in (0, 1)]
    for name, value in single.online.state_dict().items():
        for r in ranks:  # both ranks hold the single-process weights
            torch.testing.assert_close(r["state"][name], value, rtol=1e-5, atol=1e-6)
    for k in range(3):  # each rank's priorities are its half of the batch's
        got = np.concatenate([ranks[0]["priorities"][k], ranks[1]["priorities"][k]])
        np.testing.assert_allclose(got, expected[k], rtol=1e-5, atol=1e-6)
    # without the all-reduce the ranks' weights would differ: the check can fail
    alone = _learner()
    alone.update(_half(make_batch(BATCH, seed=0), 0))
    first = next(iter(alone.online.state_dict()))
    assert not torch.allclose(alone.online.state_dict()[first], ranks[0]["state"][first])


def test_torchrun_trains_two_ranks_whose_networks_stay_equal(tmp_path):
    run_dir = tmp_path / "run"
    sets = [a for item in [*TINY, "learner.batch_size=32"] for a in ("--set", item)]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]
    cmd += [f"--master_port={_free_port()}", "-m", "rlkit", "train"]
    cmd += [str(CONFIGS / "cartpole_rainbow.yaml"), *sets, "--run-dir", str(run_dir)]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    from rlkit.app.checkpoint import list_checkpoints, load_checkpoint

    states = [
        load_checkpoint(list_checkpoints(d / "checkpoints")[-1])
        for d in (run_dir, run_dir / "rank1")
    ]
    assert states[0]["config"]["learner"]["batch_size"] == 16  # 32 split over 2 ranks
    assert states[0]["config"]["trainer"]["seed"] != states[1]["config"]["trainer"]["seed"]
    params = [n for n in states[0]["learner"]["online"] if ".eps_" not in n]  # noise: per rank
    assert len(params) > 4
    for name in params:
        value = states[0]["learner"]["online"][name]
        torch.testing.assert_close(states[1]["learner"]["online"][name], value, msg=name)
    assert states[0]["learner"]["updates"] == states[1]["learner"]["updates"] > 0
