"""The old flat import paths still work and name the very modules of the layers."""

import importlib
import subprocess
import sys

import pytest

from rlkit._compat import OLD_PATHS, new_name


@pytest.mark.parametrize("old", sorted(OLD_PATHS))
def test_old_path_is_the_new_module(old):
    assert importlib.import_module(old) is importlib.import_module(OLD_PATHS[old])


def test_documented_component_imports():
    from rlkit.nn import NoisyLinear, QNetwork
    from rlkit.replay import PrioritizedReplayBuffer
    from rlkit.replay.sum_tree import SumTree

    from rlkit.agent.replay import PrioritizedReplayBuffer as new_per

    assert PrioritizedReplayBuffer is new_per
    assert QNetwork.__module__ == "rlkit.agent.nn.qnet"
    assert NoisyLinear.__module__ == "rlkit.agent.nn.noisy"
    assert SumTree.__module__ == "rlkit.agent.replay.sum_tree"


def test_submodules_follow_their_package():
    assert new_name("rlkit.replay.sum_tree") == "rlkit.agent.replay.sum_tree"
    assert new_name("rlkit.replayed") is None  # a prefix of a name is not that name
    assert new_name("rlkit.agent.replay") is None
    import rlkit.replay.sum_tree

    import rlkit.agent.replay.sum_tree

    assert rlkit.replay.sum_tree is rlkit.agent.replay.sum_tree
    # the new module keeps its own spec (pickling, importlib.resources)
    assert rlkit.replay.sum_tree.__spec__.name == "rlkit.agent.replay.sum_tree"


def test_old_path_in_a_fresh_interpreter():
    code = (
        "from rlkit.replay import PrioritizedReplayBuffer as P; "
        "import rlkit.agent.replay as r; assert P is r.PrioritizedReplayBuffer; "
        "from rlkit.trainer import Trainer; from rlkit.loops.sync import Trainer as T; "
        "assert Trainer is T; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
