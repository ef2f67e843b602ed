"""Plant wiring bugs one at a time and check that the default test suite catches each.

Each mutant is one textual edit of the package (a schedule that never reaches its code,
a switch that is silently ignored, a counter off by the autoreset step, an RNG that is
not restored, ...). For each, the repository is copied to a scratch directory, the edit
is applied there, and the default suite runs with ``-x`` (stop at the first failure).
A mutant is *caught* when the suite fails. The table lists the mutants, the first test
that failed, and the time it took.

    python scripts/check_mutants.py                 # every mutant
    python scripts/check_mutants.py --only beta eps # mutants whose name contains a word
    python scripts/check_mutants.py --list          # the mutants, without running

Exit status 1 when a mutant survives (or no longer applies to the code).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# fast directories first: with -x a caught mutant usually stops within seconds
TEST_ORDER = ["tests/integration", "tests/component", "tests/unit", "tests/e2e"]


@dataclass(frozen=True)
class Mutant:
    name: str  # short id
    what: str  # the class of wiring mistake it plants
    path: str  # file under the repository root
    old: str  # exact text replaced (must occur exactly once)
    new: str


MUTANTS = [
    # schedules logged but not applied
    Mutant(
        "beta-not-passed",
        "beta schedule not reaching the sampler",
        "rlkit/loops/sync.py",
        "beta = self.beta.value(after)",
        "beta = self.beta.value(0)",
    ),
    Mutant(
        "beta-ignored",
        "sampler ignores beta",
        "rlkit/agent/replay/buffer.py",
        "np.power(p.min() / p, beta)",
        "np.power(p.min() / p, 0.4)",
    ),
    Mutant(
        "eps-not-passed",
        "epsilon schedule not reaching acting",
        "rlkit/loops/sync.py",
        "self.collector.begin(before)",
        "self.collector.begin(0)",
    ),
    Mutant(
        "eps-ignored",
        "policy ignores epsilon",
        "rlkit/agent/policy.py",
        "explore_N = rng.random(n) < epsilon",
        "explore_N = rng.random(n) < 1.0",
    ),
    Mutant(
        "lr-ignored",
        "learning rate not reaching the optimizer",
        "rlkit/agent/builder.py",
        "list(net.parameters()), lc.lr,",
        "list(net.parameters()), 1e-3,",
    ),
    Mutant(
        "nstep-gamma-power",
        "n-step discount exponent wrong",
        "rlkit/agent/replay/nstep.py",
        "discount = 0.0 if terminated else self.gamma ** len(steps)",
        "discount = 0.0 if terminated else self.gamma",
    ),
    Mutant(
        "nstep-reward-discount",
        "n-step rewards not discounted",
        "rlkit/agent/replay/nstep.py",
        "scale *= self.gamma",
        "scale *= 1.0",
    ),
    # termination vs truncation, autoreset
    Mutant(
        "truncation-as-terminal",
        "truncation treated as termination",
        "rlkit/loops/collector.py",
        "learn_terminal = out.terminated | out.life_loss",
        "learn_terminal = out.terminated | out.truncated | out.life_loss",
    ),
    Mutant(
        "nstep-truncation-terminal",
        "n-step window zeroes the discount on truncation",
        "rlkit/agent/replay/nstep.py",
        "out.append(self._window(steps, bool(terminated[e])))",
        "out.append(self._window(steps, bool(terminated[e] or truncated[e])))",
    ),
    Mutant(
        "autoreset-obs",
        "the autoreset observation used as next_obs",
        "rlkit/envs/gymnasium.py",
        "final[i] = final_obs[i]",
        "pass",
    ),
    Mutant(
        "autoreset-step-counted",
        "episode length counts the autoreset step",
        "rlkit/envs/gymnasium.py",
        'obs, _ = self.envs.reset(options={"reset_mask": np.asarray(done, dtype=bool)})',
        "pass",
    ),
    Mutant(
        "returns-not-reset",
        "episode returns carried across episodes",
        "rlkit/loops/collector.py",
        "self._returns[ended] = 0.0",
        "pass",
    ),
    Mutant(
        "life-loss-ignored",
        "life loss not a learning terminal",
        "rlkit/loops/collector.py",
        "learn_terminal = out.terminated | out.life_loss",
        "learn_terminal = out.terminated",
    ),
    # reward clipping
    Mutant(
        "clip-not-applied",
        "reward clipping not applied to learning",
        "rlkit/build.py",
        "learn_reward=np.sign if config.env.clip_rewards else None",
        "learn_reward=None",
    ),
    Mutant(
        "clip-reported",
        "reward clipping applied to reported returns",
        "rlkit/loops/collector.py",
        "self._returns += out.reward",
        "self._returns += np.sign(out.reward)",
    ),
    # cadence counters
    Mutant(
        "learning-starts-ignored",
        "learning_starts not reaching the trainer",
        "rlkit/build.py",
        "learning_starts=t.learning_starts,",
        "learning_starts=0,",
    ),
    Mutant(
        "train-every-ignored",
        "train_every ignored",
        "rlkit/loops/sync.py",
        "phases = crossings(max(before, c.learning_starts - 1), after, c.train_every)",
        "phases = crossings(max(before, c.learning_starts - 1), after, 1)",
    ),
    Mutant(
        "updates-per-train-ignored",
        "updates_per_train ignored",
        "rlkit/build.py",
        "updates_per_train=t.updates_per_train,",
        "updates_per_train=1,",
    ),
    Mutant(
        "wait-for-replay-ignored",
        "resume without replay trains at once",
        "rlkit/loops/sync.py",
        "if size < self.cadence.batch_size or size < self._replay_needed:",
        "if size < self.cadence.batch_size:",
    ),
    # evaluation
    Mutant(
        "eval-train-mode",
        "evaluation with noise on (training mode)",
        "rlkit/agent/policy.py",
        "            net.eval()\n",
        "            net.train()\n",
    ),
    Mutant(
        "eval-epsilon-ignored",
        "evaluation ignores eval.epsilon",
        "rlkit/agent/builder.py",
        "epsilon=config.eval.epsilon,",
        "epsilon=0.0,",
    ),
    # acting noise
    Mutant(
        "acting-noise-never",
        "acting never resamples noise (paper cadence)",
        "rlkit/agent/policy.py",
        "        if self.resample_noise:\n            self.net.reset_noise()",
        "        if False:\n            self.net.reset_noise()",
    ),
    Mutant(
        "noise-cadence-ignored",
        "noise_cadence switch ignored by the builder",
        "rlkit/agent/builder.py",
        'resample_noise=config.network.noise_cadence == "paper",',
        "resample_noise=True,",
    ),
    # learner: double-Q, noise, target sync, priorities
    Mutant(
        "double-q-wrong-net",
        "double-Q next action selected by the target net",
        "rlkit/agent/objectives/base.py",
        "        self._draws.selection()\n        return self.online_net.raw(next_obs)",
        "        self._draws.selection()\n        return self.target_net.raw(next_obs)",
    ),
    Mutant(
        "double-q-ignored",
        "learner.double_q switch ignored",
        "rlkit/agent/builder.py",
        "double_q=lc.double_q and lc.target_update_period > 0,",
        "double_q=lc.target_update_period > 0,",
    ),
    Mutant(
        "target-noise-never",
        "target net noise never resampled",
        "rlkit/agent/learner.py",
        "    def _draw_target(self) -> None:\n        self.target.reset_noise()",
        "    def _draw_target(self) -> None:\n        pass",
    ),
    Mutant(
        "selection-noise-shared",
        "selection reuses the loss forward's noise (paper)",
        "rlkit/agent/learner.py",
        "return self._draw_target, self._draw_online, self._draw_online",
        "return self._draw_target, _no_draw, self._draw_online",
    ),
    Mutant(
        "noise-wrong-distribution",
        "noise drawn as N(0,1) instead of f(N(0,1))",
        "rlkit/agent/nn/noisy.py",
        "noise = x.abs().sqrt_().mul_(x.sign())",
        "noise = x",
    ),
    Mutant(
        "hard-sync-no-op",
        "a hard target sync that does not copy",
        "rlkit/agent/learner.py",
        "            hard_update(self.online, self.target)\n",
        "            pass\n",
    ),
    Mutant(
        "polyak-reversed",
        "Polyak step moves the wrong way",
        "rlkit/agent/learner.py",
        "torch._foreach_lerp_(target_params, online_params, tau)",
        "torch._foreach_lerp_(target_params, online_params, 1.0 - tau)",
    ),
    Mutant(
        "c51-priority-ignored",
        "learner.c51_priority ignored",
        "rlkit/agent/objectives/c51.py",
        "self._priority = PRIORITIES[c51_priority]",
        'self._priority = PRIORITIES["cross_entropy"]',
    ),
    # resume: every generator and the replay's running state come back
    Mutant(
        "rng-python",
        "Python RNG not restored on resume",
        "rlkit/app/checkpoint_state.py",
        '        random.setstate(_as_python_random_state(rng["python"]))\n',
        "",
    ),
    Mutant(
        "rng-numpy",
        "NumPy global RNG not restored on resume",
        "rlkit/app/checkpoint_state.py",
        '        _set_numpy_global_state(rng["numpy"])\n',
        "",
    ),
    Mutant(
        "rng-torch",
        "torch RNG not restored on resume",
        "rlkit/app/checkpoint_state.py",
        '        torch.set_rng_state(rng["torch"])\n',
        "",
    ),
    Mutant(
        "rng-eval",
        "evaluation RNG not restored on resume",
        "rlkit/app/checkpoint_state.py",
        '        components.eval_rng.bit_generator.state = rng["eval"]\n',
        "",
    ),
    Mutant(
        "rng-policy",
        "exploration RNG not restored on resume",
        "rlkit/loops/collector.py",
        '        self.policy.rng.bit_generator.state = state["policy_rng"]\n',
        "",
    ),
    Mutant(
        "rng-replay-sampler",
        "replay sampler RNG not restored (replay not saved)",
        "rlkit/agent/replay/buffer.py",
        '        """Restore what ``meta_state_dict`` saved (the contents are left as they are)."""\n'
        '        self._rng.bit_generator.state = state["rng"]\n',
        '        """Restore what ``meta_state_dict`` saved (the contents are left as they are)."""\n',
    ),
    Mutant(
        "max-priority-not-restored",
        "PER max priority restarts at 1 after resume",
        "rlkit/agent/replay/buffer.py",
        '        super().load_meta_state_dict(state)\n        self._max_priority = float(state["max_priority"])\n',
        "        super().load_meta_state_dict(state)\n",
    ),
    Mutant(
        "flush-after-checkpoint",
        "logs flushed after (not before) the checkpoint",
        "rlkit/app/run.py",
        "        jsonl.flush()\n        tensorboard.flush()\n        state = capture_state(components)\n",
        "        state = capture_state(components)\n",
    ),
    # the seams between the layers: roles exchange values, switches reach their layer
    Mutant(
        "params-not-published",
        "the acting policy never gets the learner's new parameters",
        "rlkit/loops/sync.py",
        "                self._train_phase(beta)\n            self.publish_params()\n",
        "                self._train_phase(beta)\n",
    ),
    Mutant(
        "eval-params-not-loaded",
        "evaluation acts with stale parameters",
        "rlkit/build.py",
        "        eval_policy.load_params(learner.params())\n",
        "",
    ),
    Mutant(
        "policy-shares-live-net",
        "the policy acts with the learner's live network object",
        "rlkit/agent/builder.py",
        "    policy_net = copy.deepcopy(net)\n",
        "    policy_net = net\n",
    ),
    Mutant(
        "backend-ignored",
        "env.backend switch ignored",
        "rlkit/envs/builder.py",
        "        e.backend,\n",
        '        "gymnasium",\n',
    ),
    Mutant(
        "head-ignored",
        "network.head switch ignored by the network builder",
        "rlkit/agent/builder.py",
        "    name = head_name(config)\n",
        '    name = objectives.resolve("auto", n.atoms)\n',
    ),
    Mutant(
        "store-deferred-past-learning",
        "a step's transitions stored after (not before) the training phase that follows it",
        "rlkit/loops/sync.py",
        "        return bool(learning or periodic or after >= c.total_steps)\n",
        "        return bool(periodic or after >= c.total_steps)\n",
    ),
    Mutant(
        "async-lag-ignored",
        "the async actor runs further ahead than trainer.actor_lag",
        "rlkit/loops/asynchronous.py",
        "env_steps - self._taken_in > self.lag\n",
        "env_steps - self._taken_in > self.lag + 4\n",
    ),
    Mutant(
        "async-publish-every-ignored",
        "trainer.publish_every ignored: a snapshot after every phase",
        "rlkit/loops/asynchronous.py",
        "updates - self._published_at >= self.publish_every",
        "updates - self._published_at >= 1",
    ),
    Mutant(
        "async-no-hold-at-checkpoints",
        "the async actor steps past a checkpoint before it is saved",
        "rlkit/loops/asynchronous.py",
        "                or (self.holds(env_steps) and self._taken_in < env_steps)\n",
        "",
    ),
    Mutant(
        "async-stop-drops-sent-steps",
        "a stop request drops the steps the actor already sent",
        "rlkit/loops/asynchronous.py",
        "            if not stopping and stop is not None and stop():\n",
        "            if not stopping and stop is not None and stop():\n                return True\n",
    ),
    Mutant(
        "async-mode-ignored",
        "trainer.mode ignored: always the sync loop",
        "rlkit/build.py",
        '    if t.mode == "sync":\n',
        "    if True:\n",
    ),
]


def apply(mutant: Mutant, root: Path) -> None:
    path = root / mutant.path
    text = path.read_text()
    count = text.count(mutant.old)
    if count != 1:
        raise LookupError(f"{mutant.path}: the text to replace occurs {count} times")
    path.write_text(text.replace(mutant.old, mutant.new))


def first_failure(output: str) -> str:
    match = re.search(r"^FAILED (\S+)", output, re.MULTILINE) or re.search(
        r"^ERROR (\S+)", output, re.MULTILINE
    )
    return match.group(1) if match else "?"


def run_one(mutant: Mutant | None, timeout: float) -> tuple[str, str, float]:
    """Run the suite on a scratch copy with ``mutant`` applied (None: unchanged)."""
    with tempfile.TemporaryDirectory(prefix="rlkit-mutant-") as tmp:
        root = Path(tmp) / "repo"
        shutil.copytree(
            ROOT, root, ignore=shutil.ignore_patterns(".git", ".venv", "runs", "__pycache__")
        )
        try:
            if mutant is not None:
                apply(mutant, root)
        except LookupError as exc:
            return "no longer applies", str(exc), 0.0
        start = time.perf_counter()
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *TEST_ORDER]
        try:
            proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return "timeout", "", time.perf_counter() - start
        elapsed = time.perf_counter() - start
        if proc.returncode == 0:
            return "SURVIVED", "", elapsed
        return "caught", first_failure(proc.stdout), elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="run mutants whose name has a word")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per mutant")
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the check that the unchanged suite passes"
    )
    args = parser.parse_args()
    chosen = [m for m in MUTANTS if not args.only or any(w in m.name for w in args.only)]
    if args.list:
        for m in chosen:
            print(f"{m.name:28s} {m.what}  ({m.path})")
        return 0
    if not args.no_baseline:
        result, detail, _ = run_one(None, args.timeout)
        if result != "SURVIVED":  # the unchanged suite must pass, or nothing is measured
            print(f"the unchanged suite does not pass ({result}: {detail}); fix it first")
            return 2
    print("| mutant | planted mistake | result | first failing test | s |")
    print("|---|---|---|---|---|")
    bad = 0
    for m in chosen:
        result, detail, seconds = run_one(m, args.timeout)
        bad += result != "caught"
        print(f"| {m.name} | {m.what} | {result} | {detail} | {seconds:.0f} |", flush=True)
    print(f"\n{len(chosen) - bad} of {len(chosen)} mutants caught")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
