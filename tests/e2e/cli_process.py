"""Running ``python -m rlkit`` in a fresh interpreter, for real exit codes and stderr."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def rlkit(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    """``python -m rlkit ARGS`` in ``cwd`` with the repository on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "rlkit", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def process_gone(pid: int) -> bool:
    """Whether process ``pid`` has exited (no /proc entry, or a zombie awaiting its reaper)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
