"""Per-field checks kept as dataclass field metadata, and the registries they consult.

A field declares its range where it is defined (``field(default=1, metadata=at_least(1))``)
and ``rlkit.config.validate`` reads the rule from there, so a new key brings its own check.
Names that other layers own (env backends, objectives, torsos) are looked up lazily, when
a config is validated, so importing ``rlkit.config`` stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

RULE = "rule"  # the field metadata key that holds a field's Range or Choices

#: the names when the layer's registry cannot be imported (an older layout)
FALLBACK_BACKENDS = ("ale_vector", "envpool", "gymnasium")
FALLBACK_OBJECTIVES = ("auto", "c51", "iqn", "qr", "scalar")


@dataclass(frozen=True)
class Range:
    """A closed or half-open numeric range; None values (optional keys) always pass.

    ``problem(value)`` is ``"must be >= 1, got 0"``-style text, or None when in range.
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    subject: str = ""  # what the bound applies to, e.g. "widths" (each=True)
    note: str = ""  # appended to the bound, e.g. " (None = no cap)"
    each: bool = False  # the value is a sequence; every element must be in range

    def contains(self, x: float) -> bool:
        if self.low is not None and (x <= self.low if self.low_open else x < self.low):
            return False
        return self.high is None or x <= self.high

    def text(self) -> str:
        if self.high is None:
            bound = f"must be {'>' if self.low_open else '>='} {self.low}"
        else:
            bound = f"must be in {'(' if self.low_open else '['}{self.low}, {self.high}]"
        return f"{self.subject} {bound}".strip() + self.note

    def problem(self, value: Any) -> str | None:
        if value is None:
            return None
        values = value if self.each else (value,)
        if all(self.contains(x) for x in values):
            return None
        return f"{self.text()}, got {value!r}"


@dataclass(frozen=True)
class Choices:
    """A name from a registry looked up at validation time.

    With ``noun``: ``"unknown backend 'x' (choose from a, b)"``; without it the message
    of a fixed set of choices, ``"must be one of 'a', 'b', got 'x'"``.
    """

    names: Callable[[], Sequence[str]]
    noun: str = ""

    def problem(self, value: Any) -> str | None:
        names = list(self.names())
        if value in names:
            return None
        if self.noun:
            return f"unknown {self.noun} {value!r} (choose from {', '.join(names)})"
        return f"must be one of {', '.join(repr(n) for n in names)}, got {value!r}"


def at_least(low: float, *, note: str = "", subject: str = "", each: bool = False) -> dict:
    """Field metadata: value >= ``low``."""
    return {RULE: Range(low, note=note, subject=subject, each=each)}


def above(low: float) -> dict:
    """Field metadata: value > ``low``."""
    return {RULE: Range(low, low_open=True)}


def within(low: float, high: float, *, low_open: bool = False) -> dict:
    """Field metadata: value in [low, high] (or (low, high] with ``low_open``)."""
    return {RULE: Range(low, high, low_open=low_open)}


def one_of(names: Callable[[], Sequence[str]], noun: str = "") -> dict:
    """Field metadata: value is one of ``names()`` (called when a config is validated)."""
    return {RULE: Choices(names, noun)}


def backend_names() -> list[str]:
    """The env backends of ``rlkit.envs`` (``FALLBACK_BACKENDS`` where it has no registry)."""
    try:
        from rlkit.envs import backend_names as names
    except (ImportError, AttributeError):
        return list(FALLBACK_BACKENDS)
    return list(names())


def objective_names() -> list[str]:
    """The ``network.head`` names of ``rlkit.agent.objectives`` (or ``FALLBACK_OBJECTIVES``)."""
    try:
        from rlkit.agent.objectives import names
    except (ImportError, AttributeError):
        return list(FALLBACK_OBJECTIVES)
    return list(names())


def torso_names() -> tuple[str, ...]:
    """``rlkit.agent.nn.qnet.TORSOS``: the network owns the list of its torsos."""
    from rlkit.agent.nn.qnet import TORSOS

    return TORSOS
