"""DQNLearner on fixed batches: it learns, and its target net stays put between syncs."""

import numpy as np
import pytest
import torch

from rlkit import losses
from rlkit.learner import DQNLearner, HardSync, PolyakSync
from rlkit.nn import QNetwork
from rlkit.types import Batch


def make_batch(b: int = 32, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(
        obs=torch.randn(b, 4, generator=g),
        action=torch.randint(0, 2, (b,), generator=g),
        reward=torch.randn(b, generator=g),
        next_obs=torch.randn(b, 4, generator=g),
        discount=torch.full((b,), 0.9),
        weights=torch.ones(b),
        indices=np.arange(b),
    )


def make_learner(**kwargs) -> DQNLearner:
    torch.manual_seed(0)
    net_kwargs = {k: kwargs.pop(k) for k in ("atoms", "noisy", "dueling") if k in kwargs}
    net = QNetwork((4,), 2, hidden_sizes=(32, 32), **net_kwargs)
    return DQNLearner(net, torch.optim.Adam(net.parameters(), lr=1e-3), **kwargs)


def params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


@pytest.mark.parametrize("atoms", [1, 11])
def test_loss_decreases_on_fixed_batch_with_frozen_target(atoms):
    learner = make_learner(atoms=atoms, noisy=False, target_sync=None)
    batch = make_batch()
    floor = 0.0
    if atoms > 1:  # cross-entropy is bounded below by the entropy of the fixed target
        with torch.no_grad():
            q_next, log_p_next = learner.target.q_and_log_probs(batch.next_obs)
            a_star = learner.online(batch.next_obs).argmax(1)
            p_next = log_p_next[torch.arange(32), a_star].exp()
            m = losses.categorical_projection(
                learner.online.support, p_next, batch.reward, batch.discount
            )
            floor = -(m * m.clamp_min(1e-12).log()).sum(1).mean().item()
    first = learner.update(batch).loss - floor
    for _ in range(300):
        out = learner.update(batch)
    assert out.loss - floor < 0.3 * first
    assert out.priorities.shape == (32,) and (out.priorities >= 0).all()
    assert set(out.metrics) == {"loss", "q_mean", "td_abs_mean", "grad_norm"}


def test_target_net_does_not_move_between_syncs_and_copies_on_sync():
    learner = make_learner(noisy=False, target_sync=HardSync(5))
    initial = params(learner.target)
    assert all(torch.equal(a, b) for a, b in zip(initial, params(learner.online)))
    batch = make_batch()
    for _ in range(4):
        learner.update(batch)
    assert all(torch.equal(a, b) for a, b in zip(initial, params(learner.target)))
    assert not all(torch.equal(a, b) for a, b in zip(initial, params(learner.online)))
    learner.update(batch)  # 5th update: sync
    assert all(torch.equal(a, b) for a, b in zip(params(learner.online), params(learner.target)))


def test_polyak_sync_moves_target_by_tau():
    learner = make_learner(noisy=False, target_sync=PolyakSync(0.1))
    before_target = params(learner.target)
    learner.update(make_batch())
    online = params(learner.online)
    for t0, o, t1 in zip(before_target, online, params(learner.target)):
        assert torch.allclose(t1, 0.9 * t0 + 0.1 * o, atol=1e-6)


def test_priorities_are_abs_td_of_the_double_q_target():
    learner = make_learner(noisy=False, target_sync=None)
    batch = make_batch(8)
    with torch.no_grad():
        target = losses.double_q_target(
            batch.reward,
            batch.discount,
            learner.online(batch.next_obs),
            learner.target(batch.next_obs),
        )
        q_sa = learner.online(batch.obs).gather(1, batch.action[:, None]).squeeze(1)
    out = learner.update(batch)
    np.testing.assert_allclose(out.priorities, (target - q_sa).abs().numpy(), rtol=1e-5)


def test_batch_is_not_written_into():
    learner = make_learner(noisy=True, target_sync=HardSync(1))
    batch = make_batch()
    copies = {k: v.clone() for k, v in vars(batch).items() if isinstance(v, torch.Tensor)}
    learner.update(batch)
    for k, v in copies.items():
        assert torch.equal(getattr(batch, k), v)


def test_no_target_network_bootstraps_from_online():
    learner = make_learner(noisy=False, use_target_network=False, target_sync=HardSync(1))
    assert learner.target is learner.online
    batch = make_batch(8)
    with torch.no_grad():
        q_next = learner.online(batch.next_obs)
        target = losses.q_learning_target(batch.reward, batch.discount, q_next)
        q_sa = learner.online(batch.obs).gather(1, batch.action[:, None]).squeeze(1)
    out = learner.update(batch)
    np.testing.assert_allclose(out.priorities, (target - q_sa).abs().numpy(), rtol=1e-5)


def test_importance_weights_scale_the_gradient():
    batch = make_batch(16)
    zero_w = Batch(**{**vars(batch), "weights": torch.zeros(16)})
    learner = make_learner(noisy=False)
    before = params(learner.online)
    out = learner.update(zero_w)
    assert out.loss == 0.0 and out.metrics["grad_norm"] == 0.0
    assert all(torch.equal(a, b) for a, b in zip(before, params(learner.online)))


def test_gradient_clipping_bounds_the_step():
    learner = make_learner(noisy=False, max_grad_norm=1e-3, loss="mse")
    big = Batch(**{**vars(make_batch()), "reward": torch.full((32,), 1000.0)})
    out = learner.update(big)
    assert out.metrics["grad_norm"] > 1.0  # reported before clipping
    total = torch.sqrt(sum(p.grad.pow(2).sum() for p in learner.online.parameters()))
    assert total.item() == pytest.approx(1e-3, rel=1e-3)
