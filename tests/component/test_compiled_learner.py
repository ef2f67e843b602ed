"""The compiled learner (``learner.compile``) against the eager one: the same losses,
priorities, metrics and weights within float tolerance, for every head and switch.

The grid runs ``torch.compile`` with the ``aot_eager`` backend (Dynamo's capture and
AOTAutograd's backward, eager kernels: seconds per case); the inductor backend, which
generates code, is checked on two cases in the slow suite."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from rlkit.agent import objectives
from rlkit.agent.learner import DQNLearner
from rlkit.agent.nn import QNetwork
from rlkit.agent.objectives.iqn import ImplicitQuantileRegression, ImplicitReadout
from rlkit.agent.updaters import CompiledUpdater
from rlkit.build import build_learner
from rlkit.config import from_dict
from tests.component.test_learner import make_batch


def IQN(double_q: bool = True, **iqn) -> ImplicitQuantileRegression:
    """An IQN objective with few fractions (its readout: N = the net's atoms, unused)."""
    munchausen = iqn.pop("munchausen", None)
    return ImplicitQuantileRegression(
        ImplicitReadout(6), double_q=double_q, munchausen=munchausen, **iqn
    )


CASES = {
    "scalar huber double-q": dict(net={}, learner={}),
    "scalar mse max-target": dict(net={}, learner=dict(double_q=False, loss="mse")),
    "scalar, no target network": dict(net={}, learner=dict(use_target_network=False)),
    "dueling noisy, paper cadence": dict(net=dict(dueling=True, noisy=True), learner={}),
    "dueling noisy, per_update": dict(
        net=dict(dueling=True, noisy=True), learner=dict(noise_cadence="per_update")
    ),
    "c51 kl": dict(net=dict(atoms=11), learner={}),
    "c51 cross-entropy, noisy dueling": dict(
        net=dict(atoms=11, noisy=True, dueling=True), learner=dict(c51_priority="cross_entropy")
    ),
    "qr noisy dueling": dict(net=dict(atoms=11, noisy=True, dueling=True, head="qr"), learner={}),
    "qr max-target": dict(net=dict(atoms=5, head="qr"), learner=dict(double_q=False)),
    "munchausen noisy dueling": dict(
        net=dict(noisy=True, dueling=True),
        learner=dict(
            objective=objectives.make(
                "scalar",
                objectives.make_readout("scalar", 1, 0, 0),
                munchausen=dict(tau=0.03, alpha=0.9, log_floor=-1.0),
            )
        ),
    ),
    "iqn noisy dueling": dict(
        net=dict(atoms=6, noisy=True, dueling=True, head="iqn"),
        learner=dict(objective=IQN(target_quantiles=5, selection_quantiles=3)),
    ),
    "iqn max-target, cvar": dict(
        net=dict(atoms=4, head="iqn"),
        learner=dict(double_q=False, objective=IQN(False, selection_quantiles=3, cvar_eta=0.5)),
    ),
    "m-iqn noisy dueling": dict(
        net=dict(atoms=6, noisy=True, dueling=True, head="iqn"),
        learner=dict(
            objective=IQN(target_quantiles=5, munchausen=dict(tau=0.03, alpha=0.9, log_floor=-1.0))
        ),
    ),
    "no clipping": dict(net={}, learner=dict(max_grad_norm=None)),
}


def learner_pair(case: dict, compile: dict):
    torch.manual_seed(0)
    net_keys = dict(case["net"])
    head = net_keys.pop("head", "auto")
    readout = objectives.make_readout(head, net_keys.get("atoms", 1), -5.0, 5.0)
    if head == "iqn":
        net_keys["quantile_embedding"] = dict(cosines=8, acting_quantiles=3)
        case["learner"]["objective"].readout = readout
    net = QNetwork(
        (4,), 2, hidden_sizes=(32, 32), v_min=-5.0, v_max=5.0, readout=readout, **net_keys
    )
    net_c = copy.deepcopy(net)

    def make(n, **extra):
        opt = torch.optim.Adam(n.parameters(), lr=1e-2, fused=True)
        return DQNLearner(n, opt, manual_gradients=False, **case["learner"], **extra)

    return make(net), make(net_c, compile=compile)


def on(batch, device: str):
    return dataclasses.replace(
        batch,
        **{
            f: getattr(batch, f).to(device)
            for f in ("obs", "action", "reward", "next_obs", "discount", "weights")
        },
    )


def updates(learner: DQNLearner, seed: int = 0, device: str = "cpu"):
    torch.manual_seed(seed)  # the same noise draws for both learners
    outs = [learner.update(on(make_batch(16, seed=k), device)) for k in range(3)]
    many = learner.update_many(on(make_batch(32, seed=9), device), 2)
    return outs + many


def assert_same_updates(
    eager: DQNLearner, compiled: DQNLearner, tol: float, device: str = "cpu"
) -> None:
    assert isinstance(compiled._updater, CompiledUpdater)
    assert not isinstance(eager._updater, CompiledUpdater)
    a, b = updates(eager, device=device), updates(compiled, device=device)
    for x, y in zip(a, b, strict=True):
        assert x.metrics.keys() == y.metrics.keys()
        for key in x.metrics:
            assert y.metrics[key] == pytest.approx(x.metrics[key], rel=tol, abs=tol), key
        np.testing.assert_allclose(y.priorities, x.priorities, rtol=tol, atol=tol)
    for (name, p), q in zip(
        eager.online.state_dict().items(), compiled.online.state_dict().values()
    ):
        torch.testing.assert_close(q, p, rtol=tol, atol=tol, msg=name)
    assert eager.updates == compiled.updates == 5


@pytest.mark.parametrize("name", list(CASES))
def test_compiled_updates_equal_eager_ones(name):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    eager, compiled = learner_pair(CASES[name], {"backend": "aot_eager"})
    assert_same_updates(eager, compiled, tol=1e-5)
    # the updates really ran through a compiled graph (AOTAutograd compiled its backward)
    assert counters["stats"]["unique_graphs"] >= 1 and counters["aot_autograd"]["ok"] >= 1


@pytest.mark.slow
@pytest.mark.parametrize("name", ["scalar huber double-q", "c51 cross-entropy, noisy dueling"])
def test_inductor_compiled_updates_equal_eager_ones(name):
    eager, compiled = learner_pair(CASES[name], {"backend": "inductor"})
    assert_same_updates(eager, compiled, tol=1e-4)


def config(**learner):
    return from_dict(
        {
            "network": {"hidden_sizes": [8]},
            "learner": learner,
            "trainer": {"device": "cpu"},
        }
    )


def test_learner_compile_switch_reaches_the_updater():
    net = QNetwork((4,), 2, hidden_sizes=(8,))
    eager = build_learner(config(), net, torch.device("cpu"))
    assert not isinstance(eager._updater, CompiledUpdater)
    compiled = build_learner(config(compile=True), net, torch.device("cpu"))
    assert isinstance(compiled._updater, CompiledUpdater)
    assert compiled._updater.mode == "default"  # auto on a CPU
    tuned = build_learner(
        config(compile=True, compile_mode="max-autotune"), net, torch.device("cpu")
    )
    assert tuned._updater.mode == "max-autotune"


@pytest.mark.parametrize("name", ["scalar huber double-q", "c51 cross-entropy, noisy dueling"])
def test_bf16_updates_track_fp32_ones(name):
    case = CASES[name]
    torch.manual_seed(0)
    net_keys = dict(case["net"])
    head = net_keys.pop("head", "auto")
    readout = objectives.make_readout(head, net_keys.get("atoms", 1), -5.0, 5.0)
    net = QNetwork(
        (4,), 2, hidden_sizes=(32, 32), v_min=-5.0, v_max=5.0, readout=readout, **net_keys
    )
    net_b = copy.deepcopy(net)

    def make(n, **extra):
        opt = torch.optim.Adam(n.parameters(), lr=1e-3, fused=True)
        return DQNLearner(n, opt, **case["learner"], **extra)

    # fp32 through autograd too (not the hand-written backward): only the precision differs
    fp32, bf16 = make(net, manual_gradients=False), make(net_b, precision="bf16")
    assert bf16._updater.autocast is torch.bfloat16 and fp32._updater.autocast is None
    a, b = updates(fp32), updates(bf16)
    # bfloat16 keeps 8 bits of mantissa (relative error ~0.4% per op): the losses agree
    # to a few percent, but not exactly (if the switch were ignored they would)
    for x, y in zip(a, b, strict=True):
        assert y.loss == pytest.approx(x.loss, rel=0.05)
    assert any(x.loss != y.loss for x, y in zip(a, b, strict=True))
    for p, q in zip(net.parameters(), net_b.parameters(), strict=True):
        assert q.dtype == torch.float32  # weights stay float32
        torch.testing.assert_close(q, p, rtol=0.0, atol=2e-2)


def test_learner_precision_switch_reaches_the_updater():
    net = QNetwork((4,), 2, hidden_sizes=(8,))
    learner = build_learner(config(precision="bf16"), net, torch.device("cpu"))
    assert learner._updater.autocast is torch.bfloat16
    assert not learner.manual_gradients  # the hand-written backward is float32 only
    with pytest.raises(ValueError, match="precision must be one of"):
        DQNLearner(net, torch.optim.Adam(net.parameters()), precision="fp16")


def _cpuinfo(tmp_path, text: str):
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    return path


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path):
    from rlkit.build import cpu_has_native_bf16

    avx2 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
    amx = "processor\t: 0\nflags\t\t: avx2 avx512f amx_bf16 amx_tile\n"
    avx512 = "flags\t: avx2 avx512f avx512_bf16\n"
    assert cpu_has_native_bf16(_cpuinfo(tmp_path, avx2)) is False
    assert cpu_has_native_bf16(_cpuinfo(tmp_path, amx)) is True
    assert cpu_has_native_bf16(_cpuinfo(tmp_path, avx512)) is True
    assert cpu_has_native_bf16(_cpuinfo(tmp_path, "processor\t: 0\n")) is None  # no flags
    assert cpu_has_native_bf16(tmp_path / "missing") is None


def test_bf16_warns_only_on_a_cpu_that_emulates_it(tmp_path):
    from rlkit.build import precision_warning

    emulated = _cpuinfo(tmp_path, "flags\t: avx2 fma\n")
    native = tmp_path / "native"
    native.write_text("flags\t: avx2 amx_bf16\n")
    bf16 = from_dict({"learner": {"precision": "bf16"}})
    fp32 = from_dict({})
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert "learner.precision=bf16" in precision_warning(bf16, cpu, emulated)
    assert precision_warning(bf16, cpu, native) is None
    assert precision_warning(bf16, cuda, emulated) is None  # GPUs have their own bf16 units
    assert precision_warning(fp32, cpu, emulated) is None
    assert precision_warning(bf16, cpu, tmp_path / "missing") is None  # cannot tell: silent
