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


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Acrobot-v1", "MountainCar-v0"])
def test_restored_envs_continue_identically(env_id):
    a = make_vec_env(env_id, 2)
    a.reset(seed=1)
    rng = np.random.default_rng(0)
    for _ in range(37):
        a.step(rng.integers(0, a.single_action_space.n, 2))
    state = through_a_safe_checkpoint(capture_env_state(a))
    assert state["restorable"]
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
