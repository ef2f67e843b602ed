"""A training run on disk: run dir layout, checkpoint state, train and eval entry points.

Run dir layout::

    RUN_DIR/config.yaml      the resolved config
    RUN_DIR/metrics.jsonl    one JSON object per logged point (env_steps + scalar tags)
    RUN_DIR/events.out.*     TensorBoard event files
    RUN_DIR/checkpoints/     ckpt_<env_steps>.pt, the newest ``keep_checkpoints`` kept
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlkit.app import checkpoint as ckpt
from rlkit.app.loggers import JSONLLogger, MultiLogger, ProgressLogger, TensorBoardLogger
from rlkit.build import (
    Components,
    build,
    build_network,
    check_replay_fits,
    make_envs,
    resolve_device,
)
from rlkit.config import Config, dump_config, from_dict, read_yaml, to_dict
from rlkit.envs import space_info
from rlkit.loops.evaluate import EvalResult, evaluate
from rlkit.loops.sync import NumericalError

FORMAT_VERSION = ckpt.FORMAT_VERSION


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
                f"run dir {run_dir} already exists; continue it with --resume {run_dir}, "
                "choose another --run-dir, or pass "
                "--overwrite to replace it"
            )
        if run_dir.is_dir():
            shutil.rmtree(run_dir)
        else:
            run_dir.unlink()
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)


def check_env(config: Config) -> int:
    """Raise EnvError now for an unknown env id or unsupported spaces, and ConfigError
    for an unavailable device or a replay buffer that would not fit in memory; returns
    the replay's estimated bytes."""
    resolve_device(config.trainer.device)
    envs = make_envs(config, 1)
    try:
        obs_shape, obs_dtype, _ = space_info(envs)
    finally:
        envs.close()
    return check_replay_fits(config, obs_shape, obs_dtype)


# ---------------------------------------------------------------- checkpoint state


def _numpy_global_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "name": name,
        "keys": torch.from_numpy(keys.copy()),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached),
    }


def _set_numpy_global_state(state: dict[str, Any]) -> None:
    np.random.set_state(
        (
            state["name"],
            state["keys"].numpy(),
            state["pos"],
            state["has_gauss"],
            state["cached_gaussian"],
        )
    )


def capture_state(components: Components) -> dict[str, Any]:
    """Everything a checkpoint holds, as tensors and plain values: networks, optimizer,
    replay contents (unless ``replay.save_in_checkpoint`` is false), the replay's meta
    state (PER max priority, sampler generator; always), n-step queues, collector and
    env state, counters, the open logging window and every random generator. The replay
    arrays share memory with the live buffer: save the result before training goes on."""
    trainer = components.trainer
    state: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "config": to_dict(components.config),
        "env_steps": trainer.counters.env_steps,
        "trainer": trainer.state_dict(),
        "learner": components.learner.state_dict(),
        "nstep": components.nstep.state_dict(),
        "collector": trainer.collector.state_dict(),
        "replay_meta": components.replay.meta_state_dict(),
        "rng": {
            "python": random.getstate(),
            "numpy": _numpy_global_state(),
            "torch": torch.get_rng_state(),
            "eval": components.eval_rng.bit_generator.state,
        },
    }
    if components.device.type == "cuda":
        state["rng"]["cuda"] = torch.cuda.get_rng_state(components.device)
    if components.config.replay.save_in_checkpoint:
        state["replay"] = components.replay.state_dict()
    return state


def restore_state(components: Components, state: dict[str, Any]) -> list[str]:
    """Put a ``capture_state`` result back into freshly built components. Returns
    warnings for what could not be restored exactly (the run goes on without it)."""
    warnings: list[str] = []
    trainer = components.trainer
    try:
        components.learner.load_state_dict(state["learner"])
        trainer.load_state_dict(state["trainer"])
        exact_envs = trainer.collector.load_state_dict(state["collector"])
        if exact_envs:
            components.nstep.load_state_dict(state["nstep"])
        else:
            reason = state["collector"]["envs"].get("reason", "")
            warnings.append(
                f"the environment state could not be saved ({reason}); episodes restart "
                "from a reset, so this run will differ from an uninterrupted one"
            )
            trainer.collector.reset(
                seed=components.config.trainer.seed + trainer.counters.env_steps
            )
        warnings += _restore_replay(components, state)
        rng = state["rng"]
        random.setstate(_as_python_random_state(rng["python"]))
        _set_numpy_global_state(rng["numpy"])
        torch.set_rng_state(rng["torch"])
        components.eval_rng.bit_generator.state = rng["eval"]
        if "cuda" in rng and components.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], components.device)
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ckpt.CheckpointError(f"checkpoint does not match this run: {first}") from exc
    return warnings


def _restore_replay(components: Components, state: dict[str, Any]) -> list[str]:
    """Replay contents when saved; otherwise only its meta state (max priority, sampler
    generator), and learning waits until the buffer is refilled. Returns warnings."""
    replay = components.replay
    if "replay" in state:
        replay.load_state_dict(state["replay"])
        return []
    replay.load_meta_state_dict(state["replay_meta"])
    refill = min(components.config.trainer.learning_starts, replay.capacity)
    components.trainer.wait_for_replay(refill)
    return [
        "the checkpoint holds no replay contents (replay.save_in_checkpoint: false); "
        f"the replay buffer restarts empty and learning waits until it holds {refill} "
        "transitions again (min of trainer.learning_starts and replay.capacity)"
    ]


def _as_python_random_state(saved: Any) -> tuple:
    """``random.getstate()`` comes back from a checkpoint with lists for tuples."""
    version, internal, gauss = saved
    return (version, tuple(internal), gauss)


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


def newest_checkpoint(run_dir: Path) -> tuple[Path, dict[str, Any], list[str]]:
    """The newest checkpoint of ``run_dir`` that loads, its state, and a warning for each
    newer one that did not (corrupt or truncated files are skipped, never deleted)."""
    require_run_dir(run_dir, "--resume: ")
    ckpt.check_torch_version()  # one clear error, not "every checkpoint is unreadable"
    found = ckpt.list_checkpoints(run_dir / "checkpoints")
    skipped: list[str] = []
    for path in reversed(found):
        try:
            return path, ckpt.load_checkpoint(path), skipped
        except ckpt.CheckpointError as exc:
            skipped.append(f"skipping {exc}")
    raise RunDirError(
        f"--resume: {run_dir} has no complete checkpoint in {run_dir / 'checkpoints'}"
        + (f" ({len(found)} unreadable)" if found else "")
        + "; start it again with --overwrite"
    )


def config_changes(old: Config, new: Config) -> list[str]:
    """``section.key: old -> new`` for every field that differs."""
    a, b = to_dict(old), to_dict(new)
    return [
        f"{section}.{key}: {a[section][key]!r} -> {b[section][key]!r}"
        for section in a
        for key in a[section]
        if a[section][key] != b[section][key]
    ]


def resume_config(
    run_dir: Path,
    config_path: str | Path | None,
    overrides: list[str],
    force: bool,
) -> Config:
    """The config a resumed run continues with: the saved one, or ``config_path``, plus
    ``overrides``. A config that differs from the saved one is refused without
    ``force``; with it, the new config is saved and the old one kept beside it."""
    from rlkit.config import ConfigError, load_config

    require_run_dir(run_dir, "--resume: ")
    saved = load_run_config(run_dir)
    config = load_config(config_path or run_dir / "config.yaml", overrides)
    changes = config_changes(saved, config)
    if changes and not force:
        shown = "; ".join(changes[:3]) + (
            f"; and {len(changes) - 3} more" if len(changes) > 3 else ""
        )
        raise ConfigError(
            f"--resume {run_dir}: the config differs from the run's saved config ({shown}); "
            "pass --force to continue with it"
        )
    if changes:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        old = run_dir / "config.yaml"
        old.rename(run_dir / f"config.before-resume-{stamp}.yaml")
        ckpt.atomic_write_bytes(old, dump_config(config).encode())
    return config


def truncate_metrics(path: Path, env_steps: int) -> int:
    """Drop the JSONL records logged after ``env_steps`` (and a half-written last line);
    returns how many were dropped. The file is rewritten atomically."""
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
            keep = int(record["env_steps"]) <= env_steps
        except (ValueError, KeyError, TypeError):
            keep = False
        if keep:
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        ckpt.atomic_write_bytes(path, "".join(f"{line}\n" for line in kept).encode())
    return dropped


def _state_mib(state: Any) -> float:
    """MiB of tensor data in a (nested) checkpoint section."""
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size() / 2**20
    if isinstance(state, dict):
        return sum(_state_mib(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(_state_mib(v) for v in state)
    return 0.0


def train(
    config: Config,
    run_dir: Path,
    *,
    overwrite: bool = False,
    resume: bool = False,
    stream=None,
) -> tuple[Components, EvalResult | None]:
    """Train ``config`` into ``run_dir`` with TensorBoard, JSONL and progress logging.

    ``resume``: continue ``run_dir`` from its newest complete checkpoint (``config``
    should come from ``resume_config``). Metrics logged after that checkpoint are
    dropped from metrics.jsonl and TensorBoard, so no point appears twice.
    """
    stream = stream if stream is not None else sys.stdout
    replay_need = check_env(config)  # fail on a bad env before anything is written
    stream.write(
        f"replay: {config.replay.capacity} transitions, {replay_need / 2**20:.1f} MiB "
        "(estimated before allocation)\n"
    )
    start_state: dict[str, Any] | None = None
    start_steps = 0
    if resume:
        start_path, start_state, skipped = newest_checkpoint(run_dir)
        for line in skipped:
            stream.write(f"warning: {line}\n")
        start_steps = int(start_state["env_steps"])
        truncate_metrics(run_dir / "metrics.jsonl", start_steps)
    else:
        prepare_run_dir(run_dir, overwrite)
        (run_dir / "config.yaml").write_text(dump_config(config))
    progress = ProgressLogger(config.trainer.total_steps, stream)
    jsonl = JSONLLogger(run_dir / "metrics.jsonl")
    tensorboard = TensorBoardLogger(run_dir, purge_step=start_steps + 1 if resume else None)
    logger = MultiLogger(jsonl, tensorboard, progress)
    random.seed(config.trainer.seed)
    np.random.seed(config.trainer.seed)
    ckpt_dir = run_dir / "checkpoints"
    keep = config.trainer.keep_checkpoints

    def save(trainer) -> None:
        # every point logged so far reaches the disk before the checkpoint that covers
        # it exists: a kill right after the checkpoint loses none, and resume drops none
        jsonl.flush()
        tensorboard.flush()
        state = capture_state(components)
        path = ckpt.checkpoint_path(ckpt_dir, trainer.counters.env_steps)
        size = ckpt.save_checkpoint(path, state)
        ckpt.prune_checkpoints(ckpt_dir, keep)
        replay = f", replay {_state_mib(state['replay']):.1f} MiB" if "replay" in state else ""
        progress.message(f"checkpoint {path} ({size / 2**20:.1f} MiB{replay})")

    components = build(config, logger, checkpoint=save, progress=progress.update)
    try:
        if start_state is not None:
            for warning in restore_state(components, start_state):
                stream.write(f"warning: {warning}\n")
            stream.write(f"resumed from {start_path} at env step {start_steps}\n")
    except BaseException:
        logger.close()
        components.close()
        raise
    stream.write(f"run dir: {run_dir}\n")
    stream.write(
        f"device: {components.device}; TensorBoard: tensorboard --logdir {run_dir.parent}\n"
    )
    stream.flush()
    try:
        if components.trainer.counters.env_steps >= config.trainer.total_steps:
            progress.message(
                f"the run already finished ({components.trainer.counters.env_steps} env steps); "
                "to train longer, resume with --set trainer.total_steps=N --force"
            )
            return components, None
        with _StopFlag() as stop:
            progress.begin(start_steps)
            try:
                components.trainer.run(stop=stop)
            except NumericalError as exc:
                found = ckpt.list_checkpoints(ckpt_dir)
                last = (
                    f"the last good checkpoint is {found[-1]}"
                    if found
                    else "no checkpoint was saved"
                )
                raise NumericalError(f"{exc}; training stopped, {last}") from exc
            progress.update(components.trainer.counters.env_steps, force=True)
        result = components.trainer.last_eval
        if stop.requested:
            progress.message(
                f"stopped at env step {components.trainer.counters.env_steps}; checkpoint "
                f"saved in {ckpt_dir}; continue with: rlkit train --resume {run_dir}"
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


def require_run_dir(run_dir: Path, context: str = "") -> None:
    """RunDirError (message prefixed by ``context``) unless ``run_dir`` is a run dir."""
    if not run_dir.is_dir():
        raise RunDirError(f"{context}run dir not found: {run_dir}")
    if not (run_dir / "config.yaml").is_file():
        raise RunDirError(f"{context}{run_dir} is not an rlkit run dir (no config.yaml)")


def load_run_config(run_dir: Path) -> Config:
    require_run_dir(run_dir)
    path = run_dir / "config.yaml"
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
    if device is None and config.trainer.device == "cuda" and not torch.cuda.is_available():
        # the run trained on a GPU that this machine lacks: evaluation runs fine on the CPU
        sys.stdout.write("note: the run trained on cuda, which is not available here: using cpu\n")
        device = "cpu"
    dev = resolve_device(device or config.trainer.device)
    net, _ = load_network_from_checkpoint(checkpoint, config, dev)
    episodes = episodes or config.eval.episodes
    envs = make_envs(config, min(episodes, 10), evaluation=True)
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
