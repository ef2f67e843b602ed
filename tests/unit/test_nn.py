"""NoisyLinear factorisation and the dueling / distributional heads."""

import math

import torch

from rlkit.nn import NoisyLinear, QNetwork


def test_noisy_linear_init_and_param_names():
    layer = NoisyLinear(16, 4, sigma0=0.5)
    names = {n for n, _ in layer.named_parameters()}
    assert names == {"weight_mu", "weight_sigma", "bias_mu", "bias_sigma"}
    bound = 1 / math.sqrt(16)
    assert layer.weight_mu.abs().max() <= bound
    assert torch.allclose(layer.weight_sigma, torch.full((4, 16), 0.5 / 4))
    assert torch.allclose(layer.bias_sigma, torch.full((4,), 0.5 / 4))


def test_noisy_linear_factorised_rank_one_and_forward_formula():
    torch.manual_seed(0)
    layer = NoisyLinear(8, 5)
    eps_w = layer.weight_epsilon
    assert torch.linalg.matrix_rank(eps_w).item() == 1
    # eps_w = f(eps_out) f(eps_in)^T with f(x) = sgn(x) sqrt|x|: recompute from the rows/cols
    assert torch.allclose(eps_w, torch.outer(layer.eps_out, layer.eps_in))
    x = torch.randn(3, 8)
    w = layer.weight_mu + layer.weight_sigma * eps_w
    b = layer.bias_mu + layer.bias_sigma * layer.eps_out
    assert torch.allclose(layer(x), x @ w.T + b, atol=1e-6)


def test_noisy_linear_noise_distribution_is_f_of_gaussian():
    torch.manual_seed(1)
    layer = NoisyLinear(20000, 1)
    # |f(x)|^2 = |x| for x ~ N(0,1): E|x| = sqrt(2/pi)
    assert abs(layer.eps_in.pow(2).mean().item() - math.sqrt(2 / math.pi)) < 0.02


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
    q, log_p = net.q_and_log_probs(obs)
    assert q.shape == (7, 2) and log_p.shape == (7, 2, 11)
    assert torch.allclose(log_p.exp().sum(-1), torch.ones(7, 2), atol=1e-5)
    assert torch.allclose(q, (log_p.exp() * torch.linspace(-5, 5, 11)).sum(-1), atol=1e-5)
    assert torch.allclose(net(obs), q)
    assert torch.allclose(net.log_probs(obs), log_p)


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
