"""Schedules: objects with ``value(step)``, used for ε (exploration) and PER β.

``step`` is whatever counter the caller passes (the trainer passes env steps).
"""

from __future__ import annotations

import math
from typing import Protocol


class Schedule(Protocol):
    """Anything with ``value(step) -> float``."""

    def value(self, step: int) -> float: ...


class ConstantSchedule:
    """Always ``value``."""

    def __init__(self, value: float) -> None:
        self._value = float(value)

    def value(self, step: int) -> float:
        return self._value

    def __repr__(self) -> str:
        return f"ConstantSchedule({self._value})"


class LinearSchedule:
    """Linear interpolation from ``start`` (step 0) to ``end`` (step ``steps``), then fixed.

    ``LinearSchedule(0.5, 0.01, 300_000)`` is ε decaying from 0.5 to 0.01 over 300k steps;
    ``LinearSchedule(0.4, 1.0, total)`` is the PER β anneal. ``steps=0`` means ``end`` at once.
    """

    def __init__(self, start: float, end: float, steps: int) -> None:
        if steps < 0:
            raise ValueError(f"LinearSchedule steps must be >= 0, got {steps}")
        self.start, self.end, self.steps = float(start), float(end), int(steps)

    def value(self, step: int) -> float:
        if self.steps == 0 or step >= self.steps:
            return self.end
        if step <= 0:
            return self.start
        frac = step / self.steps
        return self.start + frac * (self.end - self.start)

    def __repr__(self) -> str:
        return f"LinearSchedule({self.start}, {self.end}, {self.steps})"


class ExponentialSchedule:
    """``end + (start - end) * decay**step``: geometric approach from ``start`` to ``end``.

    ``decay`` is the per-step factor in (0, 1]; e.g. ``decay = 0.01 ** (1 / 100_000)``
    removes 99% of the gap in 100k steps.
    """

    def __init__(self, start: float, end: float, decay: float) -> None:
        if not 0.0 < decay <= 1.0:
            raise ValueError(f"ExponentialSchedule decay must be in (0, 1], got {decay}")
        self.start, self.end, self.decay = float(start), float(end), float(decay)

    def value(self, step: int) -> float:
        step = max(int(step), 0)
        return self.end + (self.start - self.end) * math.pow(self.decay, step)

    @classmethod
    def over_steps(
        cls, start: float, end: float, steps: int, remaining: float = 0.01
    ) -> ExponentialSchedule:
        """A schedule that has closed all but ``remaining`` of the gap after ``steps`` steps.

        ``steps <= 0`` closes the gap at once (``end`` from step 0), as
        ``LinearSchedule(start, end, 0)`` does, so the shape never changes what a decay
        over 0 steps means.
        """
        if steps <= 0:
            return cls(end, end, 1.0)
        return cls(start, end, remaining ** (1.0 / steps))

    def __repr__(self) -> str:
        return f"ExponentialSchedule({self.start}, {self.end}, {self.decay})"
