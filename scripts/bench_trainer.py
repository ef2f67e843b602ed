"""Benchmark the training loop: rlkit's plain DQN and Rainbow against Stable-Baselines3's DQN.

CPU (the default): SB3's ``DQN`` and rlkit's ``configs/cartpole_dqn.yaml`` train on
CartPole-v1 with the SB3 zoo's tuned hyperparameters (lr 2.3e-3, batch 64, buffer 100k,
learning_starts 1000, gamma 0.99, target update every 10 env steps, 128 gradient steps
every 256 env steps, epsilon 1 -> 0.04 over 8,000 env steps, MLP 256-256), plus rlkit's
``configs/cartpole_rainbow.yaml`` for its own speed. CUDA (``--device cuda``): rlkit
Rainbow on the GPU, as configured and at batch 512 with a wider net (512-512 torso,
512-wide dueling streams).

Every measured run is a fresh subprocess (``--worker``) that prints one JSON line. The
clock covers SB3's ``model.learn()`` / rlkit's ``trainer.run()`` only: imports, env and
model construction are outside it, and so is rlkit's final greedy evaluation (which
``trainer.run()`` performs before returning; its time is measured and subtracted). The
final return is the mean of 10 greedy episodes after training, for both frameworks.
Runs are interleaved (SB3, rlkit, ... for seed 0, then seed 1, ...) so that all see the
same drift of a shared machine; the table reports medians over seeds.

    python scripts/bench_trainer.py                  # 50,000 env steps x 3 seeds, CPU
    python scripts/bench_trainer.py --quick          # 5,000 env steps x 1 seed: smoke run
    python scripts/bench_trainer.py --device cuda    # Rainbow on a GPU (exit 2 without one)
    python scripts/bench_trainer.py --repeats 20 --jobs 2 --no-rainbow --sb3-default-threads 0
        # final returns over 20 seeds, two runs at a time (speeds then not compared)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # this checkout's rlkit, also when run directly
    sys.path.insert(0, str(REPO))
DQN_CONFIG = "configs/cartpole_dqn.yaml"
RAINBOW_CONFIG = "configs/cartpole_rainbow.yaml"
ENV_ID = "CartPole-v1"
EVAL_EPISODES = 10
EVAL_SEED_OFFSET = 1_000_003  # evaluation episodes never reuse the training seeds
EPSILON_STEPS = 8_000  # zoo: exploration_fraction 0.16 of 50,000 env steps

# The SB3 zoo's tuned CartPole-v1 DQN (rl-baselines3-zoo, hyperparams/dqn.yml).
ZOO = {
    "learning_rate": 2.3e-3,
    "batch_size": 64,
    "buffer_size": 100_000,
    "learning_starts": 1_000,
    "gamma": 0.99,
    "target_update_interval": 10,
    "train_freq": 256,
    "gradient_steps": 128,
    "exploration_initial_eps": 1.0,
    "exploration_final_eps": 0.04,
    "net_arch": [256, 256],
}
SB3_LABEL = "DQN, rl-zoo CartPole-v1 hyperparameters"
# GPU variant: a larger batch and a wider net than the CartPole config.
CUDA_LARGE = [
    "learner.batch_size=512",
    "network.hidden_sizes=[512, 512]",
    "network.head_hidden=512",
]

EXIT_NO_GPU = 2


# ---------------------------------------------------------------- workers (one run each)


class NullLogger:
    """The trainer's Logger protocol, doing nothing (no I/O inside the timed loop)."""

    def log(self, env_steps: int, scalars: dict[str, float]) -> None:
        pass

    def close(self) -> None:
        pass


class TimedCall:
    """Wraps the trainer's evaluate callable and adds up the seconds spent inside it."""

    def __init__(self, fn) -> None:
        self.fn = fn
        self.seconds = 0.0
        self.calls = 0

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1


def zoo_mismatches(config) -> list[str]:
    """Where an rlkit config differs from the zoo hyperparameters SB3 runs with."""
    lc, t, r, e = config.learner, config.trainer, config.replay, config.exploration
    n = config.network
    pairs = {
        "learner.lr": (lc.lr, ZOO["learning_rate"]),
        "learner.batch_size": (lc.batch_size, ZOO["batch_size"]),
        "replay.capacity": (r.capacity, ZOO["buffer_size"]),
        "trainer.learning_starts": (t.learning_starts, ZOO["learning_starts"]),
        "learner.gamma": (lc.gamma, ZOO["gamma"]),
        "learner.target_update_period": (lc.target_update_period, ZOO["target_update_interval"]),
        "trainer.train_every": (t.train_every, ZOO["train_freq"]),
        "trainer.updates_per_train": (t.updates_per_train, ZOO["gradient_steps"]),
        "exploration.epsilon_start": (e.epsilon_start, ZOO["exploration_initial_eps"]),
        "exploration.epsilon_end": (e.epsilon_end, ZOO["exploration_final_eps"]),
        "exploration.epsilon_steps": (e.epsilon_steps, EPSILON_STEPS),
        "network.hidden_sizes": (list(n.hidden_sizes), ZOO["net_arch"]),
        "network.head_hidden": (n.head_hidden or 0, 0),
        # SB3's DQN: max target, Huber loss, grad-norm clip 10, Adam eps 1e-8, no extras.
        "learner.double_q": (lc.double_q, False),
        "learner.loss": (lc.loss, "huber"),
        "learner.max_grad_norm": (lc.max_grad_norm, 10.0),
        "learner.adam_eps": (lc.adam_eps, 1e-8),
        "network.dueling": (n.dueling, False),
        "network.noisy": (n.noisy, False),
        "network.atoms": (n.atoms, 1),
        "replay.prioritized": (r.prioritized, False),
        "replay.n_step": (r.n_step, 1),
    }
    return [
        f"{k}={ours!r} (SB3 {theirs!r})" for k, (ours, theirs) in pairs.items() if ours != theirs
    ]


def worker_sb3(seed: int, steps: int, threads: int) -> dict:
    """Train SB3's DQN with the zoo hyperparameters; time ``learn()`` only."""
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    from stable_baselines3 import DQN
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.logger import Logger

    env = make_vec_env(ENV_ID, n_envs=1, seed=seed)
    model = DQN(
        "MlpPolicy",
        env,
        learning_rate=ZOO["learning_rate"],
        batch_size=ZOO["batch_size"],
        buffer_size=ZOO["buffer_size"],
        learning_starts=ZOO["learning_starts"],
        gamma=ZOO["gamma"],
        target_update_interval=ZOO["target_update_interval"],
        train_freq=ZOO["train_freq"],
        gradient_steps=ZOO["gradient_steps"],
        exploration_initial_eps=ZOO["exploration_initial_eps"],
        exploration_final_eps=ZOO["exploration_final_eps"],
        # SB3's schedule is a fraction of the run; this keeps it at 8,000 env steps.
        exploration_fraction=min(1.0, EPSILON_STEPS / steps),
        policy_kwargs={"net_arch": ZOO["net_arch"]},
        seed=seed,
        device="cpu",
        verbose=0,
    )
    # The logger learn() would configure, minus the empty SB3-* folder it leaves in /tmp.
    model.set_logger(Logger(folder=None, output_formats=[]))
    start = time.perf_counter()
    model.learn(total_timesteps=steps)
    train_s = time.perf_counter() - start

    eval_env = make_vec_env(ENV_ID, n_envs=1, seed=seed + EVAL_SEED_OFFSET)
    start = time.perf_counter()
    returns, _ = evaluate_policy(
        model,
        eval_env,
        n_eval_episodes=EVAL_EPISODES,
        deterministic=True,
        return_episode_rewards=True,
    )
    eval_s = time.perf_counter() - start
    env.close()
    eval_env.close()
    return {
        "env_steps": int(model.num_timesteps),
        "updates": int(model._n_updates),
        "train_s": train_s,
        "eval_s": eval_s,
        "returns": [float(x) for x in returns],
        "torch_threads": torch.get_num_threads(),
        "device": "cpu",
        "notes": [],
    }


def worker_rlkit(
    config_path: str, seed: int, steps: int, threads: int, device: str, overrides: list[str]
) -> dict:
    """Train an rlkit config; time ``trainer.run()`` minus the evaluation inside it."""
    import random

    import numpy as np
    import torch

    from rlkit.build import build
    from rlkit.config import load_config

    sets = [
        f"trainer.total_steps={steps}",
        f"trainer.seed={seed}",
        f"trainer.device={device}",
        f"trainer.num_threads={threads}",  # 0 = torch's default
        "trainer.checkpoint_every=0",
        "eval.every=0",  # no periodic evaluation: only the final one, excluded below
        f"eval.episodes={EVAL_EPISODES}",
        "eval.epsilon=0.0",
        *overrides,
    ]
    config = load_config(REPO / config_path, sets)
    random.seed(seed)  # as rlkit.app.run.train does
    np.random.seed(seed)
    components = build(config, NullLogger())  # no checkpoint callable: nothing is saved
    trainer = components.trainer
    if not hasattr(trainer, "evaluate_fn"):
        raise SystemExit("bench_trainer: Trainer has no evaluate_fn; update the benchmark")
    timed_eval = TimedCall(trainer.evaluate_fn)
    trainer.evaluate_fn = timed_eval
    start = time.perf_counter()
    counters = trainer.run()
    if components.device.type == "cuda":
        torch.cuda.synchronize()
    run_s = time.perf_counter() - start
    result = trainer.last_eval
    components.close()
    notes = zoo_mismatches(config) if Path(config_path).name == Path(DQN_CONFIG).name else []
    return {
        "env_steps": int(counters.env_steps),
        "updates": int(counters.updates),
        "train_s": run_s - timed_eval.seconds,
        "eval_s": timed_eval.seconds,
        "eval_calls": timed_eval.calls,
        "returns": [float(x) for x in result.returns] if result is not None else [],
        "torch_threads": torch.get_num_threads(),
        "device": str(components.device),
        "notes": notes,
    }


def run_worker(args: argparse.Namespace, started: float) -> None:
    """One run; prints one JSON line. ``started``: perf_counter at main(), before torch."""
    if args.worker == "sb3":
        out = worker_sb3(args.seed, args.steps, args.threads)
    else:
        out = worker_rlkit(args.config, args.seed, args.steps, args.threads, args.device, args.set)
    out["framework"] = args.worker
    out["seed"] = args.seed
    out["steps_per_s"] = out["env_steps"] / out["train_s"]
    out["updates_per_s"] = out["updates"] / out["train_s"]
    out["final_return"] = statistics.fmean(out["returns"]) if out["returns"] else float("nan")
    out["wall_s"] = time.perf_counter() - started
    print(json.dumps(out))


# ---------------------------------------------------------------- driver


@dataclass
class Variant:
    """One row of the table: a framework, a config and the settings it runs with."""

    framework: str  # "sb3" | "rlkit"
    label: str  # shown in the table
    config: str = ""  # rlkit config path, relative to the repository root
    threads: int = 1  # torch threads; 0 = torch's default
    device: str = "cpu"
    overrides: list[str] = field(default_factory=list)
    max_seeds: int | None = None  # run only seeds 0..max_seeds-1 (None: every seed)
    results: list[dict] = field(default_factory=list)
    failures: int = 0
    timeouts: int = 0

    def argv(self, seed: int, steps: int) -> list[str]:
        argv = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            self.framework,
            "--seed",
            str(seed),
            "--steps",
            str(steps),
            "--threads",
            str(self.threads),
            "--device",
            self.device,
        ]
        if self.framework == "rlkit":
            argv += ["--config", self.config]
            for item in self.overrides:
                argv += ["--set", item]
        return argv

    def median(self, key: str) -> float:
        return statistics.median(r[key] for r in self.results)


def cpu_variants(args: argparse.Namespace, sb3_available: bool) -> list[Variant]:
    variants = []
    if sb3_available:
        variants.append(Variant("sb3", SB3_LABEL, threads=1))
    variants.append(Variant("rlkit", f"rlkit {DQN_CONFIG}", DQN_CONFIG, threads=1))
    if sb3_available and args.sb3_default_threads > 0:
        n = min(args.sb3_default_threads, args.repeats)
        variants.append(Variant("sb3", SB3_LABEL, threads=0, max_seeds=n))
    if args.rainbow:
        variants.append(Variant("rlkit", f"rlkit {RAINBOW_CONFIG}", RAINBOW_CONFIG, threads=1))
    return variants


def cuda_variants() -> list[Variant]:
    return [
        Variant(
            "rlkit",
            f"rlkit {RAINBOW_CONFIG} (as configured)",
            RAINBOW_CONFIG,
            threads=1,
            device="cuda",
        ),
        Variant(
            "rlkit",
            f"rlkit {RAINBOW_CONFIG} (batch 512, torso 512-512, streams 512)",
            RAINBOW_CONFIG,
            threads=1,
            device="cuda",
            overrides=CUDA_LARGE,
        ),
    ]


def run_one(variant: Variant, seed: int, steps: int, timeout: float) -> tuple[dict | None, str]:
    """Run one worker subprocess: its JSON result (None if it failed or timed out), and
    what to print about it."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            variant.argv(seed, steps),
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout if timeout > 0 else None,
        )
    except subprocess.TimeoutExpired:  # the worker has been killed
        variant.timeouts += 1
        return None, f" timed out after {timeout:.0f} s (< {steps / timeout:,.1f} env steps/s)"
    elapsed = time.perf_counter() - start
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        variant.failures += 1
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        return None, f"  FAILED (exit {proc.returncode}) after {elapsed:.0f} s:\n{tail}"
    result = json.loads(lines[-1])
    result["process_s"] = elapsed
    variant.results.append(result)
    message = (
        f" {result['steps_per_s']:,.0f} env steps/s, {result['updates_per_s']:,.0f} updates/s, "
        f"return {result['final_return']:.1f} (train {result['train_s']:.1f} s, "
        f"eval {result['eval_s']:.1f} s, process {elapsed:.1f} s)"
    )
    return result, message


def threads_label(variant: Variant) -> str:
    if not variant.results:
        return "1" if variant.threads == 1 else "default"
    actual = variant.results[0]["torch_threads"]
    return str(actual) if variant.threads > 0 else f"{actual} (default)"


def fmt_rate(values: list[float]) -> str:
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:,.0f}"
    return f"{med:,.0f} ({min(values):,.0f}–{max(values):,.0f})"


def markdown_table(
    variants: list[Variant], baselines: dict[str, Variant], steps: int, timeout: float
) -> str:
    head = [
        "framework",
        "config",
        "torch threads",
        "env steps/s, median (min–max)",
        "updates/s, median",
        "final return per seed",
        "train s, median",
    ]
    head += [f"ratio vs {name}" for name in baselines]
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] * 3 + ["---:"] * (len(head) - 3)) + "|",
    ]
    for v in variants:
        framework = "SB3" if v.framework == "sb3" else "rlkit"
        config = v.label.removeprefix("rlkit ")
        missing = []
        if v.timeouts:
            missing.append(f"{v.timeouts} timed out (> {timeout:.0f} s)")
        if v.failures:
            missing.append(f"{v.failures} failed")
        if not v.results:
            status = "; ".join(missing)
            if v.timeouts:
                status = f"< {steps / timeout:,.1f}: " + status
            row = [framework, config, threads_label(v), status]
            lines.append("| " + " | ".join(row + [""] * (len(head) - len(row))) + " |")
            continue
        sps = [r["steps_per_s"] for r in v.results]
        cells = [
            framework,
            config,
            threads_label(v),
            fmt_rate(sps) + (f" ({'; '.join(missing)})" if missing else ""),
            f"{v.median('updates_per_s'):,.0f}",
            ", ".join(f"{r['final_return']:.0f}" for r in v.results),
            f"{v.median('train_s'):.1f}",
        ]
        for base in baselines.values():
            if not base.results:
                cells.append("")
            else:
                cells.append(f"{v.median('steps_per_s') / base.median('steps_per_s'):.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def load_average() -> float:
    """The 1-minute load average (NaN where the OS has none): other work on the machine."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return float("nan")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line() -> str:
    return (
        f"{platform.machine()}, {_cpu_model()}, {os.cpu_count()} CPUs; Python "
        f"{platform.python_version()}, torch {_version('torch')}, numpy {_version('numpy')}, "
        f"gymnasium {_version('gymnasium')}, stable-baselines3 {_version('stable-baselines3')}"
    )


SOLVED = 475.0  # CartPole-v1's reward threshold


def returns_summary(variants: list[Variant]) -> str:
    """Final returns over seeds: mean and IQM with 95% bootstrap CIs, seeds >= 475."""
    from rlkit.app.experiments.statistics import iqm, mean, stratified_bootstrap_ci

    lines = [
        "| framework | config | seeds | mean [95% CI] | IQM [95% CI] | median | seeds >= 475 |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    seen = set()
    for v in variants:
        if not v.results or (v.framework, v.config) in seen:
            continue  # SB3 at default threads trains the same seeds as at 1 thread
        seen.add((v.framework, v.config))
        x = [r["final_return"] for r in v.results]
        m_lo, m_hi = stratified_bootstrap_ci([x], statistic=mean)
        i_lo, i_hi = stratified_bootstrap_ci([x], statistic=iqm)
        solved = sum(r >= SOLVED for r in x)
        lines.append(
            f"| {'SB3' if v.framework == 'sb3' else 'rlkit'} | {v.label.removeprefix('rlkit ')} "
            f"| {len(x)} | {mean(x):.0f} [{m_lo:.0f}, {m_hi:.0f}] "
            f"| {iqm(x):.0f} [{i_lo:.0f}, {i_hi:.0f}] | {statistics.median(x):.0f} "
            f"| {solved}/{len(x)} |"
        )
    return "\n".join(lines)


def returns_headline(dqn: Variant, sb3: Variant) -> None:
    """The final-return half of the target: rlkit DQN's mean against SB3's, with the CI of
    the difference so that a gap can be told from seed noise."""
    from rlkit.app.experiments.statistics import bootstrap_difference_ci, iqm, mean

    ours = [r["final_return"] for r in dqn.results]
    theirs = [r["final_return"] for r in sb3.results]
    d_lo, d_hi = bootstrap_difference_ci(ours, theirs, statistic=mean)
    i_lo, i_hi = bootstrap_difference_ci(ours, theirs, statistic=iqm)
    verdict = "met" if mean(ours) >= mean(theirs) else "missed"
    print(
        f"Final return: rlkit DQN mean {mean(ours):.1f} over {len(ours)} seeds vs SB3 "
        f"{mean(theirs):.1f} over {len(theirs)} (target >= SB3: {verdict}); rlkit - SB3: "
        f"mean {mean(ours) - mean(theirs):+.1f} [95% CI {d_lo:+.1f}, {d_hi:+.1f}], "
        f"IQM {iqm(ours) - iqm(theirs):+.1f} [{i_lo:+.1f}, {i_hi:+.1f}]."
    )


def report(args: argparse.Namespace, variants: list[Variant], command: str) -> None:
    sb3_1 = next((v for v in variants if v.framework == "sb3" and v.threads == 1), None)
    sb3_d = next((v for v in variants if v.framework == "sb3" and v.threads == 0), None)
    concurrent = args.jobs > 1  # runs shared the cores: no speed ratios
    candidates = {} if concurrent else {"SB3 (1 thread)": sb3_1, "SB3 (default threads)": sb3_d}
    baselines = {name: v for name, v in candidates.items() if v is not None}
    print()
    print(f"Command: `{command}`")
    print(f"Date: {datetime.date.today().isoformat()}; machine: {machine_line()}")
    if getattr(args, "gpu", None):
        print(f"GPU: {args.gpu}")
    print(
        f"{args.steps:,} env steps per run, seeds 0..{args.repeats - 1}, device {args.device}; "
        "steps/s = env steps / seconds in learn() or trainer.run() without the final "
        "evaluation; final return = mean of 10 greedy episodes after training."
    )
    for v in variants:
        if v.max_seeds is not None and v.max_seeds < args.repeats:
            print(f"{v.label}, torch's default threads: seeds 0..{v.max_seeds - 1} only.")
    if concurrent:
        print(
            f"{args.jobs} runs at a time (--jobs): the runs shared the cores, so steps/s are "
            "shown for completeness only and not compared; this run is for final returns."
        )
    loads = [r["load_avg_before"] for v in variants for r in v.results]
    if loads:
        print(f"1-minute load average before the runs: {min(loads):.1f} to {max(loads):.1f}.")
    print()
    print(markdown_table(variants, baselines, args.steps, args.timeout))
    print()
    print(returns_summary(variants))
    print()
    dqn = next((v for v in variants if v.config == DQN_CONFIG and v.results), None)
    compared = dqn is not None and sb3_1 is not None and bool(sb3_1.results)
    if compared:
        returns_headline(dqn, sb3_1)
    if compared and not concurrent:
        ratio = dqn.median("steps_per_s") / sb3_1.median("steps_per_s")
        print(
            f"Headline (same torch threads = 1): rlkit DQN / SB3 DQN env steps/s = {ratio:.2f}x "
            f"(target >= 3x: {'met' if ratio >= 3 else 'missed'})."
        )
        sb3_by_seed = {r["seed"]: r["steps_per_s"] for r in sb3_1.results}
        paired = [
            r["steps_per_s"] / sb3_by_seed[r["seed"]]
            for r in dqn.results
            if r["seed"] in sb3_by_seed
        ]
        if len(paired) > 1:
            print(
                "Per-seed ratios (each rlkit run against the SB3 run just before it): "
                + ", ".join(f"{x:.2f}x" for x in paired)
                + f"; median {statistics.median(paired):.2f}x."
            )
        if sb3_d is not None and sb3_d.results:
            ratio_d = dqn.median("steps_per_s") / sb3_d.median("steps_per_s")
            print(
                f"Against SB3 with torch's default threads "
                f"({sb3_d.results[0]['torch_threads']}): {ratio_d:.2f}x."
            )
    for v in variants:
        notes = sorted({n for r in v.results for n in r.get("notes", [])})
        if notes:
            print(f"WARNING: {v.label} differs from the SB3 zoo settings: {'; '.join(notes)}")
        if v.failures:
            print(f"WARNING: {v.failures} run(s) of {v.label} failed (see above).")
        if v.timeouts:
            print(f"WARNING: {v.timeouts} run(s) of {v.label} timed out (--timeout).")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="Each run is a fresh subprocess; the table at the end is markdown.",
    )
    parser.add_argument("--steps", type=int, default=None, help="env steps per run (50000)")
    parser.add_argument("--repeats", type=int, default=None, help="seeds per variant (3)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 5000 steps, 1 seed")
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="cpu: SB3 vs rlkit; cuda: rlkit Rainbow on a GPU",
    )
    parser.add_argument("--skip-sb3", action="store_true", help="measure rlkit only")
    parser.add_argument(
        "--rainbow",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure configs/cartpole_rainbow.yaml (CPU mode)",
    )
    parser.add_argument(
        "--sb3-default-threads",
        type=int,
        default=1,
        metavar="N",
        help="seeds of SB3 with torch's default thread count (default 1: seed 0; 0: none)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        help="seconds per run before it is killed and reported as timed out (0: none)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="runs at a time (default 1). N > 1 is for comparing final returns over many "
        "seeds: concurrent runs share the cores, so their speeds are not reported as a ratio",
    )
    # worker mode (internal): one run, one JSON line on stdout
    parser.add_argument("--worker", choices=("sb3", "rlkit"), help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--config", default=DQN_CONFIG, help=argparse.SUPPRESS)
    parser.add_argument("--set", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.steps = args.steps or (5_000 if args.quick else 50_000)
    args.repeats = args.repeats or (1 if args.quick else 3)
    if args.steps < 1 or args.repeats < 1 or args.jobs < 1:
        parser.error("--steps, --repeats and --jobs must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    args = parse_args(argv)
    if args.worker:
        run_worker(args, started)
        return 0
    command = "python scripts/bench_trainer.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    command = command.strip()
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print(
                f"bench_trainer: --device cuda needs a CUDA GPU, but none is available "
                f"(torch {torch.__version__}, built with CUDA {torch.version.cuda or 'none'}); "
                "nothing was measured",
                file=sys.stderr,
            )
            return EXIT_NO_GPU
        variants = cuda_variants()
        args.gpu = torch.cuda.get_device_name(0)
        print(f"# GPU: {args.gpu}")
    else:
        sb3_available = not args.skip_sb3 and _version("stable-baselines3") != "not installed"
        if not args.skip_sb3 and not sb3_available:
            print(
                "# stable-baselines3 is not installed (pip install -c constraints.txt "
                "stable-baselines3): measuring rlkit only"
            )
        variants = cpu_variants(args, sb3_available)
    print(f"# {machine_line()}")
    plan = [
        (seed, v)
        for seed in range(args.repeats)  # interleaved: every variant once per seed
        for v in variants
        if v.max_seeds is None or seed < v.max_seeds
    ]

    def one(k: int, seed: int, v: Variant) -> None:
        load = load_average()
        start_line = (
            f"[{k}/{len(plan)}] {v.label}, threads {v.threads or 'default'}, seed {seed} "
            f"(load avg {load:.1f})"
        )
        if args.jobs == 1:
            print(start_line + " ...", end="", flush=True)
        r, message = run_one(v, seed, args.steps, args.timeout)
        if r is not None:
            r["load_avg_before"] = load
        print((start_line + ":" if args.jobs > 1 else "") + message, flush=True)

    if args.jobs == 1:
        for k, (seed, v) in enumerate(plan, 1):
            one(k, seed, v)
    else:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for future in [pool.submit(one, k, s, v) for k, (s, v) in enumerate(plan, 1)]:
                future.result()
        for v in variants:  # completion order -> seed order
            v.results.sort(key=lambda r: r["seed"])
    report(args, variants, command)
    return 1 if any(v.failures for v in variants) else 0


if __name__ == "__main__":
    sys.exit(main())
