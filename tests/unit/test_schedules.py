import pytest

from rlkit.agent.schedules import ConstantSchedule, ExponentialSchedule, LinearSchedule


def test_linear_schedule_boundaries():
    eps = LinearSchedule(0.5, 0.01, 300_000)
    assert eps.value(0) == 0.5
    assert eps.value(-5) == 0.5
    assert eps.value(150_000) == pytest.approx(0.255)
    assert eps.value(300_000) == 0.01
    assert eps.value(10**9) == 0.01
    beta = LinearSchedule(0.4, 1.0, 100)
    assert beta.value(50) == pytest.approx(0.7)
    assert beta.value(100) == 1.0
    assert LinearSchedule(1.0, 0.0, 0).value(0) == 0.0


def test_exponential_schedule():
    sched = ExponentialSchedule(1.0, 0.1, 0.5)
    assert sched.value(0) == 1.0
    assert sched.value(1) == pytest.approx(0.1 + 0.9 * 0.5)
    assert sched.value(10_000) == pytest.approx(0.1)
    over = ExponentialSchedule.over_steps(0.5, 0.01, 1000, remaining=0.01)
    assert over.value(1000) == pytest.approx(0.01 + 0.49 * 0.01)
    # halfway the gap has shrunk by sqrt(0.01) = 0.1: 0.01 + 0.49 * 0.1 = 0.059
    assert over.value(500) == pytest.approx(0.059)
    # a decay over 0 steps is at its end at once, whatever the shape
    for step in (0, 10):
        assert ExponentialSchedule.over_steps(0.5, 0.01, 0).value(step) == 0.01
        assert LinearSchedule(0.5, 0.01, 0).value(step) == 0.01
    with pytest.raises(ValueError):
        ExponentialSchedule(1.0, 0.1, 1.5)


def test_constant_schedule():
    assert ConstantSchedule(0.3).value(0) == 0.3
    assert ConstantSchedule(0.3).value(10**7) == 0.3
