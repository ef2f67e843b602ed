"""A training run: the train and eval entry points of the Python API and the CLI.

``train`` writes a run dir (``rlkit.app.rundir`` describes its layout), logs to
TensorBoard, metrics.jsonl and the console, checkpoints (``rlkit.app.checkpoint_state``)
and resumes exactly from the newest checkpoint (``rlkit.app.resume`` picks the config).
``evaluate_run`` evaluates a run's checkpoint greedily. The names of those modules are
re-exported here (``rlkit.app.run.RunDirError``, ``restore_state``, ...).
"""

from __future__ import annotations

import random
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from rlkit.app import checkpoint as ckpt
from rlkit.app.checkpoint_state import FORMAT_VERSION, capture_state, restore_state, state_mib
from rlkit.app.evaluation import evaluate_network, evaluate_run
from rlkit.app.loggers import JSONLLogger, MultiLogger, ProgressLogger, TensorBoardLogger
from rlkit.app.resume import config_changes, resume_config
from rlkit.app.rundir import (
    RunDirError,
    default_run_dir,
    load_run_config,
    newest_checkpoint,
    prepare_run_dir,
    require_run_dir,
    truncate_metrics,
)
from rlkit.build import (
    Components,
    build,
    build_network,
    check_replay_fits,
    frames_on_device,
    make_envs,
    precision_warning,
    resolve_device,
)
from rlkit.config import Config, dump_config, to_dict
from rlkit.envs import layout_of, space_info
from rlkit.loops.evaluate import EvalResult
from rlkit.loops.sync import NumericalError
from rlkit.support import resolve as resolve_support
from rlkit.types import Logger

__all__ = [
    "FORMAT_VERSION",
    "RunDirError",
    "capture_state",
    "check_env",
    "config_changes",
    "default_run_dir",
    "evaluate_network",
    "evaluate_run",
    "load_network_from_checkpoint",
    "load_run_config",
    "newest_checkpoint",
    "prepare_run_dir",
    "require_run_dir",
    "restore_state",
    "resume_config",
    "train",
    "truncate_metrics",
]


def check_env(config: Config) -> int:
    """Raise EnvError now for an unknown env id or unsupported spaces, and ConfigError
    for an unavailable device, a replay buffer that would not fit in memory or a
    replay.frames_on_device without frame stacks; returns
    the replay's estimated bytes."""
    device = resolve_device(config.trainer.device)
    envs = make_envs(config, 1)
    try:
        obs_shape, obs_dtype, _ = space_info(envs)
    finally:
        envs.close()
    frames_on_device(config, obs_shape, obs_dtype, device)
    if config.distributed.backend != "none":
        from rlkit.app.distributed_run import check_distributed

        check_distributed(config)
    return check_replay_fits(config, obs_shape, obs_dtype)


def load_network_from_checkpoint(path: Path, config: Config, device: torch.device):
    """The online network of the checkpoint at ``path`` (on ``device``) and its state."""
    state = ckpt.load_checkpoint(path, map_location=device)
    config, _ = resolve_support(config, state)  # ``auto``: the support the run recorded
    envs = make_envs(config, 1)
    obs_shape, _, num_actions = space_info(envs)
    envs.close()
    layout = layout_of(envs)
    net = build_network(config, obs_shape, num_actions, layout).to(device)
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
        if threading.current_thread() is not threading.main_thread():
            return self  # signals reach the main thread only (e.g. a Ray Tune trial's thread)
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


@dataclass
class _Start:
    """Where a run starts: its newest checkpoint (when resuming) or env step 0."""

    path: Path | None = None
    state: dict[str, Any] | None = None
    steps: int = 0


@dataclass
class _Logs:
    progress: ProgressLogger
    jsonl: JSONLLogger
    tensorboard: TensorBoardLogger
    logger: MultiLogger  # all three, and the caller's logger
    video: Any = None  # records an episode every eval.video_every env steps (or None)

    def on_step(self, env_steps: int) -> None:
        """The trainer's per-step progress callback."""
        self.progress.update(env_steps)
        if self.video is not None:
            self.video(env_steps)


def _start(config: Config, run_dir: Path, resume: bool, overwrite: bool, stream: IO[str]) -> _Start:
    """Resume: the newest complete checkpoint, with later metrics dropped. Otherwise a
    fresh run dir holding the config."""
    if not resume:
        prepare_run_dir(run_dir, overwrite)
        (run_dir / "config.yaml").write_text(dump_config(config))
        return _Start()
    path, state, skipped = newest_checkpoint(run_dir)
    for line in skipped:
        stream.write(f"warning: {line}\n")
    steps = int(state["env_steps"])
    truncate_metrics(run_dir / "metrics.jsonl", steps)
    return _Start(path, state, steps)


def _rank_start(
    config: Config, run_dir: Path, resume: bool, overwrite: bool, stream: IO[str]
) -> tuple[Path, _Start]:
    """``_start`` in this process's run dir: ``run_dir``, or for data-parallel rank r > 0
    (``rlkit.distributed.ddp``, e.g. under torchrun) ``run_dir/rank<r>``, once rank 0 has
    prepared ``run_dir``."""
    from rlkit.distributed import ddp

    if not ddp.init_from_env(resolve_device(config.trainer.device).type):
        return run_dir, _start(config, run_dir, resume, overwrite, stream)
    import torch.distributed as dist

    if ddp.rank() == 0:
        start = _start(config, run_dir, resume, overwrite, stream)
        dist.barrier()
        return run_dir, start
    dist.barrier()
    mine = run_dir / f"rank{ddp.rank()}"
    return mine, _start(config, mine, resume, overwrite, stream)


def _open_logs(
    config: Config, run_dir: Path, start: _Start, stream: IO[str], extra: Logger | None
) -> _Logs:
    """Progress, metrics.jsonl and TensorBoard (purging points after a resumed checkpoint),
    then ``extra`` (the caller's logger, e.g. the Python API's callback)."""
    progress = ProgressLogger(config.trainer.total_steps, stream)
    jsonl = JSONLLogger(run_dir / "metrics.jsonl")
    purge = start.steps + 1 if start.state is not None else None
    tensorboard = TensorBoardLogger(run_dir, purge_step=purge)
    chain = (jsonl, tensorboard, progress) + ((extra,) if extra is not None else ())
    logs = _Logs(progress, jsonl, tensorboard, MultiLogger(*chain))
    if config.eval.video_every > 0:
        from rlkit.app.video import VideoEvery

        logs.video = VideoEvery(config, run_dir / "videos", tensorboard.writer)
    return logs


class _Checkpointer:
    """The trainer's checkpoint callback: logs flushed, state captured, saved, pruned."""

    def __init__(self, run_dir: Path, keep: int, logs: _Logs, capture=capture_state) -> None:
        self.ckpt_dir = run_dir / "checkpoints"
        self.keep = keep
        self.logs = logs
        self.capture = capture  # components -> checkpoint state
        self.components: Components | None = None  # set once built

    def __call__(self, trainer) -> None:
        jsonl, tensorboard, components = self.logs.jsonl, self.logs.tensorboard, self.components
        # every point logged so far reaches the disk before the checkpoint that covers
        # it exists: a kill right after the checkpoint loses none, and resume drops none
        jsonl.flush()
        tensorboard.flush()
        state = self.capture(components)
        path = ckpt.checkpoint_path(self.ckpt_dir, trainer.counters.env_steps)
        size = ckpt.save_checkpoint(path, state)
        ckpt.prune_checkpoints(self.ckpt_dir, self.keep)
        replay = f", replay {state_mib(state['replay']):.1f} MiB" if "replay" in state else ""
        self.logs.progress.message(f"checkpoint {path} ({size / 2**20:.1f} MiB{replay})")


def _build_and_restore(
    config: Config, logs: _Logs, save: _Checkpointer, start: _Start, stream: IO[str]
) -> Components:
    """Build the run's components and, when resuming, put the checkpoint back into them."""
    components = build(config, logs.logger, checkpoint=save, progress=logs.on_step)
    save.components = components
    try:
        if start.state is not None:
            for warning in restore_state(components, start.state):
                stream.write(f"warning: {warning}\n")
            stream.write(f"resumed from {start.path} at env step {start.steps}\n")
    except BaseException:
        logs.logger.close()
        components.close()
        raise
    return components


def _build(config: Config, logs: _Logs, run_dir: Path, start: _Start, stream: IO[str]):
    """The run's components, on one machine (``Components``) or on Ray (``ApexRun``),
    with their checkpoint callback bound."""
    keep = config.trainer.keep_checkpoints
    if config.distributed.backend != "ray":
        return _build_and_restore(config, logs, _Checkpointer(run_dir, keep, logs), start, stream)
    from rlkit.app.distributed_run import build_distributed, capture_distributed

    save = _Checkpointer(run_dir, keep, logs, capture_distributed)
    save.components = build_distributed(config, logs, save, start, stream)
    return save.components


def _run_trainer(
    components: Components,
    logs: _Logs,
    start_steps: int,
    ckpt_dir: Path,
    also_stop: Callable[[], bool] | None = None,
) -> bool:
    """Run the trainer to its end or a stop request (a signal, or ``also_stop()``
    returning True); returns whether a stop was requested."""
    with _StopFlag() as signalled:

        def stop() -> bool:
            return signalled() or (also_stop is not None and also_stop())

        logs.progress.begin(start_steps)
        try:
            components.trainer.run(stop=stop)
        except NumericalError as exc:
            found = ckpt.list_checkpoints(ckpt_dir)
            last = (
                f"the last good checkpoint is {found[-1]}" if found else "no checkpoint was saved"
            )
            raise NumericalError(f"{exc}; training stopped, {last}") from exc
        logs.progress.update(components.trainer.counters.env_steps, force=True)
    return stop()


def _train_to_end(
    components: Components,
    logs: _Logs,
    run_dir: Path,
    start_steps: int,
    also_stop: Callable[[], bool] | None = None,
) -> EvalResult | None:
    """Train the built run to ``trainer.total_steps`` (or a stop); the final evaluation."""
    config = components.config
    steps = components.trainer.counters.env_steps
    if steps >= config.trainer.total_steps:
        logs.progress.message(
            f"the run already finished ({steps} env steps); "
            "to train longer, resume with --set trainer.total_steps=N --force"
        )
        return None
    ckpt_dir = run_dir / "checkpoints"
    stopped = _run_trainer(components, logs, start_steps, ckpt_dir, also_stop)
    result = components.trainer.last_eval
    steps = components.trainer.counters.env_steps
    if stopped:
        logs.progress.message(
            f"stopped at env step {steps}; checkpoint "
            f"saved in {ckpt_dir}; continue with: rlkit train --resume {run_dir}"
        )
    elif result is not None:
        logs.tensorboard.log_hparams(
            _flat_hparams(config), {"hparam/final_return_mean": result.mean}, env_steps=steps
        )
        logs.progress.message(
            f"final eval: return {result.mean:.1f} ± {result.std:.1f} over "
            f"{len(result.returns)} episodes"
        )
    return result


def train(
    config: Config,
    run_dir: Path,
    *,
    overwrite: bool = False,
    resume: bool = False,
    stream=None,
    logger: Logger | None = None,
    stop: Callable[[], bool] | None = None,
) -> tuple[Components, EvalResult | None]:
    """Train ``config`` into ``run_dir`` with TensorBoard, JSONL and progress logging.

    ``resume``: continue ``run_dir`` from its newest complete checkpoint (``config``
    should come from ``resume_config``). Metrics logged after that checkpoint are
    dropped from metrics.jsonl and TensorBoard, so no point appears twice.
    ``logger`` also receives every logged point; ``stop()`` returning True (checked after
    each env step) ends the run with a checkpoint, as Ctrl-C does.
    """
    stream = stream if stream is not None else sys.stdout
    replay_need = check_env(config)  # fail on a bad env (or Ray) before anything is written
    stream.write(
        f"replay: {config.replay.capacity} transitions, {replay_need / 2**20:.1f} MiB "
        "(estimated before allocation)\n"
    )
    run_dir, start = _rank_start(config, run_dir, resume, overwrite, stream)
    config, support = resolve_support(config, start.state)  # config.yaml keeps ``auto``
    if support is not None:
        stream.write(support.line() + "\n")
    logs = _open_logs(config, run_dir, start, stream, logger)
    random.seed(config.trainer.seed)
    np.random.seed(config.trainer.seed)
    components = _build(config, logs, run_dir, start, stream)
    if logs.video is not None:
        logs.video.bind(components)
    stream.write(f"run dir: {run_dir}\n")
    stream.write(
        f"device: {components.device}; TensorBoard: tensorboard --logdir {run_dir.parent}\n"
    )
    if (slow := precision_warning(config, components.device)) is not None:
        stream.write(f"warning: {slow}\n")
    stream.flush()
    try:
        result = _train_to_end(components, logs, run_dir, start.steps, stop)
    finally:
        logs.logger.close()
        components.close()
    return components, result


def _flat_hparams(config: Config) -> dict[str, Any]:
    flat = {}
    for section, values in to_dict(config).items():
        for key, value in values.items():
            flat[f"{section}.{key}"] = value if not isinstance(value, (list, dict)) else str(value)
    return flat
