"""Checkpoints: atomic writes, safe loading, keep-last-K rotation.

A checkpoint is a nested dict of tensors and plain Python values written with
``torch.save`` and read with ``torch.load(weights_only=True)``, which refuses pickled
code. Numpy arrays are stored as tensors. ``torch.load(weights_only=True)`` had known
bypasses before torch 2.10 (docs/reliability.md lists the advisories), so loading needs
at least ``MIN_TORCH``.

``atomic_write`` is the one atomic-write mechanism of rlkit: every file that must never
be seen half-written (checkpoints, a rewritten metrics.jsonl, a replaced config.yaml)
goes through it (``atomic_write_bytes`` and ``atomic_write_json`` are its forms for
bytes and JSON).
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

CHECKPOINT_RE = re.compile(r"^ckpt_(\d{12})\.pt$")
#: the checkpoint layout written by this version; 2 added ``replay_meta`` (the PER max
#: priority and the replay sampler's generator, saved even without the replay contents).
FORMAT_VERSION = 2
#: the oldest torch whose ``torch.load(weights_only=True)`` has no known bypass
#: (GHSA-63cw-57p8-fm3p / CVE-2026-24747 affects every release before 2.10.0).
MIN_TORCH = (2, 10)


class CheckpointError(ValueError):
    """A checkpoint that cannot be read: missing, truncated, corrupt or unsafe."""


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> int:
    """Create ``path`` atomically: ``write(f)`` fills a temp file beside it, which is
    fsynced and renamed over ``path``, then the directory is fsynced. On any failure
    (including KeyboardInterrupt) the temp file is removed and ``path`` is untouched.
    Returns the file's size in bytes."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
            size = f.tell()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return size


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (skipped where directories cannot be opened)."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with ``atomic_write`` (never half-written)."""
    atomic_write(path, lambda f: f.write(data))


def atomic_write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON to ``path`` with ``atomic_write`` (never half-written;
    a failed write leaves the old file and no temp file)."""
    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())


def save_checkpoint(path: Path, state: dict[str, Any]) -> int:
    """Atomically save ``state``, streamed by ``torch.save`` straight into the temp file
    (no in-memory copy of the serialized checkpoint); returns the size in bytes."""
    return atomic_write(Path(path), lambda f: torch.save(state, f))


def torch_version(text: str) -> tuple[int, ...]:
    """``"2.10.1+cpu"`` -> ``(2, 10, 1)``; the leading numeric release only."""
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if match is None:
        return (0,)
    return tuple(int(part) for part in match.groups() if part is not None)


def check_torch_version() -> None:
    """CheckpointError unless the installed torch is at least ``MIN_TORCH``."""
    installed = str(torch.__version__)
    if torch_version(installed) < MIN_TORCH:
        required = ".".join(map(str, MIN_TORCH))
        raise CheckpointError(
            f"refusing to load checkpoints with torch {installed}: safe loading "
            f"(weights_only) has known bypasses before {required}; install torch>={required}"
        )


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint without executing code; CheckpointError for anything unreadable,
    for a checkpoint of another format version, and on a torch older than ``MIN_TORCH``."""
    check_torch_version()
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
    if state["format"] != FORMAT_VERSION:
        raise CheckpointError(
            f"cannot load checkpoint {path}: it has format version {state['format']!r}, "
            f"this rlkit reads format version {FORMAT_VERSION}"
        )
    return state


def checkpoint_path(directory: Path, env_steps: int) -> Path:
    """``directory/ckpt_<env_steps, 12 digits>.pt``."""
    return Path(directory) / f"ckpt_{env_steps:012d}.pt"


def list_checkpoints(directory: Path) -> list[Path]:
    """Complete checkpoints in ``directory``, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if CHECKPOINT_RE.match(p.name)]
    return sorted(found, key=lambda p: p.name)


def prune_checkpoints(directory: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints of ``directory``."""
    for old in list_checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)
