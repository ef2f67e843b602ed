"""Frame replay: stacks rebuilt from deduplicated frames equal what was added."""

import io

import numpy as np
import pytest
import torch

from rlkit.agent.replay import NStepAccumulator, PrioritizedReplayBuffer, ReplayBuffer
from rlkit.agent.replay.frames import FrameStackStorage, frame_storage_bytes

STACK, H, W = 4, 6, 5


class NaiveFrameStacker:
    """The reference: a FrameStackObservation-style stack, reset frame repeated."""

    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []

    def reset(self, frame: np.ndarray) -> np.ndarray:
        self.frames = [frame] * STACK
        return np.stack(self.frames)

    def step(self, frame: np.ndarray) -> np.ndarray:
        self.frames = [*self.frames[1:], frame]
        return np.stack(self.frames)


def trajectories(num_envs: int, steps: int, seed: int):
    """Per vector step: obs, action, reward, next_obs, terminated, truncated (stacks).

    Frames come from a small alphabet, so equal frames recur across time, envs and
    episodes; episodes end by termination or truncation at random."""
    rng = np.random.default_rng(seed)
    alphabet = rng.integers(0, 256, size=(12, H, W), dtype=np.uint8)

    def frame():
        return (
            alphabet[rng.integers(0, len(alphabet))]
            if rng.random() < 0.5
            else rng.integers(0, 256, size=(H, W), dtype=np.uint8)
        )

    stackers = [NaiveFrameStacker() for _ in range(num_envs)]
    obs = np.stack([s.reset(frame()) for s in stackers])
    for _ in range(steps):
        terminated = rng.random(num_envs) < 0.05
        truncated = ~terminated & (rng.random(num_envs) < 0.03)
        next_obs = np.stack([s.step(frame()) for s in stackers])
        yield (
            obs,
            rng.integers(0, 3, num_envs),
            rng.normal(size=num_envs).astype(np.float32),
            next_obs,
            terminated,
            truncated,
        )
        obs = next_obs.copy()
        for e in np.flatnonzero(terminated | truncated):
            obs[e] = stackers[e].reset(frame())


@pytest.mark.parametrize("prioritized", [False, True])
def test_stacks_match_a_naive_buffer_through_nstep_and_wraparound(prioritized):
    capacity, num_envs = 300, 3
    kwargs = dict(obs_dtype=np.uint8, seed=0)
    cls = PrioritizedReplayBuffer if prioritized else ReplayBuffer
    frames = cls(capacity, (STACK, H, W), dedup_frames=True, **kwargs)
    naive = cls(capacity, (STACK, H, W), **kwargs)
    nstep = NStepAccumulator(3, 0.99, num_envs=num_envs)
    for step in trajectories(num_envs, 400, seed=1):
        out = nstep.push(*step)
        if out is not None:
            frames.add_transition(out)
            naive.add_transition(out)
    assert len(frames) == len(naive) == capacity  # wrapped around
    idx = np.arange(capacity)
    got = frames._storage.gather(idx)
    want = naive._storage.gather(idx)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    batch = frames.sample(64, beta=0.5)
    ref = naive._storage.gather(batch.indices)
    np.testing.assert_array_equal(batch.obs.numpy(), ref[0])
    np.testing.assert_array_equal(batch.next_obs.numpy(), ref[3])
    # every live frame is referenced, no frame is stored twice
    st = frames._storage
    used = np.unique(np.concatenate([st.obs_ids.ravel(), st.next_ids.ravel()]))
    assert st.num_frames == len(used)
    assert len({st.frames[f].tobytes() for f in used}) == len(used)


def test_about_one_frame_per_transition_for_a_frame_stream():
    capacity = 200
    buf = ReplayBuffer(capacity, (STACK, H, W), np.uint8, dedup_frames=True)
    rng = np.random.default_rng(0)
    stacker = NaiveFrameStacker()
    obs = stacker.reset(rng.integers(0, 256, (H, W), dtype=np.uint8))
    nstep = NStepAccumulator(3, 0.99)
    for t in range(1000):
        nxt = stacker.step(rng.integers(0, 256, (H, W), dtype=np.uint8))
        end = t % 250 == 249
        out = nstep.push(obs[None], [0], [1.0], nxt[None], [end], [False])
        if out is not None:
            buf.add_transition(out)
        obs = stacker.reset(rng.integers(0, 256, (H, W), dtype=np.uint8)) if end else nxt
    # 200 transitions of unique frames need 200 + stack + n frames, not 2 * 4 * 200
    assert buf._storage.num_frames <= capacity + STACK + 3 + 1


@pytest.mark.parametrize("prioritized", [False, True])
def test_pool_exhaustion_evicts_the_oldest_and_never_samples_it(prioritized):
    capacity = 8
    cls = PrioritizedReplayBuffer if prioritized else ReplayBuffer
    buf = cls(capacity, (STACK, H, W), np.uint8, dedup_frames=True, seed=0)
    buf._storage = st = FrameStackStorage(capacity, (STACK, H, W), pool_frames=3 * STACK)
    rng = np.random.default_rng(0)
    stacks = []
    for _ in range(capacity + 3):  # every frame distinct: 8 new frames per transition
        obs, nxt = (rng.integers(0, 256, (STACK, H, W), dtype=np.uint8) for _ in range(2))
        stacks.append((obs, nxt))
        buf.add(obs, 0, 1.0, nxt, 0.9)
    assert st.num_dead > 0 and len(buf) == st.size - st.num_dead
    assert st.num_frames <= 3 * STACK
    live = np.flatnonzero(~st.dead[: st.size])
    assert len(live) >= 1
    if prioritized:
        assert np.all(buf.priorities(np.flatnonzero(st.dead)) == 0.0)
    for _ in range(20):
        batch = buf.sample(16)
        assert not st.dead[batch.indices].any()
    # the newest transition is intact
    newest = (st.pos - 1) % capacity
    got = st.gather(np.array([newest]))
    np.testing.assert_array_equal(got[0][0], stacks[-1][0])
    np.testing.assert_array_equal(got[3][0], stacks[-1][1])


def test_state_dict_round_trip_keeps_only_used_frames():
    buf = PrioritizedReplayBuffer(50, (STACK, H, W), np.uint8, dedup_frames=True, seed=0)
    nstep = NStepAccumulator(2, 0.99, num_envs=2)
    for step in trajectories(2, 80, seed=3):
        out = nstep.push(*step)
        if out is not None:
            buf.add_transition(out)
    buffer = io.BytesIO()
    torch.save(buf.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert len(state["frames"]) == buf._storage.num_frames
    restored = PrioritizedReplayBuffer(50, (STACK, H, W), np.uint8, dedup_frames=True, seed=5)
    restored.load_state_dict(state)
    idx = np.arange(50)
    for a, b in zip(buf._storage.gather(idx), restored._storage.gather(idx)):
        np.testing.assert_array_equal(a, b)
    a, b = buf.sample(32, beta=0.4), restored.sample(32, beta=0.4)
    np.testing.assert_array_equal(a.indices, b.indices)
    # adding after a restore shares frames again
    before = restored._storage.num_frames
    restored.add_transition(_one())
    assert restored._storage.num_frames <= before + 2 * STACK


def _one():
    z = np.zeros((1, STACK, H, W), np.uint8)
    from rlkit.types import Transition

    return Transition(z, np.zeros(1, np.int64), np.zeros(1, np.float32), z, np.ones(1, np.float32))


def test_frame_storage_checks_shape_and_estimates_its_bytes():
    with pytest.raises(ValueError, match="uint8 frame stacks"):
        FrameStackStorage(10, (4, 84), np.uint8)
    with pytest.raises(ValueError, match="uint8 frame stacks"):
        FrameStackStorage(10, (4, 84, 84), np.float32)
    st = FrameStackStorage(1000, (4, 84, 84))
    assert st.nbytes == frame_storage_bytes(1000, (4, 84, 84))
    # 1M Atari transitions: about one 84x84 frame each, under 7.5 GB
    assert frame_storage_bytes(1_000_000, (4, 84, 84)) < 7.5e9


def test_hash_collisions_still_store_and_rebuild_every_stack_exactly(monkeypatch):
    """Every frame hashes alike: matches then rest on the byte-for-byte check alone, so
    equal frames may be stored twice but every stack is rebuilt exactly, through n-step,
    wraparound, pool exhaustion (evictions) and a checkpoint round trip."""
    monkeypatch.setattr(FrameStackStorage, "_frame_hashes", lambda self, f: [7] * len(f))
    capacity, num_envs = 60, 3
    st = FrameStackStorage(capacity, (STACK, H, W), pool_frames=6 * STACK)
    written: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # slot -> (obs, next_obs)
    nstep = NStepAccumulator(3, 0.99, num_envs=num_envs)
    for step in trajectories(num_envs, 150, seed=4):
        out = nstep.push(*step)
        if out is not None:
            slots = st.add_many(out.obs, out.action, out.reward, out.next_obs, out.discount)
            for k, slot in enumerate(slots.tolist()):
                written[slot] = (out.obs[k].copy(), out.next_obs[k].copy())
    assert st.size == capacity and st.num_dead > 0  # wrapped around and evicted
    live = np.flatnonzero(~st.dead[: st.size])
    got = st.gather(live)
    for k, slot in enumerate(live.tolist()):
        np.testing.assert_array_equal(got[0][k], written[slot][0])
        np.testing.assert_array_equal(got[3][k], written[slot][1])
    # the constant hash was in force: some equal frames are stored more than once
    used = np.unique(np.concatenate([st.obs_ids[live].ravel(), st.next_ids[live].ravel()]))
    assert len({st.frames[f].tobytes() for f in used}) < len(used) == st.num_frames
    restored = FrameStackStorage(capacity, (STACK, H, W), pool_frames=6 * STACK)
    restored.load_arrays(st.state_arrays(), st.size, st.pos)
    for a, b in zip(st.gather(live), restored.gather(live), strict=True):
        np.testing.assert_array_equal(a, b)
    obs, nxt = written[live[-1]]  # stacks whose frames are all stored already
    slot = restored.add_one(nxt, 1, 0.5, obs, 0.9)
    again = restored.gather(np.array([slot]))
    np.testing.assert_array_equal(again[0][0], nxt)
    np.testing.assert_array_equal(again[3][0], obs)


def test_compiled_frame_kernels_equal_their_numpy_fallbacks():
    from rlkit.agent.replay import frames_kernels as k

    rng = np.random.default_rng(3)
    words = rng.integers(0, 2**63, size=(9, 5), dtype=np.uint64)
    mult = rng.integers(0, 2**63, size=5, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    np.testing.assert_array_equal(k.hash_rows(words, mult), k._hash_rows_numpy(words, mult))
    # by hand for row 0: sum of word * mult, wrapping mod 2**64
    expect = sum(int(w) * int(m) for w, m in zip(words[0], mult, strict=True)) % 2**64
    assert int(k.hash_rows(words, mult)[0]) == expect
    pool = rng.integers(0, 4, size=(6, 5), dtype=np.uint64)
    given = pool[[2, 0, 5, 1]].copy()
    given[2, 4] += 1  # differs in the last word only
    cands = np.array([2, 0, 5, -1])  # -1: no candidate
    expected = [True, True, False, False]
    assert k.equal_rows(pool, cands, given).tolist() == expected
    assert k._equal_rows_numpy(pool, cands, given).tolist() == expected


def filled_host_and_mirrored(cls, device: str = "cpu"):
    """Two buffers of class ``cls`` (120 transitions, 3 envs, 3-step, wrapped around) with
    the same contents: frame replay on the host, and with ``frames_on_device``."""
    kwargs = dict(obs_dtype=np.uint8, seed=0, dedup_frames=True, device=device)
    host = cls(120, (STACK, H, W), **kwargs)
    mirrored = cls(120, (STACK, H, W), frames_on_device=True, **kwargs)
    nstep = NStepAccumulator(3, 0.99, num_envs=3)
    for step in trajectories(3, 200, seed=4):
        out = nstep.push(*step)
        if out is not None:
            host.add_transition(out)
            mirrored.add_transition(out)
    return host, mirrored


@pytest.mark.parametrize("prioritized", [False, True])
def test_frames_on_device_sample_the_same_batches_as_the_host_pool(prioritized):
    # the device mirror (here on the CPU device: the same code as on a GPU) must hold
    # every frame the host pool holds, through wraparound and frame reuse, and a batch
    # gathered there must equal the host gather, with the same indices and weights
    cls = PrioritizedReplayBuffer if prioritized else ReplayBuffer
    kwargs = dict(obs_dtype=np.uint8, seed=0, dedup_frames=True)
    host, mirrored = filled_host_and_mirrored(cls)
    st = mirrored._storage
    live = np.flatnonzero(st.refcount)
    np.testing.assert_array_equal(st.device_frames[live].numpy(), st.frames[live])
    a, b = host.sample(48, beta=0.5), mirrored.sample(48, beta=0.5)
    np.testing.assert_array_equal(a.indices, b.indices)
    for field in ("obs", "action", "reward", "next_obs", "discount", "weights"):
        x, y = getattr(a, field), getattr(b, field)
        assert x.dtype == y.dtype and x.device == y.device, field
        assert torch.equal(x, y), field
    # a restored buffer fills its device pool from the checkpoint's frames
    restored = cls(120, (STACK, H, W), frames_on_device=True, **{**kwargs, "seed": 7})
    restored.load_state_dict(mirrored.state_dict())
    idx = np.arange(120)
    for x, y in zip(host._storage.gather(idx), restored._storage.gather(idx), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_frames_on_device_needs_frame_replay():
    with pytest.raises(ValueError, match="frames_on_device needs dedup_frames"):
        ReplayBuffer(10, (STACK, H, W), np.uint8, frames_on_device=True)
