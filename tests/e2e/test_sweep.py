"""``rlkit sweep`` on a local Ray (skipped without Ray Tune): grid search with ASHA stops
the worse trial at its first rung; random search samples the space into each trial's
config and lets every trial finish without a scheduler; Optuna (when installed) searches
the same space; re-running the command continues the sweep without training again.

Plain DQN on CartPole (configs/cartpole_dqn.yaml) for a few hundred env steps per trial.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from tests.e2e.tiny import CONFIGS, cli, read_metrics, snapshot

pytest.importorskip("ray.tune")
import ray  # noqa: E402

CONFIG = str(CONFIGS / "cartpole_dqn.yaml")
STEPS = 600
FIXED = {
    "trainer.total_steps": STEPS,
    "trainer.learning_starts": 100,
    "trainer.device": "cpu",
    "trainer.log_every": 100,
    "eval.every": 200,
    "eval.episodes": 2,
    "network.hidden_sizes": [16],
}


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local Ray for the module (rlkit sweep joins it and leaves it running)."""
    ray.init(num_cpus=2, object_store_memory=80 * 2**20, include_dashboard=False)
    yield
    ray.shutdown()


def sweep_file(tmp_path: Path, **body) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({"set": FIXED, **body}))
    return path


def rows(out: Path) -> dict[str, dict]:
    with open(out / "sweep.csv") as f:
        return {r["trial"]: r for r in csv.DictReader(f)}


def eval_steps(run_dir: Path) -> list[int]:
    return [r["env_steps"] for r in read_metrics(run_dir) if "eval/return_mean" in r]


def test_grid_search_with_asha_stops_the_worse_trial_at_its_first_rung(tmp_path, capsys):
    """A grid over env.id, one trial at a time: CartPole first (returns >= 8), then
    Acrobot (returns <= 0 until it learns). At ASHA's first rung (200 env steps, factor 2)
    Acrobot's value is below the median of the two recorded values, so ASHA stops it
    there: its run dir has one evaluation and no done.json. CartPole, the first trial to
    reach each rung, runs to the end. A rerun continues the sweep and trains nothing."""
    space = sweep_file(
        tmp_path,
        search="grid",
        scheduler="asha",
        asha={"grace_period": 200, "reduction_factor": 2},
        max_concurrent=1,
        space={"env.id": {"grid": ["CartPole-v1", "Acrobot-v1"]}},
    )
    out = tmp_path / "out"
    code, stdout, err = cli(capsys, "sweep", CONFIG, str(space), "--out", str(out))
    assert code == 0, err
    trials = out / "trials"
    cartpole, acrobot = trials / "trial_00000", trials / "trial_00001"
    assert yaml.safe_load((cartpole / "config.yaml").read_text())["env"]["id"] == "CartPole-v1"
    assert yaml.safe_load((acrobot / "config.yaml").read_text())["env"]["id"] == "Acrobot-v1"
    assert eval_steps(cartpole) == [200, 400, 600] and (cartpole / "done.json").is_file()
    assert eval_steps(acrobot) == [200] and not (acrobot / "done.json").exists()
    assert "stopped early (ASHA) trial_00001 at env step 200" in stdout
    assert "Traceback" not in (acrobot / "train.log").read_text()  # a stop, not an error
    table = rows(out)
    assert table["trial_00000"]["status"] == "finished"
    assert table["trial_00001"]["status"] == "stopped"
    assert list(table) == ["trial_00000", "trial_00001"]  # finished first
    assert (out / "best.yaml").read_text() == (cartpole / "config.yaml").read_text()
    # Tune saw the same evaluations as metrics.jsonl (what ASHA decided on)
    tune_results = [
        json.loads(line) for line in (out / "tune" / "trial_00001" / "result.json").open()
    ]
    acrobot_eval = [r for r in read_metrics(acrobot) if "eval/return_mean" in r][0]
    assert [r["eval/return_mean"] for r in tune_results] == [acrobot_eval["eval/return_mean"]]
    before = snapshot(trials)
    code, stdout, err = cli(capsys, "sweep", CONFIG, str(space), "--out", str(out))
    assert code == 0, err
    assert "continuing the sweep" in stdout and "started" not in stdout
    assert snapshot(trials) == before


def test_random_search_samples_the_space_into_each_trials_config(tmp_path, capsys):
    """Three samples of a log-uniform learning rate and a choice of n; no scheduler, so
    every trial finishes. Each trial's config.yaml holds the values Tune sampled for it
    (result.json's config), inside the bounds, and not all equal."""
    space = sweep_file(
        tmp_path,
        samples=3,
        seed=5,
        space={
            "learner.lr": {"loguniform": [1.0e-4, 1.0e-2]},
            "replay.n_step": {"choice": [1, 3]},
        },
    )
    out = tmp_path / "out"
    code, _, err = cli(capsys, "sweep", CONFIG, str(space), "--out", str(out))
    assert code == 0, err
    names = sorted(p.name for p in (out / "trials").iterdir())
    assert names == ["trial_00000", "trial_00001", "trial_00002"]
    lrs = []
    for name in names:
        config = yaml.safe_load((out / "trials" / name / "config.yaml").read_text())
        sampled = json.loads((out / "tune" / name / "result.json").open().readline())["config"]
        assert config["learner"]["lr"] == pytest.approx(sampled["learner.lr"], rel=1e-12)
        assert config["replay"]["n_step"] == sampled["replay.n_step"] in (1, 3)
        assert 1e-4 <= config["learner"]["lr"] <= 1e-2
        assert config["trainer"]["total_steps"] == STEPS  # the sweep's set: reached the run
        assert (out / "trials" / name / "done.json").is_file()
        lrs.append(config["learner"]["lr"])
    assert len(set(lrs)) == 3
    assert {r["status"] for r in rows(out).values()} == {"finished"}


def test_optuna_searches_the_space(tmp_path, capsys):
    pytest.importorskip("optuna")
    space = sweep_file(
        tmp_path,
        search="optuna",
        samples=2,
        max_concurrent=1,
        space={"learner.lr": {"uniform": [1.0e-4, 1.0e-3]}},
    )
    out = tmp_path / "out"
    code, stdout, err = cli(capsys, "sweep", CONFIG, str(space), "--out", str(out))
    assert code == 0, err
    table = rows(out)
    assert len(table) == 2 and {r["status"] for r in table.values()} == {"finished"}
    assert all(1e-4 <= float(r["learner.lr"]) <= 1e-3 for r in table.values())
    assert "best config:" in stdout
