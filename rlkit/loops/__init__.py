"""Loops: what drives envs, policy, replay and learner, and when (``sync``)."""
