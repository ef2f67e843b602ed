"""Train Rainbow on CartPole from Python, load the agent, act, evaluate and export.

    python examples/train_and_act.py              # 20,000 env steps (a few minutes on CPU)
    python examples/train_and_act.py --steps 2000 --run-dir /tmp/example-run

The same run as ``rlkit train configs/cartpole_rainbow.yaml --set trainer.total_steps=...``:
the CLI calls these functions.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import gymnasium as gym
import torch

import rlkit

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--run-dir", type=Path, default=None)
    args = parser.parse_args()

    def stop_when_solved(metrics: dict[str, float], env_steps: int) -> bool:
        """Called at each logged point; True stops the run (with a checkpoint)."""
        ret = metrics.get("eval/return_mean")
        if ret is not None:
            print(f"  [callback] {env_steps} env steps: eval return {ret:.1f}")
        return ret is not None and ret >= 475.0

    run = rlkit.train(
        ROOT / "configs/cartpole_rainbow.yaml",
        overrides={"trainer.total_steps": args.steps, "trainer.device": "cpu"},
        run_dir=args.run_dir,
        overwrite=args.run_dir is not None,
        callback=stop_when_solved,
    )
    print(f"trained {run.env_steps} env steps into {run.run_dir}")

    agent = rlkit.Agent.load(run.run_dir, device="cpu")
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=0)
    print("greedy action:", agent.act(obs), "Q-values:", agent.q_values(obs))
    print("epsilon 0.5 actions on a batch:", agent.act([obs, obs, obs], epsilon=0.5))

    result = rlkit.evaluate(agent, "CartPole-v1", episodes=10, seed=0)
    print(f"evaluation: return {result.mean:.1f} ± {result.std:.1f} over 10 episodes")

    policy_file = rlkit.export(agent, run.run_dir / "policy.pt")
    policy = torch.jit.load(str(policy_file))  # plain torch: no rlkit needed to run it
    action = policy(torch.as_tensor(obs)[None])  # input [N, *obs_shape], output [N] int64
    print(f"exported {policy_file}: action {int(action[0])} (agent: {agent.act(obs)})")


if __name__ == "__main__":
    main()
