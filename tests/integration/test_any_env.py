"""Any Gymnasium env from the config: ``module:EnvId``, ``env.imports``, ``env.kwargs``,
``env.wrappers`` (training and evaluation envs alike), every observation-space kind
through whole runs, one-line errors, and a run dir that can be evaluated later in a
fresh process (which imports what the env needs from the run's config)."""

from __future__ import annotations

import io

import numpy as np
import pytest

from rlkit.build import make_envs
from rlkit.config import load_config
from rlkit.envs import EnvError
from tests.e2e.cli_process import rlkit
from tests.e2e.tiny import TINY, assert_one_line_error, cli, parse_eval, sets

MODULE = "tests.space_envs"
ADD = f"{{target: '{MODULE}:AddReward', kwargs: {{amount: 1.0}}}}"
SCALE = f"{{target: '{MODULE}:ScaleReward', kwargs: {{factor: 2.0}}}}"
MULTI_ACTION = f"env.id={MODULE}:RlkitSpaces/MultiAction-v0"


def _wrappers(*entries: str) -> str:
    return f"env.wrappers=[{', '.join(entries)}]"


def _rewards(config, evaluation: bool, steps: int = 4) -> list[float]:
    envs = make_envs(config, 1, evaluation=evaluation)
    try:
        envs.reset(seed=0)
        return [float(envs.step(np.array([5])).reward[0]) for _ in range(steps)]
    finally:
        envs.close()


def test_module_colon_id_imports_the_module_and_wrappers_apply_in_order():
    config = load_config(None, [MULTI_ACTION, _wrappers(ADD, SCALE)])
    # action 5 = joint (1, 2): reward 1 -> (1 + 1) * 2 = 4 in training and evaluation envs
    assert _rewards(config, evaluation=False) == [4.0] * 4
    assert _rewards(config, evaluation=True) == [4.0] * 4
    swapped = load_config(None, [MULTI_ACTION, _wrappers(SCALE, ADD)])
    assert _rewards(swapped, evaluation=False) == [3.0] * 4  # 1 * 2 + 1


def test_env_imports_registers_a_plain_id():
    config = load_config(None, [f"env.imports=[{MODULE}]", "env.id=RlkitSpaces/Dict-v0"])
    envs = make_envs(config, 2)
    assert envs.obs_layout is not None and envs.obs_shape == (150,)
    envs.close()


def test_env_kwargs_reach_gymnasium_make():
    config = load_config(None, ["env.id=FrozenLake-v1", "env.kwargs={map_name: 8x8}"])
    envs = make_envs(config, 1)
    assert envs.obs_layout.parts[0].classes == (64,)  # 8x8 = 64 states, not 4x4 = 16
    envs.close()


@pytest.mark.parametrize(
    ("sets_", "fragments"),
    [
        (["env.id=no_such_pkg:Foo-v0"], ("env.id", "no_such_pkg", "pip install no-such-pkg")),
        (["env.imports=[highway_env_missing]"], ("env.imports[0]", "pip install")),
        (["env.id=Zzqx/Qqqq-v0"], ("unknown Gymnasium environment", "module:EnvId")),
        ([f"env.id={MODULE}:RlkitSpaces/Dict-v1"], ("after importing 'tests.space_envs'",)),
        ([f"env.wrappers=[{{target: '{MODULE}:NoSuch'}}]"], ("env.wrappers[0].target",)),
        ([f"env.wrappers=[{{target: '{MODULE}:not_a_wrapper'}}]"], ("returned int",)),
        (["env.id=Pendulum-v1"], ("Box action space", "DQN needs discrete actions")),
    ],
)
def test_env_errors_are_one_line_and_exit_2(capsys, tmp_path, sets_, fragments):
    code, _, err = cli(capsys, "train", *sets(*TINY, *sets_), "--run-dir", str(tmp_path / "r"))
    assert_one_line_error(code, err, *fragments)
    assert not (tmp_path / "r").exists()  # nothing written before the env is checked


def test_bad_wrapper_entry_is_a_config_error(capsys):
    code, _, err = cli(capsys, "config", "--set", "env.wrappers=[{target: nocolon}]")
    assert_one_line_error(code, err, "env.wrappers[0].target", "module:Callable")


@pytest.mark.parametrize(
    "env_sets",
    [
        ["env.id=FrozenLake-v1"],  # Discrete
        ["env.id=Blackjack-v1"],  # Tuple of Discrete
        [f"env.id={MODULE}:RlkitSpaces/Dict-v0"],  # Dict: HWC image, Discrete, bits, Text
        [f"env.id={MODULE}:RlkitSpaces/ImageHWC-v0"],  # a (7, 7, 3) image
        [f"env.id={MODULE}:RlkitSpaces/MultiAction-v0"],  # MultiDiscrete actions
    ],
)
def test_every_space_kind_trains_and_evaluates(capsys, tmp_path, env_sets):
    run_dir = tmp_path / "run"
    code, out, err = cli(capsys, "train", *sets(*TINY, *env_sets), "--run-dir", str(run_dir))
    assert code == 0, err
    assert "final eval" in out
    code, out, err = cli(capsys, "eval", str(run_dir), "--episodes", "2")
    assert code == 0, err
    assert parse_eval(out)[2] == 2


def test_replay_stores_packed_observations_compactly():
    from rlkit.build import build

    config = load_config(None, [*TINY, "env.id=FrozenLake-v1"])
    components = build(config, logger=_NullLogger())
    try:
        storage = components.replay._storage
        assert storage.obs_shape == (1,)  # the state index, not a 16-wide one-hot
        assert storage.obs.dtype == np.uint8 and storage.obs.shape == (config.replay.capacity, 1)
    finally:
        components.close()


class _NullLogger:
    def log(self, env_steps, scalars):
        pass

    def close(self):
        pass


def test_a_run_on_an_env_of_the_users_module_evaluates_in_a_fresh_process(tmp_path):
    run_dir = tmp_path / "run"
    env_sets = [f"env.imports=[{MODULE}]", "env.id=RlkitSpaces/ImageHWC-v0"]
    done = rlkit("train", *sets(*TINY, *env_sets), "--run-dir", str(run_dir), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    again = rlkit("eval", str(run_dir), "--episodes", "2", cwd=tmp_path)
    assert again.returncode == 0, again.stderr  # the new process imported tests.space_envs
    assert "return:" in again.stdout


FROZEN_LAKE = [
    "env.id=FrozenLake-v1",
    "env.kwargs={is_slippery: false}",
    "trainer.total_steps=3000",
    "trainer.learning_starts=200",
    "trainer.device=cpu",
    "trainer.log_every=500",
    "eval.every=1000",
    "eval.episodes=5",
    "network.noisy=false",
    "network.atoms=1",
    "network.hidden_sizes=[32]",
    "network.head_hidden=0",
    "learner.batch_size=32",
    "exploration.epsilon_start=1.0",
    "exploration.epsilon_end=0.05",
    "exploration.epsilon_steps=2000",
]


def test_frozen_lake_non_slippery_is_solved(capsys, tmp_path):
    code, out, err = cli(capsys, "train", *sets(*FROZEN_LAKE), "--run-dir", str(tmp_path / "r"))
    assert code == 0, err
    # the only reward is 1 at the goal: a greedy return of 1.0 in every episode is solved
    assert "final eval: return 1.0 ± 0.0" in out


def test_unknown_env_in_make_envs_raises_env_error():
    with pytest.raises(EnvError):
        make_envs(load_config(None, ["env.id=NoSuchEnv-v9"]), 1)


@pytest.mark.filterwarnings("ignore:observation part 'obs.mission' is a Text space")
def test_api_evaluate_adapts_a_users_raw_env_like_training(tmp_path):
    """``rlkit.evaluate(agent, env)`` with the user's own Dict env (not packed): it is
    adapted as the training envs were, so the agent acts on its packed observations."""
    import gymnasium as gym

    import rlkit
    from tests.space_envs import DICT_ENV

    run = rlkit.train(
        None,
        [*TINY, f"env.id={MODULE}:{DICT_ENV}"],
        run_dir=tmp_path / "run",
        stream=io.StringIO(),
    )
    agent = rlkit.Agent.load(run.run_dir)
    raw = gym.make(DICT_ENV, length=5)
    own = rlkit.evaluate(agent, raw, episodes=3, seed=0)
    made = rlkit.evaluate(agent, None, episodes=3, seed=0)
    assert len(own.returns) == len(made.returns) == 3
    assert list(own.lengths) == [5, 5, 5]  # DictEnv episodes are 5 steps
    assert all(0.0 <= r <= 5.0 for r in own.returns)  # reward 0 or 1 per step


@pytest.mark.filterwarnings("ignore:observation part 'obs.mission' is a Text space")
@pytest.mark.parametrize(
    "env_id, kwargs",
    [
        (f"{MODULE}:RlkitSpaces/Dict-v0", {}),
        ("FrozenLake-v1", {}),
        (f"{MODULE}:RlkitSpaces/ImageHWC-v0", {}),
    ],
)
def test_agent_acts_on_observations_of_the_envs_own_space(tmp_path, env_id, kwargs):
    """``Agent.act`` / ``q_values`` take what ``gym.make(env.id)`` returns (a dict, an
    int, an HWC image) as well as rlkit's packed form, one or a list of them."""
    import gymnasium as gym

    import rlkit
    from rlkit.envs.spaces import adapt_observations

    run = rlkit.train(
        None, [*TINY, f"env.id={env_id}"], run_dir=tmp_path / "r", stream=io.StringIO()
    )
    agent = rlkit.Agent.load(run.run_dir)
    raw_env = gym.make(env_id.split(":")[-1] if ":" in env_id else env_id, **kwargs)
    packer = adapt_observations(gym.make(raw_env.spec.id, **kwargs))
    raws, rng = [], np.random.default_rng(0)
    obs, _ = raw_env.reset(seed=0)
    for _ in range(6):
        raws.append(obs)
        obs, *_ = raw_env.step(int(rng.integers(raw_env.action_space.n)))
    packed = np.stack([packer.observation(o) for o in raws])
    assert packed.shape[1:] == agent.obs_shape
    np.testing.assert_array_equal(agent.q_values(raws[0]), agent.q_values(packed[0]))
    assert agent.act(raws[0]) == agent.act(packed[0])
    np.testing.assert_array_equal(agent.act(raws), agent.act(packed))
    with pytest.raises(ValueError, match="expected"):
        agent.act(np.zeros((2, 99)))
