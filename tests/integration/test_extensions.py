"""The three one-file extensions of docs/architecture.md, run as written there.

Each ``# file: rlkit/...`` code block of the page is written into a temporary directory
that is put on the path of its package (objectives, envs, loops); nothing else in the
repository changes. A new loss, a new env backend and a new loop must then work through
the config and the builders.
"""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import rlkit.agent.objectives as objectives_pkg
import rlkit.envs as envs_pkg
import rlkit.loops as loops_pkg
from rlkit.build import build, make_envs
from rlkit.config import from_dict
from rlkit.types import Batch
from tests.integration.envs import COUNTING

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
BLOCK = re.compile(r"```python\n# file: (rlkit/[\w/]+\.py)\n(.*?)```", re.S)
PACKAGES = {
    "rlkit/agent/objectives": objectives_pkg,
    "rlkit/envs": envs_pkg,
    "rlkit/loops": loops_pkg,
}


class NullLogger:
    def log(self, env_steps, scalars):
        pass

    def close(self):
        pass


@pytest.fixture
def extension(tmp_path, monkeypatch):
    """``extension("rlkit/envs/gymnasium_async.py")``: the module name, with the page's
    code for it importable from its package."""
    blocks = dict(BLOCK.findall(DOC.read_text()))
    added: list[str] = []

    def add(path: str) -> str:
        assert path in blocks, f"docs/architecture.md has no '# file: {path}' block"
        directory, name = path.rsplit("/", 1)
        package = PACKAGES[directory]
        target = tmp_path / directory.replace("/", "_")
        target.mkdir(exist_ok=True)
        (target / name).write_text(blocks[path])
        monkeypatch.setattr(package, "__path__", [*package.__path__, str(target)])
        module = f"{package.__name__}.{name[:-3]}"
        added.append(module)
        return name[:-3]

    yield add
    for module in added:
        sys.modules.pop(module, None)


def counting_config(**sections) -> dict:
    data = {
        "env": {"id": COUNTING, "kwargs": {"length": 5}},
        "network": {"hidden_sizes": [8], "dueling": False, "noisy": False, "atoms": 1},
        "learner": {"batch_size": 4, "target_update_period": 10, "gamma": 0.9},
        "replay": {"capacity": 1000, "prioritized": False, "n_step": 1},
        "trainer": {"total_steps": 40, "learning_starts": 10, "device": "cpu", "seed": 0},
        "eval": {"every": 0, "episodes": 1},
    }
    for section, values in sections.items():
        data[section].update(values)
    return data


def test_a_new_loss_is_one_file(extension):
    name = extension("rlkit/agent/objectives/mellowmax.py")
    assert name in objectives_pkg.names()
    c = build(from_dict(counting_config(network={"head": name})), NullLogger())
    objective = c.learner.objective
    assert type(objective).__name__ == "Mellowmax"
    # Hand check of the target: Q_target(s', .) = [1, 1] -> mm = (log(2 e^5) - log 2) / 5
    # = 1, so y = r + d = 2 + 0.5 = 2.5; Q(s, a) = 0.5 -> td = 2, Huber = 2 - 0.5 = 1.5.
    raw_next = torch.ones(1, 2, 1)
    raw_now = torch.tensor([[[0.5], [7.0]]], requires_grad=True)

    class Fixed:
        def target_next(self, next_obs):
            return raw_next

        def online(self, obs):
            return raw_now

    batch = Batch(
        obs=torch.zeros(1, 2),
        action=torch.tensor([0]),
        reward=torch.tensor([2.0]),
        next_obs=torch.zeros(1, 2),
        discount=torch.tensor([0.5]),
        weights=torch.tensor([1.0]),
        indices=np.arange(1),
    )
    out = objective(batch, Fixed())
    assert out.loss.item() == pytest.approx(1.5)
    assert out.priorities.tolist() == pytest.approx([2.0])
    assert math.isclose(out.metrics["q_mean"].item(), 0.5)
    # and it trains through the sync loop like any other objective
    counters = c.trainer.run()
    assert counters.updates > 0 and c.learner.updates == counters.updates


def test_a_new_env_backend_is_one_file(extension):
    name = extension("rlkit/envs/gymnasium_async.py")
    assert name in envs_pkg.backend_names()
    seen = {}
    for backend in ("gymnasium", name):
        config = from_dict({"env": {"id": "CartPole-v1", "backend": backend}})
        envs = make_envs(config, 2)
        try:
            obs = [envs.reset(seed=3)]
            rewards, ends = [], []
            for t in range(60):  # random-looking fixed actions; episodes end and reset
                step = envs.step(np.array([t % 2, (t // 3) % 2]))
                obs += [step.obs, step.final_obs]
                rewards.append(step.reward)
                ends.append(step.terminated | step.truncated)
            seen[backend] = (np.stack(obs), np.stack(rewards), np.stack(ends))
            restorable = envs.state_dict()["restorable"]
        finally:
            envs.close()
    assert not restorable  # subprocess envs cannot be checkpointed
    assert np.stack(seen["gymnasium"][2]).any()  # some episode ended and was reset
    for a, b in zip(seen["gymnasium"], seen[name]):
        np.testing.assert_array_equal(a, b)  # the same envs, only in other processes


def test_a_new_loop_is_one_file(extension):
    name = extension("rlkit/loops/phased.py")
    module = __import__(f"rlkit.loops.{name}", fromlist=["run"])
    c = build(from_dict(counting_config()), NullLogger())
    env_steps = module.run(c, phases=3, steps=8, updates=5, batch_size=4)
    assert env_steps == 24 and c.learner.updates == 15  # 3 phases x 5 updates
    assert len(c.replay) == 24  # one-step transitions of every env step
    for key, value in c.learner.params().items():  # published after the last phase
        assert torch.equal(c.policy.net.state_dict()[key], value), key
