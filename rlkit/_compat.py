"""Old import paths (``rlkit.replay``, ``rlkit.learner``, ...) for the modules of the layers.

``import rlkit.replay`` returns the module ``rlkit.agent.replay`` itself, not a copy: both
names give the same classes, and patching one patches the other. Submodules follow their
package (``rlkit.replay.sum_tree`` is ``rlkit.agent.replay.sum_tree``).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from types import ModuleType

# old name -> new name (the layer that owns the module now)
OLD_PATHS = {
    "rlkit.nn": "rlkit.agent.nn",
    "rlkit.replay": "rlkit.agent.replay",
    "rlkit.losses": "rlkit.agent.objectives.math",
    "rlkit.learner": "rlkit.agent.learner",
    "rlkit.policy": "rlkit.agent.policy",
    "rlkit.schedules": "rlkit.agent.schedules",
    "rlkit.optim": "rlkit.agent.optim",
    "rlkit.trainer": "rlkit.loops.sync",
    "rlkit.collector": "rlkit.loops.collector",
    "rlkit.evaluate": "rlkit.loops.evaluate",
    "rlkit.run": "rlkit.app.run",
    "rlkit.cli": "rlkit.app.cli",
    "rlkit.checkpoint": "rlkit.app.checkpoint",
    "rlkit.logging": "rlkit.app.loggers",
    "rlkit.ablate": "rlkit.app.experiments",
    "rlkit.plot": "rlkit.app.experiments.plots",
    "rlkit.stats": "rlkit.app.experiments.statistics",
}


def new_name(old: str) -> str | None:
    """The module an old import path now names (None when ``old`` is not an old path)."""
    for prefix, target in OLD_PATHS.items():
        if old == prefix or old.startswith(prefix + "."):
            return target + old[len(prefix) :]
    return None


class _OldPathFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds old paths and loads them as the module at the new path."""

    def find_spec(self, fullname, path=None, target=None):  # noqa: ANN001 (importlib API)
        if new_name(fullname) is None:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec) -> ModuleType:  # noqa: ANN001
        module = importlib.import_module(new_name(spec.name))
        self._own_spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self._own_spec  # the import system set it to the old path's


def install() -> None:
    """Make old import paths work (idempotent)."""
    if not any(isinstance(f, _OldPathFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _OldPathFinder())
