"""TD targets and the C51 projection against hand-computed numbers."""

import math

import pytest
import torch

from rlkit.agent.objectives import math as losses


def test_q_learning_target_hand_computed():
    reward = torch.tensor([1.0, 0.5])
    discount = torch.tensor([0.9, 0.0])
    q_next = torch.tensor([[1.0, 3.0, 2.0], [10.0, -1.0, 0.0]])
    # 1 + 0.9 * 3 = 3.7 ; 0.5 + 0 * 10 = 0.5
    assert torch.allclose(
        losses.q_learning_target(reward, discount, q_next), torch.tensor([3.7, 0.5])
    )


def test_double_q_target_online_selects_target_evaluates():
    reward = torch.tensor([1.0, 2.0])
    discount = torch.tensor([0.5, 0.25])
    q_online = torch.tensor([[0.0, 5.0, 1.0], [9.0, 0.0, 0.0]])  # argmax: 1, 0
    q_target = torch.tensor([[7.0, 2.0, 8.0], [4.0, 100.0, 0.0]])
    # 1 + 0.5 * 2 = 2.0 (not the target max 8) ; 2 + 0.25 * 4 = 3.0 (not 100)
    out = losses.double_q_target(reward, discount, q_online, q_target)
    assert torch.allclose(out, torch.tensor([2.0, 3.0]))
    assert torch.allclose(
        losses.q_learning_target(reward, discount, q_target), torch.tensor([5.0, 27.0])
    )


def test_categorical_projection_hand_computed_split():
    support = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0])
    probs = torch.tensor([[0.2, 0.2, 0.2, 0.2, 0.2]])
    # r + d z with r = 0.5, d = 0.5: 0.5, 1.0, 1.5, 2.0, 2.5
    out = losses.categorical_projection(support, probs, torch.tensor([0.5]), torch.tensor([0.5]))
    # 0.5 -> 0.1 to atom 0, 0.1 to atom 1 ; 1.0 -> 0.2 to atom 1 ; 1.5 -> 0.1/0.1 (1,2)
    # 2.0 -> 0.2 atom 2 ; 2.5 -> 0.1/0.1 (2,3)
    expected = torch.tensor([[0.1, 0.4, 0.4, 0.1, 0.0]])
    assert torch.allclose(out, expected, atol=1e-6)


def test_categorical_projection_exact_atoms_conserve_mass():
    support = torch.linspace(-10, 10, 51)
    probs = torch.softmax(torch.randn(3, 51, generator=torch.Generator().manual_seed(0)), dim=1)
    # d = 1, r = 0 and r = 0.4 (exactly one atom spacing): every Tz falls on an atom
    reward = torch.tensor([0.0, 0.4, 0.0])
    discount = torch.tensor([1.0, 1.0, 0.0])
    out = losses.categorical_projection(support, probs, reward, discount)
    assert torch.allclose(out.sum(dim=1), torch.ones(3), atol=1e-6)
    assert torch.allclose(out[0], probs[0], atol=1e-6)  # identity
    # shift by one atom; the last atom's mass is clipped onto v_max together with the one before
    assert torch.allclose(out[1, 1:50], probs[1, :49], atol=1e-6)
    assert torch.allclose(out[1, 50], probs[1, 49] + probs[1, 50], atol=1e-6)
    assert out[1, 0].item() == pytest.approx(0.0, abs=1e-7)
    # d = 0: all mass on the atom of r = 0 (index 25)
    assert out[2, 25].item() == pytest.approx(1.0, abs=1e-6)


def test_categorical_projection_clips_to_support():
    support = torch.tensor([-1.0, 0.0, 1.0])
    probs = torch.tensor([[0.3, 0.3, 0.4]])
    out = losses.categorical_projection(support, probs, torch.tensor([5.0]), torch.tensor([0.9]))
    assert torch.allclose(out, torch.tensor([[0.0, 0.0, 1.0]]))
    out = losses.categorical_projection(support, probs, torch.tensor([-5.0]), torch.tensor([0.9]))
    assert torch.allclose(out, torch.tensor([[1.0, 0.0, 0.0]]))


def test_per_sample_losses():
    td = torch.tensor([0.5, -2.0, 3.0])
    assert torch.allclose(losses.huber_loss(td), torch.tensor([0.125, 1.5, 2.5]))
    assert torch.allclose(losses.mse_loss(td), torch.tensor([0.125, 2.0, 4.5]))
    target = torch.tensor([[0.0, 1.0], [0.5, 0.5]])
    log_p = torch.log(torch.tensor([[0.5, 0.5], [0.25, 0.75]]))
    expected = torch.tensor([-torch.log(torch.tensor(0.5)), -(0.5 * log_p[1]).sum()])
    assert torch.allclose(losses.categorical_cross_entropy(target, log_p), expected)


def test_categorical_kl_and_cross_entropy_hand_computed_three_atoms():
    # row 0: m = [0.7, 0.3, 0] (an empty atom: 0 log 0 = 0), p = [0.5, 0.25, 0.25]
    # row 1: p = m: KL 0, cross-entropy H(m)
    m = torch.tensor([[0.7, 0.3, 0.0], [0.2, 0.3, 0.5]])
    log_p = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.2, 0.3, 0.5]]))
    # KL(m || p) = 0.7 ln(0.7 / 0.5) + 0.3 ln(0.3 / 0.25) = 0.7 ln 1.4 + 0.3 ln 1.2
    #            = 0.7 * 0.336472 + 0.3 * 0.182322 = 0.290227
    kl0 = 0.7 * math.log(1.4) + 0.3 * math.log(1.2)
    assert kl0 == pytest.approx(0.290227, abs=1e-6)
    # CE = -(0.7 ln 0.5 + 0.3 ln 0.25) = 0.7 ln 2 + 0.3 ln 4 = 0.485203 + 0.415888 = 0.901091
    ce0 = 0.7 * math.log(2.0) + 0.3 * math.log(4.0)
    assert ce0 == pytest.approx(0.901091, abs=1e-6)
    # H([0.2, 0.3, 0.5]) = -(0.2 ln 0.2 + 0.3 ln 0.3 + 0.5 ln 0.5) = 1.029653
    h1 = -(0.2 * math.log(0.2) + 0.3 * math.log(0.3) + 0.5 * math.log(0.5))
    assert h1 == pytest.approx(1.029653, abs=1e-6)
    kl = losses.categorical_kl(m, log_p)
    ce = losses.categorical_cross_entropy(m, log_p)
    assert torch.isfinite(kl).all()
    torch.testing.assert_close(kl, torch.tensor([kl0, 0.0]), rtol=0, atol=1e-6)
    torch.testing.assert_close(ce, torch.tensor([ce0, h1]), rtol=0, atol=1e-6)
