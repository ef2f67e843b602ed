"""Uniform and prioritized replay: storage, sampling distribution, IS weights, priorities."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from rlkit.agent.replay import NStepAccumulator, PrioritizedReplayBuffer, ReplayBuffer
from rlkit.agent.replay.sum_tree import NUMBA_AVAILABLE
from rlkit.types import Batch

BACKENDS = ["numpy"] + (["numba"] if NUMBA_AVAILABLE else [])


def make(kind: str, capacity: int, obs_shape=(2,), **kw):
    if kind == "uniform":
        return ReplayBuffer(capacity, obs_shape, seed=0, **kw)
    return PrioritizedReplayBuffer(capacity, obs_shape, seed=0, backend=kind, **kw)


KINDS = ["uniform", *BACKENDS]


def add_range(buf, start: int, stop: int) -> None:
    """Single adds of transitions i in [start, stop): obs [i, -i], action i % 3,
    reward i, next_obs [i + 1, -i - 1], discount 0.5."""
    for i in range(start, stop):
        buf.add(
            np.array([i, -i], dtype=np.float32), i % 3, float(i), np.array([i + 1, -i - 1]), 0.5
        )


@pytest.mark.parametrize("kind", KINDS)
def test_ring_storage_wraps_around(kind):
    buf = make(kind, 5)
    add_range(buf, 0, 7)
    assert len(buf) == 5
    st = buf._storage
    assert st.obs[:, 0].tolist() == [5, 6, 2, 3, 4]  # slots 0 and 1 were overwritten
    assert st.next_obs[:, 0].tolist() == [6, 7, 3, 4, 5]
    assert st.action.tolist() == [2, 0, 2, 0, 1]
    assert st.reward.tolist() == [5, 6, 2, 3, 4]
    batch = buf.sample(64)
    assert set(batch.obs[:, 0].tolist()) <= {2.0, 3.0, 4.0, 5.0, 6.0}
    np.testing.assert_array_equal(batch.next_obs[:, 0].numpy(), batch.obs[:, 0].numpy() + 1)
    np.testing.assert_array_equal(batch.reward.numpy(), batch.obs[:, 0].numpy())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", [3, 13, 25])  # no wrap, wrap, more than the capacity
def test_batch_add_equals_repeated_single_adds(kind, n):
    single, batched = make(kind, 10), make(kind, 10)
    add_range(single, 0, 4)
    add_range(batched, 0, 4)
    if kind != "uniform":  # so that new items get a max priority other than 1
        single.update_priorities(np.array([1]), np.array([3.0]))
        batched.update_priorities(np.array([1]), np.array([3.0]))
    add_range(single, 4, 4 + n)
    i = np.arange(4, 4 + n)
    obs = np.stack([i, -i], axis=1).astype(np.float32)
    batched.add(obs, i % 3, i.astype(np.float32), np.stack([i + 1, -i - 1], axis=1), 0.5)
    assert len(single) == len(batched)
    for name in ("obs", "next_obs", "action", "reward", "discount"):
        np.testing.assert_array_equal(
            getattr(single._storage, name), getattr(batched._storage, name), err_msg=name
        )
    assert single._storage.pos == batched._storage.pos
    if kind != "uniform":
        slots = np.arange(len(single))
        np.testing.assert_array_equal(single.priorities(slots), batched.priorities(slots))
        assert single._tree.total == batched._tree.total


def test_uniform_sample_shapes_dtypes_and_unit_weights():
    buf = ReplayBuffer(100, (3,), obs_dtype=np.uint8, seed=1)
    for i in range(30):
        buf.add(np.full(3, i, np.uint8), i, 1.0, np.full(3, i + 1, np.uint8), 0.9)
    batch = buf.sample(16, beta=0.7)  # beta is accepted and ignored
    assert isinstance(batch, Batch) and len(batch) == 16
    assert batch.obs.shape == (16, 3) and batch.obs.dtype == torch.uint8
    assert batch.action.dtype == torch.int64 and batch.reward.dtype == torch.float32
    assert batch.discount.dtype == torch.float32
    assert batch.weights.dtype == torch.float32 and (batch.weights == 1).all()
    assert batch.indices.dtype == np.int64 and (batch.indices < 30).all()
    np.testing.assert_array_equal(batch.action.numpy(), batch.obs[:, 0].numpy())
    buf.update_priorities(batch.indices, np.ones(16))  # a no-op, so the trainer needs no if


def test_uniform_sampling_is_uniform():
    buf = ReplayBuffer(10, (1,), seed=2)
    for i in range(10):
        buf.add(np.array([i], dtype=np.float32), i, 0.0, np.array([i]), 1.0)
    counts = np.bincount(np.concatenate([buf.sample(50).indices for _ in range(400)]), minlength=10)
    expected = 20000 / 10
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 27.9  # chi-square, 9 dof, p = 0.001


@pytest.mark.parametrize("kind", KINDS)
def test_sampling_an_empty_buffer_raises(kind):
    with pytest.raises(ValueError, match="empty replay buffer"):
        make(kind, 4).sample(2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_prioritized_sampling_frequencies_match_p_alpha(backend):
    alpha = 0.7
    buf = PrioritizedReplayBuffer(8, (1,), alpha=alpha, eps=1e-6, seed=3, backend=backend)
    for i in range(8):
        buf.add(np.array([i], dtype=np.float32), 0, 0.0, np.array([i]), 1.0)
    td = np.array([0.1, 1.0, 4.0, 0.0, 9.0, 2.0, 0.5, 16.0])
    buf.update_priorities(np.arange(8), td)
    p = (np.abs(td) + 1e-6) ** alpha
    expected_prob = p / p.sum()
    draws = np.concatenate([buf.sample(32).indices for _ in range(2500)])  # 80,000 draws
    counts = np.bincount(draws, minlength=8)
    expected = expected_prob * draws.size
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 24.3  # chi-square, 7 dof, p = 0.001
    # the same counts are far from what ignoring alpha (p = |td|) would give
    wrong = (np.abs(td) + 1e-6) / (np.abs(td) + 1e-6).sum() * draws.size
    assert ((counts - wrong) ** 2 / wrong).sum() > 1000


@pytest.mark.parametrize("backend", BACKENDS)
def test_stratified_sample_has_one_draw_per_segment(backend):
    buf = PrioritizedReplayBuffer(4, (1,), alpha=1.0, eps=0.0, seed=4, backend=backend)
    for i in range(4):
        buf.add(np.array([i], dtype=np.float32), 0, 0.0, np.array([i]), 1.0)
    buf.update_priorities(np.arange(4), np.array([1.0, 1.0, 1.0, 1.0]))
    for _ in range(20):  # 4 equal priorities, 4 segments: every slot exactly once
        assert sorted(buf.sample(4).indices.tolist()) == [0, 1, 2, 3]


@pytest.mark.parametrize("backend", BACKENDS)
def test_importance_weights_match_the_formula(backend):
    alpha, beta, eps = 0.6, 0.4, 1e-6
    buf = PrioritizedReplayBuffer(6, (1,), alpha=alpha, eps=eps, seed=5, backend=backend)
    for i in range(5):  # N = 5 transitions stored (capacity 6)
        buf.add(np.array([i], dtype=np.float32), 0, 0.0, np.array([i]), 1.0)
    td = np.array([0.5, 2.0, 0.1, 3.0, 1.0])
    buf.update_priorities(np.arange(5), td)
    p = (td + eps) ** alpha
    prob = p / p.sum()
    for _ in range(10):
        batch = buf.sample(8, beta=beta)
        i = batch.indices
        w = (5 * prob[i]) ** -beta
        np.testing.assert_allclose(batch.weights.numpy(), w / w.max(), rtol=1e-6)
        assert batch.weights.max().item() == pytest.approx(1.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_new_items_get_the_max_priority_seen(backend):
    alpha, eps = 0.5, 1e-6
    buf = PrioritizedReplayBuffer(10, (1,), alpha=alpha, eps=eps, seed=6, backend=backend)

    def add_range1(a: int, b: int) -> None:
        for i in range(a, b):
            buf.add(np.array([i], dtype=np.float32), 0, 0.0, np.array([i]), 1.0)

    add_range1(0, 4)
    np.testing.assert_array_equal(buf.priorities(np.arange(4)), 1.0)  # starts at 1.0
    buf.update_priorities(np.arange(4), torch.tensor([0.5, 100.0, 1.0, 2.0]))  # torch ok
    big = (100.0 + eps) ** alpha
    assert buf.max_priority == pytest.approx(big)
    add_range1(4, 5)
    assert buf.priorities(np.array([4]))[0] == pytest.approx(big)
    buf.update_priorities(np.array([1]), np.array([0.0]))  # max is what was ever seen
    add_range1(5, 6)
    assert buf.priorities(np.array([5]))[0] == pytest.approx(big)
    # a batch add also gets it
    buf.add(np.zeros((2, 1), np.float32), np.zeros(2), np.zeros(2), np.zeros((2, 1)), 1.0)
    np.testing.assert_allclose(buf.priorities(np.array([6, 7])), big)


@pytest.mark.parametrize("backend", BACKENDS)
def test_update_priorities_duplicates_last_write_wins_and_validation(backend):
    buf = PrioritizedReplayBuffer(8, (1,), alpha=1.0, eps=0.0, seed=7, backend=backend)
    for i in range(5):
        buf.add(np.array([i], dtype=np.float32), 0, 0.0, np.array([i]), 1.0)
    buf.update_priorities(np.array([2, 3, 2]), np.array([-1.0, 5.0, 7.0]))  # |td|
    np.testing.assert_allclose(buf.priorities(np.array([2, 3])), [7.0, 5.0])
    with pytest.raises(IndexError, match="not filled"):
        buf.update_priorities(np.array([6]), np.array([1.0]))
    with pytest.raises(ValueError, match="finite"):
        buf.update_priorities(np.array([1]), np.array([np.nan]))


@pytest.mark.parametrize("kind", KINDS)
def test_batches_do_not_alias_storage(kind):
    buf = make(kind, 8)
    add_range(buf, 0, 8)
    batch = buf.sample(4)
    before = buf._storage.obs.copy()
    batch.obs.add_(100.0)
    batch.reward.add_(100.0)
    np.testing.assert_array_equal(buf._storage.obs, before)


@pytest.mark.parametrize("kind", KINDS)
def test_add_transition_from_nstep(kind):
    buf = make(kind, 16, obs_shape=(1,))
    acc = NStepAccumulator(n=2, gamma=0.5, num_envs=2)
    out = []
    for t in range(3):
        tr = acc.push(
            [[t], [10 + t]], [t, t], [1.0, 2.0], [[t + 1], [11 + t]], [False, t == 1], [False] * 2
        )
        if tr is not None:
            buf.add_transition(tr)
            out.append(tr)
    assert len(buf) == sum(len(tr.action) for tr in out) == 4
    np.testing.assert_array_equal(buf._storage.discount[:4], [0.25, 0.0, 0.0, 0.25])
    np.testing.assert_array_equal(buf._storage.reward[:4], [1.5, 3.0, 2.0, 1.5])


def test_bad_add_shape_is_a_clear_error():
    buf = ReplayBuffer(4, (2, 2))
    with pytest.raises(ValueError, match="obs has 1 dims"):
        buf.add(np.zeros(4), 0, 0.0, np.zeros(4), 1.0)
    with pytest.raises(ValueError, match="but reward has 2"):
        buf.add(np.zeros((3, 2, 2)), np.zeros(3), np.zeros(2), np.zeros((3, 2, 2)), 1.0)


def test_nbytes_reports_raw_arrays_plus_tree():
    uniform = ReplayBuffer(1000, (4,))
    raw = 1000 * (4 * 4 * 2 + 8 + 4 + 4)
    assert uniform.nbytes == raw
    for backend in BACKENDS:
        per = PrioritizedReplayBuffer(100_000, (4,), backend=backend)
        raw = 100_000 * (4 * 4 * 2 + 8 + 4 + 4)
        assert raw + 100_000 * 8 <= per.nbytes < raw + 1.2 * 100_000 * 8


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_device_batches():
    buf = PrioritizedReplayBuffer(16, (2,), device="cuda", seed=0)
    add_range(buf, 0, 16)
    batch = buf.sample(8)
    assert batch.obs.device.type == "cuda" and batch.weights.device.type == "cuda"
    buf.update_priorities(batch.indices, torch.ones(8, device="cuda"))


@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_round_trip_through_a_safe_checkpoint(kind):
    a = make(kind, 10)
    add_range(a, 0, 13)  # wrapped
    if kind != "uniform":
        a.update_priorities(np.array([2, 5]), np.array([4.0, 0.3]))
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    b = make(kind, 10)
    add_range(b, 100, 102)  # loading replaces whatever was there
    b.load_state_dict(state)
    assert len(b) == len(a) and b._storage.pos == a._storage.pos
    for _ in range(3):
        ba, bb = a.sample(6), b.sample(6)  # same contents, priorities and rng state
        np.testing.assert_array_equal(ba.indices, bb.indices)
        for name in ("obs", "action", "reward", "next_obs", "discount", "weights"):
            assert torch.equal(getattr(ba, name), getattr(bb, name)), name
    add_range(a, 50, 51)
    add_range(b, 50, 51)
    if kind != "uniform":
        np.testing.assert_array_equal(a.priorities(np.arange(10)), b.priorities(np.arange(10)))
    with pytest.raises(ValueError, match="capacity"):
        make(kind, 11).load_state_dict(state)


# ------------------------------------------------------------------ sampling rules
# The same for every buffer (uniform or prioritized, with or without dedup_frames).

FRAME_SHAPE = (4, 3, 3)  # a uint8 frame stack [S, H, W], as dedup_frames needs


def make_any(kind: str, dedup: bool, capacity: int = 8):
    shape, dtype = (FRAME_SHAPE, np.uint8) if dedup else ((2,), np.float32)
    if kind == "uniform":
        return ReplayBuffer(capacity, shape, dtype, seed=0, dedup_frames=dedup)
    return PrioritizedReplayBuffer(capacity, shape, dtype, seed=0, backend=kind, dedup_frames=dedup)


def fill(buf, n: int) -> None:
    """``n`` transitions; transition i's obs is all i (so a batch says which it drew)."""
    for i in range(n):
        obs = np.full(buf.obs_shape, i, dtype=np.uint8 if len(buf.obs_shape) == 3 else np.float32)
        buf.add(obs, i % 2, float(i), obs + 1, 0.9)


ALL_BUFFERS = [(kind, dedup) for kind in KINDS for dedup in (False, True)]


@pytest.mark.parametrize(("kind", "dedup"), ALL_BUFFERS)
@pytest.mark.parametrize("batch_size", [0, -3])
def test_batch_size_below_one_is_a_value_error(kind, dedup, batch_size):
    buf = make_any(kind, dedup)
    fill(buf, 3)
    with pytest.raises(ValueError, match=f"batch_size must be >= 1, got {batch_size}"):
        buf.sample(batch_size)


@pytest.mark.parametrize(("kind", "dedup"), ALL_BUFFERS)
def test_sampling_any_empty_buffer_is_a_value_error(kind, dedup):
    with pytest.raises(ValueError, match="empty replay buffer"):
        make_any(kind, dedup).sample(4)


@pytest.mark.parametrize(("kind", "dedup"), ALL_BUFFERS)
def test_more_than_len_is_drawn_with_replacement(kind, dedup):
    buf = make_any(kind, dedup)
    fill(buf, 3)
    batch = buf.sample(10)  # 10 draws from 3 transitions: repeats are certain
    assert batch.indices.shape == (10,) and set(batch.indices.tolist()) <= {0, 1, 2}
    assert len(set(batch.indices.tolist())) < 10
    assert batch.obs.shape == (10, *buf.obs_shape)
    # each row is the transition its index names (obs all i, reward i)
    flat_obs = batch.obs.reshape(10, -1)[:, 0].numpy().astype(np.int64)
    np.testing.assert_array_equal(flat_obs, batch.indices)
    np.testing.assert_array_equal(batch.reward.numpy(), batch.indices.astype(np.float32))
    # equal priorities (all new ones get 1.0): every IS weight is (1/1)^beta = 1
    np.testing.assert_array_equal(batch.weights.numpy(), np.ones(10, dtype=np.float32))


@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_saves_the_arrays_without_copying_them(kind):
    # a checkpoint of a full buffer must not need a second buffer's worth of memory
    buf = make(kind, 10)
    add_range(buf, 0, 10)
    state = buf.state_dict()
    for name in ("obs", "next_obs", "action", "reward", "discount"):
        assert np.shares_memory(state[name].numpy(), getattr(buf._storage, name)), name
        assert state[name].untyped_storage().nbytes() == getattr(buf._storage, name).nbytes
