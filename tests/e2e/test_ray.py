"""On a local Ray instance (skipped without the ``ray`` extra): Ape-X training learns
CartPole with two actors while one of them is killed and restarted, resumes from its
checkpoint, and ``rlkit ablate --backend ray`` writes the local backend's results.

Each test starts and stops its own Ray instance (through rlkit, as the CLI does)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

import rlkit
from rlkit.app import distributed_run
from tests.e2e.tiny import CONFIGS, TINY

ray = pytest.importorskip("ray")

APEX = [
    "trainer.device=cpu",
    "distributed.backend=ray",
    "distributed.actors=2",
    "distributed.actor_cpus=0.5",
    "trainer.log_every=1000",
    "eval.every=2000",
    "eval.episodes=5",
]


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_apex_learns_cartpole_while_an_actor_is_killed(tmp_path, monkeypatch):
    """Plain DQN (configs/cartpole_dqn.yaml) as Ape-X with 2 actors: a greedy evaluation
    reaches 195 within 40k env steps; actor 0 is killed at the first log point past
    2,000 env steps, Ray restarts it, and it acts again; actor epsilons are Ape-X's;
    weights reach both actors."""
    handles = []
    start = distributed_run.start_roles
    monkeypatch.setattr(
        distributed_run, "start_roles", lambda *a: handles.append(start(*a)) or handles[-1]
    )
    killed, best = [], [0.0]

    def callback(metrics, env_steps):
        if env_steps >= 2000 and not killed:
            ray.kill(handles[0].actors[0], no_restart=False)
            killed.append(env_steps)
        best[0] = max(best[0], metrics.get("eval/return_mean", 0.0))
        return bool(killed) and env_steps >= killed[0] + 4000 and best[0] >= 195

    stream = io.StringIO()
    run = rlkit.train(
        CONFIGS / "cartpole_dqn.yaml",
        [*APEX, "trainer.total_steps=40000"],
        run_dir=tmp_path / "apex",
        callback=callback,
        stream=stream,
    )
    log = stream.getvalue()
    assert killed and "warning: actor 0 died" in log, log[-2000:]
    rows = records(tmp_path / "apex")
    evals = [r["eval/return_mean"] for r in rows if "eval/return_mean" in r]
    assert max(evals) >= 195, evals
    train = [r for r in rows if "actors/0/env_steps" in r]
    after = [r for r in train if r["env_steps"] > killed[0] + 2000]
    assert after and after[-1]["actors/0/env_steps"] > train[0]["actors/0/env_steps"]
    assert train[-1]["actors/0/epsilon"] == pytest.approx(0.4)
    assert train[-1]["actors/1/epsilon"] == pytest.approx(0.4**8)  # 0.4 ** (1 + 7 * 1 / 1)
    # the first log point may come before actor 1's first pull: only the growth is certain
    first, last = train[0]["actors/1/policy_version"], train[-1]["actors/1/policy_version"]
    assert last > first and last >= 1, (first, last)
    assert after[-1]["actors/0/policy_version"] >= 1  # the restarted actor pulled weights
    assert run.run_dir == tmp_path / "apex"


def test_apex_checkpoints_and_resumes(tmp_path):
    """A stopped Ape-X run resumes from its checkpoint: the learner's update count and
    the env steps go on from there, and ``rlkit eval`` reads its checkpoints."""
    items = [*APEX, "trainer.total_steps=2000", "trainer.checkpoint_every=1000"]
    items += ["trainer.learning_starts=500", "network.hidden_sizes=[16]"]
    stopped = rlkit.train(
        CONFIGS / "cartpole_dqn.yaml",
        items,
        run_dir=tmp_path / "r",
        callback=lambda metrics, steps: steps >= 1000,
        stream=io.StringIO(),
    )
    assert stopped.stopped_early and stopped.env_steps < 2000
    stream = io.StringIO()
    done = rlkit.train(run_dir=tmp_path / "r", resume=True, stream=stream)
    assert "resumed from" in stream.getvalue() and not done.stopped_early
    assert done.env_steps >= 2000
    steps = [r["env_steps"] for r in records(tmp_path / "r") if "train/loss" in r]
    assert steps == sorted(set(steps))  # no point twice, none lost
    result = rlkit.evaluate(rlkit.Agent.load(tmp_path / "r"), None, episodes=2, seed=0)
    assert len(result.returns) == 2


def test_ablate_on_ray_writes_the_local_backends_results(tmp_path, capsys):
    """The same tiny suite on both backends: the same runs, the same results.csv (the
    sync loop is deterministic, so the figures agree exactly), the same report."""
    ablations = CONFIGS / "ablations"
    suite = tmp_path / "tiny.yaml"
    suite.write_text(
        f"variants:\n  - {ablations / 'rainbow.yaml'}\n  - {ablations / 'q_learning.yaml'}\n"
        "envs: [CartPole-v1]\nseeds: 1\n"
    )
    outs = {}
    for backend in ("local", "ray"):
        out = tmp_path / backend
        argv = ["ablate", str(suite), "--out", str(out), "--backend", backend, "--set", *TINY]
        assert rlkit.app.cli.main([*argv, "--cpus-per-run", "0.5"]) == 0, capsys.readouterr()
        outs[backend] = out
    printed = capsys.readouterr().out
    assert "one Ray task per run" in printed
    tables = {b: list(csv.DictReader(open(o / "results.csv"))) for b, o in outs.items()}
    assert tables["ray"] == tables["local"]
    for out in outs.values():
        assert len(list(out.glob("CartPole-v1/*/seed*/done.json"))) == 2
    local_md = (outs["local"] / "report.md").read_text().splitlines()
    ray_md = (outs["ray"] / "report.md").read_text().splitlines()
    assert [x for x in ray_md if x.startswith("#")] == [x for x in local_md if x.startswith("#")]
    # finished runs never run again
    again = rlkit.app.cli.main(
        ["ablate", str(suite), "--out", str(outs["ray"]), "--backend", "ray", "--set", *TINY]
    )
    assert again == 0 and "2 finished (skipped)" in capsys.readouterr().out
