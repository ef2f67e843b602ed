"""Replay: float64 sum-tree, uniform / prioritized ring buffers, n-step accumulation."""

from rlkit.agent.replay.buffer import PrioritizedReplayBuffer, ReplayBuffer
from rlkit.agent.replay.nstep import NStepAccumulator
from rlkit.agent.replay.sum_tree import SumTree

__all__ = ["NStepAccumulator", "PrioritizedReplayBuffer", "ReplayBuffer", "SumTree"]
