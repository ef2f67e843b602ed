"""Env state capture for exact resume: restored envs continue bit for bit."""

import io

import numpy as np
import pytest
import torch

from rlkit.envs import capture_env_state, make, make_vec_env, restore_env_state


def through_a_safe_checkpoint(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def played_and_saved(env_id: str, steps: int, rng: np.random.Generator):
    """Two envs of ``env_id`` seeded 1 after ``steps`` random steps, and their state
    through a checkpoint (which must be restorable)."""
    envs = make_vec_env(env_id, 2)
    envs.reset(seed=1)
    for _ in range(steps):
        envs.step(rng.integers(0, envs.single_action_space.n, 2))
    state = through_a_safe_checkpoint(capture_env_state(envs))
    assert state["restorable"], state.get("reason")
    return envs, state


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Acrobot-v1", "MountainCar-v0"])
def test_restored_envs_continue_identically(env_id):
    rng = np.random.default_rng(0)
    a, state = played_and_saved(env_id, 37, rng)
    b = make_vec_env(env_id, 2)
    b.reset(seed=99)  # a different state, then overwritten
    restore_env_state(b, state)
    for _ in range(600):  # crosses episode ends: autoreset uses the restored generators
        action = rng.integers(0, a.single_action_space.n, 2)
        out_a, out_b = a.step(action), b.step(action)
        for x, y in zip(out_a[:4], out_b[:4]):
            np.testing.assert_array_equal(x, y)
        mask = out_a[4].get("_final_obs", np.zeros(2, dtype=bool))
        np.testing.assert_array_equal(mask, out_b[4].get("_final_obs", np.zeros(2, dtype=bool)))
        for i in np.flatnonzero(mask):
            np.testing.assert_array_equal(out_a[4]["final_obs"][i], out_b[4]["final_obs"][i])


def test_env_with_an_engine_object_is_not_restorable():
    pytest.importorskip("Box2D")
    envs = make_vec_env("LunarLander-v3", 1)
    envs.reset(seed=0)
    state = capture_env_state(envs)
    assert state == {"restorable": False, "reason": "LunarLander.world is a b2World"}
    with pytest.raises(ValueError, match="not saved"):
        restore_env_state(envs, state)


def test_mismatched_wrappers_are_refused():
    state = capture_env_state(make_vec_env("CartPole-v1", 1))
    with pytest.raises(ValueError, match="wrappers"):
        restore_env_state(make_vec_env("Acrobot-v1", 1), state)
    with pytest.raises(ValueError, match="holds 1 envs"):
        restore_env_state(make_vec_env("CartPole-v1", 2), state)


def test_the_gymnasium_backend_saves_and_restores_through_the_vecenv_protocol():
    a, b = make("gymnasium", "CartPole-v1", 2), make("gymnasium", "CartPole-v1", 2)
    a.reset(seed=1)
    rng = np.random.default_rng(0)
    for _ in range(37):
        a.step(rng.integers(0, 2, 2))
    state = through_a_safe_checkpoint(a.state_dict())
    b.reset(seed=99)
    b.load_state_dict(state)
    for _ in range(300):  # crosses episode ends (CartPole's random episodes last ~22 steps)
        action = rng.integers(0, 2, 2)
        out_a, out_b = a.step(action), b.step(action)
        for x, y in zip(out_a, out_b):
            np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match="holds 2 envs"):
        make("gymnasium", "CartPole-v1", 1).load_state_dict(state)


MINATAR_GAMES = ["Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders"]


def run_in_lockstep(a, b, rng, steps: int) -> tuple[bool, int]:
    """(every step's outputs equal, episode ends seen) of ``a`` and ``b`` under the same
    random actions."""
    same, ends = True, 0
    for _ in range(steps):
        action = rng.integers(0, a.single_action_space.n, a.num_envs)
        out_a, out_b = a.step(action), b.step(action)
        ends += int(out_a[2].sum() + out_a[3].sum())
        same = same and all(np.array_equal(x, y) for x, y in zip(out_a[:4], out_b[:4]))
    return same, ends


@pytest.mark.parametrize("game", MINATAR_GAMES)
def test_minatar_games_are_restored_exactly(game):
    """MinAtar keeps its state in plain Python objects (the game, a RandomState shared by
    the game and the sticky-action wrapper): saved attribute by attribute, restored in
    place, the restored env continues bit for bit across episode ends."""
    pytest.importorskip("minatar")
    env_id = f"MinAtar/{game}-v1"
    rng = np.random.default_rng(0)
    a, state = played_and_saved(env_id, 57, rng)
    b = make_vec_env(env_id, 2)
    b.reset()  # unseeded: MinAtar's game and wrapper then hold two generators
    game_b = b.envs[0].unwrapped.game
    assert game_b.random is not game_b.env.random
    restore_env_state(b, state)
    assert game_b.random is game_b.env.random  # one generator again, as in ``a``
    same, ends = run_in_lockstep(a, b, rng, 1500)
    assert same
    if game == "Breakout":  # its random-play episodes last ~10 steps: autoreset is covered
        assert ends > 50


def test_minatar_state_includes_the_random_state():
    """Without the RandomState (the sticky actions and spawns draw from it) the
    continuation differs: the test above would fail if it were not restored."""
    pytest.importorskip("minatar")
    a = make_vec_env("MinAtar/Breakout-v1", 1)
    a.reset(seed=1)
    state = through_a_safe_checkpoint(capture_env_state(a))
    b = make_vec_env("MinAtar/Breakout-v1", 1)
    b.reset(seed=99)
    restore_env_state(b, state)
    b.envs[0].unwrapped.game.random.seed(5)  # the game restored, its generator not
    same, _ = run_in_lockstep(a, b, np.random.default_rng(0), 300)
    assert not same


class _Holder:
    def __init__(self, value):
        self.value = value


def _nested(levels: int) -> _Holder:
    held = _Holder(0)
    for _ in range(levels - 1):
        held = _Holder(held)
    return held


class _Slotted:
    __slots__ = ("x",)

    def __init__(self):
        self.x = 1


class _Cycle:
    def __init__(self):
        self.me = self


@pytest.mark.parametrize(
    ("held", "saved"),
    [
        (_Holder(3), True),
        (_nested(6), True),  # the deepest nesting saved (MinAtar's is 2 objects deep)
        (_Holder([[[[[[[[1]]]]]]]]), True),  # lists nest without a limit
        (_Holder(np.random.RandomState(0)), True),
        (_Slotted(), False),  # state outside __dict__
        (_Holder(io.BytesIO()), False),  # a C type's instance
        (_nested(7), False),  # objects 7 deep: deeper than any env's plain data
    ],
    ids=["plain", "six-deep", "deep-lists", "randomstate", "slots", "c-object", "seven-deep"],
)
def test_which_objects_are_saved(held, saved):
    envs = make_vec_env("CartPole-v1", 1)
    envs.envs[0].unwrapped.extra = held
    state = capture_env_state(envs)
    assert state["restorable"] is saved
    if not saved:
        assert state["reason"] == f"CartPoleEnv.extra is a {type(held).__name__}"


def test_an_object_reached_twice_is_restored_as_one():
    a, b = make_vec_env("CartPole-v1", 1), make_vec_env("CartPole-v1", 1)
    a.envs[0].unwrapped.extra = _Cycle()
    b.envs[0].unwrapped.extra = _Cycle()
    b.envs[0].unwrapped.extra.me = _Cycle()  # two objects where ``a`` has one
    restore_env_state(b, through_a_safe_checkpoint(capture_env_state(a)))
    extra = b.envs[0].unwrapped.extra
    assert extra.me is extra


def test_a_saved_object_is_restored_into_the_same_kind_only():
    a, b = make_vec_env("CartPole-v1", 1), make_vec_env("CartPole-v1", 1)
    a.envs[0].unwrapped.extra = _Holder(_Holder(7))
    b.envs[0].unwrapped.extra = _Holder(_Holder(0))
    inner_b = b.envs[0].unwrapped.extra.value
    restore_env_state(b, through_a_safe_checkpoint(capture_env_state(a)))
    assert b.envs[0].unwrapped.extra.value is inner_b and inner_b.value == 7  # in place
    b.envs[0].unwrapped.extra = _Holder(None)
    with pytest.raises(ValueError, match="holds a _Holder, the rebuilt env a NoneType"):
        restore_env_state(b, capture_env_state(a))


def atari_envs(num_envs: int, sticky: float):
    pytest.importorskip("ale_py")
    from rlkit.envs.atari import AtariOptions
    from rlkit.envs.gymnasium import make_sync_vec_env

    options = AtariOptions(sticky_actions=sticky)
    return make_sync_vec_env("ALE/Breakout-v5", num_envs, atari=options)


def test_atari_without_sticky_actions_is_restored_exactly():
    """The emulator (with its RNG), the preprocessing's frame buffers and the frame stack
    (a deque) are saved; the restored envs continue bit for bit across lost games."""
    rng = np.random.default_rng(0)
    a = atari_envs(3, sticky=0.0)
    a.reset(seed=1)
    for _ in range(57):
        a.step(rng.integers(0, 4, 3))
    state = through_a_safe_checkpoint(capture_env_state(a))
    assert state["restorable"], state.get("reason")
    b = atari_envs(3, sticky=0.0)
    b.reset(seed=99)
    restore_env_state(b, state)
    same, ends = run_in_lockstep(a, b, rng, 800)
    assert same
    assert ends > 3  # random Breakout games last ~200 agent steps: autoreset is covered


def test_atari_with_sticky_actions_says_why_it_is_not_restorable():
    envs = atari_envs(1, sticky=0.25)
    envs.reset(seed=0)
    state = capture_env_state(envs)
    assert not state["restorable"]
    assert state["reason"] == (
        "AtariEnv.ale is an ALE emulator with sticky actions (repeat_action_probability "
        "0.25), whose previous action the ALE does not save"
    )


def test_a_python_random_generator_is_restored_in_place():
    import random

    a, b = make_vec_env("CartPole-v1", 1), make_vec_env("CartPole-v1", 1)
    a.envs[0].unwrapped.extra = _Holder(random.Random(3))
    a.envs[0].unwrapped.extra.value.random()  # mid-stream, not a fresh seed
    b.envs[0].unwrapped.extra = _Holder(random.Random(8))
    gen_b = b.envs[0].unwrapped.extra.value
    restore_env_state(b, through_a_safe_checkpoint(capture_env_state(a)))
    assert b.envs[0].unwrapped.extra.value is gen_b
    gen_a = a.envs[0].unwrapped.extra.value
    assert [gen_b.random() for _ in range(5)] == [gen_a.random() for _ in range(5)]
