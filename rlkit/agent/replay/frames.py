"""Replay storage for stacked frames that keeps each distinct frame once.

An Atari observation is a stack of S frames (4 x 84 x 84 uint8); consecutive
observations share S - 1 of them, and a transition's ``next_obs`` shares frames with
later transitions' ``obs``. Storing both stacks verbatim costs 2 S frames per transition;
``FrameStackStorage`` stores every distinct frame once in a frame pool and each
transition as 2 S frame ids, rebuilding the stacks when a batch is gathered: about one
frame (~7 KB) per transition. Frames are matched by content (hash, then a byte-for-byte
check), so stacks padded at an episode start, n-step windows and several interleaved
envs all need no bookkeeping from the caller, and a stack never takes a frame from
another episode: every stack is rebuilt from exactly the frames it was added with.

Frames are reference-counted by the transitions that use them and return to the pool
when the last such transition is overwritten. The pool holds ``capacity + capacity // 32
+ 64 * S`` frames. Should it run out (frames that repeat far less than Atari's), the
oldest transitions are dropped early ("evicted") to free theirs; evicted slots are never
sampled and are reused in ring order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rlkit.agent.replay.frames_kernels import equal_rows, hash_rows
from rlkit.agent.replay.storage import write_fields_and_advance

_HASH_SEED = 0x5EED_F2A3E5  # fixes the multipliers of FrameStackStorage._frame_hashes


def frame_pool_size(capacity: int, stack: int) -> int:
    """Frames in the pool of a ``FrameStackStorage`` of ``capacity`` transitions."""
    return int(capacity) + int(capacity) // 32 + 64 * int(stack)


def frame_storage_bytes(capacity: int, obs_shape: Sequence[int]) -> int:
    """Bytes ``FrameStackStorage(capacity, obs_shape)`` allocates (frames + ids + fields)."""
    stack, frame_bytes = int(obs_shape[0]), int(np.prod(obs_shape[1:]))
    pool = frame_pool_size(capacity, stack)
    per_transition = 2 * stack * 4 + 8 + 4 + 4 + 1  # ids, action, reward, discount, dead
    return pool * (frame_bytes + 4) + capacity * per_transition


class FrameStackStorage:
    """Ring storage of transitions whose observations are uint8 frame stacks [S, H, W].

    The same interface as ``RingStorage`` (``add_one``, ``add_many``, ``gather``,
    ``capacity``, ``obs_shape``, ``pos``, ``size``, ``nbytes``) plus ``dead`` [C] bool and
    ``num_dead``: slots evicted early, which samplers must skip.
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: Sequence[int],
        obs_dtype=np.uint8,
        pool_frames: int | None = None,
    ) -> None:
        """``pool_frames``: frames in the pool (default ``frame_pool_size``; >= 2 S)."""
        if int(capacity) < 1:
            raise ValueError(f"replay capacity must be >= 1, got {capacity}")
        if len(obs_shape) != 3 or np.dtype(obs_dtype) != np.uint8:
            raise ValueError(
                f"frame replay needs uint8 frame stacks [stack, H, W], got {tuple(obs_shape)} "
                f"{np.dtype(obs_dtype)}"
            )
        self.capacity = c = int(capacity)
        self.obs_shape = tuple(int(d) for d in obs_shape)
        self.stack = s = self.obs_shape[0]
        pool = frame_pool_size(c, s) if pool_frames is None else int(pool_frames)
        if pool < 2 * s:
            raise ValueError(f"frame pool of {pool} frames cannot hold one transition ({2 * s})")
        self.frames = np.zeros((pool, *self.obs_shape[1:]), dtype=np.uint8)
        self.refcount = np.zeros(pool, dtype=np.int32)
        self.obs_ids = np.zeros((c, s), dtype=np.int32)
        self.next_ids = np.zeros((c, s), dtype=np.int32)
        self.action = np.zeros(c, dtype=np.int64)
        self.reward = np.zeros(c, dtype=np.float32)
        self.discount = np.zeros(c, dtype=np.float32)
        self.dead = np.zeros(c, dtype=bool)
        self.num_dead = 0
        self.pos = 0
        self.size = 0
        self._free = list(range(pool - 1, -1, -1))  # a stack: pop() gives the lowest id
        self._by_hash: dict[int, int] = {}  # content hash -> id of a live frame
        self.evicted: list[int] = []  # slots evicted since take_evicted()
        self._hash_of: list[int] = [0] * pool  # content hash of each live frame
        words = -(-int(np.prod(self.obs_shape[1:])) // 8)  # a frame's bytes as uint64 words
        self._mult = np.random.default_rng(_HASH_SEED).integers(
            0, 2**63, size=words, dtype=np.uint64
        ) * np.uint64(2) + np.uint64(1)  # fixed random odd multipliers of _frame_hashes
        rows = self.frames.reshape(pool, -1)  # the pool's frames as rows, for byte checks
        self._pool_rows = rows.view(np.uint64) if rows.shape[1] % 8 == 0 else rows

    @property
    def nbytes(self) -> int:
        arrays = (
            self.frames,
            self.refcount,
            self.obs_ids,
            self.next_ids,
            self.action,
            self.reward,
            self.discount,
            self.dead,
        )
        return sum(a.nbytes for a in arrays)

    @property
    def num_frames(self) -> int:
        """Distinct frames stored now."""
        return len(self.frames) - len(self._free)

    # ------------------------------------------------------------------ frames
    def _frame_hashes(self, frames: np.ndarray) -> list[int]:
        """Content hashes of ``frames`` [m, H, W] uint8, one compiled pass for all of them:
        each frame's bytes as uint64 words (zero-padded), ``sum_i word_i * mult_i`` mod
        2**64 with fixed random odd multipliers. A lookup key only: every match is
        checked byte for byte, so a collision costs a duplicate frame, never a wrong one."""
        m = len(frames)
        flat = np.ascontiguousarray(frames).reshape(m, -1)
        if flat.shape[1] != 8 * len(self._mult):
            padded = np.zeros((m, 8 * len(self._mult)), dtype=np.uint8)
            padded[:, : flat.shape[1]] = flat
            flat = padded
        return hash_rows(flat.view(np.uint64), self._mult).tolist()

    def _acquire(self, frame: np.ndarray, key: int) -> int:
        """The id of a live frame equal to ``frame`` (hash ``key``), storing it if none
        (evicting the oldest transitions when the pool is full); takes a reference."""
        fid = self._by_hash.get(key)
        if fid is None or not np.array_equal(self.frames[fid], frame):
            while not self._free:  # an evicted transition may free no frame
                self._evict_oldest()
            fid = self._free.pop()
            self.frames[fid] = frame
            self._by_hash[key] = fid
            self._hash_of[fid] = key
        self.refcount[fid] += 1
        return fid

    def _release(self, ids: np.ndarray) -> None:
        """Drop one reference to each of ``ids`` in order; a frame whose count reaches 0
        goes back to the free list."""
        refcount = self.refcount
        for fid in ids.tolist():
            count = refcount[fid] - 1
            refcount[fid] = count
            if count == 0:
                key = self._hash_of[fid]
                if self._by_hash.get(key) == fid:
                    del self._by_hash[key]
                self._free.append(fid)

    def _evict_oldest(self) -> int:
        """Drop the oldest live transition (frame pool exhausted); returns its slot."""
        start = (self.pos - self.size) % self.capacity
        for k in range(self.size):
            slot = (start + k) % self.capacity
            if not self.dead[slot]:
                self._release(np.concatenate((self.obs_ids[slot], self.next_ids[slot])))
                self.dead[slot] = True
                self.num_dead += 1
                self.evicted.append(slot)
                return slot
        raise RuntimeError("frame pool exhausted with no transition left to evict")

    # ------------------------------------------------------------------ ring
    def add_one(self, obs, action, reward, next_obs, discount) -> int:
        """Write one transition into the next slot and return that slot."""
        obs, next_obs = np.asarray(obs), np.asarray(next_obs)
        if obs.shape != self.obs_shape or next_obs.shape != self.obs_shape:
            raise ValueError(
                f"frame replay add: expected stacks of shape {self.obs_shape}, got "
                f"{obs.shape} and {next_obs.shape}"
            )
        return int(self._add(obs[None], [action], [reward], next_obs[None], [discount])[0])

    def add_many(self, obs, action, reward, next_obs, discount) -> np.ndarray:
        """``add_one`` for each of ``n`` transitions in order; returns their slots."""
        obs, next_obs = np.asarray(obs), np.asarray(next_obs)
        n = len(obs)
        if obs.shape[1:] != self.obs_shape or next_obs.shape != obs.shape:
            raise ValueError(
                f"frame replay add: expected stacks of shape {self.obs_shape}, got "
                f"{obs.shape[1:]} and {next_obs.shape[1:]}"
            )
        cols = [np.asarray(a) for a in (action, reward, discount)]
        cols = [a if a.shape == (n,) else np.broadcast_to(a, (n,)) for a in cols]
        return self._add(obs, cols[0], cols[1], next_obs, cols[2])

    def _add(self, obs, action, reward, next_obs, discount) -> np.ndarray:
        """Store ``n`` transitions (stacks [n, S, H, W]) one after another, exactly as
        ``n`` calls of the frame-by-frame algorithm (hash lookup, byte check, lowest free
        id) would. The hashes of all frames, and the byte checks against the frames
        that were live when the call began, are computed up front in one pass each."""
        n, s = len(obs), self.stack
        if n == 0:
            return np.empty(0, dtype=np.int64)
        inputs = (obs.reshape(n * s, *obs.shape[2:]), next_obs.reshape(n * s, *obs.shape[2:]))
        keys = [self._frame_hashes(x) for x in inputs]
        cands = [[self._by_hash.get(k, -1) for k in ks] for ks in keys]
        same = [self._check_live(x, c) for x, c in zip(inputs, cands, strict=True)]
        written: set[int] = set()  # ids (re)stored during this call: byte checks are stale
        slots = np.empty(n, dtype=np.int64)
        for k in range(n):
            i = slots[k] = self.pos
            if i < self.size:  # overwriting: the old transition's frames go first
                if self.dead[i]:
                    self.dead[i] = False
                    self.num_dead -= 1
                else:
                    self._release(np.concatenate((self.obs_ids[i], self.next_ids[i])))
            rows = range(k * s, (k + 1) * s)
            if len(self._free) >= 2 * s:  # no eviction possible: the batched path
                ids = []
                for x, ks, c, e in zip(inputs, keys, cands, same, strict=True):
                    self._find_or_store(x, ks, c, e, rows, written, ids)
            else:  # the pool may run out mid-transition: frame by frame, as it happens
                self.dead[i] = True  # not sampleable (nor evictable) while half written
                ids = [self._acquire(x[p], ks[p]) for x, ks in zip(inputs, keys) for p in rows]
                written.update(ids)
                self.dead[i] = False
            self.obs_ids[i], self.next_ids[i] = ids[:s], ids[s:]
            write_fields_and_advance(self, i, action[k], reward[k], discount[k])
        self._stored(written)
        return slots

    def _stored(self, ids: set[int]) -> None:
        """Hook: ``ids`` are the pool frames (re)written by the last add (a superset)."""

    def _check_live(self, frames: np.ndarray, cands: list[int]) -> list[bool]:
        """For each of ``frames`` [m, H, W], whether it equals byte for byte its candidate
        live frame ``cands[p]`` (-1: none), compared in place (8 bytes at a time where the
        frame size allows)."""
        given = np.ascontiguousarray(frames).reshape(len(frames), -1)
        pool = self._pool_rows
        if pool.dtype == np.uint64:
            given = given.view(np.uint64)
        return equal_rows(pool, np.asarray(cands, dtype=np.int64), given).tolist()

    def _find_or_store(self, frames, keys, cands, same, rows, written: set, ids: list) -> None:
        """``_acquire`` of ``frames[p]`` for ``p`` in ``rows`` (appending the ids to ``ids``)
        when no eviction can happen, with the byte check computed up front where the hash
        still leads to the same, unchanged frame."""
        by_hash, refcount = self._by_hash, self.refcount
        for p in rows:
            key = keys[p]
            fid = by_hash.get(key)
            if fid is not None:
                if fid == cands[p] and fid not in written:
                    if same[p]:
                        refcount[fid] += 1
                        ids.append(fid)
                        continue
                elif np.array_equal(self.frames[fid], frames[p]):
                    refcount[fid] += 1
                    ids.append(fid)
                    continue
            fid = self._free.pop()
            self.frames[fid] = frames[p]
            by_hash[key] = fid
            self._hash_of[fid] = key
            written.add(fid)
            refcount[fid] += 1
            ids.append(fid)

    def gather(self, indices: np.ndarray) -> tuple[np.ndarray, ...]:
        """(obs, action, reward, next_obs, discount) of ``indices``, stacks rebuilt."""
        return (
            self.frames[self.obs_ids[indices]],
            self.action.take(indices),
            self.reward.take(indices),
            self.frames[self.next_ids[indices]],
            self.discount.take(indices),
        )

    def take_evicted(self) -> list[int]:
        """Slots evicted since the last call (for prioritized replay to zero them)."""
        out, self.evicted = self.evicted, []
        return out

    # ------------------------------------------------------------------ checkpointing
    def state_arrays(self) -> dict[str, np.ndarray]:
        """Live transitions and only the frames they use (ids renumbered from 0)."""
        n = self.size
        live = ~self.dead[:n]
        used, inverse = np.unique(
            np.concatenate([self.obs_ids[:n][live], self.next_ids[:n][live]]), return_inverse=True
        )
        remap = np.zeros(len(self.frames), dtype=np.int32)
        remap[used] = np.arange(len(used), dtype=np.int32)
        obs_ids = np.where(live[:, None], remap[self.obs_ids[:n]], 0)
        next_ids = np.where(live[:, None], remap[self.next_ids[:n]], 0)
        return {
            "frames": self.frames[used],
            "obs_ids": obs_ids.astype(np.int32),
            "next_ids": next_ids.astype(np.int32),
            "action": self.action[:n].copy(),
            "reward": self.reward[:n].copy(),
            "discount": self.discount[:n].copy(),
            "dead": self.dead[:n].copy(),
        }

    def load_arrays(self, arrays: dict, size: int, pos: int) -> None:
        """Restore what ``state_arrays`` returned into an empty storage of the same shape."""
        n, frames = int(size), np.asarray(arrays["frames"])
        if len(frames) > len(self.frames):
            raise ValueError(
                f"replay state holds {len(frames)} frames, the pool {len(self.frames)}"
            )
        self.frames[: len(frames)] = frames
        self.obs_ids[:n] = np.asarray(arrays["obs_ids"])
        self.next_ids[:n] = np.asarray(arrays["next_ids"])
        for name in ("action", "reward", "discount", "dead"):
            getattr(self, name)[:n] = np.asarray(arrays[name])
        self.dead[n:] = False
        self.num_dead = int(self.dead[:n].sum())
        self.size, self.pos = n, int(pos)
        live = ~self.dead[:n]
        self.refcount[:] = 0
        np.add.at(self.refcount, self.obs_ids[:n][live].ravel(), 1)
        np.add.at(self.refcount, self.next_ids[:n][live].ravel(), 1)
        self._free = [f for f in range(len(self.frames) - 1, -1, -1) if self.refcount[f] == 0]
        self._by_hash = {}
        live_ids = np.flatnonzero(self.refcount)
        for a in range(0, len(live_ids), 4096):  # the hashes of 4096 frames at a time
            chunk = live_ids[a : a + 4096]
            for f, key in zip(chunk.tolist(), self._frame_hashes(self.frames[chunk])):
                self._hash_of[f] = key
                self._by_hash[key] = f
        self.evicted = []
