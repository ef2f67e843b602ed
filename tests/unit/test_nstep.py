"""NStepAccumulator against written-out tables of expected transitions.

Conventions: gamma = 0.5 and rewards are powers of two, so every return is exact. Step
``t`` of an env has obs ``[10 * ep + t]`` (``ep`` = episode number), next_obs
``[10 * ep + t + 1]``, action ``t`` and reward ``R[t]``. An expected row is
``(obs, action, reward, next_obs, discount)``.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from rlkit.agent.replay import NStepAccumulator

G = 0.5
R = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]


def rows(tr) -> list[tuple]:
    if tr is None:
        return []
    return [
        (float(o[0]), int(a), float(r), float(o2[0]), float(d))
        for o, a, r, o2, d in zip(
            tr.obs, tr.action, tr.reward, tr.next_obs, tr.discount, strict=True
        )
    ]


def run_episode(acc, length, end, ep=0, start=0):
    """Push one single-env episode of ``length`` steps; ``end`` in {"term", "trunc",
    None} applies to its last step. Returns the rows emitted at each push."""
    out = []
    for t in range(start, start + length):
        last = t == start + length - 1
        out.append(
            rows(
                acc.push(
                    obs=[[10.0 * ep + t]],
                    action=[t],
                    reward=[R[t]],
                    next_obs=[[10.0 * ep + t + 1]],
                    terminated=[last and end == "term"],
                    truncated=[last and end == "trunc"],
                )
            )
        )
    return out


def test_n3_termination_inside_the_window_flushes_every_tail_with_discount_0():
    acc = NStepAccumulator(n=3, gamma=G)
    out = run_episode(acc, 5, "term")
    assert out == [
        [],
        [],
        [(0.0, 0, 1 + 0.5 * 2 + 0.25 * 4, 3.0, G**3)],  # 3.0
        [(1.0, 1, 2 + 0.5 * 4 + 0.25 * 8, 4.0, G**3)],  # 6.0
        [
            (2.0, 2, 4 + 0.5 * 8 + 0.25 * 16, 5.0, 0.0),  # 12.0, terminated
            (3.0, 3, 8 + 0.5 * 16, 5.0, 0.0),  # 16.0
            (4.0, 4, 16.0, 5.0, 0.0),
        ],
    ]
    assert acc.num_pending == [0]


def test_n3_truncation_keeps_the_discount_of_each_tail():
    acc = NStepAccumulator(n=3, gamma=G)
    out = run_episode(acc, 5, "trunc")
    assert out[4] == [
        (2.0, 2, 12.0, 5.0, 0.125),  # 3 real steps: gamma**3
        (3.0, 3, 16.0, 5.0, 0.25),  # gamma**2
        (4.0, 4, 16.0, 5.0, 0.5),  # gamma**1
    ]
    assert out[:4] == [[], [], [(0.0, 0, 3.0, 3.0, 0.125)], [(1.0, 1, 6.0, 4.0, 0.125)]]


def test_n1_reproduces_raw_transitions():
    acc = NStepAccumulator(n=1, gamma=G)
    assert run_episode(acc, 3, "term") == [
        [(0.0, 0, 1.0, 1.0, 0.5)],
        [(1.0, 1, 2.0, 2.0, 0.5)],
        [(2.0, 2, 4.0, 3.0, 0.0)],
    ]
    assert run_episode(acc, 2, "trunc", ep=1) == [
        [(10.0, 0, 1.0, 11.0, 0.5)],
        [(11.0, 1, 2.0, 12.0, 0.5)],  # truncation is not termination
    ]


@pytest.mark.parametrize(("end", "discounts"), [("term", [0.0, 0.0]), ("trunc", [0.25, 0.5])])
def test_episode_shorter_than_n(end, discounts):
    acc = NStepAccumulator(n=3, gamma=G)
    out = run_episode(acc, 2, end)
    assert out == [
        [],
        [(0.0, 0, 1 + 0.5 * 2, 2.0, discounts[0]), (1.0, 1, 2.0, 2.0, discounts[1])],
    ]


def test_windows_never_span_episodes():
    acc = NStepAccumulator(n=3, gamma=G)
    run_episode(acc, 2, "term", ep=0)
    out = run_episode(acc, 4, None, ep=1)  # the next episode starts fresh
    assert out == [
        [],
        [],
        [(10.0, 0, 3.0, 13.0, 0.125)],
        [(11.0, 1, 6.0, 14.0, 0.125)],
    ]


def test_two_envs_interleaved_with_different_episode_ends():
    # n = 2. env 0 terminates at t=1 and starts a new episode; env 1 is truncated at
    # t=2. Obs encode (env, t): env e, step t has obs 100 * e + t.
    acc = NStepAccumulator(n=2, gamma=G, num_envs=2)
    term = [[False, False], [True, False], [False, False], [False, False]]
    trunc = [[False, False], [False, False], [False, True], [False, False]]
    rewards = [[1.0, 16.0], [2.0, 32.0], [4.0, 64.0], [8.0, 128.0]]
    out = []
    for t in range(4):
        obs = [[100.0 * e + t] for e in range(2)]
        next_obs = [[100.0 * e + t + 0.5] for e in range(2)]  # .5: the obs after step t
        out.append(rows(acc.push(obs, [t, t], rewards[t], next_obs, term[t], trunc[t])))
    assert out == [
        [],
        [  # env-major: env 0's windows (oldest first), then env 1's
            (0.0, 0, 1 + 0.5 * 2, 1.5, 0.0),  # env 0 terminated at t=1
            (1.0, 1, 2.0, 1.5, 0.0),
            (100.0, 0, 16 + 0.5 * 32, 101.5, 0.25),  # env 1 full window
        ],
        [
            (101.0, 1, 32 + 0.5 * 64, 102.5, 0.25),  # env 1 truncated at t=2
            (102.0, 2, 64.0, 102.5, 0.5),
        ],
        [
            (2.0, 2, 4 + 0.5 * 8, 3.5, 0.25),  # env 0's second episode (t=2, 3)
        ],
    ]
    assert acc.num_pending == [1, 1]


def test_masked_envs_make_no_step():
    acc = NStepAccumulator(n=2, gamma=G, num_envs=2)
    f = [False, False]
    acc.push([[0.0], [100.0]], [0, 0], [1.0, 16.0], [[0.5], [100.5]], f, f)
    # env 1 is auto-resetting: its "step" is not a transition and must not enter a window
    out = acc.push([[1.0], [999.0]], [1, 9], [2.0, 999.0], [[1.5], [0.0]], f, f, mask=[True, False])
    assert rows(out) == [(0.0, 0, 1 + 0.5 * 2, 1.5, 0.25)]
    assert acc.num_pending == [1, 1]
    out = acc.push([[2.0], [101.0]], [2, 1], [4.0, 32.0], [[2.5], [101.5]], f, f)
    assert rows(out) == [(1.0, 1, 2 + 0.5 * 4, 2.5, 0.25), (100.0, 0, 16 + 0.5 * 32, 101.5, 0.25)]


def test_output_dtypes_and_shapes():
    acc = NStepAccumulator(n=1, gamma=0.99, num_envs=3)
    obs = np.zeros((3, 2, 2), dtype=np.uint8)
    tr = acc.push(obs, np.array([0, 1, 2]), np.ones(3), obs + 1, [False] * 3, [False] * 3)
    assert tr.obs.shape == (3, 2, 2) and tr.obs.dtype == np.uint8
    assert tr.next_obs.dtype == np.uint8
    assert tr.action.dtype == np.int64 and tr.action.tolist() == [0, 1, 2]
    assert tr.reward.dtype == np.float32 and tr.discount.dtype == np.float32
    np.testing.assert_allclose(tr.discount, 0.99)


def test_push_copies_its_inputs():
    acc = NStepAccumulator(n=2, gamma=G)
    obs = np.array([[1.0]])
    acc.push(obs, [0], [1.0], obs + 1, [False], [False])
    obs[0, 0] = 99.0  # an env reusing its buffer must not change pending steps
    tr = acc.push(np.array([[2.0]]), [1], [2.0], np.array([[3.0]]), [False], [False])
    assert rows(tr) == [(1.0, 0, 2.0, 3.0, 0.25)]


def test_every_env_finishing_one_window_returns_the_same_values_without_copies():
    # n = 2, two envs in lockstep: from t = 1 on, every push finishes one window per env
    # (the case returned without stacking). The "env" reuses one obs and one next_obs
    # buffer; env e, step t: obs 100 * e + t, next_obs 100 * e + t + 0.5, reward R[3e + t].
    acc = NStepAccumulator(n=2, gamma=G, num_envs=2)
    f = [False, False]
    obs_buf, next_buf = np.zeros((2, 1)), np.zeros((2, 1))
    outs = []
    for t in range(3):
        obs_buf[:, 0] = [t, 100 + t]
        next_buf[:, 0] = [t + 0.5, 100 + t + 0.5]
        outs.append(acc.push(obs_buf, [t, t], [R[t], R[3 + t]], next_buf, f, f))
    assert outs[0] is None
    # read only after the later pushes rewrote the buffers: the results did not change
    assert rows(outs[1]) == [
        (0.0, 0, 1 + 0.5 * 2, 1.5, 0.25),
        (100.0, 0, 8 + 0.5 * 16, 101.5, 0.25),
    ]
    assert rows(outs[2]) == [
        (1.0, 1, 2 + 0.5 * 4, 2.5, 0.25),
        (101.0, 1, 16 + 0.5 * 32, 102.5, 0.25),
    ]
    for tr in outs[1:]:
        assert tr.obs.shape == tr.next_obs.shape == (2, 1) and tr.obs.dtype == np.float64
    with pytest.raises(ValueError, match="read-only"):  # shared with a pending step
        outs[2].next_obs[0, 0] = -1.0


def test_state_dict_round_trip_continues_identically():
    a = NStepAccumulator(n=3, gamma=G, num_envs=2)
    steps = [
        ([[0.0], [100.0]], [0, 0], [1.0, 16.0], [[0.5], [100.5]], [False, False]),
        ([[1.0], [101.0]], [1, 1], [2.0, 32.0], [[1.5], [101.5]], [False, True]),
        ([[2.0], [200.0]], [2, 2], [4.0, 64.0], [[2.5], [200.5]], [False, False]),
        ([[3.0], [201.0]], [3, 3], [8.0, 128.0], [[3.5], [201.5]], [True, False]),
    ]
    for o, act, r, o2, tr in steps[:2]:
        a.push(o, act, r, o2, [False, False], tr)
    buffer = io.BytesIO()  # through a checkpoint file, loaded safely
    torch.save(a.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    b = NStepAccumulator(n=3, gamma=G, num_envs=2)
    b.load_state_dict(state)
    assert b.num_pending == a.num_pending == [2, 0]
    for o, act, r, o2, term in steps[2:]:
        ra = rows(a.push(o, act, r, o2, term, [False, False]))
        rb = rows(b.push(o, act, r, o2, term, [False, False]))
        assert ra == rb
    assert ra[0] == (1.0, 1, 2 + 0.5 * 4 + 0.25 * 8, 3.5, 0.0)
    with pytest.raises(ValueError, match="num_envs"):
        NStepAccumulator(n=3, gamma=G, num_envs=1).load_state_dict(state)


def test_reset_drops_pending_steps():
    acc = NStepAccumulator(n=3, gamma=G, num_envs=2)
    acc.push([[0.0], [1.0]], [0, 0], [1.0, 1.0], [[0.5], [1.5]], [False] * 2, [False] * 2)
    acc.reset(env=1)
    assert acc.num_pending == [1, 0]
    acc.reset()
    assert acc.num_pending == [0, 0]


def test_bad_arguments():
    with pytest.raises(ValueError, match="n must be"):
        NStepAccumulator(n=0, gamma=0.9)
    with pytest.raises(ValueError, match="gamma"):
        NStepAccumulator(n=3, gamma=1.5)
    acc = NStepAccumulator(n=3, gamma=0.9, num_envs=2)
    with pytest.raises(ValueError, match="num_envs=2"):
        acc.push([[0.0]], [0], [1.0], [[1.0]], [False], [False])


def test_copy_false_keeps_views_and_gives_the_same_transitions():
    # two envs, n = 2: each push is a fresh array the caller never writes again
    # (the VecEnv contract). Env e, step t: obs 100 * e + t, next_obs obs + 0.5.
    def pushes(copy):
        acc, out = NStepAccumulator(n=2, gamma=G, num_envs=2), []
        for t in range(3):
            obs = np.array([[t], [100.0 + t]])
            tr = acc.push(
                obs, [t, t], [R[t], R[3 + t]], obs + 0.5, [False] * 2, [False] * 2, copy=copy
            )
            out.append((obs, tr))
        return out

    copied, viewed = pushes(True), pushes(False)
    for (_, a), (_, b) in zip(copied, viewed, strict=True):
        assert rows(a) == rows(b)
    # push 1 finished env 0's window 0 and env 1's window 0: returns 1 + 0.5 * 2 and
    # 8 + 0.5 * 16; without copies its obs IS the array pushed first (no stacking)
    assert rows(viewed[1][1]) == [(0.0, 0, 2.0, 1.5, 0.25), (100.0, 0, 16.0, 101.5, 0.25)]
    assert viewed[1][1].obs is viewed[0][0]
    assert copied[1][1].obs is not copied[0][0]


def test_rows_are_stacked_when_the_pushed_array_is_a_reordered_view():
    # the obs pushed is a reversed view of a buffer: its rows are not the buffer's rows
    # in order, so the no-copy path must not hand the buffer back as the stack
    acc, trs = NStepAccumulator(n=2, gamma=G, num_envs=2), []
    for t in range(2):
        base = np.array([[100.0 + t], [float(t)]])  # reversed: env 0 sees t, env 1 100 + t
        obs = base[::-1]
        trs.append(
            acc.push(obs, [t, t], [R[t], R[3 + t]], obs + 0.5, [False] * 2, [False] * 2, copy=False)
        )
    assert rows(trs[1]) == [(0.0, 0, 1 + 0.5 * 2, 1.5, 0.25), (100.0, 0, 8 + 0.5 * 16, 101.5, 0.25)]
