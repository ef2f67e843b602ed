"""Acting: epsilon-greedy action selection over a Q-network, for training and evaluation.

One implementation serves both: the collector acts with ``EpsilonGreedy.act`` and
evaluation with ``EpsilonGreedy.act_with_q`` (which also returns the Q-value of each
chosen action, for the overestimation measurement). Exploration lives here and only here:
``epsilon_greedy`` is the one function that mixes random and greedy actions.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from rlkit.agent.nn.qnet import QNetwork


def epsilon_greedy(
    greedy: Callable[[], np.ndarray],
    n: int,
    epsilon: float,
    num_actions: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """``n`` actions: each is, with probability ``epsilon``, a uniform random action in
    ``[0, num_actions)``, else the greedy one from ``greedy()`` [n].

    Draws ``rng.random(n)`` then ``rng.integers(0, num_actions, n)`` (nothing when
    ``epsilon <= 0``); ``greedy`` is called only when some entry acts greedily.
    Returns [n] int64.
    """
    if epsilon <= 0.0:
        return np.asarray(greedy(), dtype=np.int64)
    explore_N = rng.random(n) < epsilon
    random_N = rng.integers(0, num_actions, size=n)
    if explore_N.all():
        return random_N.astype(np.int64, copy=False)
    return np.where(explore_N, random_N, greedy()).astype(np.int64, copy=False)


class EpsilonGreedy:
    """Greedy actions of ``net`` with probability 1 - epsilon, uniform ones otherwise.

    Args:
        net: the Q-network acted with (its current mode decides whether noisy layers use
            their noise (``train()``) or their means (``eval()``)).
        num_actions: ``A``.
        device: where observations are sent for the forward pass.
        rng: the generator of the exploration draws.
        greedy_fn: optional faster way to compute the same greedy actions, e.g.
            ``rlkit.agent.nn.plain_mlp.NumpyGreedy(net)`` for small plain MLPs on a CPU.
        resample_noise: draw fresh noise in the net's noisy layers before every acting
            forward pass (NoisyNet-DQN's cadence); False acts with whatever noise the net
            holds (the latest update's).

    When every env explores this step, ``act`` skips the network entirely.
    """

    def __init__(
        self,
        net: QNetwork,
        num_actions: int,
        device: torch.device,
        rng: np.random.Generator,
        greedy_fn: Callable[[np.ndarray], np.ndarray] | None = None,
        resample_noise: bool = False,
    ) -> None:
        self.net, self.num_actions, self.device, self.rng = net, num_actions, device, rng
        self.greedy_fn = greedy_fn
        self.resample_noise = resample_noise and net.noisy

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """Q(obs, .) for a batch [N, *obs_shape] -> [N, A] (NumPy)."""
        if self.resample_noise:
            self.net.reset_noise()
        with torch.inference_mode():
            return self.net(torch.as_tensor(obs, device=self.device)).cpu().numpy()

    def greedy(self, obs: np.ndarray) -> np.ndarray:
        """argmax_a Q(obs, a) for a batch [N, *obs_shape] -> [N]."""
        if self.greedy_fn is not None:
            return self.greedy_fn(obs)
        return self.q_values(obs).argmax(axis=1)

    def act(self, obs: np.ndarray, epsilon: float) -> np.ndarray:
        """Epsilon-greedy actions [N] int64 for observations [N, *obs_shape]."""
        return epsilon_greedy(
            lambda: self.greedy(obs), obs.shape[0], epsilon, self.num_actions, self.rng
        )

    def act_with_q(self, obs: np.ndarray, epsilon: float) -> tuple[np.ndarray, np.ndarray]:
        """Epsilon-greedy actions [N] and the net's Q-value of each chosen action [N]."""
        q_NA = self.q_values(obs)
        greedy_N = q_NA.argmax(axis=1)
        action_N = epsilon_greedy(
            lambda: greedy_N, len(greedy_N), epsilon, self.num_actions, self.rng
        )
        return action_N, q_NA[np.arange(len(action_N)), action_N]
