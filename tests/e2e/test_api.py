"""The Python API end to end: ``rlkit.train``, ``rlkit.Agent``, ``rlkit.evaluate``.

One tiny run (300 env steps of the default config, CPU) is trained through the API once per
module and inspected by most tests; the CLI trains the same config to compare the metrics,
and a run stopped by its callback is resumed to compare again.
"""

from __future__ import annotations

import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import rlkit
from rlkit.app.checkpoint import list_checkpoints
from rlkit.envs import EnvError
from tests.e2e.tiny import (  # noqa: F401 - _isolated is an autouse fixture
    DEFAULT_CONFIG,
    TINY,
    TOTAL_STEPS,
    _isolated,
    cli,
    parse_eval,
    read_metrics,
    restore_torch_globals,
    sets,
    without_timing,
)


@pytest.fixture(scope="module")
def api_run(tmp_path_factory) -> tuple[rlkit.TrainResult, list[tuple[int, dict]]]:
    """The tiny run trained by ``rlkit.train`` and every (env_steps, metrics) its callback got."""
    threads = torch.get_num_threads()
    seen: list[tuple[int, dict]] = []
    run_dir = tmp_path_factory.mktemp("api") / "run"
    run = rlkit.train(None, TINY, run_dir=run_dir, callback=lambda m, s: seen.append((s, m)))
    restore_torch_globals(threads)
    return run, seen


@pytest.fixture(scope="module")
def observations() -> np.ndarray:
    """20 CartPole observations [20, 4] from a random walk (seeded)."""
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=0)
    out, rng = [], np.random.default_rng(0)
    for _ in range(20):
        out.append(obs)
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(2)))
        if terminated or truncated:
            obs, _ = env.reset()
    return np.stack(out)


def _close(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and math.isclose(a, b))


def test_train_returns_the_run(api_run):
    run, _ = api_run
    assert run.env_steps == TOTAL_STEPS and not run.stopped_early
    assert run.config.trainer.total_steps == TOTAL_STEPS
    assert run.final_eval is not None and len(run.final_eval.returns) == 2
    assert (run.run_dir / "config.yaml").is_file()
    assert list_checkpoints(run.run_dir / "checkpoints")


def test_api_and_cli_write_the_same_metrics(api_run, capsys, tmp_path):
    run, _ = api_run
    code, _, err = cli(capsys, "train", "--run-dir", str(tmp_path / "cli"), *sets(*TINY))
    assert code == 0, err
    api_records = without_timing(read_metrics(run.run_dir))
    assert api_records and api_records == without_timing(read_metrics(tmp_path / "cli"))


def test_callback_gets_every_logged_point(api_run):
    run, seen = api_run
    records = read_metrics(run.run_dir)
    assert [s for s, _ in seen] == [r["env_steps"] for r in records]
    for (_, metrics), record in zip(seen, records):
        assert set(metrics) == set(record) - {"env_steps"}
        assert all(_close(record[k], v if math.isfinite(v) else None) for k, v in metrics.items())


def test_callback_stops_early_and_the_run_resumes(api_run, tmp_path):
    full, _ = api_run
    run_dir = tmp_path / "stopped"
    run = rlkit.train(None, TINY, run_dir=run_dir, callback=lambda m, s: s >= 200)
    assert run.stopped_early and run.env_steps == 200 and run.final_eval is None
    assert list_checkpoints(run_dir / "checkpoints")[-1].name.endswith("200.pt")
    resumed = rlkit.train(run_dir=run_dir, resume=True)
    assert resumed.env_steps == TOTAL_STEPS and resumed.final_eval is not None
    # the stop is a clean checkpoint: the resumed run ends where the uninterrupted one did
    expected = without_timing(read_metrics(full.run_dir))
    assert without_timing(read_metrics(run_dir)) == expected
    assert resumed.final_eval.returns == full.final_eval.returns


def test_agent_loads_a_run_dir_and_a_checkpoint(api_run, observations):
    run, _ = api_run
    agent = rlkit.Agent.load(run.run_dir)
    newest = list_checkpoints(run.run_dir / "checkpoints")[-1]
    assert agent.checkpoint == newest and agent.env_steps == TOTAL_STEPS
    assert agent.num_actions == 2 and agent.obs_shape == (4,)
    assert agent.config == run.config and agent.device == torch.device("cpu")
    from_file = rlkit.Agent.load(newest)
    np.testing.assert_array_equal(from_file.q_values(observations), agent.q_values(observations))


def test_act_single_and_batch(api_run, observations):
    agent = rlkit.Agent.load(api_run[0].run_dir)
    q_NA = agent.q_values(observations)
    actions = agent.act(observations)
    assert q_NA.shape == (20, 2) and actions.shape == (20,) and actions.dtype == np.int64
    np.testing.assert_array_equal(actions, q_NA.argmax(axis=1))
    single = agent.act(observations[3])
    assert isinstance(single, int) and single == int(q_NA[3].argmax())
    np.testing.assert_allclose(agent.q_values(observations[3]), q_NA[3], rtol=1e-6)
    with pytest.raises(ValueError, match="observation shape"):
        agent.act(np.zeros(5, dtype=np.float32))


def test_epsilon_one_acts_uniformly_and_is_seeded(api_run, observations):
    run_dir = api_run[0].run_dir
    batch = np.repeat(observations[:1], 4000, axis=0)  # one state: greedy is one action
    agent = rlkit.Agent.load(run_dir, seed=3)
    actions = agent.act(batch, epsilon=1.0)
    counts = np.bincount(actions, minlength=2)
    assert abs(counts[0] - 2000) < 4 * math.sqrt(1000)  # 4 sigma of Binomial(4000, 1/2)
    again = rlkit.Agent.load(run_dir, seed=3).act(batch, epsilon=1.0)
    np.testing.assert_array_equal(actions, again)
    assert (agent.act(batch, epsilon=0.0) == agent.act(batch[0])).all()


def test_evaluate_with_an_id_and_with_env_objects(api_run):
    agent = rlkit.Agent.load(api_run[0].run_dir)
    same = rlkit.evaluate(agent, "CartPole-v1", episodes=3, seed=1)
    assert same == rlkit.evaluate(agent, None, episodes=3, seed=1)
    other = rlkit.evaluate(agent, "CartPole-v0", episodes=3, seed=1)  # 200-step time limit
    assert len(other.returns) == 3 and max(other.lengths) <= 200
    env = gym.make("CartPole-v1")
    one = rlkit.evaluate(agent, env, episodes=2, seed=5)
    assert len(one.returns) == 2 and one == rlkit.evaluate(agent, env, episodes=2, seed=5)
    vec = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")] * 2)
    assert len(rlkit.evaluate(agent, vec, episodes=4, seed=5).returns) == 4
    vec.close()
    with pytest.raises(EnvError, match="the agent expects"):
        rlkit.evaluate(agent, "MountainCar-v0", episodes=1)


def test_cli_eval_is_the_api_evaluate(api_run, capsys):
    run, _ = api_run
    code, out, err = cli(capsys, "eval", str(run.run_dir), "--episodes", "3", "--seed", "4")
    assert code == 0, err
    agent = rlkit.Agent.load(run.run_dir)
    result = rlkit.evaluate(agent, episodes=3, seed=4)
    mean, std, episodes, length = parse_eval(out)
    assert (mean, episodes) == (round(result.mean, 2), 3)
    assert length == round(float(np.mean(result.lengths)), 1)


def test_config_object_with_overrides(tmp_path):
    from rlkit.config import load_config

    config = load_config(DEFAULT_CONFIG, TINY)
    run = rlkit.train(config, {"trainer.total_steps": 100}, run_dir=tmp_path / "obj")
    assert run.env_steps == 100 and list(run.config.network.hidden_sizes) == [16]


def test_import_rlkit_stays_cheap():
    import subprocess
    import sys

    code = "import sys, rlkit; assert 'torch' not in sys.modules; print(rlkit.train.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "rlkit.app.api"


def test_default_run_dir(tmp_path):
    run = rlkit.train(None, {**_as_mapping(TINY), "trainer.total_steps": 50})
    assert run.run_dir.parent == Path("runs")
    assert run.run_dir.name.startswith("cartpole_rainbow-seed0-")


def _as_mapping(items: list[str]) -> dict[str, str]:
    import yaml

    return {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in items)}
