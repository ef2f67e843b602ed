"""Learning checks: a short one in the default suite, the full targets marked slow."""

import numpy as np
import pytest

from rlkit.build import build
from rlkit.config import load_config
from tests.e2e.test_cli import DEFAULT_CONFIG


class EvalLog:
    def __init__(self):
        self.evals: list[tuple[int, float]] = []

    def log(self, env_steps, scalars):
        if "eval/return_mean" in scalars:
            self.evals.append((env_steps, scalars["eval/return_mean"]))

    def close(self):
        pass


def train(overrides: list[str], stop_at: float | None = None) -> list[tuple[int, float]]:
    config = load_config(DEFAULT_CONFIG, ["trainer.device=cpu", *overrides])
    log = EvalLog()
    components = build(config, log)
    try:
        stop = None
        if stop_at is not None:
            stop = lambda: bool(log.evals) and log.evals[-1][1] >= stop_at  # noqa: E731
        components.trainer.run(stop=stop)
    finally:
        components.close()
    return log.evals


def test_rainbow_learns_cartpole_on_a_short_budget():
    # A uniformly random policy scores about 22 on CartPole-v1.
    evals = train(["trainer.total_steps=4000", "eval.every=1000", "eval.episodes=5"])
    assert evals[0][1] < 40  # at step 1000 = learning_starts: no update yet
    assert max(r for _, r in evals) >= 90, evals


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5))
def test_rainbow_reaches_475_on_cartpole(seed):
    """The issue's learning target: >= 475 within 20k env steps (median over 5 seeds),
    every seed within 50k."""
    evals = train(
        [f"trainer.seed={seed}", "trainer.total_steps=50000", "eval.every=1000"], stop_at=475
    )
    hit = next((step for step, r in evals if r >= 475), None)
    assert hit is not None and hit <= 50_000, evals
    assert np.isfinite(evals[-1][1])
