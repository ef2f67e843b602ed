"""A training run on disk: run dir layout, checkpoint state, train and eval entry points.

Run dir layout::

    RUN_DIR/config.yaml      the resolved config
    RUN_DIR/metrics.jsonl    one JSON object per logged point (env_steps + scalar tags)
    RUN_DIR/events.out.*     TensorBoard event files
    RUN_DIR/checkpoints/     ckpt_<env_steps>.pt, the newest ``keep_checkpoints`` kept
"""

from __future__ import annotations

import dataclasses
import random
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlkit import checkpoint as ckpt
from rlkit.build import Components, build, build_network, make_envs
from rlkit.config import Config, dump_config, from_dict, read_yaml, to_dict
from rlkit.envs import space_info
from rlkit.evaluate import EvalResult, evaluate
from rlkit.logging import JSONLLogger, MultiLogger, ProgressLogger, TensorBoardLogger

FORMAT_VERSION = 1


class RunDirError(ValueError):
    """A run dir that cannot be used as asked (exists, missing, incomplete)."""


def default_run_dir(config: Config, config_path: str | None) -> Path:
    stem = Path(config_path).stem if config_path else "cartpole_rainbow"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{stem}-seed{config.trainer.seed}-{stamp}"
    path, k = base, 1
    while path.exists():
        path = base.with_name(f"{base.name}-{k}")
        k += 1
    return path


def prepare_run_dir(run_dir: Path, overwrite: bool) -> None:
    """Create a fresh run dir; an existing non-empty one is refused unless ``overwrite``."""
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        if not overwrite:
            raise RunDirError(
                f"run dir {run_dir} already exists; choose another --run-dir or pass "
                "--overwrite to replace it"
            )
        if run_dir.is_dir():
            shutil.rmtree(run_dir)
        else:
            run_dir.unlink()
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)


def check_env(config: Config) -> None:
    """Raise EnvError now for an unknown env id or unsupported spaces."""
    make_envs(config, 1).close()


# ---------------------------------------------------------------- checkpoint state


def capture_state(components: Components) -> dict[str, Any]:
    """Everything a checkpoint holds, as tensors and plain values."""
    trainer = components.trainer
    state: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "config": to_dict(components.config),
        "counters": dataclasses.asdict(trainer.counters),
        "learner": components.learner.state_dict(),
        "nstep": components.nstep.state_dict(),
        "rng": {
            "python": random.getstate(),
            "torch": torch.get_rng_state(),
            "policy": trainer.collector.policy.rng.bit_generator.state,
        },
    }
    if components.config.replay.save_in_checkpoint:
        state["replay"] = components.replay.state_dict()
    return state


def load_network_from_checkpoint(path: Path, config: Config, device: torch.device):
    state = ckpt.load_checkpoint(path, map_location=device)
    envs = make_envs(config, 1)
    obs_shape, _, num_actions = space_info(envs)
    envs.close()
    net = build_network(config, obs_shape, num_actions).to(device)
    try:
        net.load_state_dict(state["learner"]["online"])
    except (KeyError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise ckpt.CheckpointError(
            f"checkpoint {path} does not match the run's network: {first}"
        ) from exc
    return net, state


# ---------------------------------------------------------------- train


class _StopFlag:
    """SIGINT/SIGTERM set a flag; the trainer finishes its step, checkpoints and returns."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:  # noqa: ARG002
        if self.requested:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def __call__(self) -> bool:
        return self.requested


def train(
    config: Config,
    run_dir: Path,
    *,
    overwrite: bool = False,
    stream=None,
) -> tuple[Components, EvalResult | None]:
    """Train ``config`` into ``run_dir`` with TensorBoard, JSONL and progress logging."""
    stream = stream if stream is not None else sys.stdout
    check_env(config)  # fail on a bad env before anything is written
    prepare_run_dir(run_dir, overwrite)
    (run_dir / "config.yaml").write_text(dump_config(config))
    progress = ProgressLogger(config.trainer.total_steps, stream)
    jsonl = JSONLLogger(run_dir / "metrics.jsonl")
    tensorboard = TensorBoardLogger(run_dir)
    logger = MultiLogger(jsonl, tensorboard, progress)
    random.seed(config.trainer.seed)
    np.random.seed(config.trainer.seed)
    ckpt_dir = run_dir / "checkpoints"
    keep = config.trainer.keep_checkpoints

    def save(trainer) -> None:
        state = capture_state(components)
        path = ckpt.checkpoint_path(ckpt_dir, trainer.counters.env_steps)
        size = ckpt.save_checkpoint(path, state)
        ckpt.prune_checkpoints(ckpt_dir, keep)
        jsonl.flush()
        tensorboard.flush()
        progress.message(f"checkpoint {path} ({size / 2**20:.1f} MiB)")

    components = build(config, logger, checkpoint=save, progress=progress.update)
    stream.write(f"run dir: {run_dir}\n")
    stream.write(
        f"device: {components.device}; TensorBoard: tensorboard --logdir {run_dir.parent}\n"
    )
    stream.flush()
    try:
        with _StopFlag() as stop:
            progress.begin(0)
            components.trainer.run(stop=stop)
            progress.update(components.trainer.counters.env_steps, force=True)
        result = components.trainer.last_eval
        if stop.requested:
            progress.message(
                f"stopped at env step {components.trainer.counters.env_steps}; "
                f"checkpoint saved in {ckpt_dir}"
            )
        elif result is not None:
            tensorboard.log_hparams(
                _flat_hparams(config),
                {"hparam/final_return_mean": result.mean},
                env_steps=components.trainer.counters.env_steps,
            )
            progress.message(
                f"final eval: return {result.mean:.1f} ± {result.std:.1f} over "
                f"{len(result.returns)} episodes"
            )
    finally:
        logger.close()
        components.close()
    return components, result


def _flat_hparams(config: Config) -> dict[str, Any]:
    flat = {}
    for section, values in to_dict(config).items():
        for key, value in values.items():
            flat[f"{section}.{key}"] = value if not isinstance(value, (list, dict)) else str(value)
    return flat


# ---------------------------------------------------------------- eval


def load_run_config(run_dir: Path) -> Config:
    path = run_dir / "config.yaml"
    if not run_dir.is_dir():
        raise RunDirError(f"run dir not found: {run_dir}")
    if not path.is_file():
        raise RunDirError(f"{run_dir} is not an rlkit run dir (no config.yaml)")
    return from_dict(read_yaml(path) or {}, str(path))


def evaluate_run(
    run_dir: Path,
    checkpoint: Path | None = None,
    episodes: int | None = None,
    seed: int | None = None,
    device: str | None = None,
) -> tuple[EvalResult, Path]:
    """Greedy evaluation of a run's newest (or the given) checkpoint."""
    config = load_run_config(run_dir)
    if checkpoint is None:
        found = ckpt.list_checkpoints(run_dir / "checkpoints")
        if not found:
            raise RunDirError(f"{run_dir} has no complete checkpoint in {run_dir / 'checkpoints'}")
        checkpoint = found[-1]
    from rlkit.build import resolve_device

    dev = resolve_device(device or config.trainer.device)
    net, _ = load_network_from_checkpoint(checkpoint, config, dev)
    episodes = episodes or config.eval.episodes
    envs = make_envs(config, min(episodes, 10))
    try:
        seed = config.trainer.seed + 7 if seed is None else seed
        result = evaluate(
            net,
            envs,
            episodes,
            device=dev,
            seed=seed,
            epsilon=config.eval.epsilon,
            gamma=config.learner.gamma,
        )
    finally:
        envs.close()
    return result, checkpoint
