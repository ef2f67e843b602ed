"""Peak memory while checkpointing a full replay buffer: streamed vs built in memory.

Each variant runs in a fresh subprocess that fills a uniform replay of ``--capacity``
transitions with Atari-sized observations (4 x 84 x 84 uint8, no frame dedup), then
writes one checkpoint of it; the figure is the peak resident memory during the write
above the resident memory just before it (Linux ``VmHWM`` after resetting it through
``/proc/self/clear_refs``; elsewhere ``ru_maxrss`` for the whole process).

Variants:
  bytesio   what rlkit did before: copies of the arrays, ``torch.save`` into a BytesIO,
            then its bytes written to the temp file
  streamed  what rlkit does: the arrays as views (``ReplayBuffer.state_dict``),
            ``torch.save`` straight into the temp file (``rlkit.app.checkpoint.save_checkpoint``)

    python scripts/bench_checkpoint.py                  # 10,000 transitions (~540 MiB)
    python scripts/bench_checkpoint.py --capacity 2000  # a quick run
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

OBS_SHAPE = (4, 84, 84)
VARIANTS = ("bytesio", "streamed")


def rss_kib(field: str) -> int | None:
    """``VmRSS`` / ``VmHWM`` of this process in KiB (None where /proc is absent)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak() -> bool:
    """Reset this process's peak RSS to its current RSS (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def filled_replay(capacity: int):
    """A full uniform replay with random frames, filled in chunks (little overhead)."""
    from rlkit.agent.replay import ReplayBuffer

    replay = ReplayBuffer(capacity, OBS_SHAPE, np.uint8, seed=0)
    rng = np.random.default_rng(0)
    for start in range(0, capacity, 500):
        n = min(500, capacity - start)
        obs = rng.integers(0, 256, size=(n, *OBS_SHAPE), dtype=np.uint8)
        replay.add(obs, rng.integers(0, 4, n), rng.random(n, dtype=np.float32), obs, 0.99)
    return replay


def write_old_way(path: Path, replay) -> int:
    """Before: array copies, serialized into a BytesIO, whose bytes are then written."""
    from rlkit.app.checkpoint import atomic_write_bytes

    state = replay.state_dict()
    state = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in state.items()}
    buffer = io.BytesIO()
    torch.save({"format": 2, "replay": state}, buffer)
    data = buffer.getvalue()
    atomic_write_bytes(path, data)
    return len(data)


def write_streamed(path: Path, replay) -> int:
    """Now: views of the arrays streamed by torch.save into the temp file."""
    from rlkit.app.checkpoint import save_checkpoint

    return save_checkpoint(path, {"format": 2, "replay": replay.state_dict()})


def worker(variant: str, capacity: int) -> dict:
    """Fill, then checkpoint once; the measurements as a dict (run in a subprocess)."""
    replay = filled_replay(capacity)
    exact = reset_peak()
    before = rss_kib("VmRSS")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ckpt_000000000000.pt"
        size = (write_old_way if variant == "bytesio" else write_streamed)(path, replay)
    seconds = time.perf_counter() - start
    peak = rss_kib("VmHWM") if exact else None
    if peak is None or before is None:  # no /proc: the whole process's peak
        peak, before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, 0
    return {
        "variant": variant,
        "replay_mib": replay.nbytes / 2**20,
        "extra_mib": (peak - before) / 1024,
        "file_mib": size / 2**20,
        "seconds": seconds,
        "exact": exact,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capacity", type=int, default=10_000, help="replay transitions")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.capacity)))
        return
    rows = []
    for variant in VARIANTS:
        out = subprocess.run(
            [sys.executable, __file__, "--worker", variant, "--capacity", str(args.capacity)],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"torch {torch.__version__}, Python {platform.python_version()}, {platform.machine()}")
    print(f"replay: {args.capacity} transitions of {OBS_SHAPE} uint8 (obs + next_obs)\n")
    print("| variant | replay MiB | peak extra MiB | extra / replay | file MiB | seconds |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['variant']} | {r['replay_mib']:.0f} | {r['extra_mib']:.0f} | "
            f"{r['extra_mib'] / r['replay_mib']:.2f} | {r['file_mib']:.0f} | {r['seconds']:.2f} |"
        )
    if not all(r["exact"] for r in rows):
        print("\n(peak RSS could not be reset: figures are whole-process peaks)")


if __name__ == "__main__":
    main()
