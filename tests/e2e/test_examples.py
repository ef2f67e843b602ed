"""The scripts in examples/ run as the README shows them (with a small budget)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_train_and_act_example_runs_end_to_end(tmp_path):
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "examples/train_and_act.py", "--steps", "1500", "--run-dir", str(run_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"trained 1500 env steps into {run_dir}" in out
    assert "[callback] 1500 env steps: eval return" in out  # the callback saw the eval
    assert re.search(r"evaluation: return [\d.]+ ± [\d.]+ over 10 episodes", out)
    exported = re.search(r"exported .*policy\.pt: action (\d) \(agent: (\d)\)", out)
    assert exported and exported.group(1) == exported.group(2)  # plain torch == Agent.act
    assert (run_dir / "policy.pt").is_file() and (run_dir / "checkpoints").is_dir()
