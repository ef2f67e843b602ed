"""What ``learner.precision`` and ``learner.compile`` do to one update, per head.

For each workload (a config) the run is built four times (fp32 / bf16 x eager /
compiled), its replay filled by acting, and ``learner.update`` timed on the same sampled
batches in interleaved rounds (the order reversed every other round). It prints
milliseconds per update (medians over rounds) and each variant's speed relative to
fp32 eager, plus whether this CPU has bfloat16 hardware (AMX or AVX512-BF16): without it
bfloat16 is emulated and slower than float32.

    python scripts/bench_precision.py                       # the three MinAtar heads
    python scripts/bench_precision.py --workloads minatar_iqn --updates 10 --rounds 3
    python scripts/bench_precision.py --no-compile          # eager only (no compile time)
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))
from bench_update import WORKLOADS as UPDATE_WORKLOADS  # noqa: E402
from bench_update import build_filled  # noqa: E402
from benchlib import missing, time_interleaved, workload_parser  # noqa: E402

MINATAR = ("minatar", ["env.id=MinAtar/Breakout-v1"])
WORKLOADS = {
    "minatar_c51": ("configs/minatar/rainbow.yaml", *MINATAR),
    "minatar_iqn": ("configs/minatar/rainbow_iqn.yaml", *MINATAR),
    "minatar_munchausen": ("configs/minatar/rainbow_munchausen.yaml", *MINATAR),
    "cartpole_rainbow": UPDATE_WORKLOADS["cartpole_rainbow"],
}


def variants(compile_too: bool) -> dict[str, tuple[str, ...]]:
    """Variant label -> its overrides; fp32 eager first (the reference)."""
    out = {"fp32 eager": ("learner.precision=fp32",), "bf16 eager": ("learner.precision=bf16",)}
    if compile_too:
        out["fp32 compiled"] = ("learner.precision=fp32", "learner.compile=true")
        out["bf16 compiled"] = ("learner.precision=bf16", "learner.compile=true")
    return out


def measure(name: str, args) -> dict[str, float]:
    """Milliseconds per update of each variant (medians), on shared batches."""
    built = {
        label: build_filled(name, args.threads, sets, args.device, WORKLOADS)
        for label, sets in variants(args.compile).items()
    }
    first = next(iter(built.values()))
    size = first.config.learner.batch_size
    batches = [first.replay.sample(size, beta=0.5) for _ in range(args.updates)]
    for c in built.values():  # warm-up (and compilation)
        for b in batches[:3]:
            c.learner.update(b)
    runs = {label: c.learner.update for label, c in built.items()}
    times = time_interleaved(runs, batches, args.rounds, args.device)
    for c in built.values():
        c.close()
    return {k: 1000 * float(np.median(v)) for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = workload_parser(__doc__, WORKLOADS)
    parser.add_argument("--updates", type=int, default=20, help="updates per round")
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    args = parser.parse_args(argv)
    from rlkit.build import cpu_has_native_bf16

    native = {True: "yes", False: "no (emulated)", None: "unknown"}[cpu_has_native_bf16()]
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}")
    print(f"# bfloat16 hardware (AMX / AVX512-BF16): {native}")
    print(
        f"command: python scripts/bench_precision.py --workloads {' '.join(args.workloads)} "
        f"--updates {args.updates} --rounds {args.rounds} --threads {args.threads}"
        + (f" --device {args.device}" if args.device != "cpu" else "")
        + ("" if args.compile else " --no-compile")
    )
    labels = list(variants(args.compile))
    print()
    print(
        "| workload | "
        + " | ".join(f"{k} (ms)" for k in labels)
        + " | "
        + " | ".join(f"{k} speed" for k in labels[1:])
        + " |"
    )
    print("|---|" + "---:|" * (2 * len(labels) - 1))
    for name in args.workloads:
        if missing(WORKLOADS[name][1]):
            print(f"| {name} | skipped: needs {WORKLOADS[name][1]} |")
            continue
        ms = measure(name, args)
        base = ms[labels[0]]
        cells = [f"{ms[k]:.2f}" for k in labels] + [f"{base / ms[k]:.2f}x" for k in labels[1:]]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
