"""NoisyLinear factorisation and the dueling / distributional heads."""

import math

import pytest
import torch

from rlkit.agent.nn import NoisyLinear, QNetwork


def test_noisy_linear_init_and_param_names():
    layer = NoisyLinear(16, 4, sigma0=0.5)
    names = {n for n, _ in layer.named_parameters()}
    assert names == {"weight_mu", "weight_sigma", "bias_mu", "bias_sigma"}
    bound = 1 / math.sqrt(16)
    assert layer.weight_mu.abs().max() <= bound
    assert torch.allclose(layer.weight_sigma, torch.full((4, 16), 0.5 / 4))
    assert torch.allclose(layer.bias_sigma, torch.full((4,), 0.5 / 4))


def test_noisy_linear_forward_with_known_mu_sigma_and_noise():
    layer = NoisyLinear(2, 2)
    with torch.no_grad():
        layer.weight_mu.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        layer.weight_sigma.copy_(torch.tensor([[0.1, 0.2], [0.3, 0.4]]))
        layer.bias_mu.copy_(torch.tensor([0.5, -0.5]))
        layer.bias_sigma.copy_(torch.tensor([1.0, 0.1]))
        layer.eps_in.copy_(torch.tensor([1.0, -2.0]))  # f(eps_in)
        layer.eps_out.copy_(torch.tensor([0.5, 3.0]))  # f(eps_out)
    # f_out f_in^T = [[0.5, -1], [3, -6]]; sigma_w * that = [[0.05, -0.2], [0.9, -2.4]]
    # W = mu_w + sigma_w * (f_out f_in^T) = [[1.05, 1.8], [3.9, 1.6]]
    # b = mu_b + sigma_b * f_out = [0.5 + 1 * 0.5, -0.5 + 0.1 * 3] = [1.0, -0.2]
    x = torch.tensor([[1.0, 1.0], [2.0, -1.0]])
    # x1: [1.05 + 1.8 + 1.0, 3.9 + 1.6 - 0.2] = [3.85, 5.3]
    # x2: [2.1 - 1.8 + 1.0, 7.8 - 1.6 - 0.2] = [1.3, 6.0]
    expected = torch.tensor([[3.85, 5.3], [1.3, 6.0]])
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-5)
    # eval(): means only: x1 -> [1 + 2 + 0.5, 3 + 4 - 0.5] = [3.5, 6.5]
    layer.eval()
    torch.testing.assert_close(layer(x[:1]), torch.tensor([[3.5, 6.5]]), rtol=0, atol=1e-6)


def noisy_qnet(head_hidden: int = 16, seed: int = 0) -> QNetwork:
    torch.manual_seed(seed)
    return QNetwork((4,), 3, hidden_sizes=(8,), head_hidden=head_hidden, dueling=True, noisy=True)


def noisy_layers(net: QNetwork) -> list[NoisyLinear]:
    return [m for m in net.modules() if isinstance(m, NoisyLinear)]


def std_normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


@pytest.mark.parametrize("draw", ["qnetwork", "layer"])
def test_noise_is_f_of_standard_normal(draw):
    """The eps of ``QNetwork.reset_noise`` (what training calls) and of
    ``NoisyLinear.reset_noise`` are f(x) = sgn(x) sqrt|x| of x ~ N(0, 1)."""
    net = noisy_qnet(head_hidden=2500)  # 2 streams x (8 + 2500 + 2500 + 1 or 3): ~10^4 eps
    torch.manual_seed(1)
    if draw == "qnetwork":
        net.reset_noise()
    else:
        for m in noisy_layers(net):
            m.reset_noise()
    eps = torch.cat([t for m in noisy_layers(net) for t in (m.eps_in, m.eps_out)]).double()
    n = eps.numel()
    # |f(x)|^2 = |x|: E|x| = sqrt(2/pi) = 0.7979 (sd of |x| = 0.603: 0.006 over 10^4)
    assert eps.pow(2).mean().item() == pytest.approx(math.sqrt(2 / math.pi), abs=0.03)
    # |f(x)|^4 = x^2: E x^2 = 1 (an unscaled N(0, 1) would give E x^4 = 3)
    assert eps.pow(4).mean().item() == pytest.approx(1.0, abs=0.08)
    # symmetric: half of the draws are positive (sd 0.005)
    assert (eps > 0).double().mean().item() == pytest.approx(0.5, abs=0.03)
    # Kolmogorov-Smirnov against P(f(x) <= t) = P(x <= sgn(t) t^2) = Phi(sgn(t) t^2)
    ks = 0.0
    for k, t in enumerate(torch.sort(eps).values.tolist()):
        cdf = std_normal_cdf(math.copysign(t * t, t))
        ks = max(ks, abs((k + 1) / n - cdf), abs(k / n - cdf))
    assert ks < 1.63 / math.sqrt(n)  # 1% critical value


def test_qnetwork_reset_noise_redraws_every_layer_independently():
    net = noisy_qnet()
    layers = noisy_layers(net)
    assert len(layers) == 4  # value and advantage streams, hidden and output layer each
    for _ in range(3):
        before = [(m.eps_in.clone(), m.eps_out.clone()) for m in layers]
        net.reset_noise()
        for (eps_in, eps_out), m in zip(before, layers):
            assert not torch.equal(eps_in, m.eps_in)  # every buffer of every layer changed
            assert not torch.equal(eps_out, m.eps_out)
    # layers of equal shape (the two hidden layers: 8 -> 16) do not share noise
    assert layers[0].eps_in.shape == layers[2].eps_in.shape
    assert not torch.equal(layers[0].eps_in, layers[2].eps_in)
    assert not torch.equal(layers[0].eps_out, layers[2].eps_out)
    # nor do a layer's own in and out vectors (hidden layer: 8 in, 16 out: first 8)
    assert not torch.equal(layers[0].eps_in, layers[0].eps_out[:8])


def test_noisy_linear_fixed_between_calls_and_resampled():
    torch.manual_seed(2)
    layer = NoisyLinear(6, 3)
    x = torch.randn(4, 6)
    y1, y2 = layer(x), layer(x)
    assert torch.equal(y1, y2)
    layer.reset_noise()
    assert not torch.allclose(layer(x), y1)


def test_noisy_linear_eval_uses_means_only():
    layer = NoisyLinear(6, 3).eval()
    x = torch.randn(4, 6)
    assert torch.allclose(layer(x), x @ layer.weight_mu.T + layer.bias_mu)
    layer.reset_noise()
    assert torch.allclose(layer(x), x @ layer.weight_mu.T + layer.bias_mu)


def test_dueling_identity_mean_advantage_is_zero():
    torch.manual_seed(3)
    net = QNetwork((4,), 3, dueling=True, noisy=False)
    obs = torch.randn(5, 4)
    feats = net.torso(obs)
    value = net.head.value(feats)  # [B, 1]
    q = net(obs)
    # Q - V = A - mean A  =>  mean_a (Q - V) = 0, i.e. mean_a Q = V
    assert torch.allclose(q.mean(dim=1, keepdim=True), value, atol=1e-5)
    adv = net.head.advantage(feats)
    assert torch.allclose(q, value + adv - adv.mean(dim=1, keepdim=True), atol=1e-6)


def test_distributional_q_is_expectation_and_probs_normalised():
    torch.manual_seed(4)
    net = QNetwork((4,), 2, atoms=11, v_min=-5, v_max=5, dueling=True, noisy=True)
    obs = torch.randn(7, 4)
    raw = net.raw(obs)
    q, log_p = net.readout.q_and_log_probs(raw)
    assert raw.shape == (7, 2, 11)
    assert q.shape == (7, 2) and log_p.shape == (7, 2, 11)
    assert torch.allclose(log_p.exp().sum(-1), torch.ones(7, 2), atol=1e-5)
    assert torch.allclose(q, (log_p.exp() * torch.linspace(-5, 5, 11)).sum(-1), atol=1e-5)
    assert torch.allclose(net(obs), q)
    assert torch.allclose(net.readout.log_probs(raw), log_p)
    assert torch.allclose(log_p, torch.log_softmax(raw, dim=2))


def test_qnetwork_variants_shapes_and_noise_reset():
    for dueling in (True, False):
        for noisy in (True, False):
            for atoms in (1, 5):
                net = QNetwork(
                    (3,), 4, hidden_sizes=(16,), dueling=dueling, noisy=noisy, atoms=atoms
                )
                assert net(torch.randn(2, 3)).shape == (2, 4)
                has_noisy = any(isinstance(m, NoisyLinear) for m in net.modules())
                assert has_noisy == noisy
    net = QNetwork((3,), 4, noisy=True)
    x = torch.randn(2, 3)
    before = net(x)
    net.reset_noise()
    assert not torch.allclose(before, net(x))


def test_nature_cnn_uint8_input():
    net = QNetwork((4, 84, 84), 6, noisy=True, atoms=51)
    obs = torch.randint(0, 255, (2, 4, 84, 84), dtype=torch.uint8)
    assert net(obs).shape == (2, 6)
    assert net.torso.out_features == 3136


def _noise(net: QNetwork) -> list[torch.Tensor]:
    return [b.clone() for n, b in net.named_buffers() if "eps" in n]


def test_qnetwork_noise_draw_fills_views_in_place_with_the_same_values():
    import copy

    from rlkit.agent.nn.noisy import draw_factorised_noise

    torch.manual_seed(0)
    net = QNetwork((4,), 2, atoms=5, hidden_sizes=(8,), head_hidden=6)
    ref = copy.deepcopy(net)
    published = net.state_dict()  # what learner.params() hands out: live tensors
    net.reset_noise(torch.Generator().manual_seed(1))
    draw_factorised_noise(ref._noisy_layers, torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) for a, b in zip(_noise(net), _noise(ref), strict=True))
    # in place: the published buffers are the ones the layers use, and hold the draw
    for name, buf in net.named_buffers():
        if "eps" not in name:
            continue
        assert published[name].data_ptr() == buf.data_ptr()
        assert torch.equal(published[name], buf)
    # a deep copy (the target net, a policy's own net) keeps its buffers as views
    assert ref._noise._bound() and net._noise._bound()
    twin = copy.deepcopy(net)
    assert twin._noise._bound()
    twin.reset_noise(torch.Generator().manual_seed(2))
    assert not any(torch.equal(a, b) for a, b in zip(_noise(twin), _noise(net), strict=True))


def test_qnetwork_noise_draw_after_buffers_were_replaced():
    torch.manual_seed(0)
    net = QNetwork((4,), 2, atoms=5, hidden_sizes=(8,), head_hidden=6)
    net.double()  # .to(dtype): new buffers, bound again
    assert net._noise._bound() and net.head.value[0].eps_in.dtype == torch.float64
    layer = net.head.advantage[0]
    layer.eps_in = torch.zeros_like(layer.eps_in)  # replaced behind the network's back
    replaced = layer.eps_in
    assert not net._noise._bound()
    net.reset_noise(torch.Generator().manual_seed(1))  # the copying draw
    assert layer.eps_in is replaced and bool((replaced != 0).all())
