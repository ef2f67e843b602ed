"""Acting: epsilon-greedy action selection over the policy's own Q-network copy.

One implementation serves training and evaluation: the collector acts with
``EpsilonGreedy.act`` and evaluation with ``EpsilonGreedy.act_with_q`` (which also
returns the Q-value of each chosen action, for the overestimation measurement).
Exploration lives here and only here: the epsilon schedule is the policy's, and
``epsilon_greedy`` is the one function that mixes random and greedy actions.

The policy never holds the learner's live network: it acts with its own copy and takes
new values through ``load_params(learner.params())``, so it could act in another thread
or process with the same code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch

from rlkit.agent.nn.qnet import QNetwork
from rlkit.agent.schedules import ConstantSchedule, Schedule


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
        net: the policy's OWN Q-network (a copy of the learner's; never the live one).
        num_actions: ``A``.
        device: where observations are sent for the forward pass.
        rng: the generator of the exploration draws (checkpointed by the collector).
        epsilon: the exploration schedule over env steps (a float = constant).
        greedy_fn: optional faster way to compute the same greedy actions, e.g.
            ``rlkit.agent.nn.plain_mlp.NumpyGreedy(net)`` for small plain MLPs on a CPU
            (it reads views of ``net``'s parameters, which ``load_params`` keeps valid).
        resample_noise: draw fresh noise in the net's noisy layers before every acting
            forward pass (NoisyNet-DQN's cadence). False: before the first
            ``load_params``, noisy nets draw new noise at the start of every ``act``
            call; after it they act with the loaded noise (the latest update's).
        evaluation: act with the noisy layers' means (``net.eval()`` for good); no
            noise is ever drawn and ``resample_noise`` is ignored.

    When every env explores this step, ``act`` skips the network entirely.
    """

    def __init__(
        self,
        net: QNetwork,
        num_actions: int,
        device: torch.device,
        rng: np.random.Generator,
        *,
        epsilon: Schedule | float = 0.0,
        greedy_fn: Callable[[np.ndarray], np.ndarray] | None = None,
        resample_noise: bool = False,
        evaluation: bool = False,
    ) -> None:
        self.net, self.num_actions, self.device, self.rng = net, num_actions, device, rng
        self.epsilon: Schedule = (
            ConstantSchedule(epsilon) if isinstance(epsilon, int | float) else epsilon
        )
        self.greedy_fn = greedy_fn
        self.evaluation = evaluation
        if evaluation:
            net.eval()
        self.resample_noise = resample_noise and net.noisy and not evaluation
        self._warmup_noise = net.noisy and not self.resample_noise and not evaluation
        self.has_params = False
        # live tensors of the own net, in state-dict order (load_params copies into them)
        self._own = net.state_dict(keep_vars=True)
        self._own_tensors = list(self._own.values())

    def epsilon_at(self, env_steps: int) -> float:
        """The exploration rate at ``env_steps`` (the schedule's value)."""
        return self.epsilon.value(env_steps)

    def load_params(self, state: Mapping[str, torch.Tensor]) -> None:
        """Copy ``state`` (keys as ``QNetwork.state_dict()``, e.g. ``learner.params()``)
        in place into the own net's parameters and buffers (noise buffers too)."""
        if state.keys() != self._own.keys():
            missing = sorted(self._own.keys() - state.keys())
            unexpected = sorted(state.keys() - self._own.keys())
            raise ValueError(f"load_params: missing keys {missing}, unexpected keys {unexpected}")
        with torch.no_grad():
            torch._foreach_copy_(self._own_tensors, [state[name] for name in self._own])
        self.has_params = True

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

    def _warm_up(self) -> None:
        """Before any parameters were loaded, noisy nets without per-forward resampling
        draw new noise once per acting step (whether or not the net then runs)."""
        if self._warmup_noise and not self.has_params:
            self.net.reset_noise()

    def act(self, obs: np.ndarray, env_steps: int = 0) -> np.ndarray:
        """Epsilon-greedy actions [N] int64 for observations [N, *obs_shape], with
        epsilon ``epsilon_at(env_steps)``."""
        self._warm_up()
        return epsilon_greedy(
            lambda: self.greedy(obs),
            obs.shape[0],
            self.epsilon_at(env_steps),
            self.num_actions,
            self.rng,
        )

    def act_with_q(self, obs: np.ndarray, env_steps: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Epsilon-greedy actions [N] and the net's Q-value of each chosen action [N]."""
        self._warm_up()
        q_NA = self.q_values(obs)
        greedy_N = q_NA.argmax(axis=1)
        action_N = epsilon_greedy(
            lambda: greedy_N, len(greedy_N), self.epsilon_at(env_steps), self.num_actions, self.rng
        )
        return action_N, q_NA[np.arange(len(action_N)), action_N]
