"""DQNLearner: targets, priorities, noise cadence and target sync against hand numbers."""

import math

import numpy as np
import pytest
import torch

from rlkit.agent.learner import DQNLearner
from rlkit.agent.nn import NoisyLinear, QNetwork
from rlkit.agent.objectives import math as losses
from rlkit.agent.updaters import ManualC51Updater
from rlkit.build import build_learner
from rlkit.config import load_config
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


def bias_net(atoms: int = 1) -> QNetwork:
    """Q (or logits) = W x + b on 1-d observations, 2 actions: with W = 0 the outputs are
    the bias, laid out as [action, atom]. Atoms of C51 nets: support [0, 1, 2]."""
    net = QNetwork(
        (1,), 2, hidden_sizes=(), dueling=False, noisy=False, atoms=atoms, v_min=0.0, v_max=2.0
    )
    set_linear(net, torch.zeros(2 * atoms, 1), torch.zeros(2 * atoms))
    return net


@torch.no_grad()
def set_linear(net: QNetwork, weight: torch.Tensor, bias: torch.Tensor) -> None:
    net.head.stream.weight.copy_(weight)
    net.head.stream.bias.copy_(bias)


def frozen_learner(net: QNetwork, **kwargs) -> DQNLearner:
    """A learner whose steps change nothing (lr 0): every update sees the same nets."""
    return DQNLearner(net, torch.optim.Adam(net.parameters(), lr=0.0, fused=True), **kwargs)


def one_transition(reward: float, discount: float, rows: int = 1) -> Batch:
    """``rows`` copies of (s = 0, a = 0, r, s' = 0, d), IS weight 1."""
    return Batch(
        obs=torch.zeros(rows, 1),
        action=torch.zeros(rows, dtype=torch.long),
        reward=torch.full((rows,), reward),
        next_obs=torch.zeros(rows, 1),
        discount=torch.full((rows,), discount),
        weights=torch.ones(rows),
        indices=np.arange(rows),
    )


def all_outputs(learner: DQNLearner, batch: Batch) -> list:
    """The outputs of ``update`` and of ``update_many`` in 2 slices (the path the trainer
    takes with uniform replay), on the same batch."""
    return [learner.update(batch), *learner.update_many(batch, 2)]


# ---------------------------------------------------------------- learning


@pytest.mark.parametrize("atoms", [1, 11])
def test_loss_decreases_on_fixed_batch_with_frozen_target(atoms):
    learner = make_learner(atoms=atoms, noisy=False)
    batch = make_batch()
    floor = 0.0
    if atoms > 1:  # cross-entropy is bounded below by the entropy of the fixed target
        with torch.no_grad():
            readout = learner.online.readout
            log_p_next = readout.log_probs(learner.target.raw(batch.next_obs))
            a_star = learner.online(batch.next_obs).argmax(1)
            p_next = log_p_next[torch.arange(32), a_star].exp()
            m = losses.categorical_projection(readout.support, p_next, batch.reward, batch.discount)
            floor = -(m * m.clamp_min(1e-12).log()).sum(1).mean().item()
    first = learner.update(batch).loss - floor
    for _ in range(300):
        out = learner.update(batch)
    assert out.loss - floor < 0.3 * first
    assert out.priorities.shape == (32,) and (out.priorities >= 0).all()
    c51 = {"support_clip_frac"} if atoms > 1 else set()
    assert set(out.metrics) == {"loss", "q_mean", "td_abs_mean", "grad_norm"} | c51


# ---------------------------------------------------------------- targets and priorities

# Scalar nets on one transition s = 0, a = 0, r = 1, d = 0.5 (W = 0: Q is the bias):
#   online Q(s', .) = [0, 1] (argmax 1), target Q(s', .) = [5, 2] (argmax 0),
#   online Q(s, 0) = 0.
#   double-Q:           y = 1 + 0.5 * Q_target(s', argmax online = 1) = 1 + 0.5 * 2 = 2.0
#   (target selecting:  1 + 0.5 * 5 = 3.5; online evaluating: 1 + 0.5 * 1 = 1.5)
#   max over target:    y = 1 + 0.5 * 5 = 3.5
#   no target network:  y = 1 + 0.5 * max online = 1 + 0.5 * 1 = 1.5
# priority = |y - Q(s, 0)| = |y|; Huber loss (|td| > 1) = |td| - 0.5.
SCALAR_CASES = [
    ({"double_q": True}, 2.0),
    ({"double_q": False}, 3.5),
    ({"double_q": True, "use_target_network": False}, 1.5),
]


@pytest.mark.parametrize("manual_gradients", [True, False])
@pytest.mark.parametrize("kwargs, y", SCALAR_CASES)
def test_scalar_priority_is_abs_td_of_hand_target(kwargs, y, manual_gradients):
    learner = frozen_learner(bias_net(), manual_gradients=manual_gradients, **kwargs)
    assert learner.manual_gradients == manual_gradients  # both paths are tested
    set_linear(learner.online, torch.zeros(2, 1), torch.tensor([0.0, 1.0]))
    if learner.use_target_network:
        set_linear(learner.target, torch.zeros(2, 1), torch.tensor([5.0, 2.0]))
    else:
        assert learner.target is learner.online
    for out in all_outputs(learner, one_transition(1.0, 0.5, rows=2)):
        np.testing.assert_allclose(out.priorities, [y] * (len(out.priorities)), rtol=1e-6)
        assert out.loss == pytest.approx(y - 0.5, rel=1e-6)


def log(probs: list[float]) -> list[float]:
    return [math.log(p) for p in probs]


# C51 with support [0, 1, 2] on one transition s = 0, a = 0, r = 0, d = 0.5:
#   Tz = 0 + 0.5 * [0, 1, 2] = [0, 0.5, 1]: atom 0 -> atom 0; atom 1 -> half to atoms
#   0 and 1; atom 2 -> atom 1. So m = [p0 + p1 / 2, p1 / 2 + p2, 0].
#   online  p(s', 0) = [0.5, 0.25, 0.25] (Q 0.75), p(s', 1) = [0.25, 0.25, 0.5] (Q 1.25)
#   target  p(s', 0) = [0.1, 0.1, 0.8]   (Q 1.7),  p(s', 1) = [0.6, 0.2, 0.2]   (Q 0.6)
#   predicted p(s, 0) = online p(., 0) = [0.5, 0.25, 0.25]
ONLINE_LOGITS = log([0.5, 0.25, 0.25, 0.25, 0.25, 0.5])
TARGET_LOGITS = log([0.1, 0.1, 0.8, 0.6, 0.2, 0.2])
C51_CASES = [
    # double-Q: online argmax 1 -> target p(s', 1) = [0.6, 0.2, 0.2] -> m = [0.7, 0.3, 0]
    #   KL = 0.7 ln(0.7/0.5) + 0.3 ln(0.3/0.25) = 0.235531 + 0.054697 = 0.290227
    #   CE = 0.7 ln 2 + 0.3 ln 4 = 0.485203 + 0.415888 = 0.901091
    (
        {"double_q": True},
        0.7 * math.log(1.4) + 0.3 * math.log(1.2),
        0.7 * math.log(2) + 0.3 * math.log(4),
    ),
    # max over target: target argmax 0 -> [0.1, 0.1, 0.8] -> m = [0.15, 0.85, 0]
    #   KL = 0.15 ln(0.15/0.5) + 0.85 ln(0.85/0.25) = -0.180596 + 1.040209 = 0.859613
    #   CE = 0.15 ln 2 + 0.85 ln 4 = 0.103972 + 1.178350 = 1.282322
    (
        {"double_q": False},
        0.15 * math.log(0.3) + 0.85 * math.log(3.4),
        0.15 * math.log(2) + 0.85 * math.log(4),
    ),
    # no target net: online argmax 1 -> online [0.25, 0.25, 0.5] -> m = [0.375, 0.625, 0]
    #   KL = 0.375 ln 0.75 + 0.625 ln 2.5 = -0.107881 + 0.572682 = 0.464801
    #   CE = 0.375 ln 2 + 0.625 ln 4 = 0.259930 + 0.866434 = 1.126364
    (
        {"double_q": True, "use_target_network": False},
        0.375 * math.log(0.75) + 0.625 * math.log(2.5),
        0.375 * math.log(2) + 0.625 * math.log(4),
    ),
]


def c51_outputs(learner: DQNLearner) -> list:
    set_linear(learner.online, torch.zeros(6, 1), torch.tensor(ONLINE_LOGITS))
    if learner.use_target_network:
        set_linear(learner.target, torch.zeros(6, 1), torch.tensor(TARGET_LOGITS))
    return all_outputs(learner, one_transition(0.0, 0.5, rows=2))


def test_c51_hand_numbers_match_the_comments():
    decimals = [(0.290227, 0.901091), (0.859613, 1.282322), (0.464801, 1.126364)]
    for (_, kl, ce), (kl_dec, ce_dec) in zip(C51_CASES, decimals):
        assert (kl, ce) == pytest.approx((kl_dec, ce_dec), abs=1e-6)


@pytest.mark.parametrize("c51_priority", ["kl", "cross_entropy"])
@pytest.mark.parametrize("kwargs, kl, ce", C51_CASES)
def test_c51_priority_and_loss_hand_computed(kwargs, kl, ce, c51_priority):
    learner = frozen_learner(bias_net(atoms=3), c51_priority=c51_priority, **kwargs)
    expected = kl if c51_priority == "kl" else ce
    for out in c51_outputs(learner):
        np.testing.assert_allclose(out.priorities, [expected] * len(out.priorities), rtol=1e-5)
        assert out.loss == pytest.approx(ce, rel=1e-5)  # the loss is the cross-entropy


def test_c51_priority_default_is_kl():
    learner = frozen_learner(bias_net(atoms=3))
    kl = C51_CASES[0][1]
    np.testing.assert_allclose(c51_outputs(learner)[0].priorities, [kl, kl], rtol=1e-5)


def test_batch_is_not_written_into():
    learner = make_learner(noisy=True)
    batch = make_batch()
    copies = {k: v.clone() for k, v in vars(batch).items() if isinstance(v, torch.Tensor)}
    learner.update(batch)
    for k, v in copies.items():
        assert torch.equal(getattr(batch, k), v)


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


# ---------------------------------------------------------------- noise cadence


def count_draws(learner: DQNLearner, monkeypatch) -> list[str]:
    """Record ``"online"`` / ``"target"`` for every ``reset_noise`` call on the nets."""
    calls: list[str] = []
    nets = {"online": learner.online}
    if learner.target is not learner.online:
        nets["target"] = learner.target
    for name, net in nets.items():
        draw = net.reset_noise

        def counted(*args, _draw=draw, _name=name, **kwargs):
            calls.append(_name)
            return _draw(*args, **kwargs)

        monkeypatch.setattr(net, "reset_noise", counted)
    return calls


# (learner kwargs, online draws, target draws) per update
DRAW_CASES = [
    ({"noise_cadence": "paper"}, 2, 1),  # loss, double-Q selection; target
    ({"noise_cadence": "per_update"}, 1, 1),
    ({"noise_cadence": "paper", "double_q": False}, 1, 1),  # no selection forward
    ({"noise_cadence": "paper", "use_target_network": False}, 2, 0),  # bootstrap, loss
    ({"noise_cadence": "per_update", "use_target_network": False}, 1, 0),
    ({"noise_cadence": "paper", "reset_noise": False}, 0, 0),
]


@pytest.mark.parametrize("atoms", [1, 11])
@pytest.mark.parametrize("kwargs, online, target", DRAW_CASES)
def test_noise_draws_per_update(kwargs, online, target, atoms, monkeypatch):
    learner = make_learner(noisy=True, atoms=atoms, **kwargs)
    calls = count_draws(learner, monkeypatch)
    learner.update(make_batch(8))
    assert (calls.count("online"), calls.count("target")) == (online, target)
    calls.clear()
    learner.update_many(make_batch(16), 2)  # the trainer's uniform-replay path
    assert (calls.count("online"), calls.count("target")) == (2 * online, 2 * target)


def record_noise(net: QNetwork, seen: list) -> None:
    """Append (grad enabled, eps of every noisy layer) at each forward of ``net``."""
    layers = [m for m in net.modules() if isinstance(m, NoisyLinear)]

    def hook(module, args):
        if module is layers[0]:  # once per network forward
            eps = torch.cat([t for m in layers for t in (m.eps_in, m.eps_out)]).clone()
            seen.append((torch.is_grad_enabled(), eps))

    for layer in layers:
        layer.register_forward_pre_hook(hook)


def record_engine_noise(engine, seen: list) -> None:
    """``record_noise`` for a hand-written forward (``HeadMLPGrad``), which calls no
    module: (the forward keeps what a backward needs, eps of every noisy layer)."""
    layers = [m for m in engine.net.modules() if isinstance(m, NoisyLinear)]
    forward = engine.forward

    def recorded(obs, keep=False):
        eps = torch.cat([t for m in layers for t in (m.eps_in, m.eps_out)]).clone()
        seen.append((keep, eps))
        return forward(obs, keep)

    engine.forward = recorded


@pytest.mark.parametrize("atoms", [1, 11])
@pytest.mark.parametrize("cadence", ["paper", "per_update"])
@pytest.mark.parametrize("manual", [False, True])
def test_selection_and_loss_forwards_see_the_cadences_noise(cadence, atoms, manual):
    learner = make_learner(noisy=True, atoms=atoms, noise_cadence=cadence, manual_gradients=manual)
    online_seen: list = []
    target_seen: list = []
    hand_written = isinstance(learner._updater, ManualC51Updater)
    assert hand_written == (manual and atoms > 1)  # both paths are checked for C51
    if hand_written:
        record_engine_noise(learner._updater.grad, online_seen)
        record_engine_noise(learner._updater.target, target_seen)
    else:
        record_noise(learner.online, online_seen)
        record_noise(learner.target, target_seen)
    loss_noise = []
    for _ in range(2):
        online_seen.clear()
        target_seen.clear()
        learner.update(make_batch(8))
        # one no-grad forward (double-Q selection at next_obs), then the loss forward
        assert [grad for grad, _ in online_seen] == [False, True]
        assert [grad for grad, _ in target_seen] == [False]
        selection, loss = online_seen[0][1], online_seen[1][1]
        target = target_seen[0][1]
        assert not torch.equal(target, selection) and not torch.equal(target, loss)
        assert torch.equal(selection, loss) == (cadence == "per_update")
        loss_noise.append(loss)
    assert not torch.equal(*loss_noise)  # new noise every update


# ---------------------------------------------------------------- target sync


def equal_nets(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    pairs = zip([*a.parameters(), *a.buffers()], [*b.parameters(), *b.buffers()])
    return all(torch.equal(x, y) for x, y in pairs)


@pytest.mark.parametrize("noisy", [False, True])
def test_hard_sync_copies_and_target_stays_put_between_syncs(noisy):
    learner = make_learner(noisy=noisy, target_tau=1.0)
    assert equal_nets(learner.online, learner.target)  # starts as an exact copy
    initial = params(learner.target)
    batch = make_batch()
    for _ in range(2):
        for _ in range(4):
            learner.update(batch)
        target_now = params(learner.target)
        assert not all(torch.equal(a, b) for a, b in zip(target_now, params(learner.online)))
        learner.sync_target()
        assert equal_nets(learner.online, learner.target)
    assert not all(torch.equal(a, b) for a, b in zip(initial, params(learner.target)))
    # between syncs the online net moves and the target does not
    synced = params(learner.target)
    learner.update(batch)
    assert all(torch.equal(a, b) for a, b in zip(synced, params(learner.target)))
    assert not all(torch.equal(a, b) for a, b in zip(synced, params(learner.online)))


def test_polyak_sync_moves_target_tau_of_the_way_hand_numbers():
    learner = frozen_learner(bias_net(), target_tau=0.25)
    set_linear(learner.online, torch.tensor([[1.0], [2.0]]), torch.tensor([0.0, 1.0]))
    set_linear(learner.target, torch.tensor([[3.0], [-2.0]]), torch.tensor([4.0, 8.0]))
    learner.sync_target()
    # 0.25 * online + 0.75 * target: W [0.25 + 2.25, 0.5 - 1.5] = [2.5, -1.0],
    # b [0 + 3, 0.25 + 6] = [3.0, 6.25]
    head = learner.target.head.stream
    torch.testing.assert_close(head.weight, torch.tensor([[2.5], [-1.0]]), rtol=0, atol=1e-6)
    torch.testing.assert_close(head.bias, torch.tensor([3.0, 6.25]), rtol=0, atol=1e-6)
    learner.sync_target()
    # again: W [0.25 + 1.875, 0.5 - 0.75] = [2.125, -0.25], b [2.25, 0.25 + 4.6875]
    torch.testing.assert_close(head.weight, torch.tensor([[2.125], [-0.25]]), rtol=0, atol=1e-6)
    torch.testing.assert_close(head.bias, torch.tensor([2.25, 4.9375]), rtol=0, atol=1e-6)
    torch.testing.assert_close(learner.online.head.stream.bias, torch.tensor([0.0, 1.0]))


def test_polyak_sync_after_updates_follows_the_online_net():
    learner = make_learner(noisy=False, target_tau=0.1)
    before_target = params(learner.target)
    batch = make_batch()
    for _ in range(3):
        learner.update(batch)
    assert all(torch.equal(a, b) for a, b in zip(before_target, params(learner.target)))
    learner.sync_target()
    for t0, o, t1 in zip(before_target, params(learner.online), params(learner.target)):
        torch.testing.assert_close(t1, 0.9 * t0 + 0.1 * o, rtol=0, atol=1e-6)


@pytest.mark.parametrize("target_tau", [1.0, 0.5])
def test_no_target_network_sync_is_a_no_op(target_tau):
    learner = make_learner(noisy=False, use_target_network=False, target_tau=target_tau)
    assert learner.target is learner.online
    learner.update(make_batch())
    before = params(learner.online)
    learner.sync_target()
    assert all(torch.equal(a, b) for a, b in zip(before, params(learner.online)))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"target_tau": 0.0},
        {"target_tau": 1.5},
        {"noise_cadence": "x"},
        {"loss": "x"},
        {"c51_priority": "x", "atoms": 11},  # the C51 objective's option
    ],
)
def test_invalid_arguments_are_refused(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        make_learner(**kwargs)


# ---------------------------------------------------------------- wiring from the config


def built(net: QNetwork, *sets: str) -> DQNLearner:
    learner = build_learner(load_config(None, list(sets)), net, torch.device("cpu"))
    for group in learner.optimizer.param_groups:
        group["lr"] = 0.0  # frozen nets: every update sees the hand-set outputs
    return learner


@pytest.mark.parametrize("c51_priority, column", [("kl", 1), ("cross_entropy", 2)])
def test_build_learner_wires_c51_priority(c51_priority, column):
    learner = built(bias_net(atoms=3), f"learner.c51_priority={c51_priority}")
    expected = C51_CASES[0][column]  # double-Q case
    np.testing.assert_allclose(c51_outputs(learner)[0].priorities, [expected] * 2, rtol=1e-5)


@pytest.mark.parametrize("cadence, online", [("paper", 2), ("per_update", 1)])
def test_build_learner_wires_noise_cadence(cadence, online, monkeypatch):
    torch.manual_seed(0)
    net = QNetwork((4,), 2, hidden_sizes=(8,), noisy=True)
    learner = built(net, f"network.noise_cadence={cadence}")
    calls = count_draws(learner, monkeypatch)
    learner.update(make_batch(8))
    assert (calls.count("online"), calls.count("target")) == (online, 1)


def test_build_learner_wires_target_tau():
    learner = built(bias_net(), "learner.target_tau=0.25")
    set_linear(learner.online, torch.tensor([[1.0], [2.0]]), torch.tensor([0.0, 1.0]))
    set_linear(learner.target, torch.tensor([[3.0], [-2.0]]), torch.tensor([4.0, 8.0]))
    learner.sync_target()  # as in the hand-numbers test above
    torch.testing.assert_close(learner.target.head.stream.bias, torch.tensor([3.0, 6.25]))
    no_target = built(bias_net(), "learner.target_update_period=0")
    assert no_target.target is no_target.online


@pytest.mark.parametrize("atoms", [1, 11])
def test_update_many_with_a_shared_target_forward_equals_updates_one_by_one(atoms):
    """With a fixed target net (no noise), ``update_many`` runs the target forward once
    for all slices; the results equal ``update`` on each slice, up to float32 rounding:
    the shared forward multiplies 32 rows at once, the single ones 8, and the BLAS kernel
    a CPU picks for each row count may round the last bit differently."""
    shared = make_learner(atoms=atoms, noisy=False, manual_gradients=False)
    single = make_learner(atoms=atoms, noisy=False, manual_gradients=False)
    assert shared.target_fixed_between_updates
    for learner in (shared, single):  # the online net moves away from the target net
        learner.update(make_batch(8, seed=1))
    batch = make_batch(32)
    many = shared.update_many(batch, 4)
    one_by_one = [single.update(slice_) for slice_ in (batch_rows(batch, 8 * k) for k in range(4))]
    for a, b in zip(many, one_by_one, strict=True):
        assert a.metrics.keys() == b.metrics.keys()
        for key in a.metrics:
            assert a.metrics[key] == pytest.approx(b.metrics[key], rel=1e-6, abs=1e-7), key
        np.testing.assert_allclose(a.priorities, b.priorities, rtol=1e-6, atol=1e-7)
    for x, y in zip(params(shared.online), params(single.online), strict=True):
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-7)
    assert shared.updates == single.updates == 5


def batch_rows(batch: Batch, start: int, size: int = 8) -> Batch:
    return Batch(**{k: v[start : start + size] for k, v in vars(batch).items()})


def test_params_are_the_online_nets_live_tensors():
    learner = make_learner(noisy=True)
    published = learner.params()
    assert published.keys() == learner.online.state_dict().keys()
    learner.update(make_batch())  # changes the online net in place
    for name, tensor in learner.online.state_dict().items():
        assert torch.equal(published[name], tensor)  # the published tensors moved along
