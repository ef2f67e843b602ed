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
    with pytest.raises(
        ConfigError, match=r"unknown key 'learner.lrr' \(did you mean 'learner.lr'\?\)"
    ):
        load_config(None, ["learner.lrr=1"])
    bad = write(tmp_path, "bad.yaml", "replay:\n  n_stpe: 3\n")
    with pytest.raises(
        ConfigError,
        match=r"bad.yaml: unknown key 'replay.n_stpe' \(did you mean 'replay.n_step'\?\)",
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


# ---------------------------------------------------------------- field rules (metadata)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("env.num_envs=0", r"env.num_envs: must be >= 1, got 0$"),
        ("env.sticky_actions=1.5", r"env.sticky_actions: must be in \[0, 1\], got 1.5$"),
        ("env.noop_max=-1", r"env.noop_max: must be >= 0, got -1$"),
        (
            "env.max_frames_per_episode=0",
            r"env.max_frames_per_episode: must be >= 1 \(None = no cap\), got 0$",
        ),
        ("env.max_episode_steps=0", r"env.max_episode_steps: must be >= 1, got 0$"),
        (
            "network.hidden_sizes=[8,0]",
            r"network.hidden_sizes: widths must be >= 1, got \(8, 0\)$",
        ),
        ("network.sigma0=0", r"network.sigma0: must be > 0, got 0.0$"),
        (
            "network.atoms=0",
            r"network.atoms: must be >= 1 \(1 = no distributional head\), got 0$",
        ),
        ("network.head_hidden=-1", r"network.head_hidden: must be >= 0, got -1$"),
        ("learner.target_tau=0", r"learner.target_tau: must be in \(0, 1\], got 0.0$"),
        ("learner.max_grad_norm=0", r"learner.max_grad_norm: must be > 0, got 0.0$"),
        ("replay.beta_steps=-1", r"replay.beta_steps: must be >= 0, got -1$"),
        ("replay.eps=0", r"replay.eps: must be > 0, got 0.0$"),
        ("trainer.keep_checkpoints=0", r"trainer.keep_checkpoints: must be >= 1, got 0$"),
        ("eval.epsilon=1.01", r"eval.epsilon: must be in \[0, 1\], got 1.01$"),
    ],
)
def test_field_rules_name_the_key_and_the_range(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override, "learner.batch_size=1"])


def test_values_on_the_bounds_and_none_pass():
    config = load_config(
        None,
        [
            "learner.gamma=1",  # (0, 1]: 1 is in
            "learner.target_tau=1",
            "env.sticky_actions=0",  # [0, 1]: both ends in
            "eval.epsilon=1",
            "env.noop_max=0",
            "network.head_hidden=0",
            "learner.max_grad_norm=null",  # optional keys: None = off
            "env.max_frames_per_episode=null",
        ],
    )
    assert (config.learner.gamma, config.env.sticky_actions, config.eval.epsilon) == (1, 0, 1)
    assert config.learner.max_grad_norm is None and config.env.max_frames_per_episode is None


def test_torsos_are_the_networks_own_list():
    from rlkit.agent.nn.qnet import TORSOS

    for torso in TORSOS:
        assert load_config(None, [f"network.torso={torso}"]).network.torso == torso
    listed = ", ".join(repr(t) for t in TORSOS)
    with pytest.raises(ConfigError) as info:
        load_config(None, ["network.torso=resnet"])
    assert str(info.value) == f"--set network.torso: must be one of {listed}, got 'resnet'"


@pytest.mark.parametrize(
    ("key", "module", "function", "noun"),
    [
        ("env.backend", "rlkit.envs", "backend_names", "backend"),
        ("network.head", "rlkit.agent.objectives", "names", "head"),
    ],
)
def test_backend_and_head_come_from_their_registries(monkeypatch, key, module, function, noun):
    import importlib

    registry = importlib.import_module(module)
    monkeypatch.setattr(registry, function, lambda: ["alpha", "beta"], raising=False)
    section, name = key.split(".")
    assert getattr(getattr(load_config(None, [f"{key}=beta"]), section), name) == "beta"
    with pytest.raises(ConfigError) as info:
        load_config(None, [f"{key}=gamma"])
    assert str(info.value) == f"--set {key}: unknown {noun} 'gamma' (choose from alpha, beta)"


def test_backend_and_head_fall_back_without_a_registry(monkeypatch):
    import rlkit.agent.objectives
    import rlkit.envs
    from rlkit.config.rules import FALLBACK_BACKENDS, FALLBACK_OBJECTIVES

    monkeypatch.delattr(rlkit.envs, "backend_names", raising=False)
    monkeypatch.delattr(rlkit.agent.objectives, "names", raising=False)
    assert FALLBACK_BACKENDS == ("ale_vector", "envpool", "gymnasium")
    assert FALLBACK_OBJECTIVES == ("auto", "c51", "iqn", "qr", "scalar")
    assert load_config(None, ["env.backend=envpool"]).env.backend == "envpool"
    assert load_config(None, ["network.head=c51"]).network.head == "c51"
    with pytest.raises(ConfigError) as info:
        load_config(None, ["env.backend=gym"])
    assert str(info.value) == (
        "--set env.backend: unknown backend 'gym' (choose from ale_vector, envpool, gymnasium)"
    )
    with pytest.raises(
        ConfigError,
        match=r"network.head: unknown head 'fqf' \(choose from auto, c51, iqn, qr, scalar",
    ):
        load_config(None, ["network.head=fqf"])


# ---------------------------------------------------------------- one diff, one override parser


def test_config_diff_lists_each_changed_key_in_order():
    from rlkit.config import Change, config_diff

    base = load_config(None)
    other = load_config(None, ["trainer.seed=4", "learner.lr=0.5", "network.hidden_sizes=[7]"])
    # section order env, network, learner, ..., trainer; values as in to_dict (lists)
    assert config_diff(base, other) == [
        Change("network.hidden_sizes", [128, 128], [7]),
        Change("learner.lr", 1e-3, 0.5),
        Change("trainer.seed", 0, 4),
    ]
    assert config_diff(base, other, ignore={"learner.lr"}) == [
        Change("network.hidden_sizes", [128, 128], [7]),
        Change("trainer.seed", 0, 4),
    ]
    assert config_diff(other, other) == []


def test_apply_overrides_takes_items_or_parsed_values_alike():
    from rlkit.config import apply_overrides

    data = {"learner": {"lr": 0.1, "gamma": 0.9}, "replay": None}
    items = apply_overrides(data, ["learner.lr=0.5", "replay.n_step=2", "learner.lr=0.25"])
    parsed = apply_overrides(data, {"learner.lr": 0.25, "replay.n_step": 2})
    assert items == parsed == {"learner": {"lr": 0.25, "gamma": 0.9}, "replay": {"n_step": 2}}
    assert data == {"learner": {"lr": 0.1, "gamma": 0.9}, "replay": None}  # not modified


def test_suggest_and_split_key():
    from rlkit.config import split_key, suggest

    assert suggest("lrr", ["lr", "gamma"], prefix="learner.") == " (did you mean 'learner.lr'?)"
    assert suggest("zzz", ["lr", "gamma"]) == ""
    assert split_key("here", "learner.lr") == ("learner", "lr")
    with pytest.raises(ConfigError, match=r"^here: key 'lr' must be section.field"):
        split_key("here", "lr")
    with pytest.raises(
        ConfigError, match=r"^here: unknown section 'lerner' \(did you mean 'learner'"
    ):
        split_key("here", "lerner.lr")
    with pytest.raises(
        ConfigError, match=r"^here: unknown key 'learner.lrr' \(did you mean 'learner.lr'"
    ):
        split_key("here", "learner.lrr")
