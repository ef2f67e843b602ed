"""The Python API: ``rlkit.train``, ``rlkit.Agent``, ``rlkit.evaluate``, ``rlkit.export``.

``rlkit train`` and ``rlkit eval`` call these same functions, so a run trained from Python
and one trained from the command line with the same config and seed are the same run::

    import rlkit

    run = rlkit.train("configs/cartpole_rainbow.yaml", overrides={"trainer.total_steps": 20_000})
    agent = rlkit.Agent.load(run.run_dir)
    action = agent.act(obs)
    print(rlkit.evaluate(agent, "CartPole-v1", episodes=10).mean)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from rlkit.app.agent import Agent, evaluate
from rlkit.app.cli import _default_config_path
from rlkit.app.export import export
from rlkit.app.run import default_run_dir, resume_config
from rlkit.app.run import train as train_run
from rlkit.app.video import require_imageio
from rlkit.config import Config, ConfigError, apply_overrides, from_dict, load_config, to_dict
from rlkit.loops.evaluate import EvalResult

__all__ = ["Agent", "Callback", "TrainResult", "evaluate", "export", "train"]

#: ``callback(metrics, env_steps)`` at each logged point; returning True stops the run.
Callback = Callable[[dict[str, float], int], "bool | None"]
Overrides = Sequence[str] | Mapping[str, Any] | None


@dataclass(frozen=True)
class TrainResult:
    """What ``train`` returns."""

    run_dir: Path  # the run dir written (config.yaml, metrics.jsonl, checkpoints/, ...)
    final_eval: EvalResult | None  # the final evaluation; None when stopped early or
    # when a resumed run had already finished
    env_steps: int  # env steps trained, in total (a resumed run counts from 0)
    config: Config  # the resolved config the run used
    stopped_early: bool  # a callback or a signal stopped it before trainer.total_steps


class CallbackLogger:
    """A logger that forwards every logged point to ``callback(metrics, env_steps)``; a
    True return requests a stop (``__call__`` tells the trainer, after each env step)."""

    def __init__(self, callback: Callback) -> None:
        self.callback = callback
        self.requested = False

    def log(self, env_steps: int, scalars: dict[str, float]) -> None:
        if self.callback(dict(scalars), int(env_steps)) is True:
            self.requested = True

    def close(self) -> None:
        pass

    def __call__(self) -> bool:
        return self.requested


def resolve_config(
    config: str | Path | Config | None, overrides: Overrides
) -> tuple[Config, Path | None]:
    """(the config, its file or None): a YAML path, a Config (``overrides`` applied to it)
    or None for the default config (configs/cartpole_rainbow.yaml, else the dataclass
    defaults)."""
    if isinstance(config, Config):
        if not overrides:
            return config, None
        return from_dict(apply_overrides(to_dict(config), overrides), "overrides"), None
    path = Path(config) if config is not None else _default_config_path()
    return load_config(path, overrides or ()), path


def train(
    config: str | Path | Config | None = None,
    overrides: Overrides = None,
    *,
    run_dir: str | Path | None = None,
    callback: Callback | None = None,
    overwrite: bool = False,
    resume: bool = False,
    force: bool = False,
    stream: IO[str] | None = None,
) -> TrainResult:
    """Train an agent into a run dir, exactly as ``rlkit train`` does.

    Args:
        config: a YAML file, a ``Config``, or None for the default config (Rainbow on
            CartPole-v1, ``configs/cartpole_rainbow.yaml``).
        overrides: config fields to change, ``{"trainer.total_steps": 20_000}`` or
            ``["trainer.seed=3"]`` (as ``--set``).
        run_dir: where to write the run (default ``runs/<config>-seed<seed>-<time>``).
        callback: ``callback(metrics, env_steps)`` at each logged point (the scalars of
            metrics.jsonl); returning True stops the run after that env step with a
            checkpoint, resumable like a Ctrl-C.
        overwrite: replace an existing run dir.
        resume: continue ``run_dir`` from its newest complete checkpoint with its saved
            config (``config`` None or a file, ``overrides`` as ``--set``; a change is
            refused unless ``force``).
        stream: where progress lines go (default: stdout).
    """
    hook = CallbackLogger(callback) if callback is not None else None
    if resume:
        if run_dir is None:
            raise ConfigError("resume: pass the run_dir to continue")
        if isinstance(config, Config):
            raise ConfigError("resume: pass config as a YAML file or None (the run's own)")
        run_dir = Path(run_dir)
        cfg = resume_config(run_dir, config, _items(overrides), force)
    else:
        if force:
            raise ConfigError("force only applies to resume")
        cfg, path = resolve_config(config, overrides)
        run_dir = Path(run_dir) if run_dir is not None else default_run_dir(cfg, _stem(path))
    if cfg.eval.video_every > 0:
        require_imageio("eval.video_every")  # before the run dir is written
    components, result = train_run(
        cfg, run_dir, overwrite=overwrite, resume=resume, stream=stream, logger=hook, stop=hook
    )
    steps = components.trainer.counters.env_steps
    stopped = steps < cfg.trainer.total_steps
    return TrainResult(run_dir, None if stopped else result, steps, cfg, stopped)


def _items(overrides: Overrides) -> Any:
    return overrides if overrides is not None else []


def _stem(path: Path | None) -> str | None:
    return str(path) if path is not None else None
