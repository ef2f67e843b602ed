"""Config loading: extends:, --set overrides, type and range checks, clear errors."""

from pathlib import Path

import pytest

from rlkit.config import ConfigError, load_config, to_dict

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_shipped_configs_load():
    for path in sorted(CONFIGS.glob("*.yaml")):
        config = load_config(path)
        assert config.env.id
    dqn = load_config(CONFIGS / "cartpole_dqn.yaml")
    assert (dqn.network.dueling, dqn.network.noisy, dqn.network.atoms) == (False, False, 1)
    assert (dqn.learner.double_q, dqn.replay.prioritized, dqn.replay.n_step) == (False, False, 1)
    rainbow = load_config(CONFIGS / "cartpole_rainbow.yaml")
    assert (rainbow.network.dueling, rainbow.network.noisy, rainbow.network.atoms) == (
        True,
        True,
        51,
    )
    assert (rainbow.learner.double_q, rainbow.replay.prioritized, rainbow.replay.n_step) == (
        True,
        True,
        3,
    )


def test_extends_merges_sections_deeply(tmp_path):
    write(tmp_path, "base.yaml", "learner:\n  lr: 0.01\n  gamma: 0.9\nenv:\n  id: CartPole-v1\n")
    child = write(tmp_path, "child.yaml", "extends: base.yaml\nlearner:\n  lr: 0.5\n")
    config = load_config(child)
    assert config.learner.lr == 0.5
    assert config.learner.gamma == 0.9


def test_set_overrides_with_type_checking():
    config = load_config(
        None, ["learner.lr=3e-4", "network.hidden_sizes=[32,32]", "replay.capacity=1e4"]
    )
    assert config.learner.lr == pytest.approx(3e-4)
    assert config.network.hidden_sizes == (32, 32)
    assert config.replay.capacity == 10_000
    with pytest.raises(ConfigError, match="trainer.seed: expected an integer"):
        load_config(None, ["trainer.seed=abc"])
    with pytest.raises(ConfigError, match="network.dueling: expected true or false"):
        load_config(None, ["network.dueling=3"])
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(None, ["trainer.seed"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("learner.gamma=1.5", r"learner.gamma: must be in \(0, 1\]"),
        ("learner.gamma=0", r"learner.gamma: must be in \(0, 1\]"),
        ("replay.n_step=0", "replay.n_step: must be >= 1"),
        ("replay.alpha=-0.1", "replay.alpha: must be >= 0"),
        ("learner.batch_size=200000", "learner.batch_size: must not exceed replay.capacity"),
        ("trainer.total_steps=-5", "trainer.total_steps: must be >= 1"),
        ("trainer.learning_starts=-1", "trainer.learning_starts: must be >= 0"),
        ("trainer.device=gpu", "trainer.device: must be one of"),
        ("exploration.epsilon_start=2", r"exploration.epsilon_start: must be in \[0, 1\]"),
    ],
)
def test_out_of_range_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_unknown_keys_suggest_close_match(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'learner.lrr' \(did you mean 'lr'\?\)"):
        load_config(None, ["learner.lrr=1"])
    bad = write(tmp_path, "bad.yaml", "replay:\n  n_stpe: 3\n")
    with pytest.raises(
        ConfigError, match=r"bad.yaml: unknown key 'replay.n_stpe' \(did you mean 'n_step'\?\)"
    ):
        load_config(bad)
    bad = write(tmp_path, "bad2.yaml", "lerner:\n  lr: 3\n")
    with pytest.raises(ConfigError, match=r"unknown section 'lerner' \(did you mean 'learner'\?\)"):
        load_config(bad)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = write(tmp_path, "broken.yaml", "learner:\n  lr: 0.1\n   gamma: [0.9\n")
    with pytest.raises(ConfigError, match=r"broken.yaml:\d+: malformed YAML"):
        load_config(bad)
    loop = write(tmp_path, "loop.yaml", "extends: loop.yaml\n")
    with pytest.raises(ConfigError, match="circular"):
        load_config(loop)


def test_round_trip_through_dict():
    from rlkit.config import from_dict

    config = load_config(CONFIGS / "cartpole_rainbow.yaml")
    assert from_dict(to_dict(config)) == config


def test_yaml_is_loaded_safely(tmp_path):
    evil = write(
        tmp_path, "evil.yaml", "learner: !!python/object/apply:os.system ['echo hacked']\n"
    )
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_config(evil)


def test_pixel_configs_load_with_the_papers_hyperparameters():
    for path in sorted([*CONFIGS.glob("atari/*.yaml"), *CONFIGS.glob("minatar/*.yaml")]):
        config = load_config(path)
        assert config.env.id.startswith(("ALE/", "MinAtar/")), path
    r = load_config(CONFIGS / "atari" / "rainbow.yaml")
    assert (r.learner.lr, r.learner.adam_eps, r.learner.batch_size) == (6.25e-5, 1.5e-4, 32)
    assert (r.replay.n_step, r.replay.alpha, r.replay.beta_start, r.replay.capacity) == (
        3,
        0.5,
        0.4,
        1_000_000,
    )
    assert (r.network.sigma0, r.network.atoms, r.network.v_min, r.network.v_max) == (
        0.5,
        51,
        -10.0,
        10.0,
    )
    frames = r.env.frame_skip  # step counts are agent steps of 4 frames
    assert r.learner.target_update_period * frames == 32_000
    assert r.trainer.learning_starts * frames == 80_000
    assert (r.trainer.train_every, r.env.clip_rewards, r.env.frame_stack) == (4, True, 4)
    der = load_config(CONFIGS / "atari" / "der_100k.yaml")
    assert (der.trainer.total_steps, der.replay.n_step, der.trainer.train_every) == (100_000, 20, 1)
    minatar = load_config(CONFIGS / "minatar" / "seaquest.yaml")
    assert minatar.env.id == "MinAtar/Seaquest-v1" and minatar.network.torso == "minatar_cnn"
