"""Where a learner update's time goes: rlkit's update against bare PyTorch steps.

For each workload the run is built from its config (``rlkit.build.build``), its replay is
filled by acting, and then, on the same sampled batches, in interleaved rounds:

- ``rlkit update``: ``learner.update(batch)`` (the objective's forwards with the noise
  cadence, loss, backward, clipping, the optimizer step, priorities and metrics back on
  the host);
- ``bare step``: one forward of the online net on ``obs``, ``.mean()`` of its raw output,
  backward and ``optimizer.step()`` (the floor any update pays);
- ``bare update``: the same maths as rlkit's update written out in plain PyTorch in this
  script (target forward at s', the online net's selection forward at s' when double-Q,
  the loss forward at s, Huber / C51 cross-entropy, backward, clipping, Adam), without
  rlkit's seams (no noise draws: nets keep their noise).

It prints milliseconds per update (medians) and the ratios, then a torch profiler
summary of rlkit's update (the ops that take the most self CPU time).

    python scripts/bench_update.py                      # cartpole_rainbow, cartpole_dqn, pong
    python scripts/bench_update.py --workloads pong --updates 20 --rounds 3
    python scripts/bench_update.py --compiled    # also learner.compile=true (inductor)
"""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from benchlib import NullLogger, missing, time_interleaved, workload_parser  # noqa: E402

WORKLOADS = {
    "cartpole_rainbow": ("configs/cartpole_rainbow.yaml", None, []),
    "cartpole_dqn": ("configs/cartpole_dqn.yaml", None, []),
    "pong": ("configs/atari/pong_rainbow.yaml", "ale_py", ["replay.capacity=5000"]),
}


def build_filled(
    name: str,
    threads: int,
    more: tuple[str, ...] = (),
    device: str = "cpu",
    workloads: dict | None = None,
):
    """The workload's components (``name`` in ``workloads``, default this script's) with a
    replay of ``batch_size * 4`` acted transitions."""
    from rlkit.build import build
    from rlkit.config import load_config

    config, _, extra = (WORKLOADS if workloads is None else workloads)[name]
    sets = [
        f"trainer.device={device}",
        f"trainer.num_threads={threads}",
        "eval.every=0",
        "eval.episodes=1",
        "trainer.checkpoint_every=0",
        "trainer.log_every=1000000000",
        *extra,
        *more,
    ]
    c = build(load_config(REPO / config, sets), NullLogger())
    trainer = c.trainer
    fill = 4 * c.config.learner.batch_size
    trainer.cadence = type(trainer.cadence)(
        **{**trainer.cadence.__dict__, "total_steps": fill, "learning_starts": fill + 1}
    )
    trainer._finish_run = lambda: None
    trainer.run()
    return c


def bare_step(c):
    """One forward + backward + optimizer step of the online net (the floor)."""
    net, opt = c.learner.online, c.learner.optimizer

    def step(batch) -> None:
        opt.zero_grad(set_to_none=True)
        net.raw(batch.obs).mean().backward()
        opt.step()

    return step


def bare_update(c):
    """rlkit's update maths in plain PyTorch (no noise draws, no seams)."""
    learner, config = c.learner, c.config
    online, target, opt = learner.online, learner.target, learner.optimizer
    readout, double_q = online.readout, learner.double_q
    max_norm = config.learner.max_grad_norm
    support = getattr(readout, "support", None)

    def step(batch) -> None:
        with torch.no_grad():
            t_raw = target.raw(batch.next_obs)
            sel = online.raw(batch.next_obs) if double_q else t_raw
            a_next = readout(sel).argmax(1)
        raw = online.raw(batch.obs)
        idx = batch.action.view(-1, 1, 1).expand(-1, 1, raw.shape[2])
        chosen = raw.gather(1, idx).squeeze(1)  # [B, Z]
        if support is None:  # scalar: Huber TD
            with torch.no_grad():
                q_next = t_raw.squeeze(2).gather(1, a_next.view(-1, 1)).squeeze(1)
                y = batch.reward + batch.discount * q_next
            per = torch.nn.functional.huber_loss(chosen.squeeze(1), y, reduction="none")
            prio = (y - chosen.squeeze(1)).abs()
        else:  # C51: project the target distribution, cross-entropy
            from rlkit.agent.objectives.math import categorical_projection

            with torch.no_grad():
                p_next = t_raw.softmax(2)[torch.arange(len(a_next)), a_next]
                m = categorical_projection(support, p_next, batch.reward, batch.discount)
            logp = chosen.log_softmax(1)
            per = -(m * logp).sum(1)
            prio = per
        loss = (batch.weights * per).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if max_norm is not None:
            torch.nn.utils.clip_grad_norm_(online.parameters(), max_norm)
        opt.step()
        torch.stack([loss.detach(), prio.mean()]).tolist()
        prio.detach().double().cpu().numpy()

    return step


def measure(name: str, args) -> dict[str, float]:
    c = build_filled(name, args.threads, device=args.device)
    replay, batch_size = c.replay, c.config.learner.batch_size
    batches = [replay.sample(batch_size, beta=0.5) for _ in range(args.updates)]
    runs = {
        "rlkit update": c.learner.update,
        "bare step": bare_step(c),
        "bare update": bare_update(c),
    }
    if args.compiled:
        compiled = build_filled(name, args.threads, ("learner.compile=true",), args.device)
        runs["rlkit compiled"] = compiled.learner.update
        start = time.perf_counter()
        compiled.learner.update(batches[0])  # compiles
        compile_s = time.perf_counter() - start
    for fn in runs.values():  # warm-up
        fn(batches[0])
    times = time_interleaved(runs, batches, args.rounds, args.device)
    row = {k: 1000 * float(np.median(v)) for k, v in times.items()}
    for key in ("bare step", "bare update"):
        row[f"/ {key}"] = float(np.median(np.array(times["rlkit update"]) / np.array(times[key])))
    if args.compiled:
        row["eager / compiled"] = float(
            np.median(np.array(times["rlkit update"]) / np.array(times["rlkit compiled"]))
        )
        row["compile s"] = compile_s
        compiled.close()
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU]
        if args.device == "cuda":
            activities.append(ProfilerActivity.CUDA)
        with profile(activities=activities) as prof:
            for b in batches:
                c.learner.update(b)
        row["profile"] = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)
    c.close()
    return row


def main(argv: list[str] | None = None) -> int:
    parser = workload_parser(__doc__, WORKLOADS)
    parser.add_argument("--updates", type=int, default=50, help="updates per round")
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument(
        "--compiled", action="store_true", help="also time learner.compile=true (inductor)"
    )
    args = parser.parse_args(argv)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}")
    print(
        f"command: python scripts/bench_update.py --workloads {' '.join(args.workloads)} "
        f"--updates {args.updates} --rounds {args.rounds} --threads {args.threads}"
        + (f" --device {args.device}" if args.device != "cpu" else "")
        + (" --compiled" if args.compiled else "")
    )
    print()
    print(
        "| workload | rlkit update (ms) | bare step (ms) | bare update (ms) | rlkit / bare step "
        "| rlkit / bare update | compiled (ms) | eager / compiled | compile (s) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    profiles = {}
    for name in args.workloads:
        if missing(WORKLOADS[name][1]):
            print(f"| {name} | skipped: needs {WORKLOADS[name][1]} | | | | | | | |")
            continue
        r = measure(name, args)
        profiles[name] = r.get("profile")
        print(
            f"| {name} | {r['rlkit update']:.3f} | {r['bare step']:.3f} | {r['bare update']:.3f} "
            f"| {r['/ bare step']:.2f}x | {r['/ bare update']:.2f}x "
            + (
                f"| {r['rlkit compiled']:.3f} | {r['eager / compiled']:.2f}x | {r['compile s']:.0f} |"
                if "rlkit compiled" in r
                else "| | | |"
            )
        )
    for name, table in profiles.items():
        if table:
            print(f"\nrlkit update, {name}: torch profiler, top ops by self CPU time\n")
            print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
