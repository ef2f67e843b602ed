"""Shared pieces of the end-to-end tests: the tiny run budget, in-process CLI calls and
their checks, and helpers for run dirs and checkpoints.

Test modules import from here, never from one another, so that each test file can be
run, changed or deleted on its own.
"""

from __future__ import annotations

import json
import pickle
import re
import shutil
from pathlib import Path

import pytest
import torch

from rlkit.app.cli import main

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
DEFAULT_CONFIG = CONFIGS / "cartpole_rainbow.yaml"  # what `rlkit train` uses without CONFIG
TOTAL_STEPS = 300
#: 300 env steps of the default config (Rainbow on CartPole-v1) with small nets, on CPU:
#: learning from env step 100, evaluations at 150 and 300, a training point every 100.
TINY = [
    f"trainer.total_steps={TOTAL_STEPS}",
    "trainer.learning_starts=100",
    "eval.every=150",
    "eval.episodes=2",
    "network.hidden_sizes=[16]",
    "network.head_hidden=16",
    "learner.batch_size=32",
    "trainer.device=cpu",
    "trainer.log_every=100",
]
EVAL_RE = re.compile(
    r"return: (-?\d+\.\d+) ± (\d+\.\d+) over (\d+) episodes \(mean length (\d+\.\d+)\)"
)


def sets(*items: str) -> list[str]:
    """``--set a --set b ...`` for each item."""
    return [arg for item in items for arg in ("--set", item)]


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    """``rlkit ARGV`` in-process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *fragments: str) -> str:
    """Exit code 2, exactly one stderr line ``rlkit: error: ...`` containing ``fragments``."""
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    line = lines[0]
    assert line.startswith("rlkit: error: "), line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    return line


def parse_eval(out: str) -> tuple[float, float, int, float]:
    """(mean return, std, episodes, mean length) from ``rlkit eval``'s output."""
    match = EVAL_RE.search(out)
    assert match, out
    return float(match[1]), float(match[2]), int(match[3]), float(match[4])


def read_metrics(run_dir: Path) -> list[dict]:
    """Every record of ``run_dir/metrics.jsonl``, in file order."""
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def without_timing(records: list[dict]) -> list[dict]:
    """``records`` without the wall-clock tags (``perf/*``), which differ between runs."""
    return [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in records]


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``directory``: relative path -> (bytes, mtime_ns)."""
    return {
        str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def copy_run(run_dir: Path, dest: Path) -> Path:
    """A copy of ``run_dir`` at ``dest`` with the same bytes and mtimes."""
    shutil.copytree(run_dir, dest)  # copy2
    return dest


def restore_torch_globals(threads: int) -> None:
    """`rlkit train` sets torch's thread count and denormal flushing process-wide."""
    torch.set_num_threads(threads)
    torch.set_flush_denormal(False)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """Run every test in its own CWD (a default run dir lands there, not in the repo).

    Autouse in each test module that imports it."""
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    yield
    restore_torch_globals(threads)


class _CreatesMarker:
    """Unpickling this runs ``open(marker, "w")``: a stand-in for arbitrary code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_malicious(kind: str, path: Path, marker: Path) -> Path:
    """A checkpoint-shaped file at ``path`` whose unpickling creates ``marker``.

    ``kind``: ``"torch.save"`` (a torch zip archive) or ``"raw-pickle"``."""
    payload = {"format": 1, "learner": {"online": _CreatesMarker(marker)}}
    if kind == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    return path


def unsafe_load(kind: str, path: Path) -> None:
    """What loading without weights_only would do: run the payload."""
    if kind == "torch.save":
        state = torch.load(path, weights_only=False)
    else:
        state = pickle.loads(path.read_bytes())
    state["learner"]["online"].close()
