"""`rlkit train | eval | config` end to end through the command line.

One tiny run of the default config (300 env steps of Rainbow on CartPole-v1, CPU) is
trained once per session in-process and inspected by most tests: its run dir (resolved
config, metrics.jsonl, TensorBoard events, checkpoints), its console output, and
`rlkit eval` on it. Other tests train their own tiny runs (reproducibility, --overwrite,
progress lines) or feed the CLI bad input and expect exit code 2 with one line on stderr.
A few run `python -m rlkit` in a subprocess to check real exit codes and stderr.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from rlkit.app.checkpoint import CheckpointError, list_checkpoints, load_checkpoint
from rlkit.app.cli import main
from rlkit.app.run import RunDirError
from rlkit.config import Config, ConfigError, load_config, to_dict
from tests.e2e.cli_process import rlkit
from tests.e2e.tiny import (  # noqa: F401 - _isolated is an autouse fixture
    DEFAULT_CONFIG,
    TINY,
    TOTAL_STEPS,
    _isolated,
    assert_one_line_error,
    cli,
    copy_run,
    parse_eval,
    read_metrics,
    restore_torch_globals,
    sets,
    snapshot,
    unsafe_load,
    without_timing,
    write_malicious,
)

EXPECTED_TAGS = {
    "eval/return_mean",
    "eval/return_std",
    "eval/length_mean",
    "eval/overestimation",
    "eval/q_pred",
    "eval/return_discounted",
    "train/loss",
    "train/q_mean",
    "train/td_abs_mean",
    "train/support_clip_frac",
    "train/grad_norm",
    "train/episode_return",
    "train/episode_length",
    "explore/epsilon",
    "replay/beta",
    "replay/size",
    "perf/sps",
    "perf/updates_per_s",
}
PROGRESS_RE = re.compile(r"(\d+)\s*/\s*(\d+) env steps")


@dataclass(frozen=True)
class TrainedRun:
    path: Path
    code: int
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> TrainedRun:
    """`rlkit train --run-dir RUN --set <tiny budget>` on the default config, in-process."""
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    out, err = io.StringIO(), io.StringIO()
    threads = torch.get_num_threads()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["train", "--run-dir", str(run_dir), *sets(*TINY)])
    finally:
        restore_torch_globals(threads)
    run = TrainedRun(run_dir, code, out.getvalue(), err.getvalue())
    assert run.code == 0, run.stdout + run.stderr
    return run


# ---------------------------------------------------------------- rlkit train: the run dir


def test_train_writes_the_resolved_config(trained):
    used = load_config(DEFAULT_CONFIG, TINY)
    saved = load_config(trained.path / "config.yaml")
    assert saved == used
    # resolved: every key is written out, with values from the default file and --set
    raw = yaml.safe_load((trained.path / "config.yaml").read_text())
    assert raw == to_dict(used)
    assert "extends" not in raw
    assert saved.replay.alpha == 0.2  # from configs/cartpole_rainbow.yaml, not the dataclass
    assert saved.network.v_max == "auto"  # the resolved support is in the checkpoints
    assert saved.network.hidden_sizes == (16,)  # from --set
    assert saved.trainer.total_steps == TOTAL_STEPS
    assert saved != Config()


def test_train_writes_metrics_jsonl(trained):
    records = read_metrics(trained.path)
    assert records
    steps = [r["env_steps"] for r in records]
    assert all(isinstance(s, int) for s in steps)
    assert steps == sorted(steps) and steps[-1] == TOTAL_STEPS
    tags = set().union(*records) - {"env_steps"}
    assert EXPECTED_TAGS <= tags, EXPECTED_TAGS - tags
    for record in records:
        for tag in EXPECTED_TAGS & set(record):
            assert isinstance(record[tag], (int, float)) and math.isfinite(record[tag]), (
                tag,
                record,
            )
    # cadence: eval every 150 env steps and at the end, a training point every 100
    eval_steps = [r["env_steps"] for r in records if "eval/return_mean" in r]
    assert eval_steps == [150, 300]
    loss_steps = [r["env_steps"] for r in records if "train/loss" in r]
    assert loss_steps == [100, 200, 300]
    for record in records:
        step = record["env_steps"]
        if "eval/return_mean" in record:
            # CartPole pays 1 per step: an episode's return is its length
            assert record["eval/return_mean"] == pytest.approx(record["eval/length_mean"])
        if "train/episode_return" in record:
            assert record["train/episode_return"] == pytest.approx(record["train/episode_length"])
        if "explore/epsilon" in record:
            assert record["explore/epsilon"] == 0.0  # noisy nets: no epsilon in the default
            # beta anneals from beta_start 0.6 (configs/cartpole_rainbow.yaml) to 1.0 over
            # trainer.total_steps = 300: 0.6 + 0.4 * s / 300 -> 0.7333, 0.8667, 1.0
            assert record["replay/beta"] == pytest.approx(0.6 + 0.4 * step / TOTAL_STEPS)
            # one transition per env step, less the <= n - 1 = 2 steps an n-step window
            # still holds (none when an episode has just ended)
            assert step - 2 <= record["replay/size"] <= step


def test_train_writes_tensorboard_events_and_hparams(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    assert list(trained.path.glob("events.out.tfevents.*"))
    acc = EventAccumulator(str(trained.path), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    scalar_tags = set(acc.Tags()["scalars"])
    assert EXPECTED_TAGS <= scalar_tags, EXPECTED_TAGS - scalar_tags
    # the event files hold the same points as metrics.jsonl
    records = read_metrics(trained.path)
    for tag in ("eval/return_mean", "train/loss"):
        from_jsonl = [(r["env_steps"], r[tag]) for r in records if tag in r]
        from_tb = [(e.step, e.value) for e in acc.Scalars(tag)]
        assert [s for s, _ in from_tb] == [s for s, _ in from_jsonl]
        assert [v for _, v in from_tb] == pytest.approx([v for _, v in from_jsonl], rel=1e-6)

    content = acc.PluginTagToContent("hparams")
    assert {
        "_hparams_/experiment",
        "_hparams_/session_start_info",
        "_hparams_/session_end_info",
    } <= set(content)
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["replay.n_step"].number_value == 3
    assert hparams["trainer.total_steps"].number_value == TOTAL_STEPS
    assert hparams["env.id"].string_value == "CartPole-v1"
    dueling = hparams["network.dueling"]  # torch stores bools as numbers
    assert getattr(dueling, dueling.WhichOneof("kind")) == 1
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    assert [m.name.tag for m in experiment.experiment.metric_infos] == ["hparam/final_return_mean"]


def test_hparams_metric_has_a_value(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(trained.path), size_guidance={"scalars": 0})
    acc.Reload()
    assert "hparam/final_return_mean" in acc.Tags()["scalars"]
    final = [r["eval/return_mean"] for r in read_metrics(trained.path) if "eval/return_mean" in r]
    assert acc.Scalars("hparam/final_return_mean")[-1].value == pytest.approx(final[-1])


def test_train_writes_checkpoints(trained):
    ckpt_dir = trained.path / "checkpoints"
    files = sorted(p.name for p in ckpt_dir.iterdir())
    assert files, "no checkpoint written"
    assert all(re.fullmatch(r"ckpt_\d{12}\.pt", name) for name in files), files
    assert files[-1] == f"ckpt_{TOTAL_STEPS:012d}.pt"
    state = load_checkpoint(ckpt_dir / files[-1])
    assert state["env_steps"] == state["trainer"]["counters"]["env_steps"] == TOTAL_STEPS
    # the checkpoint's config is config.yaml with the C51 support's "auto" resolved
    saved = to_dict(load_config(trained.path / "config.yaml"))
    assert (saved["network"]["v_min"], saved["network"]["v_max"]) == ("auto", "auto")
    recorded = state["config"]["network"]
    assert all(isinstance(recorded[k], float) for k in ("v_min", "v_max"))
    assert recorded["v_min"] <= 0.0 < recorded["v_max"]  # auto keeps 0 inside (CartPole: r >= 0)
    saved["network"].update(v_min=recorded["v_min"], v_max=recorded["v_max"])
    assert state["config"] == saved
    assert state["learner"]["online"], "no network weights in the checkpoint"


def test_train_output_names_run_dir_and_tensorboard(trained):
    out = trained.stdout
    assert f"run dir: {trained.path}" in out
    assert f"tensorboard --logdir {trained.path.parent}" in out
    assert f"rlkit eval {trained.path}" in out
    assert "final eval: return" in out
    assert trained.stderr == ""


def test_train_progress_is_plain_lines_when_not_a_tty(trained):
    out = trained.stdout
    assert "\r" not in out and "\x1b[" not in out  # no bar redrawing in a pipe or file
    progress = [line for line in out.splitlines() if "env steps" in line]
    assert progress, out
    assert all("steps/s" in line for line in progress)
    last = PROGRESS_RE.search(progress[-1])
    assert last and (int(last[1]), int(last[2])) == (TOTAL_STEPS, TOTAL_STEPS), progress[-1]


def test_train_progress_has_intermediate_lines_when_not_a_tty(capsys, tmp_path):
    """Progress is reported during the run, not only at the end (2000 env steps)."""
    total = 2000
    code, out, err = cli(
        capsys,
        "train",
        "--run-dir",
        str(tmp_path / "run"),
        *sets(
            f"trainer.total_steps={total}",
            f"trainer.learning_starts={total}",  # acting only: fast
            "eval.every=0",
            "eval.episodes=1",
            "network.hidden_sizes=[16]",
            "trainer.device=cpu",
        ),
    )
    assert code == 0, err
    assert "\r" not in out and "\x1b[" not in out
    steps = [
        (int(m[1]), int(m[2]))
        for line in out.splitlines()
        if "steps/s" in line and (m := PROGRESS_RE.search(line))
    ]
    assert steps and steps[-1] == (total, total), out
    intermediate = [s for s, t in steps if t == total and 0 < s < total]
    assert len(intermediate) >= 3, f"no intermediate progress lines:\n{out}"
    assert intermediate == sorted(intermediate)


# ---------------------------------------------------------------- rlkit eval


def test_eval_prints_mean_and_std(trained, capsys):
    code, out, err = cli(capsys, "eval", str(trained.path), "--episodes", "3")
    assert code == 0, err
    newest = trained.path / "checkpoints" / f"ckpt_{TOTAL_STEPS:012d}.pt"
    assert f"checkpoint: {newest}" in out
    mean, std, episodes, length = parse_eval(out)
    assert episodes == 3
    assert 1 <= mean <= 500 and std >= 0
    assert mean == pytest.approx(length, abs=0.051)  # CartPole: return == episode length
    # greedy episodes with a fixed seed: the same numbers again
    code, again, _ = cli(capsys, "eval", str(trained.path), "--episodes", "3")
    assert code == 0 and again == out


def test_eval_with_checkpoint_option(trained, capsys, tmp_path):
    run = copy_run(trained.path, tmp_path / "run")
    elsewhere = tmp_path / "elsewhere.pt"
    shutil.move(run / "checkpoints" / f"ckpt_{TOTAL_STEPS:012d}.pt", elsewhere)
    assert list_checkpoints(run / "checkpoints") == []

    code, _, err = cli(capsys, "eval", str(run))
    assert_one_line_error(code, err, str(run), "no complete checkpoint")

    code, out, err = cli(
        capsys, "eval", str(run), "--checkpoint", str(elsewhere), "--episodes", "3"
    )
    assert code == 0, err
    assert f"checkpoint: {elsewhere}" in out
    # same weights and seed as the original run's newest checkpoint: the same result
    _, expected, _ = cli(capsys, "eval", str(trained.path), "--episodes", "3")
    assert parse_eval(out) == parse_eval(expected)


def test_eval_of_a_cuda_run_on_a_machine_without_cuda(trained, capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    run = copy_run(trained.path, tmp_path / "run")
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("device: cpu", "device: cuda"))
    code, out, err = cli(capsys, "eval", str(run), "--episodes", "3")
    assert code == 0, err
    assert "note: the run trained on cuda, which is not available here: using cpu" in out
    _, expected, _ = cli(capsys, "eval", str(trained.path), "--episodes", "3")
    assert parse_eval(out) == parse_eval(expected)
    # asked for explicitly, cuda is an error naming the way out
    code, _, err = cli(capsys, "eval", str(run), "--device", "cuda")
    assert_one_line_error(code, err, "trainer.device", "no CUDA device", "trainer.device=cpu")


def test_train_on_cuda_without_cuda_is_refused_before_anything_is_written(
    capsys, tmp_path, monkeypatch
):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    run_dir = tmp_path / "run"
    code, _, err = cli(
        capsys, "train", "--run-dir", str(run_dir), *sets(*TINY, "trainer.device=cuda")
    )
    assert_one_line_error(code, err, "trainer.device", "no CUDA device", "--set trainer.device=cpu")
    assert not run_dir.exists()


def test_train_warns_when_bf16_is_emulated_on_the_cpu(capsys, tmp_path, monkeypatch):
    from rlkit.agent import builder

    cpuinfo = tmp_path / "cpuinfo"
    monkeypatch.setattr(builder, "CPUINFO", cpuinfo)
    short = [s for s in TINY if not s.startswith("trainer.total_steps")]
    run = [*sets(*short, "trainer.total_steps=100", "learner.precision=bf16")]
    cpuinfo.write_text("flags\t: sse2 avx2 fma\n")
    code, out, err = cli(capsys, "train", "--run-dir", str(tmp_path / "emulated"), *run)
    assert code == 0, err
    warnings = [line for line in out.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "learner.precision=bf16" in warnings[0], out
    cpuinfo.write_text("flags\t: avx2 amx_bf16 amx_tile\n")
    code, out, err = cli(capsys, "train", "--run-dir", str(tmp_path / "native"), *run)
    assert code == 0, err
    assert "learner.precision=bf16" not in out


# ---------------------------------------------------------------- reproducibility


def test_same_seed_reproduces_metrics_and_weights(trained, capsys, tmp_path):
    code, _, err = cli(capsys, "train", "--run-dir", str(tmp_path / "again"), *sets(*TINY))
    assert code == 0, err
    first, second = read_metrics(trained.path), read_metrics(tmp_path / "again")
    assert any(k.startswith("perf/") for r in first for k in r)
    assert without_timing(second) == without_timing(first)
    name = f"ckpt_{TOTAL_STEPS:012d}.pt"
    a = load_checkpoint(trained.path / "checkpoints" / name)["learner"]["online"]
    b = load_checkpoint(tmp_path / "again" / "checkpoints" / name)["learner"]["online"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_different_seed_gives_different_metrics(trained, capsys, tmp_path):
    run = tmp_path / "seed1"
    code, _, err = cli(capsys, "train", "--run-dir", str(run), *sets(*TINY, "trainer.seed=1"))
    assert code == 0, err
    first, other = without_timing(read_metrics(trained.path)), without_timing(read_metrics(run))
    assert [r["env_steps"] for r in other] == [r["env_steps"] for r in first]
    assert other != first
    losses = [(a["train/loss"], b["train/loss"]) for a, b in zip(first, other) if "train/loss" in a]
    assert losses and all(x != y for x, y in losses)


# ---------------------------------------------------------------- help


def test_top_level_help_in_a_subprocess(tmp_path):
    result = rlkit("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: rlkit")
    for command in ("train", "eval", "config", "ablate", "plot"):
        assert re.search(rf"^\s+{command}\s+\S", result.stdout, re.M), command
    assert result.stderr == ""


def test_train_help_lists_every_config_key(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--set" in out and "--run-dir" in out and "--overwrite" in out
    assert re.search(r"^\s+replay\.n_step = 3: \S", out, re.M), out
    for section, values in to_dict(Config()).items():
        for key in values:
            assert re.search(rf"^\s+{section}\.{key} = .+: \S", out, re.M), f"{section}.{key}"


def test_eval_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--help"])
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert out.startswith("usage: rlkit eval")
    for option in ("run_dir", "--checkpoint", "--episodes", "--seed", "--device"):
        assert option in out
    assert "mean ± std" in out


def test_config_prints_the_resolved_config(capsys):
    code, out, err = cli(capsys, "config", "--set", "replay.n_step=5")
    assert code == 0, err
    printed = yaml.safe_load(out)
    assert printed["replay"]["n_step"] == 5  # from --set
    # from configs/cartpole_rainbow.yaml (the dataclass defaults differ: alpha 0.5,
    # capacity 100000)
    assert (printed["replay"]["alpha"], printed["replay"]["capacity"]) == (0.2, 10000)
    assert "extends" not in printed
    # and every key, resolved: what load_config gives for the same file and --set
    assert printed == to_dict(load_config(DEFAULT_CONFIG, ["replay.n_step=5"]))


# ---------------------------------------------------------------- bad input: one line, exit 2


BAD_YAML = "learner:\n  lr: 0.001\n  gamma: 0.99: oops\n"


@pytest.mark.parametrize(
    "argv, fragments",
    [
        (["train", "--set", "learner.lrr=1"], ["learner.lrr", "did you mean 'learner.lr'"]),
        (["train", "--set", "lerner.lr=1"], ["lerner", "did you mean 'learner'"]),
        (["train", "--set", "learner.lr=abc"], ["learner.lr", "expected a number", "'abc'"]),
        (["train", "--set", "trainer.total_steps=1.5"], ["trainer.total_steps", "integer"]),
        (["train", "--set", "learner.gamma=1.5"], ["learner.gamma", "(0, 1]", "1.5"]),
        (["train", "missing.yaml"], ["config file not found", "missing.yaml"]),
        (["train", "bad.yaml"], ["bad.yaml:3", "malformed YAML"]),
        (
            ["train", "--set", "env.id=CartPol-v1", "--run-dir", "run"],
            ["env.id", "'CartPol-v1'", "did you mean", "'CartPole-v1'"],
        ),
        (
            ["train", "--set", "env.id=Pendulum-v1", "--run-dir", "run"],
            ["Pendulum-v1", "DQN needs discrete actions"],
        ),
        (["eval", "no_such_run"], ["run dir not found", "no_such_run"]),
        (["eval", ".", "--episodes", "0"], ["--episodes", ">= 1"]),
    ],
    ids=[
        "unknown-key",
        "unknown-section",
        "wrong-type",
        "wrong-type-int",
        "out-of-range",
        "missing-config",
        "malformed-yaml",
        "unknown-env",
        "continuous-actions",
        "eval-missing-dir",
        "eval-bad-episodes",
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(capsys, tmp_path, argv, fragments):
    (tmp_path / "bad.yaml").write_text(BAD_YAML)
    code, out, err = cli(capsys, *argv, *sets("trainer.device=cpu") if argv[0] == "train" else ())
    assert_one_line_error(code, err, *fragments)
    assert "Traceback" not in out


def test_bad_input_exit_code_in_a_subprocess(tmp_path):
    result = rlkit("train", "--set", "learner.gamma=1.5", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "rlkit: error: --set learner.gamma: must be in (0, 1], got 1.5"
    ]
    assert not (tmp_path / "runs").exists()


def test_existing_run_dir_is_refused_and_left_untouched(trained, capsys, tmp_path):
    run = copy_run(trained.path, tmp_path / "run")
    before = snapshot(run)
    assert len(before) >= 4
    code, _, err = cli(capsys, "train", "--run-dir", str(run), *sets(*TINY))
    assert_one_line_error(code, err, str(run), "already exists", "--overwrite")
    assert snapshot(run) == before


def test_existing_run_dir_message_suggests_only_real_options(trained, capsys, tmp_path):
    run = copy_run(trained.path, tmp_path / "run")
    code, _, err = cli(capsys, "train", "--run-dir", str(run), *sets(*TINY))
    assert code == 2
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = capsys.readouterr().out
    suggested = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", err))
    assert "--overwrite" in suggested
    assert {flag for flag in suggested if flag not in help_text} == set()


def test_env_error_leaves_no_run_dir_behind(capsys, tmp_path):
    run = tmp_path / "run"
    code, _, err = cli(capsys, "train", "--run-dir", str(run), *sets(*TINY, "env.id=CartPol-v1"))
    assert_one_line_error(code, err, "CartPol-v1")
    assert not run.exists() or not any(run.iterdir()), sorted(
        str(p.relative_to(run)) for p in run.rglob("*")
    )
    code, _, err = cli(capsys, "train", "--run-dir", str(run), *sets(*TINY))
    assert code == 0, err


def test_overwrite_replaces_an_existing_run_dir(capsys, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "stale.txt").write_text("old")
    (run / "metrics.jsonl").write_text("not json\n")
    (run / "checkpoints" / "ckpt_000000999999.pt").write_bytes(b"old")
    code, out, err = cli(capsys, "train", "--run-dir", str(run), "--overwrite", *sets(*TINY))
    assert code == 0, err
    assert f"run dir: {run}" in out
    assert not (run / "stale.txt").exists()
    records = read_metrics(run)  # every line parses: the old content is gone
    assert records[-1]["env_steps"] == TOTAL_STEPS
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == [
        f"ckpt_{TOTAL_STEPS:012d}.pt"
    ]


# ---------------------------------------------------------------- bad checkpoints


def test_eval_of_a_dir_without_checkpoints(trained, capsys, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy2(trained.path / "config.yaml", run / "config.yaml")
    code, _, err = cli(capsys, "eval", str(run))
    assert_one_line_error(code, err, str(run), "no complete checkpoint")


def test_eval_of_a_dir_that_is_not_a_run_dir(capsys, tmp_path):
    (tmp_path / "plain").mkdir()
    code, _, err = cli(capsys, "eval", str(tmp_path / "plain"))
    assert_one_line_error(code, err, str(tmp_path / "plain"), "config.yaml")


def random_checkpoint(path: Path) -> Path:
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    return path


def test_eval_of_a_random_bytes_checkpoint(trained, capsys, tmp_path):
    bad = random_checkpoint(tmp_path / "random.pt")
    code, _, err = cli(capsys, "eval", str(trained.path), "--checkpoint", str(bad))
    assert_one_line_error(code, err, "cannot load checkpoint", str(bad))


def test_random_bytes_are_not_reported_as_unsafe_pickle(trained, capsys, tmp_path):
    bad = random_checkpoint(tmp_path / "random.pt")
    code, _, err = cli(capsys, "eval", str(trained.path), "--checkpoint", str(bad))
    assert code == 2
    assert "not allowed" not in err


def test_eval_of_a_truncated_newest_checkpoint(trained, capsys, tmp_path):
    run = copy_run(trained.path, tmp_path / "run")
    good = (run / "checkpoints" / f"ckpt_{TOTAL_STEPS:012d}.pt").read_bytes()
    truncated = run / "checkpoints" / f"ckpt_{TOTAL_STEPS + 100:012d}.pt"
    truncated.write_bytes(good[: len(good) // 2])
    code, _, err = cli(capsys, "eval", str(run))
    assert_one_line_error(code, err, "cannot load checkpoint", str(truncated))


def test_eval_of_a_checkpoint_for_another_network(trained, capsys, tmp_path):
    run = copy_run(trained.path, tmp_path / "run")
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["network"]["hidden_sizes"] = [32]
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    code, _, err = cli(capsys, "eval", str(run))
    assert_one_line_error(code, err, "does not match the run's network")


@pytest.mark.parametrize("kind", ["torch.save", "raw-pickle"])
@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_malicious_pickle_checkpoint_is_refused_without_running_it(trained, capsys, tmp_path, kind):
    marker = tmp_path / "pwned"
    evil = write_malicious(kind, tmp_path / "evil.pt", marker)
    code, out, err = cli(capsys, "eval", str(trained.path), "--checkpoint", str(evil))
    line = assert_one_line_error(code, err, "cannot load checkpoint", str(evil))
    assert "refuse" in line or "not allowed" in line, line
    assert not marker.exists()
    assert "return:" not in out
    # the payload is live: loading the file the unsafe way would have run it
    unsafe_load(kind, evil)
    assert marker.exists()


def test_malicious_raw_pickle_stderr_is_one_line_in_a_subprocess(trained, tmp_path):
    marker = tmp_path / "pwned"
    evil = write_malicious("raw-pickle", tmp_path / "evil.pt", marker)
    result = rlkit("eval", str(trained.path), "--checkpoint", str(evil), cwd=tmp_path)
    assert result.returncode == 2
    assert not marker.exists()
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# ---------------------------------------------------------------- --debug


@pytest.mark.parametrize(
    "argv, error",
    [
        (["--debug", "train", "--set", "learner.lrr=1"], ConfigError),
        (["train", "--set", "learner.lrr=1", "--debug"], ConfigError),
        (["eval", "no_such_run", "--debug"], RunDirError),
    ],
)
def test_debug_raises_instead_of_one_line(capsys, argv, error):
    with pytest.raises(error):
        main(argv)
    assert "rlkit: error:" not in capsys.readouterr().err


def test_debug_shows_a_traceback_in_a_subprocess(trained, tmp_path):
    bad = random_checkpoint(tmp_path / "random.pt")
    result = rlkit("--debug", "eval", str(trained.path), "--checkpoint", str(bad), cwd=tmp_path)
    assert result.returncode not in (0, 2)
    assert "Traceback (most recent call last)" in result.stderr
    assert "CheckpointError" in result.stderr
    with pytest.raises(CheckpointError):
        load_checkpoint(bad)


# ---------------------------------------------------------------- subprocess smoke


def test_train_then_eval_in_a_subprocess(tmp_path):
    trained = rlkit("train", "--run-dir", "run", *sets(*TINY), cwd=tmp_path)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert "run dir: run" in trained.stdout
    assert "tensorboard --logdir" in trained.stdout
    assert list_checkpoints(tmp_path / "run" / "checkpoints")
    evaluated = rlkit("eval", "run", "--episodes", "2", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert parse_eval(evaluated.stdout)[2] == 2
