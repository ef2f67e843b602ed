"""``network.v_min/v_max: auto`` through a whole run: the probe resolves it, the run
dir's checkpoints record it, and evaluation and resume rebuild the same support from the
record without probing again.

The env pays ``reward`` at every step and is cut at 20 steps (its spec's limit), so with
gamma 0.9 the discounted horizon is D = (1 - 0.9**20) / 0.1 = (1 - 0.12157665) / 0.1 =
8.7842335 and auto gives [reward * D * 1.1, 0] = [-9.6626569, 0] for reward -1.
"""

from __future__ import annotations

import io

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlkit.app import checkpoint as ckpt
from rlkit.app.run import evaluate_run, load_network_from_checkpoint, resume_config, train
from rlkit.app.rundir import load_run_config
from rlkit.config import config_diff, from_dict
from rlkit.support import resolve

PENALTY = "RlkitTest/Penalty-v0"
EXPECTED_LO = -1.1 * (1 - 0.9**20) / 0.1  # -9.6626569


class PenaltyEnv(gym.Env):
    """obs [t / 20]; ``reward`` at every step; never terminates (the spec cuts it at 20)."""

    metadata: dict = {"render_modes": []}

    def __init__(self, reward: float = -1.0) -> None:
        self.reward = reward
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.t = 0

    def _obs(self) -> np.ndarray:
        return np.array([self.t / 20], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        return self._obs(), self.reward, False, False, {}


if PENALTY not in gym.registry:
    gym.register(PENALTY, entry_point=PenaltyEnv, max_episode_steps=20)


def tiny(total_steps: int = 60, **env) -> dict:
    return {
        "env": {"id": PENALTY, **env},
        "network": {"hidden_sizes": [8], "head_hidden": 4, "atoms": 11},
        "learner": {"batch_size": 8, "gamma": 0.9, "target_update_period": 10},
        "replay": {"capacity": 500},
        "trainer": {
            "total_steps": total_steps,
            "learning_starts": 20,
            "device": "cpu",
            "log_every": 20,
            "checkpoint_every": 30,
        },
        "eval": {"every": 0, "episodes": 1},
    }


def support_of(net: torch.nn.Module) -> tuple[float, float]:
    return net.readout.support[0].item(), net.readout.support[-1].item()


def no_probe(monkeypatch) -> None:
    monkeypatch.setattr("rlkit.support.probe", lambda *a, **k: pytest.fail("probed again"))


@pytest.mark.parametrize("clip", [False, True])
def test_auto_follows_the_rewards_the_learner_sees(clip):
    config, support = resolve(from_dict(tiny(kwargs={"reward": -3.0}, clip_rewards=clip)))
    scale = 1.0 if clip else 3.0  # env.clip_rewards: the learner sees sign(r) = -1
    assert (config.network.v_min, config.network.v_max) == (
        pytest.approx(scale * EXPECTED_LO),
        0.0,
    )
    assert "T 20" in support.source


def test_a_run_records_its_support_and_eval_and_resume_use_it(tmp_path, monkeypatch):
    run_dir, stream = tmp_path / "run", io.StringIO()
    config = from_dict(tiny())
    components, _ = train(config, run_dir, stream=stream)
    assert "C51 support: auto -> [-9.663, 0] (from a 3000-step random-policy probe" in (
        stream.getvalue()
    )
    assert support_of(components.network) == (pytest.approx(EXPECTED_LO, rel=1e-6), 0.0)
    # config.yaml keeps auto (so resume and `rlkit ablate` compare configs as given) ...
    saved = load_run_config(run_dir)
    assert (saved.network.v_min, saved.network.v_max) == ("auto", "auto")
    assert not config_diff(saved, config)
    # ... and every checkpoint records the numbers
    newest = ckpt.list_checkpoints(run_dir / "checkpoints")[-1]
    state = ckpt.load_checkpoint(newest, map_location="cpu")
    assert state["config"]["network"]["v_min"] == pytest.approx(EXPECTED_LO)

    no_probe(monkeypatch)  # from here on, the record alone gives the support
    net, _ = load_network_from_checkpoint(newest, saved, torch.device("cpu"))
    assert support_of(net) == support_of(components.network)
    result, used = evaluate_run(run_dir, episodes=1)
    assert used == newest and result.mean == pytest.approx(-20.0)

    more = resume_config(run_dir, None, ["trainer.total_steps=90"], force=True)
    stream = io.StringIO()
    resumed, _ = train(more, run_dir, resume=True, stream=stream)
    assert "auto -> [-9.663, 0] (from the checkpoint's record)" in stream.getvalue()
    assert support_of(resumed.network) == support_of(components.network)
    assert resumed.trainer.counters.env_steps == 90


def test_a_support_that_misses_the_returns_is_warned_about_once(tmp_path):
    # returns are <= 0 but the support is [50, 100]: with n-step discount 0.9**3 = 0.729,
    # Tz = -1 + 0.729 z < 50 for every atom z < 70 (4 of 11 atoms), and learning moves
    # the mass further down, so well over 20% of the target mass is clamped
    data = tiny(total_steps=140)
    data["network"].update(v_min=50.0, v_max=100.0)
    stream = io.StringIO()
    train(from_dict(data), tmp_path / "run", stream=stream)
    text = stream.getvalue()
    assert "C51 support: auto" not in text
    assert text.count("(train/support_clip_frac)") == 1
    assert "[network.v_min, network.v_max]" in text
