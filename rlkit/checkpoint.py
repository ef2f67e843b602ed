"""Checkpoints: atomic writes, safe loading, keep-last-K rotation.

A checkpoint is a nested dict of tensors and plain Python values written with
``torch.save`` and read with ``torch.load(weights_only=True)``, which refuses pickled
code. Numpy arrays are stored as tensors.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_RE = re.compile(r"^ckpt_(\d{12})\.pt$")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read: missing, truncated, corrupt or unsafe."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file, fsync and rename (never half-written)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save_checkpoint(path: Path, state: dict[str, Any]) -> int:
    """Atomically save ``state``; returns the size in bytes."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    atomic_write_bytes(Path(path), data)
    return len(data)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint without executing code; CheckpointError for anything unreadable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. pickle-protocol notes: one line only
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every failure is reported as one line
        text = str(exc)
        if "Unsupported global" in text or "allowed global" in text:
            reason = "it holds pickled code or objects that are not allowed (refused unrun)"
        else:
            reason = (
                "not a readable checkpoint (corrupt, truncated, or holding data that safe "
                "loading refuses; nothing in it was run)"
            )
        raise CheckpointError(f"cannot load checkpoint {path}: {reason}") from exc
    if not isinstance(state, dict) or "format" not in state:
        raise CheckpointError(f"cannot load checkpoint {path}: not an rlkit checkpoint")
    return state


def checkpoint_path(directory: Path, env_steps: int) -> Path:
    return Path(directory) / f"ckpt_{env_steps:012d}.pt"


def list_checkpoints(directory: Path) -> list[Path]:
    """Complete checkpoints in ``directory``, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if CHECKPOINT_RE.match(p.name)]
    return sorted(found, key=lambda p: p.name)


def prune_checkpoints(directory: Path, keep: int) -> None:
    for old in list_checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)
