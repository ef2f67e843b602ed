"""Replay: float64 sum-tree, uniform / prioritized ring buffers, n-step accumulation."""

from rlkit.replay.buffer import PrioritizedReplayBuffer, ReplayBuffer
from rlkit.replay.nstep import NStepAccumulator
from rlkit.replay.sum_tree import SumTree

__all__ = ["NStepAccumulator", "PrioritizedReplayBuffer", "ReplayBuffer", "SumTree"]
