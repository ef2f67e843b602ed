"""Atari envs as training builds them (``rlkit.envs.builder.make_envs``): a lost life is signalled
while the game goes on, and each protocol key reaches the emulator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ale_py")
pytest.importorskip("cv2")

from rlkit.config import load_config  # noqa: E402
from rlkit.envs import LifeLossSignal  # noqa: E402
from rlkit.envs.builder import make_envs  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
RAINBOW = CONFIGS / "atari" / "rainbow.yaml"
BREAKOUT_ACTIONS = 4  # NOOP, FIRE, RIGHT, LEFT (Breakout's minimal action set)


def emulator(envs, i: int = 0):
    """The ALE emulator of sub-env ``i`` of a Gymnasium-backend VecEnv."""
    return envs.envs.envs[i].unwrapped.ale


def play_one_game(envs, seed: int, max_steps: int = 3000) -> list[dict]:
    """Random actions in a 1-env VecEnv until the game ends; one record per step (lives
    and frame number read from the emulator; None at the last step, when the emulator
    has already been reset for the next game)."""
    rng = np.random.default_rng(seed)
    ale = emulator(envs)
    envs.reset(seed=seed)
    steps = [{"lives": ale.lives(), "frame": ale.getEpisodeFrameNumber()}]
    for _ in range(max_steps):
        out = envs.step(rng.integers(BREAKOUT_ACTIONS, size=1))
        done = bool(out.terminated[0] or out.truncated[0])
        steps.append(
            {
                "life_loss": bool(out.life_loss[0]),
                "terminated": bool(out.terminated[0]),
                "truncated": bool(out.truncated[0]),
                "lives": None if done else ale.lives(),
                "frame": None if done else ale.getEpisodeFrameNumber(),
            }
        )
        if done:
            return steps
    raise AssertionError(f"no game over within {max_steps} agent steps")


def test_a_lost_life_is_signalled_while_the_breakout_game_goes_on():
    config = load_config(RAINBOW, ["env.id=ALE/Breakout-v5"])  # rainbow2018: life loss on
    assert config.env.terminal_on_life_loss
    envs = make_envs(config, 1)
    steps = play_one_game(envs, seed=0)
    envs.close()
    game, last = steps[1:-1], steps[-1]
    losses = [i for i, s in enumerate(steps) if s.get("life_loss")]
    # Breakout starts with 5 lives; the 5th loss is the game over (terminated, no signal),
    # so a whole game shows exactly 4 signals, each one life down from the step before.
    assert len(losses) == 4
    assert [steps[i]["lives"] for i in losses] == [4, 3, 2, 1]
    assert all(steps[i - 1]["lives"] == steps[i]["lives"] + 1 for i in losses)
    # the game goes on: no step before the last ends it, and the emulator's frame counter
    # keeps rising (a reset would restart it near 0)
    assert not any(s["terminated"] or s["truncated"] for s in game)
    assert all(b["frame"] > a["frame"] for a, b in zip(steps, steps[1:-1]))
    assert steps[-2]["lives"] == 1  # the last life ends the game: terminated, no signal
    assert last["terminated"] and last["life_loss"] is False
    # a random policy loses a life in about 35 agent steps: a whole game is well over 100
    assert len(steps) - 1 > 100


def test_evaluation_envs_play_whole_games_without_the_signal():
    config = load_config(RAINBOW, ["env.id=ALE/Breakout-v5"])
    envs = make_envs(config, 1, evaluation=True)
    steps = play_one_game(envs, seed=0)
    envs.close()
    assert not isinstance(envs.envs.envs[0], LifeLossSignal)  # no signal wrapper
    assert not any(s.get("life_loss") for s in steps)
    assert not any(s["terminated"] for s in steps[1:-1]) and steps[-1]["terminated"]
    assert steps[-2]["lives"] == 1 and len(steps) - 1 > 100


def test_without_terminal_on_life_loss_training_envs_have_no_signal():
    config = load_config(RAINBOW, ["env.id=ALE/Breakout-v5", "env.protocol=machado2018"])
    envs = make_envs(config, 1)
    envs.reset(seed=0)
    out = envs.step(np.zeros(1, dtype=np.int64))
    assert not isinstance(envs.envs.envs[0], LifeLossSignal)
    envs.close()
    assert not out.life_loss.any()


@pytest.mark.parametrize("protocol, actions", [("machado2018", 18), ("rainbow2018", 6)])
def test_the_action_set_reaches_the_env(protocol, actions):
    # Pong's minimal set: NOOP, FIRE, RIGHT, LEFT, RIGHTFIRE, LEFTFIRE; the full set has 18
    config = load_config(RAINBOW, ["env.id=ALE/Pong-v5", f"env.protocol={protocol}"])
    envs = make_envs(config, 2)
    assert envs.num_actions == actions
    meanings = envs.envs.envs[0].unwrapped.get_action_meanings()
    envs.close()
    assert len(meanings) == actions


@pytest.mark.parametrize("protocol, sticky", [("machado2018", 0.25), ("rainbow2018", 0.0)])
def test_sticky_actions_reach_the_emulator(protocol, sticky):
    config = load_config(RAINBOW, [f"env.protocol={protocol}"])
    envs = make_envs(config, 2)
    values = [emulator(envs, i).getFloat("repeat_action_probability") for i in range(2)]
    envs.close()
    assert values == [sticky, sticky]


def test_noop_starts_reach_the_env():
    """After a reset with up to 30 no-ops the emulator has run 1..30 frames of them (plus
    none of the agent's); with noop_max 0 it has run none."""

    def reset_frames(protocol: str) -> list[int]:
        envs = make_envs(load_config(RAINBOW, [f"env.protocol={protocol}"]), 2)
        frames = []
        for seed in range(4):
            envs.reset(seed=seed)
            frames += [emulator(envs, i).getEpisodeFrameNumber() for i in range(2)]
        envs.close()
        return frames

    assert reset_frames("machado2018") == [0] * 8
    noops = reset_frames("rainbow2018")
    assert all(1 <= f <= 30 for f in noops) and len(set(noops)) > 3  # drawn, not fixed


def test_the_frame_cap_truncates_and_does_not_terminate():
    # 40 emulator frames with 4 frames per agent step and no no-ops: 40 / 4 = 10 agent steps
    items = [
        "env.protocol=custom",
        "env.noop_max=0",
        "env.sticky_actions=0.0",
        "env.max_frames_per_episode=40",
    ]
    envs = make_envs(load_config(RAINBOW, items), 2)
    envs.reset(seed=0)
    for step in range(1, 11):
        out = envs.step(np.zeros(2, dtype=np.int64))
        terminated, truncated = out.terminated, out.truncated
        assert not terminated.any()
        assert truncated.all() == (step == 10) and truncated.any() == (step == 10)
    envs.close()


@pytest.mark.parametrize("backend", ["ale_vector", "envpool"])
def test_env_backend_picks_the_adapter_and_evaluation_drops_the_life_loss_signal(backend):
    if backend == "envpool":
        pytest.importorskip("envpool")
    items = ["env.id=ALE/Breakout-v5", f"env.backend={backend}"]
    config = load_config(RAINBOW, items)  # rainbow2018: life loss on for training
    train, evaluation = make_envs(config, 2), make_envs(config, 1, evaluation=True)
    assert type(train).__module__ == f"rlkit.envs.{backend}"
    assert (train.num_envs, train.obs_shape, train.num_actions) == (2, (4, 84, 84), 4)
    assert train.life_loss_signal and not evaluation.life_loss_signal
    train.close()
    evaluation.close()
