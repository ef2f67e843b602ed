"""``rlkit export`` / ``rlkit.export``: a TorchScript greedy policy that runs without rlkit.

The exported files are loaded in a subprocess where importing rlkit raises (a meta path
finder blocks it: rlkit is installed in the venv), and their actions on real observations
must equal ``Agent.act``. Heads: scalar and C51, dueling and linear, noisy and plain, an
MLP on float CartPole states and the Nature CNN on uint8 frame stacks.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import rlkit
from rlkit.build import build_network
from rlkit.config import load_config
from tests.e2e.tiny import (  # noqa: F401 - _isolated is an autouse fixture
    DEFAULT_CONFIG,
    TINY,
    _isolated,
    cli,
    restore_torch_globals,
    sets,
)

#: loads every ``<name>.pt`` next to ``<name>.npy`` and writes ``<name>.out.npy``, with rlkit
#: made unimportable first
PLAIN_TORCH = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "rlkit" or name.startswith("rlkit."):
            raise ImportError("rlkit is blocked here")
sys.meta_path.insert(0, Block())
try:
    import rlkit
except ImportError:
    pass
else:
    raise SystemExit("rlkit imported")
import pathlib, numpy as np, torch
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.pt")):
    policy = torch.jit.load(str(path))
    obs = torch.from_numpy(np.load(path.with_suffix(".npy")))
    actions = policy(obs)
    assert actions.dtype == torch.int64 and actions.shape == (obs.shape[0],), actions
    np.save(path.with_suffix(".out.npy"), actions.numpy())
assert not any(m == "rlkit" or m.startswith("rlkit.") for m in sys.modules)
print("ok")
"""

VARIANTS = {  # name -> network overrides
    "c51-dueling-noisy": {"network.atoms": 51, "network.dueling": True, "network.noisy": True},
    "scalar-dueling-noisy": {"network.atoms": 1, "network.dueling": True, "network.noisy": True},
    "scalar-plain": {"network.atoms": 1, "network.dueling": False, "network.noisy": False},
    "c51-plain": {"network.atoms": 51, "network.dueling": False, "network.noisy": False},
    "qr-dueling-noisy": {"network.head": "qr", "network.atoms": 8},
    # IQN acts on the K midpoint fractions in eval mode: deterministic, so exportable
    "iqn-dueling-noisy": {"network.head": "iqn", "network.atoms": 8, "network.iqn_cvar_eta": 0.5},
}


def _cartpole_obs(n: int) -> np.ndarray:
    """``n`` CartPole observations [n, 4] float32 of a seeded random walk."""
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=1)
    out, rng = [], np.random.default_rng(1)
    for _ in range(n):
        out.append(obs)
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(2)))
        if terminated or truncated:
            obs, _ = env.reset()
    return np.stack(out).astype(np.float32)


def _fresh_agent(overrides: dict, obs_shape: tuple[int, ...], num_actions: int) -> rlkit.Agent:
    fixed = {"trainer.device": "cpu", "network.v_min": -10.0, "network.v_max": 10.0}
    config = load_config(DEFAULT_CONFIG, {**overrides, **fixed})
    torch.manual_seed(0)
    net = build_network(config, obs_shape, num_actions)
    if net.noisy:  # noise in the buffers must not reach the exported (mean) policy
        net.reset_noise()
    return rlkit.Agent(net, config, torch.device("cpu"))


def _run_plain_torch(directory: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", PLAIN_TORCH, str(directory)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")


def test_exported_heads_match_agent_act(tmp_path):
    obs = _cartpole_obs(64)
    expected = {}
    for name, overrides in VARIANTS.items():
        agent = _fresh_agent(overrides, (4,), 2)
        rlkit.export(agent, tmp_path / f"{name}.pt")
        np.save(tmp_path / f"{name}.npy", obs)
        expected[name] = agent.act(obs)
    frames = np.random.default_rng(0).integers(0, 256, (6, 4, 84, 84), dtype=np.uint8)
    agent = _fresh_agent(VARIANTS["c51-dueling-noisy"], (4, 84, 84), 6)
    rlkit.export(agent, tmp_path / "atari-cnn.pt")
    np.save(tmp_path / "atari-cnn.npy", frames)
    expected["atari-cnn"] = agent.act(frames)
    _run_plain_torch(tmp_path)
    for name, actions in expected.items():
        np.testing.assert_array_equal(np.load(tmp_path / f"{name}.out.npy"), actions, err_msg=name)


def test_cli_export_of_a_trained_run(capsys, tmp_path):
    threads = torch.get_num_threads()
    run_dir = tmp_path / "run"
    code, _, err = cli(capsys, "train", "--run-dir", str(run_dir), *sets(*TINY))
    restore_torch_globals(threads)
    assert code == 0, err
    out_dir = tmp_path / "exported"
    code, out, err = cli(capsys, "export", str(run_dir), str(out_dir / "policy.pt"))
    assert code == 0, err
    assert "wrote" in out
    obs = _cartpole_obs(100)
    np.save(out_dir / "policy.npy", obs)
    _run_plain_torch(out_dir)
    agent = rlkit.Agent.load(run_dir)
    np.testing.assert_array_equal(np.load(out_dir / "policy.out.npy"), agent.act(obs))


def test_export_help_states_the_input(capsys):
    with pytest.raises(SystemExit):
        cli(capsys, "export", "--help")
    out = capsys.readouterr().out
    assert "[N, *obs_shape]" in out and "int64" in out and "uint8" in out


def test_exported_policy_of_packed_observations_matches_agent_act(tmp_path):
    """Dict observations (HWC image, Discrete, MultiBinary; rlkit.envs.spaces packs them
    into one uint8 vector of one-hot indices and pixels): the exported policy takes the
    packed vector as the env wrapper returns it, without dividing the indices by 255."""
    from rlkit.envs import layout_of
    from rlkit.envs.gymnasium import make_vec_env
    from tests.space_envs import DICT_ENV

    with pytest.warns(UserWarning, match="Text space"):
        envs = make_vec_env(DICT_ENV, 1)
    layout = layout_of(envs)
    assert layout is not None
    obs, rng = [], np.random.default_rng(0)
    current = envs.reset(seed=0)
    for _ in range(40):
        obs.append(current[0])
        current = envs.step(rng.integers(3, size=1)).obs
    envs.close()
    obs_N = np.stack(obs)
    assert obs_N.dtype == np.uint8 and obs_N.max() == 255  # pixels next to indices
    fixed = {"trainer.device": "cpu", "network.v_min": -10.0, "network.v_max": 10.0}
    config = load_config(DEFAULT_CONFIG, fixed)
    torch.manual_seed(0)
    net = build_network(config, obs_N.shape[1:], 3, layout)
    with torch.no_grad():  # large random weights: actions that depend on the input
        for param in net.parameters():
            param.normal_(0.0, 1.0)
    agent = rlkit.Agent(net, config, torch.device("cpu"))
    expected = agent.act(obs_N)
    assert len(set(expected.tolist())) > 1, "a policy that ignores its input proves nothing"
    rlkit.export(agent, tmp_path / "packed.pt")
    np.save(tmp_path / "packed.npy", obs_N)
    _run_plain_torch(tmp_path)
    np.testing.assert_array_equal(np.load(tmp_path / "packed.out.npy"), expected)
