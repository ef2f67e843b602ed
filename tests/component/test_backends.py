"""Env backends against each other: the C++ Atari backends (``ale_vector``, ``envpool``)
give the Gymnasium path's frames, rewards and episode boundaries under the same protocol,
and their adapters normalise autoreset as the VecEnv protocol says."""

import importlib.util

import numpy as np
import pytest

pytest.importorskip("ale_py")

from rlkit.envs import AtariOptions, EnvError, VecEnv, backend_names, make  # noqa: E402

CPP = ["ale_vector"] + (["envpool"] if importlib.util.find_spec("envpool") else [])
# deterministic protocol: no random no-op starts (EnvPool always plays at least one
# no-op frame, and so does Gymnasium with noop_max=1), no sticky actions
NOOPS = {"ale_vector": 0, "envpool": 1}
EXACT = dict(sticky_actions=0.0, life_loss_signal=True)


def exact(backend, **options) -> AtariOptions:
    return AtariOptions(**{**EXACT, "noop_max": NOOPS.get(backend, 0), **options})


def pair(backend, env_id, num_envs, max_episode_steps=None, **options):
    atari = exact(backend, **options)
    return (
        make("gymnasium", env_id, num_envs, max_episode_steps=max_episode_steps, atari=atari),
        make(backend, env_id, num_envs, max_episode_steps=max_episode_steps, atari=atari),
    )
    return make("gymnasium", env_id, num_envs, atari=atari), make(
        backend, env_id, num_envs, atari=atari
    )


def run_both(ref: VecEnv, other: VecEnv, steps: int, seed=0):
    """Step both with the same random actions; assert every field equal; return the
    reference's steps.

    EnvPool only: where an episode ends inside a frame skip (a game over, or the frame
    cap reached after the one no-op frame), the newest frame of ``final_obs`` differs
    (Gymnasium's AtariPreprocessing stops there and max-pools a stale frame buffer, EnvPool
    plays the skip to its end); the older frames of that stack must still be equal.
    """
    end_frame_differs = "EnvPool" in type(other).__name__
    rng = np.random.default_rng(seed)
    np.testing.assert_array_equal(ref.reset(seed=seed), other.reset(seed=seed))
    out = []
    for t in range(steps):
        actions = rng.integers(0, ref.num_actions, ref.num_envs)
        a, b = ref.step(actions), other.step(actions)
        for field in a._fields:
            x, y = getattr(a, field), getattr(b, field)
            assert x.dtype == y.dtype, (field, t)
            if field == "final_obs" and end_frame_differs:
                x, y, ended = x.copy(), y.copy(), a.terminated | a.truncated
                x[ended, -1] = y[ended, -1] = 0
            np.testing.assert_array_equal(x, y, err_msg=f"{field} differs at step {t}")
        out.append(a)
    return out


@pytest.mark.parametrize("backend", CPP)
def test_breakout_matches_the_gymnasium_path_across_lives_and_games(backend):
    ref, other = pair(backend, "ALE/Breakout-v5", 2, max_frames_per_episode=1200)
    steps = run_both(ref, other, 400)
    life_losses = sum(int(s.life_loss.sum()) for s in steps)
    ends = sum(int((s.terminated | s.truncated).sum()) for s in steps)
    games = sum(int(s.terminated.sum()) for s in steps)
    assert life_losses >= 4 and games >= 1 and ends >= 2  # lives, game overs, new episodes
    assert any(s.reward.any() for s in steps)


@pytest.mark.parametrize("backend", CPP)
@pytest.mark.parametrize("num_envs", [1, 3])
def test_pong_matches_the_gymnasium_path_with_frame_cap_truncation(backend, num_envs):
    # cap 400 frames = 100 agent steps of 4 frames: every env truncates at steps 100, 200
    ref, other = pair(backend, "ALE/Pong-v5", num_envs, max_frames_per_episode=400)
    steps = run_both(ref, other, 220, seed=3)
    truncated_at = [t + 1 for t, s in enumerate(steps) if s.truncated.any()]
    assert truncated_at == [100, 200]
    assert all(steps[t - 1].truncated.all() for t in truncated_at)
    assert any(s.reward.any() for s in steps)  # Pong scores points within 100 steps


@pytest.mark.parametrize("backend", CPP)
def test_autoreset_gives_true_final_obs_and_the_new_episodes_first(backend):
    env = make(backend, "ALE/Pong-v5", 2, atari=exact(backend, max_frames_per_episode=40))
    first = env.reset(seed=0)
    # no random no-ops: a new episode's stack is its first frame four times (repeat padding)
    assert all((first[i] == first[i, -1]).all() for i in range(2))
    prev = first
    for _ in range(10):  # 40 frames / 4 per step: the episode ends at the 10th step
        out = env.step(np.full(2, 2, dtype=np.int64))
        np.testing.assert_array_equal(out.final_obs[:, :-1], prev[:, 1:])  # stack continues
        prev = out.obs
    assert out.truncated.all() and not out.terminated.any()
    assert not (out.final_obs == out.obs).all()
    np.testing.assert_array_equal(out.obs, first)  # the next episode starts as the first
    nxt = env.step(np.zeros(2, dtype=np.int64))
    np.testing.assert_array_equal(nxt.final_obs[:, :-1], first[:, 1:])
    np.testing.assert_array_equal(nxt.final_obs, nxt.obs)  # no episode ended


@pytest.mark.parametrize("backend", CPP)
def test_a_life_loss_keeps_the_game_going(backend):
    env = make(backend, "ALE/Breakout-v5", 1, atari=exact(backend))
    prev = env.reset(seed=0)
    rng = np.random.default_rng(1)
    for _ in range(300):
        out = env.step(rng.integers(0, env.num_actions, 1))
        if out.life_loss[0]:
            break
        prev = out.obs
    assert out.life_loss[0] and not out.terminated[0] and not out.truncated[0]
    np.testing.assert_array_equal(out.obs, out.final_obs)  # no reset at a lost life
    np.testing.assert_array_equal(out.obs[0, :-1], prev[0, 1:])
    quiet = make(backend, "ALE/Breakout-v5", 1, atari=exact(backend, life_loss_signal=False))
    quiet.reset(seed=0)
    rng = np.random.default_rng(1)
    assert not any(quiet.step(rng.integers(0, 4, 1)).life_loss.any() for _ in range(300))


@pytest.mark.parametrize("backend", CPP)
def test_reset_seed_is_reproducible_with_noops_and_sticky_actions(backend):
    options = AtariOptions(noop_max=30, sticky_actions=0.25)
    runs = []
    for _ in range(2):
        env = make(backend, "ALE/Breakout-v5", 2, atari=options)
        frames = [env.reset(seed=7)]
        rng = np.random.default_rng(0)
        frames += [env.step(rng.integers(0, 4, 2)).obs for _ in range(50)]
        runs.append(np.stack(frames))
    np.testing.assert_array_equal(runs[0], runs[1])
    env.reset(seed=8)
    assert not (env.step(np.zeros(2, dtype=np.int64)).obs == runs[0][1]).all()


def test_noop_start_ranges_as_documented():
    # Gymnasium's AtariPreprocessing: 1..noop_max no-op frames; AtariVectorEnv: 0..noop_max-1
    gym_env = make("gymnasium", "ALE/Pong-v5", 4, atari=AtariOptions(noop_max=3))
    ale = make("ale_vector", "ALE/Pong-v5", 4, atari=AtariOptions(noop_max=3))
    gym_frames, ale_frames = set(), set()
    for seed in range(0, 24, 4):
        gym_env.reset(seed=seed)
        gym_frames |= {e.unwrapped.ale.getEpisodeFrameNumber() for e in gym_env.envs.envs}
        _, info = ale.envs.reset(seed=seed)
        ale_frames |= set(info["episode_frame_number"].tolist())
    assert gym_frames == {1, 2, 3}
    assert ale_frames == {0, 1, 2}


def test_backends_are_listed_and_unknown_ones_named():
    names = backend_names()
    assert {"gymnasium", "ale_vector", "envpool"} <= set(names)
    assert not {"base", "builder", "state", "atari", "suites"} & set(names)
    with pytest.raises(EnvError, match="env.backend: unknown backend 'gym'.*ale_vector"):
        make("gym", "CartPole-v1", 1)


@pytest.mark.skipif("envpool" in CPP, reason="envpool is installed")
def test_envpool_without_the_extra_names_it():
    with pytest.raises(EnvError, match=r"pip install 'rlkit\[envpool\]'"):
        make("envpool", "ALE/Pong-v5", 1)


@pytest.mark.skipif("envpool" not in CPP, reason="envpool is not installed")
def test_envpool_applies_max_episode_steps_as_gymnasium_does_and_refuses_noop_max_0():
    # a 30-step time limit (agent steps) and a 400-frame cap (100 steps): 30 first
    ref, other = pair("envpool", "ALE/Pong-v5", 2, max_episode_steps=30, max_frames_per_episode=400)
    steps = run_both(ref, other, 65)
    assert [t + 1 for t, s in enumerate(steps) if s.truncated.any()] == [30, 60]
    with pytest.raises(EnvError, match="env.noop_max"):
        make("envpool", "ALE/Pong-v5", 1, atari=AtariOptions(noop_max=0))


def test_ale_vector_refuses_max_episode_steps():
    with pytest.raises(EnvError, match="env.max_episode_steps.*env.max_frames_per_episode"):
        make("ale_vector", "ALE/Pong-v5", 1, max_episode_steps=100)


@pytest.mark.parametrize("backend", CPP)
def test_cpp_backends_refuse_what_they_cannot_do(backend):
    with pytest.raises(EnvError, match="env.id 'CartPole-v1'"):
        make(backend, "CartPole-v1", 1)
    env = make(backend, "ALE/Pong-v5", 1)
    assert env.state_dict()["restorable"] is False
    with pytest.raises(ValueError):
        env.load_state_dict(env.state_dict())


@pytest.mark.parametrize("backend", CPP)
def test_evaluation_gives_the_gymnasium_paths_result(backend):
    import torch

    from rlkit.agent.nn import QNetwork
    from rlkit.agent.policy import EpsilonGreedy
    from rlkit.loops.evaluate import evaluate

    torch.manual_seed(0)
    net = QNetwork((4, 84, 84), 6, noisy=False, dueling=False)
    results = []
    # 80 frames = 20 agent steps per episode; 3 episodes on 2 envs (quotas 2 and 1)
    for envs in pair(backend, "ALE/Pong-v5", 2, max_frames_per_episode=80):
        policy = EpsilonGreedy(
            net, 6, torch.device("cpu"), np.random.default_rng(0), evaluation=True
        )
        results.append(evaluate(policy, envs, 3, seed=5, gamma=0.5))
    ref, other = results
    assert ref.lengths == other.lengths == [20, 20, 20]
    assert ref.returns == other.returns
    assert ref.q_pred == other.q_pred and len(ref.q_pred) > 0


@pytest.mark.parametrize("backend", ["gymnasium", *CPP])
def test_returned_arrays_belong_to_the_caller(backend):
    # the VecEnv contract the loops rely on to keep observations without copying: no
    # backend writes into arrays it returned, and no two steps share memory
    env = make(backend, "ALE/Pong-v5", 2, atari=exact(backend, max_frames_per_episode=40))
    kept = [env.reset(seed=0)]
    for _ in range(12):  # an episode ends at the 10th step: final_obs differs from obs
        out = env.step(np.full(2, 2, dtype=np.int64))
        kept += [out.obs, out.final_obs, out.reward, out.terminated, out.truncated]
    snapshot = [a.copy() for a in kept]
    for _ in range(12):
        env.step(np.zeros(2, dtype=np.int64))
    for a, b in zip(kept, snapshot, strict=True):
        np.testing.assert_array_equal(a, b)
    frames = [a for a in kept if a.ndim == 4]
    for i, a in enumerate(frames):
        for b in frames[i + 1 :]:
            assert a is b or not np.shares_memory(a, b)
    env.close()
