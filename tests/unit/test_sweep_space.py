"""Sweep files (``rlkit sweep CONFIG SPACE.yaml``) without Ray: parsing, the checks of
every value a space can produce, the Tune domains it becomes, ASHA's first rung, the out
dir's guard and the results table read from run dirs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from rlkit.app.experiments import sweep as sweep_mod
from rlkit.app.experiments.sweep import grace_period, prepare
from rlkit.app.experiments.sweep_out import (
    BEST_FILE,
    RESULTS_FILE,
    TRIALS_DIR,
    claim_out,
    collect,
    write_results,
)
from rlkit.app.experiments.sweep_space import load_sweep
from rlkit.app.run import _StopFlag
from rlkit.config import ConfigError

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "cartpole_dqn.yaml"


def space_file(tmp_path: Path, body: dict) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def test_every_key_is_read(tmp_path):
    body = {
        "search": "random",
        "samples": 6,
        "seed": 3,
        "metric": "eval/return_mean",
        "mode": "min",
        "scheduler": "asha",
        "asha": {"grace_period": 2000, "reduction_factor": 2},
        "max_concurrent": 2,
        "set": {"trainer": {"total_steps": 9000}},
        "space": {
            "learner.lr": {"loguniform": [1e-4, 1e-2]},
            "replay.n_step": {"choice": [1, 3]},
            "learner.gamma": {"grid": [0.9, 0.99]},
            "learner.batch_size": {"randint": [16, 64]},
            "replay.alpha": {"uniform": [0.4, 0.8]},
        },
    }
    spec = load_sweep(space_file(tmp_path, body))
    assert (spec.search, spec.samples, spec.seed, spec.mode) == ("random", 6, 3, "min")
    assert (spec.scheduler, spec.asha.grace_period, spec.asha.reduction_factor) == (
        "asha",
        2000,
        2.0,
    )
    assert spec.max_concurrent == 2 and spec.overrides == {"trainer.total_steps": 9000}
    kinds = {d.key: (d.kind, d.args) for d in spec.dimensions}
    assert kinds["learner.lr"] == ("loguniform", (1e-4, 1e-2))
    assert kinds["learner.batch_size"] == ("randint", (16, 64))
    assert kinds["replay.n_step"] == ("choice", (1, 3))
    # the defaults: one random trial, no early stopping, maximise the eval return
    spec = load_sweep(space_file(tmp_path, {"space": {"learner.lr": {"choice": [1e-3]}}}))
    assert (spec.search, spec.samples, spec.scheduler) == ("random", 1, "none")
    assert (spec.metric, spec.mode, spec.max_concurrent) == ("eval/return_mean", "max", 0)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"space": {"learner.lrr": {"choice": [1]}}}, "learner.lrr"),
        ({"space": {"learner.lr": {"normal": [0, 1]}}}, "unknown distribution 'normal'"),
        ({"space": {"learner.lr": {"uniform": [1e-2, 1e-3]}}}, "low must be < high"),
        ({"space": {"learner.lr": {"loguniform": [0, 1e-3]}}}, "bounds must be > 0"),
        ({"space": {"learner.batch_size": {"randint": [1.5, 8]}}}, "expected an integer"),
        ({"space": {"learner.lr": {"choice": []}}}, "non-empty list"),
        ({"space": {}}, "space: expected a mapping"),
        ({"spaces": {}}, "unknown key 'spaces'"),
        ({"search": "bayes", "space": {"learner.lr": {"choice": [1]}}}, "search: expected one of"),
        ({"search": "grid", "space": {"learner.lr": {"choice": [1]}}}, "grid entries only"),
        ({"search": "optuna", "space": {"learner.lr": {"grid": [1]}}}, "optuna cannot take a grid"),
        ({"metric": "train/loss", "space": {"learner.lr": {"choice": [1]}}}, "metric: expected"),
        ({"samples": 0, "space": {"learner.lr": {"choice": [1]}}}, "samples: must be >= 1"),
        ({"asha": {"reduction_factor": 1}, "space": {"learner.lr": {"choice": [1]}}}, "> 1"),
        ({"asha": {"grace": 5}, "space": {"learner.lr": {"choice": [1]}}}, "unknown key 'grace'"),
        (
            {"set": {"learner.lr": 1e-3}, "space": {"learner.lr": {"choice": [1e-3]}}},
            "also fixed under set",
        ),
    ],
)
def test_sweep_file_errors_are_one_line_and_name_file_and_key(tmp_path, body, fragment):
    path = space_file(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_sweep(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and fragment in message, message


def test_every_value_a_space_can_produce_is_checked_against_the_config(tmp_path):
    """The upper bound of a range, or one listed value, that the config rejects is named
    before anything runs; the --set keys are checked too."""
    bad_range = space_file(tmp_path, {"space": {"learner.gamma": {"uniform": [0.9, 1.5]}}})
    with pytest.raises(ConfigError, match=r"learner\.gamma: the value 1\.5 is not valid"):
        prepare(CONFIG, bad_range, out=tmp_path / "out")
    bad_value = space_file(tmp_path, {"space": {"replay.n_step": {"choice": [3, 0]}}})
    with pytest.raises(ConfigError, match=r"replay\.n_step: the value 0 is not valid"):
        prepare(CONFIG, bad_value, out=tmp_path / "out")
    good = space_file(tmp_path, {"space": {"learner.lr": {"choice": [1e-3, 3e-4]}}})
    with pytest.raises(ConfigError, match="the key is searched"):
        prepare(CONFIG, good, out=tmp_path / "out", overrides=["learner.lr=0.1"])
    with pytest.raises(ConfigError, match="unknown key 'trainer.total_step'"):
        prepare(CONFIG, good, out=tmp_path / "out", overrides=["trainer.total_step=5"])
    with pytest.raises(ConfigError, match="--samples"):
        prepare(CONFIG, good, out=tmp_path / "out", samples=0)
    assert not (tmp_path / "out").exists()


def test_trial_length_is_fixed_and_the_first_rung_comes_before_the_end(tmp_path):
    """Searching total_steps is refused. With total_steps 4000 and eval.every 1000 the
    default grace is max(4000 // 8, 1000) = 1000 < 4000 (accepted); with eval.every 4000
    it is 4000 (refused); an explicit grace of 4000 is refused, 3999 accepted."""
    lengths = space_file(tmp_path, {"space": {"trainer.total_steps": {"choice": [1000, 2000]}}})
    with pytest.raises(ConfigError, match="trainer.total_steps: cannot be searched"):
        prepare(CONFIG, lengths, out=tmp_path / "out")
    space = {"learner.lr": {"choice": [1e-3]}}
    fixed = {"trainer.total_steps": 4000, "eval.every": 1000}
    default = space_file(tmp_path, {"scheduler": "asha", "set": fixed, "space": space})
    prepare(CONFIG, default, out=tmp_path / "out")
    late = {**fixed, "eval.every": 4000}
    default = space_file(tmp_path, {"scheduler": "asha", "set": late, "space": space})
    with pytest.raises(ConfigError, match=r"grace_period: 4000 env steps must be < .*4000"):
        prepare(CONFIG, default, out=tmp_path / "out")
    for grace, ok in ((4000, False), (3999, True)):
        asha = {"grace_period": grace}
        body = {"scheduler": "asha", "asha": asha, "set": fixed, "space": space}
        path = space_file(tmp_path, body)
        if ok:
            prepare(CONFIG, path, out=tmp_path / "out")
            continue
        with pytest.raises(ConfigError, match=r"grace_period: 4000 env steps must be < .*4000"):
            prepare(CONFIG, path, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_prepare_applies_set_then_cli_on_the_config(tmp_path):
    body = {"set": {"trainer.total_steps": 700}, "space": {"learner.lr": {"choice": [1e-3]}}}
    plan = prepare(CONFIG, space_file(tmp_path, body), overrides=["eval.every=350"], samples=4)
    assert plan.total_steps == 700 and plan.base["eval"]["every"] == 350
    assert plan.spec.samples == 4
    assert plan.out == Path("runs") / "sweep" / "space"


def test_the_tune_domains_of_each_distribution():
    """randint's upper bound is included: Tune's is exclusive, so it gets high + 1."""
    tune = pytest.importorskip("ray.tune")
    from rlkit.app.experiments.sweep_space import Dimension

    randint = sweep_mod._domain(tune, Dimension("learner.batch_size", "randint", (16, 18)))
    assert (randint.lower, randint.upper) == (16, 19)
    log = sweep_mod._domain(tune, Dimension("learner.lr", "loguniform", (1e-4, 1e-2)))
    assert (log.lower, log.upper) == (1e-4, 1e-2)
    grid = sweep_mod._domain(tune, Dimension("learner.gamma", "grid", (0.9, 0.99)))
    assert grid == {"grid_search": [0.9, 0.99]}
    choice = sweep_mod._domain(tune, Dimension("replay.n_step", "choice", (1, 3)))
    assert choice.categories == [1, 3]


def test_asha_first_rung(tmp_path):
    spec = load_sweep(space_file(tmp_path, {"space": {"learner.lr": {"choice": [1]}}}))
    assert grace_period(spec, 80_000, 1_000) == 10_000  # 80,000 / 8
    assert grace_period(spec, 4_000, 1_000) == 1_000  # an eighth is 500: one eval interval
    body = {"asha": {"grace_period": 123}, "space": {"learner.lr": {"choice": [1]}}}
    assert grace_period(load_sweep(space_file(tmp_path, body)), 80_000, 1_000) == 123


def test_the_out_dir_refuses_another_sweep_and_keeps_its_files(tmp_path):
    space = space_file(tmp_path, {"space": {"learner.lr": {"choice": [1e-3, 3e-4]}}})
    out = tmp_path / "out"
    claim_out(prepare(CONFIG, space, out=out))
    before = (out / "sweep.yaml").read_bytes()
    claim_out(prepare(CONFIG, space, out=out))  # the same sweep continues
    with pytest.raises(ConfigError, match="holds a different sweep"):
        claim_out(prepare(CONFIG, space, out=out, samples=3))
    with pytest.raises(ConfigError, match="holds a different sweep"):
        claim_out(prepare(CONFIG, space, out=out, overrides=["trainer.total_steps=10"]))
    assert (out / "sweep.yaml").read_bytes() == before
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="holds no sweep.yaml"):
        claim_out(prepare(CONFIG, space, out=other))
    assert (other / "keep.txt").read_text() == "mine"


def _fake_trial(out: Path, name: str, lr: float, returns: list[float], done: bool) -> None:
    run_dir = out / TRIALS_DIR / name
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"learner": {"lr": lr}}))
    lines = [{"env_steps": 100 * (i + 1), "eval/return_mean": r} for i, r in enumerate(returns)]
    lines.append({"env_steps": 100 * len(returns) + 50, "train/loss": 0.5})  # not an eval
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    if done:
        (run_dir / "done.json").write_text("{}")


def test_results_rank_finished_trials_first_then_by_the_last_evaluation(tmp_path):
    """Three trials: a finished one ending at 20 (best 30), a finished one ending at 40,
    and an early-stopped one at 90. Finished trials come first (40, then 20); the stopped
    one last although its value is higher; best.yaml is the top trial's config."""
    space = space_file(tmp_path, {"space": {"learner.lr": {"choice": [1e-3, 3e-4, 1e-4]}}})
    plan = prepare(CONFIG, space, out=tmp_path / "out")
    _fake_trial(plan.out, "trial_00000", 1e-3, [10.0, 30.0, 20.0], done=True)
    _fake_trial(plan.out, "trial_00001", 3e-4, [5.0, 40.0], done=True)
    _fake_trial(plan.out, "trial_00002", 1e-4, [90.0], done=False)
    rows = collect(plan, failed=set())
    assert [r.trial for r in rows] == ["trial_00001", "trial_00000", "trial_00002"]
    assert [r.status for r in rows] == ["finished", "finished", "stopped"]
    first = rows[1]
    assert (first.last, first.best, first.env_steps) == (20.0, 30.0, 350)
    assert rows[0].params == {"learner.lr": 3e-4}
    write_results(plan, rows)
    table = (plan.out / RESULTS_FILE).read_text().splitlines()
    assert (
        table[0]
        == "trial,status,env_steps,eval/return_mean (last),eval/return_mean (best),learner.lr"
    )
    assert table[1] == "trial_00001,finished,250,40.0,40.0,0.0003"
    best = yaml.safe_load((plan.out / BEST_FILE).read_text())
    assert best["learner"]["lr"] == 3e-4
    failed = collect(plan, failed={"trial_00001"})
    assert [r.trial for r in failed][-1] == "trial_00001" and failed[-1].status == "failed"
    # mode: min reverses the order among finished trials
    body = {"mode": "min", "space": {"learner.lr": {"choice": [1e-3]}}}
    minimise = prepare(CONFIG, space_file(tmp_path, body), out=plan.out)
    assert [r.trial for r in collect(minimise)][:2] == ["trial_00000", "trial_00001"]


def test_the_stop_flag_works_outside_the_main_thread():
    """A Tune trial trains in a worker thread, where signal handlers cannot be set."""
    import threading

    seen = []

    def body():
        with _StopFlag() as flag:
            seen.append(flag())

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == [False]


def test_the_shipped_sweep_files_prepare_against_their_configs():
    """Every file in configs/sweeps/ names its config in its first comment lines
    (``rlkit sweep CONFIG SPACE``); each pair passes every check of ``prepare``."""
    files = sorted((ROOT / "configs" / "sweeps").glob("*.yaml"))
    assert files
    for path in files:
        command = next(line for line in path.read_text().splitlines() if "rlkit sweep" in line)
        config, space = command.split("rlkit sweep", 1)[1].split()[:2]
        assert ROOT / space == path
        plan = prepare(ROOT / config, path)
        assert plan.out == Path("runs") / "sweep" / path.stem
        assert plan.spec.dimensions and plan.spec.samples >= 1
