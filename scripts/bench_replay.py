"""Benchmark rlkit's prioritized replay against cpprb's PrioritizedReplayBuffer.

One iteration = ``sample`` (stratified indices + IS weights + the batch gathered as torch
tensors) + ``update_priorities`` with random TD errors, on a full buffer with
CartPole-sized observations (4 float32). cpprb is optional (``pip install cpprb``); when it
is missing only rlkit is measured. Also measured: the time of one single-transition
``add`` and the buffer's memory against its raw arrays.

    python scripts/bench_replay.py            # capacity 10^6, as in docs/benchmarks.md
    python scripts/bench_replay.py --quick    # smaller and shorter, for a smoke run
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import tracemalloc

import numpy as np
import torch

from rlkit.agent.replay import PrioritizedReplayBuffer, ReplayBuffer

try:
    import cpprb
except ImportError:  # optional: only this benchmark uses it
    cpprb = None

OBS_SHAPE = (4,)
ALPHA, EPS, BETA = 0.5, 1e-6, 0.4


def fill_data(capacity: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "obs": rng.standard_normal((capacity, *OBS_SHAPE)).astype(np.float32),
        "action": rng.integers(0, 2, capacity),
        "reward": rng.random(capacity, dtype=np.float32),
        "next_obs": rng.standard_normal((capacity, *OBS_SHAPE)).astype(np.float32),
        "discount": np.full(capacity, 0.99, dtype=np.float32),
        "td": rng.standard_normal(capacity),
    }


def make_rlkit(
    capacity: int, data: dict[str, np.ndarray], backend: str = "auto"
) -> PrioritizedReplayBuffer:
    rb = PrioritizedReplayBuffer(capacity, OBS_SHAPE, alpha=ALPHA, eps=EPS, seed=0, backend=backend)
    rb.add(data["obs"], data["action"], data["reward"], data["next_obs"], data["discount"])
    rb.update_priorities(np.arange(capacity), data["td"])
    return rb


def make_cpprb(capacity: int, data: dict[str, np.ndarray]):
    env_dict = {
        "obs": {"shape": OBS_SHAPE, "dtype": np.float32},
        "act": {"dtype": np.int64},
        "rew": {"dtype": np.float32},
        "next_obs": {"shape": OBS_SHAPE, "dtype": np.float32},
        "discount": {"dtype": np.float32},
    }
    rb = cpprb.PrioritizedReplayBuffer(capacity, env_dict, alpha=ALPHA, eps=EPS)
    rb.add(
        obs=data["obs"],
        act=data["action"],
        rew=data["reward"],
        next_obs=data["next_obs"],
        discount=data["discount"],
    )
    rb.update_priorities(np.arange(capacity), np.abs(data["td"]))
    return rb


def rlkit_iters(rb: PrioritizedReplayBuffer, batch: int, iters: int, td: np.ndarray) -> float:
    """Seconds for ``iters`` iterations of sample + update_priorities."""
    start = time.perf_counter()
    for _ in range(iters):
        b = rb.sample(batch, BETA)
        rb.update_priorities(b.indices, td)
    return time.perf_counter() - start


def cpprb_iters(rb, batch: int, iters: int, td: np.ndarray) -> float:
    """The same work for cpprb, including the conversion of its batch to torch tensors."""
    start = time.perf_counter()
    for _ in range(iters):
        s = rb.sample(batch, beta=BETA)
        _ = {k: torch.from_numpy(v) for k, v in s.items() if k != "indexes"}
        rb.update_priorities(s["indexes"], td)
    return time.perf_counter() - start


def bench_throughput(rl, cp, batch: int, iters: int, repeats: int, rng) -> dict[str, float]:
    """Median iterations/s over ``repeats`` timed blocks of ``iters`` iterations.

    rlkit and cpprb blocks alternate, so both see the same machine load; the ratio is
    the median of the per-round ratios (robust to a noisy, shared machine).
    """
    td = np.abs(rng.standard_normal(batch))
    rlkit_iters(rl, batch, max(1, iters // 4), td)  # warm-up (and numba compilation)
    if cp is not None:
        cpprb_iters(cp, batch, max(1, iters // 4), td)
    rl_rates, cp_rates, ratios = [], [], []
    for _ in range(repeats):
        rl_rates.append(iters / rlkit_iters(rl, batch, iters, td))
        if cp is not None:
            cp_rates.append(iters / cpprb_iters(cp, batch, iters, td))
            ratios.append(rl_rates[-1] / cp_rates[-1])
    out = {"rlkit": statistics.median(rl_rates)}
    if cp is not None:
        out["cpprb"] = statistics.median(cp_rates)
        out["ratio"] = statistics.median(ratios)
    return out


def bench_add(make, n_adds: int, repeats: int) -> float:
    """Median microseconds of one single-transition ``add`` (chunks of 1000 calls)."""
    rb = make()
    rng = np.random.default_rng(1)
    obs = rng.standard_normal((1000, *OBS_SHAPE)).astype(np.float32)
    rows = [(obs[i], i % 2, 1.0, obs[(i + 1) % 1000], 0.99) for i in range(1000)]
    per_call = []
    for _ in range(repeats):
        for _ in range(max(1, n_adds // 1000)):
            start = time.perf_counter()
            for o, a, r, o2, d in rows:
                rb.add(o, a, r, o2, d)
            per_call.append((time.perf_counter() - start) / len(rows) * 1e6)
    return statistics.median(per_call)


def bench_cpprb_add(capacity: int, n_adds: int, repeats: int) -> float:
    data = fill_data(1000, np.random.default_rng(1))
    rb = make_cpprb(capacity, {k: v[:1] for k, v in data.items()})
    per_call = []
    for _ in range(repeats):
        for _ in range(max(1, n_adds // 1000)):
            start = time.perf_counter()
            for i in range(1000):
                rb.add(
                    obs=data["obs"][i],
                    act=i % 2,
                    rew=1.0,
                    next_obs=data["obs"][(i + 1) % 1000],
                    discount=0.99,
                )
            per_call.append((time.perf_counter() - start) / 1000 * 1e6)
    return statistics.median(per_call)


def bench_memory(capacity: int, data: dict[str, np.ndarray], backend: str) -> dict[str, float]:
    """Bytes: raw transition arrays, the buffer's nbytes, and what tracemalloc saw."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    rb = make_rlkit(capacity, data, backend)
    traced = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    raw = capacity * (2 * 4 * np.prod(OBS_SHAPE) + 8 + 4 + 4)  # obs, next_obs, a, r, d
    return {
        "raw": float(raw),
        "priorities": float(capacity * 8),  # one float64 priority per slot
        "nbytes": float(rb.nbytes),
        "traced": float(traced),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="capacity 10^5, fewer iterations")
    parser.add_argument("--capacity", type=int, default=None, help="default 10^6 (10^5 quick)")
    parser.add_argument("--iters", type=int, default=None, help="iterations per timed run")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (median)")
    parser.add_argument(
        "--backend", default="auto", choices=("auto", "numba", "numpy"), help="sum-tree backend"
    )
    args = parser.parse_args()
    capacity = args.capacity or (100_000 if args.quick else 1_000_000)
    iters = args.iters or (100 if args.quick else 250)
    repeats = args.repeats or (5 if args.quick else 41)
    n_adds = 3000 if args.quick else 20000

    rng = np.random.default_rng(0)
    data = fill_data(capacity, rng)
    print(f"# machine: {platform.processor() or platform.machine()}, {_cpus()} CPUs")
    print(
        f"# numpy {np.__version__}, torch {torch.__version__}, torch threads "
        f"{torch.get_num_threads()}, cpprb {_cpprb_version()}"
    )
    print(f"# capacity {capacity:,}, obs {OBS_SHAPE} float32, {iters} iterations x {repeats}")
    if cpprb is None:
        print("# cpprb is not installed (pip install cpprb): reporting rlkit only")

    rl = make_rlkit(capacity, data, args.backend)
    print(f"# rlkit sum-tree backend: {rl.backend}")
    cp = make_cpprb(capacity, data) if cpprb is not None else None

    rows = []
    for batch in (256, 32):
        res = bench_throughput(rl, cp, batch, iters, repeats, rng)
        ratio = res.get("ratio", float("nan"))
        target = 3.0 if batch == 256 else 1.0
        rows.append((batch, res["rlkit"], res.get("cpprb", float("nan")), ratio, target))

    add_per = bench_add(
        lambda: PrioritizedReplayBuffer(capacity, OBS_SHAPE, backend=args.backend), n_adds, repeats
    )
    add_uni = bench_add(lambda: ReplayBuffer(capacity, OBS_SHAPE), n_adds, repeats)
    add_cp = bench_cpprb_add(capacity, n_adds, repeats) if cp is not None else float("nan")
    del rl, cp
    mem = bench_memory(capacity, data, args.backend)

    print()
    print("| measure | rlkit | cpprb | ratio (rlkit / cpprb) | target |")
    print("|---|---:|---:|---:|---|")
    for batch, r, c, ratio, target in rows:
        ok = "met" if ratio >= target else ("missed" if ratio == ratio else "n/a")
        print(
            f"| sample+update iters/s, batch {batch} | {r:,.0f} | {c:,.0f} | "
            f"{ratio:.2f}x | >= {target:g}x ({ok}) |"
        )
    ok = "met" if add_per <= 10 else "missed"
    print(f"| single add, prioritized (us) | {add_per:.2f} | {add_cp:.2f} | | <= 10 us ({ok}) |")
    print(f"| single add, uniform (us) | {add_uni:.2f} | | | |")
    mib = 2.0**20
    raw, prio, nb, traced = mem["raw"], mem["priorities"], mem["nbytes"], mem["traced"]
    print()
    print(
        "| memory (MiB) | value | overhead vs raw transitions | "
        "overhead vs raw transitions + float64 priorities |"
    )
    print("|---|---:|---:|---:|")
    print(
        f"| raw transition arrays (obs, next_obs, action, reward, discount) | {raw / mib:.2f} | | |"
    )
    print(f"| + one float64 priority per slot | {(raw + prio) / mib:.2f} | | |")
    for name, value in (("buffer.nbytes", nb), ("tracemalloc, whole buffer", traced)):
        print(
            f"| {name} | {value / mib:.2f} | {100 * (value / raw - 1):.1f}% | "
            f"{100 * (value / (raw + prio) - 1):.1f}% |"
        )


def _cpprb_version() -> str:
    if cpprb is None:
        return "not installed"
    from importlib.metadata import version

    return version("cpprb")


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


if __name__ == "__main__":
    main()
