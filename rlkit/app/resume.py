"""Resume policy: the config a resumed run continues with.

A run continues with the config saved in its run dir. Another config (a file, or
``--set`` items) is refused unless forced; a forced change saves the new config and keeps
the old one beside it (``config.before-resume-<time>.yaml``).
"""

from __future__ import annotations

import time
from pathlib import Path

from rlkit.app import checkpoint as ckpt
from rlkit.app.rundir import load_run_config, require_run_dir
from rlkit.config import Config, ConfigError, config_diff, dump_config, load_config


def config_changes(old: Config, new: Config) -> list[str]:
    """``section.key: old -> new`` for every field that differs."""
    return [f"{c.key}: {c.old!r} -> {c.new!r}" for c in config_diff(old, new)]


def resume_config(
    run_dir: Path,
    config_path: str | Path | None,
    overrides: list[str],
    force: bool,
) -> Config:
    """The config a resumed run continues with: the saved one, or ``config_path``, plus
    ``overrides``. A config that differs from the saved one is refused without
    ``force``; with it, the new config is saved and the old one kept beside it."""
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
