"""The run dir on disk: its layout, creating and checking it, its checkpoints and metrics.

Run dir layout::

    RUN_DIR/config.yaml      the resolved config
    RUN_DIR/metrics.jsonl    one JSON object per logged point (env_steps + scalar tags)
    RUN_DIR/events.out.*     TensorBoard event files
    RUN_DIR/checkpoints/     ckpt_<env_steps>.pt, the newest ``keep_checkpoints`` kept
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from rlkit.app import checkpoint as ckpt
from rlkit.config import Config, from_dict, read_yaml


class RunDirError(ValueError):
    """A run dir that cannot be used as asked (exists, missing, incomplete)."""


def default_run_dir(config: Config, config_path: str | None) -> Path:
    """``runs/<config stem>-seed<seed>-<time>`` (with ``-k`` appended while it exists)."""
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


def require_run_dir(run_dir: Path, context: str = "") -> None:
    """RunDirError (message prefixed by ``context``) unless ``run_dir`` is a run dir."""
    if not run_dir.is_dir():
        raise RunDirError(f"{context}run dir not found: {run_dir}")
    if not (run_dir / "config.yaml").is_file():
        raise RunDirError(f"{context}{run_dir} is not an rlkit run dir (no config.yaml)")


def load_run_config(run_dir: Path) -> Config:
    """The config saved in ``run_dir`` (RunDirError when it is not a run dir)."""
    require_run_dir(run_dir)
    path = run_dir / "config.yaml"
    return from_dict(read_yaml(path) or {}, str(path))


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
