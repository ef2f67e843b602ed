"""N-step transition accumulation for vectorised environments.

For each env the accumulator keeps the last (up to ``n``) steps of the current episode
and emits, per window starting at step ``t`` with ``k <= n`` real steps,

    obs      = o_t
    action   = a_t
    reward   = sum_{i<k} gamma**i * r_{t+i}          (the discounted k-step return)
    next_obs = o'_{t+k-1}                            (the observation after the last step)
    discount = 0 if the episode terminated inside the window, else gamma**k

so the TD target is ``reward + discount * max_a Q(next_obs, a)`` (Sutton & Barto 2018,
Sec. 7.1). Truncation (a time limit) is not termination: the window keeps
``gamma**k`` and bootstraps from the final observation, which the caller must pass as
``next_obs`` (the real last observation, not the first of the auto-reset episode). At an
episode end (terminated or truncated) every shorter tail window is emitted, so each real
step starts exactly one transition; windows never span two episodes.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import torch

from rlkit.types import Transition

# one pending step: (obs, action, reward, next_obs)
_Step = tuple[np.ndarray, int, float, np.ndarray]


def _rows_of(array, rows: list[np.ndarray]) -> bool:
    """Whether ``rows[e]`` is exactly the memory of ``array[e]`` for every ``e`` (same
    start, shape and strides), so ``array`` can stand for their stack without a copy."""
    if not isinstance(array, np.ndarray) or len(array) != len(rows) or array.ndim < 1:
        return False
    start, step = array.__array_interface__["data"][0], array.strides[0]
    shape, strides = array.shape[1:], array.strides[1:]
    return all(
        r.shape == shape
        and r.strides == strides
        and r.__array_interface__["data"][0] == start + e * step
        for e, r in enumerate(rows)
    )


class NStepAccumulator:
    """Turns per-step transitions of ``num_envs`` parallel envs into n-step transitions.

    ``push`` returns the windows that finished at this step as one ``Transition`` (leading
    dimension K) or None. Order: env-major (env 0's windows first), and within an env
    oldest window first, i.e. in the order their first steps were pushed.
    """

    def __init__(self, n: int, gamma: float, num_envs: int = 1) -> None:
        if int(n) < 1:
            raise ValueError(f"n-step n must be >= 1, got {n}")
        if not 0.0 <= float(gamma) <= 1.0:
            raise ValueError(f"n-step gamma must be in [0, 1], got {gamma}")
        if int(num_envs) < 1:
            raise ValueError(f"n-step num_envs must be >= 1, got {num_envs}")
        self.n = int(n)
        self.gamma = float(gamma)
        self.num_envs = int(num_envs)
        self._pending: list[deque[_Step]] = [deque() for _ in range(self.num_envs)]
        self._recent: deque[np.ndarray] = deque(maxlen=self.n)  # the last n pushed obs

    def push(
        self, obs, action, reward, next_obs, terminated, truncated, mask=None, *, copy=True
    ) -> Transition | None:
        """Add one step of every env; return the n-step transitions that finished.

        All arguments have a leading ``num_envs`` dimension: ``obs``/``next_obs``
        [E, *obs_shape], ``action``/``reward``/``terminated``/``truncated`` [E].
        ``mask`` [E] bool (optional): envs where it is False did not make a real step
        (e.g. a vector env's auto-reset step) and are skipped. ``copy=False``: the caller
        owns ``obs`` and ``next_obs`` and never writes to them again (as with every
        ``rlkit.envs`` backend), so pending steps keep views instead of copies.
        """
        if copy:  # the env may reuse its buffers
            obs, next_obs = np.array(obs, copy=True), np.array(next_obs, copy=True)
        else:
            obs, next_obs = np.asarray(obs), np.asarray(next_obs)
        action = np.asarray(action).reshape(-1)
        reward = np.asarray(reward, dtype=np.float64).reshape(-1)
        terminated = np.asarray(terminated, dtype=bool).reshape(-1)
        truncated = np.asarray(truncated, dtype=bool).reshape(-1)
        valid = self._check(obs, action, reward, next_obs, terminated, truncated, mask)
        if self.n == 1:  # every real step is a finished window: no queues needed
            return self._one_step(obs, action, reward, next_obs, terminated, valid)
        out: list[tuple[np.ndarray, int, float, np.ndarray, float]] = []
        self._recent.append(obs)
        ends = (terminated | truncated).tolist()
        rewards = reward.tolist()  # the same Python floats as float(reward[e])
        for e, steps in enumerate(self._pending):
            if valid is not None and not valid[e]:
                continue
            steps.append((obs[e], int(action[e]), rewards[e], next_obs[e]))
            if ends[e]:
                while steps:  # flush every tail window of the finished episode
                    out.append(self._window(steps, bool(terminated[e])))
                    steps.popleft()
            elif len(steps) == self.n:
                out.append(self._window(steps, False))
                steps.popleft()
        if not out:
            return None
        stacked_obs, stacked_next = self._stacks(out, next_obs)
        return Transition(
            obs=stacked_obs,
            action=np.array([w[1] for w in out], dtype=np.int64),
            reward=np.array([w[2] for w in out], dtype=np.float32),
            next_obs=stacked_next,
            discount=np.array([w[4] for w in out], dtype=np.float32),
        )

    def _check(self, obs, action, reward, next_obs, terminated, truncated, mask):
        """ValueError unless every argument of ``push`` has ``num_envs`` rows; returns the
        mask as [E] bool (None without one)."""
        named = {
            "obs": obs,
            "action": action,
            "reward": reward,
            "next_obs": next_obs,
            "terminated": terminated,
            "truncated": truncated,
        }
        for name, a in named.items():
            if a.ndim == 0 or a.shape[0] != self.num_envs:
                raise ValueError(
                    f"n-step push: {name} must have a leading dimension of num_envs="
                    f"{self.num_envs}, got shape {a.shape}"
                )
        valid = None if mask is None else np.asarray(mask, dtype=bool).reshape(-1)
        if valid is not None and valid.shape[0] != self.num_envs:
            raise ValueError(f"n-step push: mask must have num_envs={self.num_envs} entries")
        return valid

    def _stacks(self, out: list, next_obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The windows' obs and next_obs stacked [K, *obs_shape]. Without copies when every
        env finished exactly one window: then their first steps' obs can be the rows of
        the obs array pushed n - 1 pushes ago (checked: the same memory, row for row;
        those steps have all left the queues) and their next_obs are this push's
        ``next_obs`` (returned read-only: its rows are still pending)."""
        first = self._recent[0] if len(self._recent) == self.n else None
        if len(out) == self.num_envs and _rows_of(first, [w[0] for w in out]):
            shared = next_obs.view()
            shared.flags.writeable = False
            return first, shared
        return np.stack([w[0] for w in out]), np.stack([w[3] for w in out])

    def _one_step(self, obs, action, reward, next_obs, terminated, valid) -> Transition | None:
        """n = 1: every real step is its own window (discount gamma, or 0 on termination)."""
        discount = np.where(terminated, 0.0, self.gamma).astype(np.float32)
        tr = Transition(
            obs, action.astype(np.int64, copy=False), reward.astype(np.float32), next_obs, discount
        )
        if valid is None or valid.all():
            return tr
        if not valid.any():
            return None
        return Transition(*(field[valid] for field in tr))

    def _window(self, steps: deque[_Step], terminated: bool):
        """The transition of the window ``steps`` (oldest first)."""
        ret = 0.0
        scale = 1.0
        for _, _, r, _ in steps:
            ret += scale * r
            scale *= self.gamma
        discount = 0.0 if terminated else self.gamma ** len(steps)
        first, last = steps[0], steps[-1]
        return first[0], first[1], ret, last[3], discount

    def reset(self, env: int | None = None) -> None:
        """Drop the pending steps of every env (or of ``env`` only), e.g. after the
        caller reset the environments outside of ``push``."""
        for e, steps in enumerate(self._pending):
            if env is None or e == env:
                steps.clear()
        self._recent.clear()

    @property
    def num_pending(self) -> list[int]:
        """Steps waiting for their window to complete, per env (each < n)."""
        return [len(steps) for steps in self._pending]

    def state_dict(self) -> dict[str, Any]:
        """The pending steps as CPU tensors and plain Python values (tensors rather than
        numpy arrays so that ``torch.load(weights_only=True)`` accepts a checkpoint)."""
        envs = []
        for steps in self._pending:
            if steps:
                obs = torch.from_numpy(np.stack([s[0] for s in steps]))
                next_obs = torch.from_numpy(np.stack([s[3] for s in steps]))
            else:
                obs = next_obs = None
            envs.append(
                {
                    "obs": obs,
                    "action": torch.tensor([s[1] for s in steps], dtype=torch.int64),
                    "reward": torch.tensor([s[2] for s in steps], dtype=torch.float64),
                    "next_obs": next_obs,
                }
            )
        return {"n": self.n, "gamma": self.gamma, "num_envs": self.num_envs, "pending": envs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore pending steps saved by ``state_dict`` (same n, gamma and num_envs);
        arrays may be tensors or numpy arrays."""
        for key in ("n", "gamma", "num_envs"):
            if state[key] != getattr(self, key):
                raise ValueError(
                    f"n-step state has {key}={state[key]!r} but this accumulator has "
                    f"{key}={getattr(self, key)!r}"
                )
        pending: list[deque[_Step]] = []
        for env in state["pending"]:
            steps: deque[_Step] = deque()
            for i in range(len(env["action"])):
                step = (
                    np.array(np.asarray(env["obs"][i])),
                    int(env["action"][i]),
                    float(env["reward"][i]),
                    np.array(np.asarray(env["next_obs"][i])),
                )
                steps.append(step)
            pending.append(steps)
        self._recent.clear()
        self._pending = pending
