#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one go: the CUDA tests, then the GPU benchmarks
# (where an update's time goes, eager vs compiled; sync vs async loops; Rainbow on
# CartPole as configured and at a larger batch; Rainbow on Atari Pong).
# CI has no GPU; run this on a machine with one:
#
#     bash scripts/gpu_checks.sh [OUT_DIR]        # default OUT_DIR: gpu-checks
#
# Writes tests.log, bench_update.md, bench_loops.md, bench_trainer.md and bench_atari.md
# into OUT_DIR; exits non-zero if any step failed. PYTHON selects the interpreter (default: python3).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu-checks}"
py="${PYTHON:-python3}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
status=0

"$py" - <<'PY' || exit 2
import sys
import torch
if not torch.cuda.is_available():
    sys.exit(f"gpu_checks: torch {torch.__version__} sees no CUDA device; nothing was run")
print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__)
PY

echo "== CUDA tests"
"$py" -m pytest -q -p no:cacheprovider -k cuda \
    tests/e2e/test_cuda.py tests/unit/test_plain_mlp.py tests/component/test_replay.py \
    2>&1 | tee "$out/tests.log" || status=1

echo "== bench_update --device cuda (eager, bare, compiled with CUDA graphs; profile)"
"$py" scripts/bench_update.py --device cuda --workloads cartpole_rainbow pong --compiled \
    --updates 50 --rounds 3 2>&1 | tee "$out/bench_update.md" || status=1

echo "== bench_loops --device cuda (sync vs async, Pong on ale_vector)"
"$py" scripts/bench_loops.py --device cuda --workloads pong --steps 2000 --rounds 3 \
    2>&1 | tee "$out/bench_loops.md" || status=1

echo "== bench_trainer --device cuda"
"$py" scripts/bench_trainer.py --device cuda --steps "${TRAINER_STEPS:-10000}" --repeats 2 \
    --timeout 240 2>&1 | tee "$out/bench_trainer.md" || status=1

echo "== bench_atari --device cuda"
"$py" scripts/bench_atari.py --device cuda --steps "${ATARI_STEPS:-2000}" --envs 4 \
    2>&1 | tee "$out/bench_atari.md" || status=1

exit $status
