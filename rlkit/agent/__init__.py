"""The algorithm: networks, objectives, replay, policy, learner, schedules, builder.

Nothing here imports envs, loops, the app layer or reads files; only ``builder`` reads
the config tree.
"""
