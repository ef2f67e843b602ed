"""One-line errors (exit code 2) of the Ray features, with nothing written: Ray not
installed (simulated), a cluster that cannot be reached, settings a distributed run does
not support. These run with or without the ``ray`` extra."""

from __future__ import annotations

import socket
import sys

import pytest

from tests.e2e.tiny import DEFAULT_CONFIG, TINY, assert_one_line_error, cli, sets


def _without_ray(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # ``import ray`` raises ImportError


def test_train_on_ray_without_ray_names_the_extra(capsys, monkeypatch, tmp_path):
    _without_ray(monkeypatch)
    run_dir = tmp_path / "run"
    code, _, err = cli(
        capsys, "train", *sets(*TINY, "distributed.backend=ray"), "--run-dir", str(run_dir)
    )
    assert_one_line_error(
        code, err, "distributed.backend=ray needs Ray", "pip install 'rlkit[ray]'"
    )
    assert not run_dir.exists()


def test_ablate_on_ray_without_ray_names_the_extra(capsys, monkeypatch, tmp_path):
    _without_ray(monkeypatch)
    suite = tmp_path / "s.yaml"
    suite.write_text("variants: []\nenvs: [CartPole-v1]\n")
    code, _, err = cli(
        capsys, "ablate", str(suite), "--backend", "ray", "--out", str(tmp_path / "o")
    )
    assert_one_line_error(code, err, "rlkit ablate --backend ray needs Ray", "rlkit[ray]")
    assert not (tmp_path / "o").exists()


def test_an_unreachable_cluster_is_one_line_and_writes_nothing(capsys, tmp_path):
    pytest.importorskip("ray")
    with socket.socket() as s:  # a port nothing listens on: bind, then close
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run_dir = tmp_path / "run"
    code, _, err = cli(
        capsys, "train", *sets(*TINY), "--address", f"127.0.0.1:{port}", "--run-dir", str(run_dir)
    )
    assert_one_line_error(code, err, f"cannot reach the Ray cluster at '127.0.0.1:{port}'")
    assert not run_dir.exists()


def test_settings_a_distributed_run_does_not_support(capsys, tmp_path):
    pytest.importorskip("ray")
    for extra, fragment in (
        ("trainer.mode=async", "trainer.mode: async is the one-machine actor thread"),
        ("eval.video_every=100", "eval.video_every: not available with distributed.backend=ray"),
    ):
        run_dir = tmp_path / extra.split("=")[0]
        code, _, err = cli(
            capsys,
            "train",
            *sets(*TINY, "distributed.backend=ray", extra),
            "--run-dir",
            str(run_dir),
        )
        assert_one_line_error(code, err, fragment)
        assert not run_dir.exists()


def _sweep_file(tmp_path, search: str):
    space = tmp_path / "space.yaml"
    space.write_text(f"search: {search}\nsamples: 2\nspace:\n  learner.lr: {{choice: [0.001]}}\n")
    return space


def test_sweep_without_ray_names_the_extra(capsys, monkeypatch, tmp_path):
    _without_ray(monkeypatch)
    out = tmp_path / "o"
    code, _, err = cli(
        capsys,
        "sweep",
        str(DEFAULT_CONFIG),
        str(_sweep_file(tmp_path, "random")),
        "--out",
        str(out),
    )
    assert_one_line_error(code, err, "rlkit sweep needs Ray", "rlkit[ray]")
    assert not out.exists()


def test_optuna_search_without_optuna_names_the_extra(capsys, monkeypatch, tmp_path):
    pytest.importorskip("ray.tune")
    monkeypatch.setitem(sys.modules, "optuna", None)
    out = tmp_path / "o"
    space = _sweep_file(tmp_path, "optuna")
    code, _, err = cli(capsys, "sweep", str(DEFAULT_CONFIG), str(space), "--out", str(out))
    assert_one_line_error(code, err, f"{space}: search: optuna needs Optuna", "rlkit[optuna]")
    assert not out.exists()
