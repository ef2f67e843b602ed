"""Objectives (losses) behind one protocol, found by name, and the pure TD maths.

Every module of this package other than ``base`` and ``math`` is an objective (see
``rlkit.agent.objectives.base``): ``scalar`` (TD loss on scalar Q-values; Munchausen-DQN
with ``learner.munchausen``), ``c51`` (categorical distributional loss), ``qr``
(QR-DQN) and ``iqn`` (IQN, M-IQN with ``learner.munchausen``). A new objective is one new module here; ``names()``
lists it, ``network.head: <module name>`` picks it. ``auto`` is ``scalar`` for nets with
one atom, else ``c51``.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rlkit.agent.objectives.base import Objective, Readout

AUTO = "auto"
#: modules of this package that are not heads: shared code, and ``munchausen``, the
#: target the scalar objective switches to with ``learner.munchausen``
NOT_OBJECTIVES = ("base", "math", "munchausen")


def names() -> list[str]:
    """The objective names (module names, sorted) plus ``"auto"``; imports nothing."""
    found = {
        m.name
        for m in pkgutil.iter_modules(__path__)
        if m.name not in NOT_OBJECTIVES and not m.name.startswith("_")
    }
    return sorted(found | {AUTO})


def resolve(head: str, atoms: int) -> str:
    """The objective of ``head`` for a net with ``atoms`` outputs per action: ``auto``
    is ``scalar`` for 1 atom, else ``c51``. ValueError for an unknown name."""
    if head == AUTO:
        return "scalar" if atoms == 1 else "c51"
    if head not in names():
        raise ValueError(f"unknown head {head!r} (choose from {', '.join(names())})")
    return head


def module(name: str) -> ModuleType:
    """The module of objective ``name`` (not ``auto``; see ``resolve``)."""
    if name == AUTO or name not in names():
        raise ValueError(f"unknown head {name!r} (choose from {', '.join(names())})")
    return importlib.import_module(f"{__name__}.{name}")


def make_readout(head: str, atoms: int, v_min: float, v_max: float) -> Readout:
    """The readout (raw [B, A, Z] -> Q [B, A]) of ``head`` for a net with ``atoms``
    outputs per action. ValueError when the two contradict (e.g. c51 with one atom)."""
    return module(resolve(head, atoms)).readout(atoms, v_min, v_max)


def make(head: str, readout: Readout, **options: Any) -> Objective:
    """The objective ``head`` (``auto`` follows ``readout.name``) over ``readout``.

    ``options`` are the learner's loss settings (``double_q``, ``loss``,
    ``c51_priority``, ...); each objective takes the ones it uses.
    """
    name = readout.name if head == AUTO else head
    return module(name).make(readout, **options)
